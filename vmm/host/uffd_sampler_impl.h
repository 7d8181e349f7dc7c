// UffdSampler's internals (vmm/host only): the Impl every uffd_sampler*.cc
// file works on, and the small helpers they share.
//
// Threads: one handler thread (start/stop) reads fault messages (a batch
// per read), records each access in the migrator and resolves the batch's
// pages, a run of adjacent pages per ioctl; it also opens the next window
// when the budget's period has passed, and the burst windows vcpu_moved()
// asked for. scan(), close_window() and GuestRam's pause around a move run
// on the caller's thread. Arming and closing pages, the pause count and the
// scan cursor are serialised by window_mu; the fault-resolving path never
// takes it (it only clears a page's armed bit), so a vCPU never waits for a
// move or a scan.
//
// Where: uffd_sampler.cc the public API (create, start, stop, scan...) and
// userfaultfd registration; uffd_sampler_windows.cc arming and closing
// windows (the budget's walk, bursts, the pages a move needs mapped);
// uffd_sampler_handler.cc the handler thread (reading and resolving
// faults, the adaptive budget, the migrator's advice); uffd_sampler_threads.cc
// who a fault came from (thread id -> vCPU and CPU) and the sample's record.
#pragma once

#include <pthread.h>
#include <linux/userfaultfd.h>
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "numaheap/vmm.h"
#include "vmm/host/follow_clock.h"

namespace numaheap {

namespace uffd_host {

inline std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Reads a small /proc file into buf (NUL-terminated); false if missing.
bool read_small(const char* path, char* buf, std::size_t cap);

// Fields 22 (starttime, clock ticks after boot) and 39 (processor: the CPU
// the thread last ran on -- the faulting thread is blocked in its fault, so
// that is where it faulted) of /proc/self/task/TID/stat. A thread id can be
// given to a new thread once its thread has exited; the start time tells
// the two apart. False: no such thread (any more).
bool thread_stat(pid_t tid, std::uint64_t& start, long& cpu);

// "CPU n/KVM" (QEMU's vCPU thread name) -> n, else -1.
long kvm_vcpu_of_thread(pid_t tid);

}  // namespace uffd_host

struct UffdSampler::Impl {
  GuestRam* ram = nullptr;
  Migrator* mig = nullptr;
  GuestId guest = 0;
  SamplerConfig cfg;
  int uffd = -1;                 // immutable after create
  int wake_fd = -1;              // eventfd: wakes the handler for stop
  bool any_memfd = false, any_anon = false;
  pthread_t thread{};            // owner: start/stop (serialised by control_mu); valid while running()
  std::mutex control_mu;         // serialises start/stop
  std::atomic<bool> stopping{false};
  bool registered = false;       // guarded by control_mu

  std::mutex window_mu;          // guards accepting, cursor; serialises arming and closing
  bool accepting = false;        // windows may open (between start and stop)
  // > 0: a move runs, no window may open (GuestRam counts its moves in
  // flight under its sampler_lock_, so this is never below 0; set at
  // attach to the moves then in flight). Raised under window_mu when the
  // move needs windows closed first (memfd pages), else without it: a
  // move of anonymous pages need not wait for a window being armed (a
  // write-protected page moves with its protection), and arming under a
  // busy host can take seconds.
  std::atomic<int> pauses{0};
  std::uint64_t cursor = 0;      // next page to window, over the sampled pages

  // Pages of sampled region r that the sampler unmapped (memfd) or
  // write-protected (anonymous) and nobody has touched since: a bit per
  // page. Set, under window_mu, before the page is zapped or protected;
  // cleared by the handler *before* it resolves the page's fault, and by a
  // close (under window_mu) after it mapped or unprotected the page. So a
  // clear bit means the page is mapped and writable, or its fault is being
  // resolved by the handler right now; closing every set bit leaves no page
  // behind. Windows stay open until touched (as NUMA balancing's PROT_NONE
  // ranges do): a page's first access after its window opened is sampled
  // however late it comes.
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> armed;
  std::atomic<std::uint64_t> armed_pages{0};
  // Huge blocks (KernelMover::huge_block: one huge page maps the aligned
  // 2 MiB): a bit per block of sampled region r, set when the block was
  // last armed whole, cleared when it was last armed as 4 KiB pages (under
  // window_mu). A fault in a block with the bit set disarms and resolves
  // the whole block: one sample per block and window, and the huge mapping
  // is kept (a 4 KiB write-protect or resolve would split it). A stale bit
  // only widens a resolve to pages that were mapped already or are
  // disarmed first, so the `armed` invariant holds either way.
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> whole;
  static constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages;

  // set_vcpu_thread's registrations: tid -> vCPU, with the thread's start
  // time (thread_stat) so that a registration ends with its thread: a new
  // thread the kernel gives the same id is not that vCPU.
  struct Registered {
    std::uint32_t vcpu;
    std::uint64_t start;
  };
  std::mutex tid_mu;                                      // guards registered_tids
  std::unordered_map<pid_t, Registered> registered_tids;  // one per vCPU at most
  std::uint32_t guest_vcpus = 0;  // the migrator's vCPU slots for this guest (fixed at add_guest)

  // Per 64-page chunk of sampled region r (index page / 64, as `armed`'s
  // words): the vCPUs (bit id % 64) sampled there during the budget walk's
  // current sweep (recent) and the one before (older). Set by the handler
  // (relaxed: a lost bit costs a burst one chunk, nothing else); rotated
  // (older = recent, recent = 0) under window_mu when the walk wraps.
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> vcpus_recent, vcpus_older;
  std::atomic<std::uint64_t> moved_pending{0};            // vcpu_moved() bits (id % 64) not yet served
  // Handler thread only: the vCPUs (bits id % 64) of the last burst, while
  // `follow` says so (follow_clock.h; the shed stays off meanwhile). Their
  // samples ask the migrator for a step at once (Migrator::request_step),
  // at most one per kKickGapNs, so their pages follow without waiting out
  // the migrator's period.
  static constexpr std::uint64_t kKickGapNs = 200'000'000;
  // A sample within kKickGapNs of the last request is not dropped: the
  // request is made when the gap ends (kick_pending), so pages sampled
  // just after a step started do not wait out a whole period.
  std::uint64_t follow_vcpus = 0, last_kick_ns = 0;
  detail::FollowClock follow;
  bool kick_pending = false;
  std::unique_ptr<std::atomic<std::uint64_t>[]> per_vcpu;  // samples per vCPU, kSamplerCountedVcpus of them

  std::atomic<std::uint64_t> samples{0}, minor_samples{0}, wp_samples{0}, windows{0}, pages_windowed{0},
      ns_handling{0}, resolve_retries{0}, errors{0}, resolve_calls{0}, bursts{0}, pages_burst{0}, blocks_windowed{0},
      arm_calls{0}, kicks{0}, sheds{0}, pages_shed{0}, follow_extensions{0}, regions_locked{0},
      faults_outside_windows{0}, vcpu_unknown_samples{0}, pages_locked{0};
  // Sampled region r's mapping is mlocked: the kernel refuses to zap it
  // (MADV_DONTNEED: EINVAL on VM_LOCKED), so no window can open over it.
  // Set by a refused arm, cleared by start(); guarded by window_mu (every
  // arming path holds it). Counted in regions_locked.
  std::vector<char> locked;
  // Region r's pages in mlocked mappings, as region page ranges [first,
  // end) rounded out to whole kBlock blocks (a huge block is windowed
  // whole or not at all), sorted and disjoint: windows skip them. Read at
  // create() and start(), again after a refused arm; guarded by window_mu.
  // Invariant: pages_locked == the pages they cover in regions not
  // `locked` + the pages of `locked` regions.
  struct PageRun {
    std::uint64_t first = 0, end = 0;
  };
  std::vector<std::vector<PageRun>> locked_pages;
  // Reads region r's mlocked parts into locked_pages[r] (window_mu held,
  // or before the sampler is shared); pages_locked updated. True when
  // nothing of it is left to window: all of it is locked, or /proc cannot
  // tell and `refused` (the kernel just refused a zap; before any
  // refusal, no telling means none).
  bool read_locked_pages(std::size_t r, bool refused);
  std::atomic<double> budget_now{0}, share_now{0};  // published by the handler thread for stats()

  // The migrator's advice (Migrator::sample_share), read every 250 ms by
  // its own thread: sample_share takes the migrator's lock, which a step
  // holds while it moves pages -- the handler must never wait for that
  // (every vCPU faulting meanwhile would).
  std::atomic<double> advice{1};
  pthread_t advice_thread{};             // owner: start/stop, runs while the handler does
  bool advice_running = false;           // guarded by control_mu: advice_thread is to be joined
  std::mutex advice_mu;                  // with advice_cv: prompt stop
  std::condition_variable advice_cv;
  // Ends the handler thread (control_mu held): wakes and joins it, then
  // -- every page mapped and unprotected now, the thread closed its
  // windows and resolved what was queued -- unregisters (waking any late
  // waiter) and drains.
  void stop_handler();
  void advise();

  bool sampled(const GuestRamRegion& r) const { return r.backing != RamBacking::hugetlb; }
  // Region r is in the budget's walk and bursts: sampled, not mlocked
  // (window_mu held).
  bool in_walk(std::size_t r) const { return sampled(ram->regions_[r]) && !locked[r]; }
  bool huge(std::size_t r, std::uint64_t page) const { return ram->movers_[r].huge_block(page); }
  bool armed_whole(std::size_t r, std::uint64_t page) const {
    const std::uint64_t b = page / kBlock;
    return (whole[r][b / 64].load(std::memory_order_acquire) >> (b % 64)) & 1;
  }
  void set_whole(std::size_t r, std::uint64_t page, bool on) {
    const std::uint64_t b = page / kBlock, bit = std::uint64_t{1} << (b % 64);
    if (on) whole[r][b / 64].fetch_or(bit, std::memory_order_acq_rel);
    else whole[r][b / 64].fetch_and(~bit, std::memory_order_acq_rel);
  }
  char* page_addr(std::size_t r, std::uint64_t page) const {
    return static_cast<char*>(ram->regions_[r].host) + (page << kFrameShift);
  }
  std::uint64_t region_pages(std::size_t r) const { return ram->regions_[r].bytes >> kFrameShift; }
  static std::uint64_t chunks_of(std::uint64_t pages) { return (pages + 63) / 64; }

  bool is_armed(std::size_t r, std::uint64_t page) const {
    return (armed[r][page / 64].load(std::memory_order_acquire) >> (page % 64)) & 1;
  }
  // Clears one page's bit; true if it was set.
  bool disarm(std::size_t r, std::uint64_t page) {
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    const bool was = armed[r][page / 64].fetch_and(~bit, std::memory_order_acq_rel) & bit;
    if (was) armed_pages.fetch_sub(1, std::memory_order_relaxed);
    return was;
  }

  // ---- resolving ----
  // Maps [a, a + len) back (memfd); pages already mapped or not in the
  // page cache are stepped over. UFFDIO_CONTINUE wakes waiters on what it
  // maps; one UFFDIO_WAKE at the end covers pages mapped by someone else.
  void continue_range(char* a, std::uint64_t len);

  void unprotect_range(char* a, std::uint64_t len);

  // ---- windows (window_mu held) ----
  // Maps back / unprotects the armed pages of region r in [first, end).
  void close_pages_locked(std::size_t r, std::uint64_t first, std::uint64_t end);

  void close_all_locked();

  // The handler is overloaded: close every open window (unless a move
  // holds the windows). Samples are hints; the walk goes on, slower.
  static constexpr double kShedFactor = 4;
  void shed();

  // Arms pages [first, first + pages) of region r, widened to whole huge
  // blocks at either end (probe: whether to ask which blocks are huge;
  // false: the caller knows none is): bits first, then the zap (memfd) or
  // the protection (anonymous).
  // Pages in mlocked mappings (locked_pages) are skipped.
  void arm_locked(std::size_t r, std::uint64_t first, std::uint64_t pages, bool probe = true);
  // arm_locked of one run no locked_pages entry overlaps. A refused zap
  // (EINVAL) of memfd RAM re-reads the region's mlocked parts: all of it
  // -> drop_locked_region_locked; part of it -> the run is undone and, if
  // `retry`, armed again without them.
  void arm_run_locked(std::size_t r, std::uint64_t first, std::uint64_t pages, bool probe, bool retry);

  // Region r's mapping is mlocked (the kernel refused to zap [first, end)
  // with EINVAL): r leaves the walk -- one error, not one (and a close page
  // by page) per window for ever -- and what this arm did is undone
  // cheaply: a locked mapping's pages are all mapped (mlock populates, and
  // the refused zap dropped none), so only pages pagemap shows not present
  // (zapped in an unlocked part of the range, or faulting now) need an
  // ioctl; the rest just lose their bits.
  void drop_locked_region_locked(std::size_t r, std::uint64_t first, std::uint64_t end);
  // The cheap undo of a refused arm of [first, end) described above.
  void undo_refused_arm_locked(std::size_t r, std::uint64_t first, std::uint64_t end);

  // Arms gfns [first, first + pages) (sampled regions only); false if a
  // memfd region in the range cannot be windowed (mlocked).
  bool open_gfns_locked(Gfn first, std::uint64_t pages);

  // The next window of the budget's walk over the sampled pages: window_pages
  // of budget, where a huge block costs one (it gives one sample), at most
  // one sweep of the RAM.
  void open_next_locked();

  // A sweep of the walk is over: what it saw becomes the older history.
  void rotate_vcpu_chunks_locked();

  // vcpu_moved(): windows over every chunk a vCPU of `moved` (bits id % 64)
  // was sampled in lately, or nobody was, up to burst_pages; chunks known
  // to hold only other vCPUs' samples are left to the walk.
  void burst_locked(std::uint64_t moved);

  // Before a move: memfd pages among gfns that are armed are mapped back
  // (a zapped page is invisible to move_pages). Write-protected anonymous
  // pages move as they are (migration keeps the protection).
  void close_gfns_locked(std::span<const Gfn> gfns);

  // Arms the memfd pages among gfns (a window over pages about to move
  // through GuestRam's helper), a run of adjacent gfns per zap. Their next
  // access is a sample of who uses them after the move.
  void arm_gfns_locked(std::span<const Gfn> gfns);

  // ---- faults (handler thread) ----
  // Who faulted: thread tid's vCPU (registered, else by its "CPU n/KVM"
  // name; -1 if neither) and the CPU it is blocked on (-1 if unknown).
  //
  // /proc/self/task/TID/stat costs more than the rest of a sample (about
  // 8 us natively, milliseconds under emulation), and a thread faulting on
  // many pages in a row is still on the same CPU: it is read again at most
  // every kThreadMaxAgeNs per thread. Each read checks the thread's start
  // time: a thread id the kernel gave to a new thread (the old one exited)
  // has its name read again and its registration dropped, so the new thread
  // is not taken for the old one's vCPU, nor a new vCPU thread for the old
  // non-vCPU. Within kThreadMaxAgeNs of a read a cached answer is trusted:
  // the kernel hands thread ids out cyclically up to pid_max, so an id
  // comes back that soon only when it is told to (ns_last_pid, clone3
  // set_tid: checkpoint/restore).
  static constexpr std::uint64_t kThreadMaxAgeNs = 10'000'000;
  struct Seen {
    std::uint64_t start;  // thread_stat's start time; 0: no such thread at the last read
    long vcpu_named;      // its "CPU n/KVM" name's n, or -1
    long cpu;
    std::uint64_t read_ns;
  };
  std::unordered_map<pid_t, Seen> seen_tids;  // handler thread only
  struct Who {
    long vcpu, cpu;
  };
  // Reads thread tid's stat (and its name, if the thread is new) into e.
  static void refresh(pid_t tid, Seen& e, bool known, std::uint64_t now);
  Who who(pid_t tid);

  // One sample: the migrator's record, the per-vCPU count and the chunk's
  // vCPU bit (page `page` of sampled region r). vcpu_threads: a vCPU the
  // migrator has no slot for (record_vcpu_access would drop the sample)
  // is recorded by its thread's CPU, and counted (vcpu_unknown_samples).
  void record(Gfn gfn, std::size_t r, std::uint64_t page, pid_t tid);

  // A moved vCPU's sample (see follow_vcpus): a step now, not at the end
  // of the migrator's period.
  void kick_migrator();

  // Maps a run of faulted memfd pages back and wakes their threads: one
  // UFFDIO_CONTINUE for the run; if a page of it is mapped already (a
  // close raced us) or the mm is changing, page by page (continue_range
  // steps over mapped pages and wakes the whole run).
  void resolve_minor(char* a, std::uint64_t len);

  // A batch of fault messages: every sample is recorded (and its page
  // disarmed) before any page is resolved -- whoever a woken thread tells
  // sees its sample counted --, then the pages are resolved a run of
  // adjacent pages of one region and kind per ioctl.
  void handle(const uffd_msg* msgs, std::size_t n);

  // Handles queued messages, kBatch per read(). until_empty: until a read
  // finds none; otherwise a short read ends it too (the usual case: one
  // vCPU's fault), saving a read() per sample -- a message that came in
  // meanwhile makes the next poll() return at once.
  static constexpr std::size_t kBatch = 64;
  void drain(bool until_empty = true);

  // Serves vcpu_moved() requests unless a move is in progress; false if
  // some wait for it.
  bool serve_bursts();

  // The budget's walk. Each window's period is window_pages / rate, with
  // rate = pages_per_second x the migrator's advice x the handler factor:
  // the factor halves while the faulting vCPUs' wait on the handler was
  // more than max_handler_share of a CPU since the last window (measured
  // over >= 100 ms), and grows by a quarter, back to 1, while it is under
  // half of that. That wait is the handler's busy time plus, in a period
  // with samples, its time waiting for a CPU (schedstat run delay): a
  // faulting vCPU waits for both, and on an overloaded host or under
  // emulation the second is the larger by far.
  void run();

  bool register_all();

  void unregister_all();
  void unregister_first(std::size_t count);  // the sampled regions among regions_[0, count)
};

}  // namespace numaheap
