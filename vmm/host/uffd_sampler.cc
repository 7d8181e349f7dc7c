// UffdSampler: user-space hinting faults over a VMM's guest RAM with
// userfaultfd (minor faults on memfd RAM, write-protect faults on anonymous
// RAM). See include/numaheap/vmm.h for the contract.
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
#include <fcntl.h>
#include <pthread.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "numaheap/vmm.h"
#include "vmm/host/follow_clock.h"
#include "vmm/host/host_mappings.h"

#include "allocator/platform/fault_injection.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

namespace numaheap {

namespace {

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

int open_userfaultfd() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);  // vm.unprivileged_userfaultfd=0
  if (dev < 0) return -1;
  fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  ::close(dev);
  return fd;
}

// Reads a small /proc file into buf (NUL-terminated); false if missing.
bool read_small(const char* path, char* buf, std::size_t cap) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, cap - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// The calling thread's time waiting for a CPU on a run queue, ns (field 2
// of /proc/thread-self/schedstat); 0 where the kernel has no schedstats.
std::uint64_t own_run_delay_ns() {
  char buf[128];
  if (!read_small("/proc/thread-self/schedstat", buf, sizeof buf)) return 0;
  char* p = buf;
  (void)std::strtoull(p, &p, 10);  // time on the CPU
  return std::strtoull(p, nullptr, 10);
}

// Fields 22 (starttime, clock ticks after boot) and 39 (processor: the CPU
// the thread last ran on -- the faulting thread is blocked in its fault, so
// that is where it faulted) of /proc/self/task/TID/stat. A thread id can be
// given to a new thread once its thread has exited; the start time tells
// the two apart. False: no such thread (any more).
bool thread_stat(pid_t tid, std::uint64_t& start, long& cpu) {
  char path[64], buf[1024];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  if (!read_small(path, buf, sizeof buf)) return false;
  const char* p = std::strrchr(buf, ')');  // comm may hold spaces and parens
  if (!p) return false;
  ++p;
  start = 0;
  cpu = -1;
  for (int field = 3; field <= 39; ++field) {
    while (*p == ' ') ++p;
    if (!*p) return field > 22;  // an old kernel's shorter line: no processor
    if (field == 22) start = std::strtoull(p, nullptr, 10);
    if (field == 39 && *p >= '0' && *p <= '9') cpu = std::strtol(p, nullptr, 10);
    while (*p && *p != ' ') ++p;
  }
  return true;
}

// "CPU n/KVM" (QEMU's vCPU thread name) -> n, else -1.
long kvm_vcpu_of_thread(pid_t tid) {
  char path[64], buf[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/comm", static_cast<int>(tid));
  if (!read_small(path, buf, sizeof buf)) return -1;
  unsigned n = 0;
  char tail[8] = {};
  if (std::sscanf(buf, "CPU %u/%3s", &n, tail) == 2 && std::strcmp(tail, "KVM") == 0) return n;
  return -1;
}

}  // namespace

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
      faults_outside_windows{0}, vcpu_unknown_samples{0};
  // Sampled region r's mapping is mlocked: the kernel refuses to zap it
  // (MADV_DONTNEED: EINVAL on VM_LOCKED), so no window can open over it.
  // Set by a refused arm, cleared by start(); guarded by window_mu (every
  // arming path holds it). Counted in regions_locked.
  std::vector<char> locked;
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
  void stop_handler() {
    stopping.store(true, std::memory_order_release);  // run() loops until it sees this
    const std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
    pthread_join(thread, nullptr);
    std::uint64_t drained;
    (void)!::read(wake_fd, &drained, sizeof drained);
    unregister_all();
    drain();
    registered = false;
  }
  void advise() {
    std::unique_lock<std::mutex> lk(advice_mu);
    while (!stopping.load(std::memory_order_acquire)) {
      lk.unlock();
      if (auto a = mig->sample_share(guest)) advice.store(std::clamp(*a, 0.0, 1.0), std::memory_order_relaxed);
      lk.lock();
      advice_cv.wait_for(lk, std::chrono::milliseconds(250),
                         [&] { return stopping.load(std::memory_order_acquire); });
    }
  }

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
  void continue_range(char* a, std::uint64_t len) {
    std::uint64_t done = 0;
    int again = 0;
    bool stepped = false;
    while (done < len) {
      uffdio_continue c{};
      c.range.start = reinterpret_cast<std::uintptr_t>(a + done);
      c.range.len = len - done;
      if (::ioctl(uffd, UFFDIO_CONTINUE, &c) == 0) break;
      const int err = errno;
      if (c.mapped > 0) done += static_cast<std::uint64_t>(c.mapped);
      if (err == EAGAIN && ++again < 100) continue;  // mm changing: try again
      if (err != EEXIST && err != EAGAIN) errors.fetch_add(1, std::memory_order_relaxed);
      // The page at `done` is mapped already (EEXIST), or cannot be (not in
      // the page cache: a later access is an ordinary fault): step over it.
      done += kFrameSize;
      again = 0;
      stepped = true;
    }
    if (stepped) {
      uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
      (void)::ioctl(uffd, UFFDIO_WAKE, &w);
    }
  }

  void unprotect_range(char* a, std::uint64_t len) {
    for (int again = 0;; ++again) {
      uffdio_writeprotect wp{};
      wp.range.start = reinterpret_cast<std::uintptr_t>(a);
      wp.range.len = len;
      wp.mode = 0;  // clear protection and wake
      if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0) return;
      if (errno != EAGAIN || again >= 100) break;
    }
    errors.fetch_add(1, std::memory_order_relaxed);
    uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
    (void)::ioctl(uffd, UFFDIO_WAKE, &w);
  }

  // ---- windows (window_mu held) ----
  // Maps back / unprotects the armed pages of region r in [first, end).
  void close_pages_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
    if (NUMAHEAP_FAULT(sampler_skips_close)) return;
    const bool memfd = ram->regions_[r].backing == RamBacking::memfd;
    for (std::uint64_t at = first; at < end;) {
      if (at % 64 == 0 && end - at >= 64 && armed[r][at / 64].load(std::memory_order_acquire) == 0) {
        at += 64;  // a word with nothing armed
        continue;
      }
      if (!is_armed(r, at)) {
        ++at;
        continue;
      }
      std::uint64_t run = at;
      while (run < end && is_armed(r, run)) ++run;
      if (memfd)
        continue_range(page_addr(r, at), (run - at) << kFrameShift);
      else
        unprotect_range(page_addr(r, at), (run - at) << kFrameShift);
      for (std::uint64_t p = at; p < run; ++p) (void)disarm(r, p);
      at = run;
    }
  }

  void close_all_locked() {
    for (std::size_t r = 0; r < ram->regions_.size(); ++r)
      if (armed[r]) close_pages_locked(r, 0, region_pages(r));
  }

  // The handler is overloaded: close every open window (unless a move
  // holds the windows). Samples are hints; the walk goes on, slower.
  static constexpr double kShedFactor = 4;
  void shed() {
    std::lock_guard<std::mutex> g(window_mu);
    if (pauses.load(std::memory_order_acquire) != 0 || !accepting) return;
    const std::uint64_t before = armed_pages.load(std::memory_order_relaxed);
    close_all_locked();
    const std::uint64_t after = armed_pages.load(std::memory_order_relaxed);
    sheds.fetch_add(1, std::memory_order_relaxed);
    pages_shed.fetch_add(before > after ? before - after : 0, std::memory_order_relaxed);
  }

  // Arms pages [first, first + pages) of region r, widened to whole huge
  // blocks at either end (probe: whether to ask which blocks are huge;
  // false: the caller knows none is): bits first, then the zap (memfd) or
  // the protection (anonymous).
  void arm_locked(std::size_t r, std::uint64_t first, std::uint64_t pages, bool probe = true) {
    if (locked[r]) return;  // cannot be zapped: see `locked`
    {
      std::uint64_t end = first + pages;
      for (std::uint64_t b = first / kBlock * kBlock; b < end; b += kBlock) {
        const bool h = probe && huge(r, b);
        set_whole(r, b, h);
        if (!h) continue;
        blocks_windowed.fetch_add(1, std::memory_order_relaxed);
        first = std::min(first, b);
        end = std::max(end, b + kBlock);
      }
      pages = end - first;
    }
    std::uint64_t newly = 0;
    for (std::uint64_t p = first; p < first + pages; ++p) {
      const std::uint64_t bit = std::uint64_t{1} << (p % 64);
      newly += !(armed[r][p / 64].fetch_or(bit, std::memory_order_acq_rel) & bit);
    }
    armed_pages.fetch_add(newly, std::memory_order_relaxed);
    char* a = page_addr(r, first);
    const std::uint64_t len = pages << kFrameShift;
    arm_calls.fetch_add(1, std::memory_order_relaxed);
    bool ok;
    if (ram->regions_[r].backing == RamBacking::memfd) {
      // The shared mapping loses its page-table entries; the page cache
      // keeps the data, so the next access is a minor fault.
      const int madv = NUMAHEAP_FAULT(sampler_punches_window) ? MADV_REMOVE : MADV_DONTNEED;
      ok = ::madvise(a, len, madv) == 0;
    } else {
      uffdio_writeprotect wp{};
      wp.range.start = reinterpret_cast<std::uintptr_t>(a);
      wp.range.len = len;
      wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
      ok = ::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0;
    }
    if (!ok) {
      const int err = errno;
      errors.fetch_add(1, std::memory_order_relaxed);
      if (err == EINVAL && ram->regions_[r].backing == RamBacking::memfd &&
          detail::guest_mapping_locked(ram->regions_[r].host, ram->regions_[r].bytes) != detail::MappingLock::unlocked) {
        drop_locked_region_locked(r, first, first + pages);
        return;
      }
      close_pages_locked(r, first, first + pages);  // whatever was done, undo it
      return;
    }
    pages_windowed.fetch_add(pages, std::memory_order_relaxed);
  }

  // Region r's mapping is mlocked (the kernel refused to zap [first, end)
  // with EINVAL): r leaves the walk -- one error, not one (and a close page
  // by page) per window for ever -- and what this arm did is undone
  // cheaply: a locked mapping's pages are all mapped (mlock populates, and
  // the refused zap dropped none), so only pages pagemap shows not present
  // (zapped in an unlocked part of the range, or faulting now) need an
  // ioctl; the rest just lose their bits.
  void drop_locked_region_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
    locked[r] = 1;
    regions_locked.fetch_add(1, std::memory_order_relaxed);
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      close_pages_locked(r, first, end);
      return;
    }
    std::uint64_t entries[512];
    for (std::uint64_t at = first; at < end;) {
      const std::uint64_t n = std::min<std::uint64_t>(512, end - at);
      const auto off = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(page_addr(r, at)) >> kFrameShift) * 8;
      if (::pread(fd, entries, n * 8, off) != static_cast<ssize_t>(n * 8)) {
        close_pages_locked(r, at, end);
        break;
      }
      for (std::uint64_t i = 0; i < n; ++i)
        if (entries[i] >> 63 & 1) (void)disarm(r, at + i);  // mapped: nothing to undo
      close_pages_locked(r, at, at + n);  // the rest (usually none)
      at += n;
    }
    ::close(fd);
  }

  // Arms gfns [first, first + pages) (sampled regions only); false if a
  // memfd region in the range cannot be windowed (mlocked).
  bool open_gfns_locked(Gfn first, std::uint64_t pages) {
    bool all = true;
    for (std::size_t r = 0; r < ram->regions_.size(); ++r) {
      const GuestRamRegion& g = ram->regions_[r];
      if (!sampled(g)) continue;
      const Gfn base = g.guest_phys >> kFrameShift, end = base + (g.bytes >> kFrameShift);
      const Gfn a = std::max(base, first), b = std::min(end, first + pages);
      if (a < b) arm_locked(r, a - base, b - a);
      if (a < b && locked[r]) all = false;
    }
    windows.fetch_add(1, std::memory_order_relaxed);
    return all;
  }

  // The next window of the budget's walk over the sampled pages: window_pages
  // of budget, where a huge block costs one (it gives one sample), at most
  // one sweep of the RAM.
  void open_next_locked() {
    std::uint64_t total = 0;
    for (std::size_t r = 0; r < ram->regions_.size(); ++r)
      if (in_walk(r)) total += region_pages(r);
    if (total == 0) return;
    std::uint64_t want = std::min<std::uint64_t>(cfg.window_pages, total), walked = 0;
    // Adjacent pieces of one region are armed together, one protection
    // change (one TLB shootdown of every CPU running the VMM) or one zap
    // for the window's run instead of one per block.
    std::size_t run_r = 0;
    std::uint64_t run_first = 0, run_pages = 0;
    auto arm_run = [&] {
      if (run_pages) arm_locked(run_r, run_first, run_pages);
      run_pages = 0;
    };
    while (want && walked < total) {
      if (cursor >= total) {
        arm_run();
        cursor = 0;
        rotate_vcpu_chunks_locked();
      }
      std::uint64_t skip = cursor;
      std::size_t r = 0;
      for (; r < ram->regions_.size(); ++r) {
        if (!in_walk(r)) continue;
        if (skip < region_pages(r)) break;
        skip -= region_pages(r);
      }
      // One piece: the rest of skip's block (or of the region).
      const std::uint64_t block_end = std::min(region_pages(r), skip / kBlock * kBlock + kBlock);
      std::uint64_t step;
      if (huge(r, skip)) {  // arm_locked widens it to the whole block
        step = block_end - skip;
        --want;
      } else {
        step = std::min(want, block_end - skip);
        want -= step;
      }
      if (run_pages && (run_r != r || run_first + run_pages != skip)) arm_run();
      if (!run_pages) run_r = r, run_first = skip;
      run_pages += step;
      cursor += step;
      walked += step;
    }
    arm_run();
    windows.fetch_add(1, std::memory_order_relaxed);
  }

  // A sweep of the walk is over: what it saw becomes the older history.
  void rotate_vcpu_chunks_locked() {
    for (std::size_t r = 0; r < ram->regions_.size(); ++r) {
      if (!vcpus_recent[r]) continue;
      for (std::uint64_t c = 0; c < chunks_of(region_pages(r)); ++c)
        vcpus_older[r][c].store(vcpus_recent[r][c].exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    }
  }

  // vcpu_moved(): windows over every chunk a vCPU of `moved` (bits id % 64)
  // was sampled in lately, or nobody was, up to burst_pages; chunks known
  // to hold only other vCPUs' samples are left to the walk.
  void burst_locked(std::uint64_t moved) {
    std::uint64_t left = cfg.burst_pages, armed_now = 0;
    for (std::size_t r = 0; r < ram->regions_.size() && left; ++r) {
      if (!vcpus_recent[r] || !in_walk(r)) continue;
      const std::uint64_t pages = region_pages(r), chunks = chunks_of(pages);
      auto wanted = [&](std::uint64_t c) {
        const std::uint64_t seen =
            vcpus_recent[r][c].load(std::memory_order_relaxed) | vcpus_older[r][c].load(std::memory_order_relaxed);
        return seen == 0 || (seen & moved) != 0;
      };
      for (std::uint64_t c = 0; c < chunks && left;) {
        if (!wanted(c)) {
          ++c;
          continue;
        }
        std::uint64_t end = c;
        while (end < chunks && wanted(end)) ++end;
        const std::uint64_t first = c * 64, n = std::min({end * 64, pages}) - first;
        const std::uint64_t take = std::min(n, left);
        arm_locked(r, first, take);
        if (locked[r]) break;  // refused: r left the walk
        armed_now += take;
        left -= take;
        c = end;
      }
    }
    bursts.fetch_add(1, std::memory_order_relaxed);
    pages_burst.fetch_add(armed_now, std::memory_order_relaxed);
    windows.fetch_add(1, std::memory_order_relaxed);
  }

  // Before a move: memfd pages among gfns that are armed are mapped back
  // (a zapped page is invisible to move_pages). Write-protected anonymous
  // pages move as they are (migration keeps the protection).
  void close_gfns_locked(std::span<const Gfn> gfns) {
    for (Gfn gfn : gfns) {
      const int r = ram->region_of_gfn(gfn);
      if (r < 0) continue;
      const auto ri = static_cast<std::size_t>(r);
      if (ram->regions_[ri].backing != RamBacking::memfd) continue;
      const std::uint64_t page = gfn - (ram->regions_[ri].guest_phys >> kFrameShift);
      if (armed_whole(ri, page)) {  // a whole-block move: the block's pages must be mapped
        const std::uint64_t head = page / kBlock * kBlock;
        close_pages_locked(ri, head, std::min(head + kBlock, region_pages(ri)));
      } else if (is_armed(ri, page)) {
        close_pages_locked(ri, page, page + 1);
      }
    }
  }

  // Arms the memfd pages among gfns (a window over pages about to move
  // through GuestRam's helper), a run of adjacent gfns per zap. Their next
  // access is a sample of who uses them after the move.
  void arm_gfns_locked(std::span<const Gfn> gfns) {
    for (std::size_t i = 0; i < gfns.size();) {
      const int r = ram->region_of_gfn(gfns[i]);
      std::size_t j = i + 1;
      if (r < 0 || ram->regions_[static_cast<std::size_t>(r)].backing != RamBacking::memfd) {
        i = j;
        continue;
      }
      const auto ri = static_cast<std::size_t>(r);
      const Gfn base = ram->regions_[ri].guest_phys >> kFrameShift, end = base + region_pages(ri);
      while (j < gfns.size() && gfns[j] == gfns[j - 1] + 1 && gfns[j] < end) ++j;
      arm_locked(ri, gfns[i] - base, j - i, false);
      i = j;
    }
  }

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
  static void refresh(pid_t tid, Seen& e, bool known, std::uint64_t now) {
    std::uint64_t start = 0;
    long cpu = -1;
    const bool alive = thread_stat(tid, start, cpu);
    if (!alive) start = 0;
    if (!known || start != e.start) e.vcpu_named = alive ? kvm_vcpu_of_thread(tid) : -1;
    e.start = start;
    e.cpu = cpu;
    e.read_ns = now;
  }
  Who who(pid_t tid) {
    const std::uint64_t now = now_ns();
    auto it = seen_tids.find(tid);
    const bool known = it != seen_tids.end();
    if (!known) {
      if (seen_tids.size() >= 4096) seen_tids.clear();  // threads come and go
      it = seen_tids.emplace(tid, Seen{0, -1, -1, 0}).first;
    }
    Seen& e = it->second;
    if (!known || now - e.read_ns >= kThreadMaxAgeNs) refresh(tid, e, known, now);
    Who w{e.vcpu_named, e.cpu};
    std::lock_guard<std::mutex> g(tid_mu);
    auto reg = registered_tids.find(tid);
    if (reg == registered_tids.end()) return w;
    if (reg->second.start != e.start && now != e.read_ns) {  // the cached read may predate the thread
      refresh(tid, e, true, now);
      w = Who{e.vcpu_named, e.cpu};
    }
    if (reg->second.start != e.start) {  // the registered thread has exited
      registered_tids.erase(reg);
      return w;
    }
    w.vcpu = static_cast<long>(reg->second.vcpu);
    return w;
  }

  // One sample: the migrator's record, the per-vCPU count and the chunk's
  // vCPU bit (page `page` of sampled region r). vcpu_threads: a vCPU the
  // migrator has no slot for (record_vcpu_access would drop the sample)
  // is recorded by its thread's CPU, and counted (vcpu_unknown_samples).
  void record(Gfn gfn, std::size_t r, std::uint64_t page, pid_t tid) {
    const Who w = who(tid);
    const long v = w.vcpu;
    bool kick = false;  // a moved vCPU's sample
    if (v >= 0) {
      if (static_cast<std::uint64_t>(v) < kSamplerCountedVcpus)
        per_vcpu[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed);
      std::atomic<std::uint64_t>& chunk = vcpus_recent[r][page / 64];
      const std::uint64_t bit = std::uint64_t{1} << (static_cast<std::uint64_t>(v) % 64);
      if (!(chunk.load(std::memory_order_relaxed) & bit)) chunk.fetch_or(bit, std::memory_order_relaxed);
      kick = (follow_vcpus & bit) != 0;
      if (cfg.cpu_source == SampleCpuSource::vcpu_threads) {
        if (static_cast<std::uint64_t>(v) < guest_vcpus) {
          mig->record_vcpu_access(guest, gfn, static_cast<std::uint32_t>(v));
          if (kick) kick_migrator();
          return;
        }
        vcpu_unknown_samples.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (w.cpu >= 0) mig->record_access(guest, gfn, static_cast<CpuId>(w.cpu));
    if (kick) kick_migrator();
  }

  // A moved vCPU's sample (see follow_vcpus): a step now, not at the end
  // of the migrator's period.
  void kick_migrator() {
    const std::uint64_t now = now_ns();
    if (!follow.following(now)) {
      kick_pending = false;
      return;
    }
    if (now - last_kick_ns < kKickGapNs) {
      kick_pending = true;
      return;
    }
    kick_pending = false;
    last_kick_ns = now;
    kicks.fetch_add(1, std::memory_order_relaxed);
    // This guest's moves only (lock-free: never waits for a running step).
    const auto own = mig->guest_stats(guest);
    if (own && follow.sample(now, own->pages_moved)) follow_extensions.fetch_add(1, std::memory_order_relaxed);
    mig->request_step();
  }

  // Maps a run of faulted memfd pages back and wakes their threads: one
  // UFFDIO_CONTINUE for the run; if a page of it is mapped already (a
  // close raced us) or the mm is changing, page by page (continue_range
  // steps over mapped pages and wakes the whole run).
  void resolve_minor(char* a, std::uint64_t len) {
    resolve_calls.fetch_add(1, std::memory_order_relaxed);
    uffdio_continue c{};
    c.range.start = reinterpret_cast<std::uintptr_t>(a);
    c.range.len = len;
    if (::ioctl(uffd, UFFDIO_CONTINUE, &c) == 0) return;
    if (errno == EEXIST) resolve_retries.fetch_add(1, std::memory_order_relaxed);
    continue_range(a, len);
    uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
    (void)::ioctl(uffd, UFFDIO_WAKE, &w);
  }

  // A batch of fault messages: every sample is recorded (and its page
  // disarmed) before any page is resolved -- whoever a woken thread tells
  // sees its sample counted --, then the pages are resolved a run of
  // adjacent pages of one region and kind per ioctl.
  void handle(const uffd_msg* msgs, std::size_t n) {
    const std::uint64_t t0 = now_ns();
    struct Fault {
      std::size_t r;
      std::uint64_t page, pages;
      bool wp;
    };
    Fault f[kBatch];
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const uffd_msg& msg = msgs[i];
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      char* page = reinterpret_cast<char*>(msg.arg.pagefault.address & ~std::uint64_t{kFrameSize - 1});
      const bool wp = msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
      const auto gfn = ram->gfn_of(page);
      const int r = gfn ? ram->region_of_gfn(*gfn) : -1;
      if (r < 0 || !armed[static_cast<std::size_t>(r)]) {  // not ours to sample (cannot happen): just resolve
        faults_outside_windows.fetch_add(1, std::memory_order_relaxed);
        if (wp) unprotect_range(page, kFrameSize);
        else resolve_minor(page, kFrameSize);
        continue;
      }
      const auto ri = static_cast<std::size_t>(r);
      const std::uint64_t p = *gfn - (ram->regions_[ri].guest_phys >> kFrameShift);
      // A sample only where this fault clears the armed bit (before
      // resolving: see `armed`): a page zapped for another reason, or a
      // second thread's fault on a page (block) whose first fault took the
      // sample, or one a close mapped back meanwhile, is resolved only.
      bool in_window = false;
      if (armed_whole(ri, p)) {  // the whole block: one sample, the huge mapping kept
        const std::uint64_t head = p / kBlock * kBlock, span = std::min(kBlock, region_pages(ri) - head);
        for (std::uint64_t q = head; q < head + span; ++q) in_window |= disarm(ri, q);
        f[k++] = Fault{ri, head, span, wp};
      } else {
        in_window = disarm(ri, p);
        f[k++] = Fault{ri, p, 1, wp};
      }
      if (!in_window) {
        faults_outside_windows.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      (wp ? wp_samples : minor_samples).fetch_add(1, std::memory_order_relaxed);
      samples.fetch_add(1, std::memory_order_relaxed);
      record(*gfn, ri, p, static_cast<pid_t>(msg.arg.pagefault.feat.ptid));
    }
    std::sort(f, f + k, [](const Fault& a, const Fault& b) {
      return a.r != b.r ? a.r < b.r : a.page != b.page ? a.page < b.page : a.wp < b.wp;
    });
    for (std::size_t i = 0; i < k;) {
      std::size_t j = i + 1;
      std::uint64_t end = f[i].page + f[i].pages;
      // Two threads faulting on one page (block) give two messages: one resolve.
      while (j < k && f[j].r == f[i].r && f[j].wp == f[i].wp && f[j].page <= end) {
        end = std::max(end, f[j].page + f[j].pages);
        ++j;
      }
      char* a = page_addr(f[i].r, f[i].page);
      const std::uint64_t len = (end - f[i].page) << kFrameShift;
      if (f[i].wp) {
        resolve_calls.fetch_add(1, std::memory_order_relaxed);
        unprotect_range(a, len);
      } else {
        resolve_minor(a, len);
      }
      i = j;
    }
    ns_handling.fetch_add(now_ns() - t0, std::memory_order_relaxed);
  }

  // Handles queued messages, kBatch per read(). until_empty: until a read
  // finds none; otherwise a short read ends it too (the usual case: one
  // vCPU's fault), saving a read() per sample -- a message that came in
  // meanwhile makes the next poll() return at once.
  static constexpr std::size_t kBatch = 64;
  void drain(bool until_empty = true) {
    uffd_msg msgs[kBatch];
    for (;;) {
      const ssize_t n = ::read(uffd, msgs, sizeof msgs);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      handle(msgs, static_cast<std::size_t>(n) / sizeof(uffd_msg));
      if (!until_empty && static_cast<std::size_t>(n) < sizeof msgs) return;
    }
  }

  // Serves vcpu_moved() requests unless a move is in progress; false if
  // some wait for it.
  bool serve_bursts() {
    if (moved_pending.load(std::memory_order_acquire) == 0) return true;
    std::lock_guard<std::mutex> g(window_mu);
    if (!accepting) return true;
    if (pauses.load(std::memory_order_acquire)) return false;
    const std::uint64_t moved = moved_pending.exchange(0, std::memory_order_acq_rel);
    if (moved && cfg.burst_pages) burst_locked(moved);
    if (moved) {
      follow_vcpus = moved;
      follow.burst(now_ns());
    }
    return true;
  }

  // The budget's walk. Each window's period is window_pages / rate, with
  // rate = pages_per_second x the migrator's advice x the handler factor:
  // the factor halves while the faulting vCPUs' wait on the handler was
  // more than max_handler_share of a CPU since the last window (measured
  // over >= 100 ms), and grows by a quarter, back to 1, while it is under
  // half of that. That wait is the handler's busy time plus, in a period
  // with samples, its time waiting for a CPU (schedstat run delay): a
  // faulting vCPU waits for both, and on an overloaded host or under
  // emulation the second is the larger by far.
  void run() {
    constexpr std::uint64_t kMeasureNs = 100'000'000;
    constexpr double kMinFactor = 1.0 / 1024;
    double factor = 1;
    std::uint64_t measured_at = now_ns(), busy_at = ns_handling.load(std::memory_order_relaxed),
                  delay_at = own_run_delay_ns(), samples_at = samples.load(std::memory_order_relaxed);
    auto rate = [&] {
      const double a = cfg.follow_advice ? advice.load(std::memory_order_relaxed) : 1.0;
      return static_cast<double>(cfg.pages_per_second) * a * factor;
    };
    auto period_of = [&] { return static_cast<std::uint64_t>(1e9 * cfg.window_pages / std::max(rate(), 1e-3)); };
    budget_now.store(cfg.pages_per_second, std::memory_order_relaxed);
    std::uint64_t deadline = now_ns() + (cfg.pages_per_second ? period_of() : 0);
    bool bursts_waiting = false;
    while (!stopping.load(std::memory_order_acquire)) {
      int timeout_ms = -1;
      if (cfg.pages_per_second) {
        const std::uint64_t now = now_ns();
        timeout_ms = now >= deadline ? 0 : static_cast<int>(std::min<std::uint64_t>((deadline - now + 999999) / 1000000, 1000));
      }
      if (bursts_waiting && (timeout_ms < 0 || timeout_ms > 5)) timeout_ms = 5;  // a move holds them back
      if (kick_pending) {  // wake when the gap ends
        const std::uint64_t now = now_ns(), due = last_kick_ns + kKickGapNs;
        const int gap_ms = now >= due ? 0 : static_cast<int>((due - now + 999999) / 1000000);
        if (timeout_ms < 0 || timeout_ms > gap_ms) timeout_ms = gap_ms;
      }
      pollfd fds[2] = {{uffd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int ready = ::poll(fds, 2, timeout_ms);
      if (ready > 0 && (fds[0].revents & POLLIN)) drain(false);
      if (ready > 0 && (fds[1].revents & POLLIN)) {
        std::uint64_t v;
        (void)!::read(wake_fd, &v, sizeof v);
      }
      bursts_waiting = !serve_bursts();
      if (kick_pending && now_ns() - last_kick_ns >= kKickGapNs) kick_migrator();
      if (!cfg.pages_per_second) continue;
      const std::uint64_t now = now_ns();
      if (now - measured_at >= kMeasureNs) {
        const std::uint64_t busy = ns_handling.load(std::memory_order_relaxed), delay = own_run_delay_ns(),
                            sampled = samples.load(std::memory_order_relaxed);
        const std::uint64_t waited = (busy - busy_at) + (sampled != samples_at && delay > delay_at ? delay - delay_at : 0);
        const double share = static_cast<double>(waited) / static_cast<double>(now - measured_at);
        if (share > cfg.max_handler_share) factor = std::max(kMinFactor, factor / 2);
        else if (share < cfg.max_handler_share / 2) factor = std::min(1.0, factor * 1.25);
        // Far over the cap, and no moved vCPU being followed: every page
        // still armed would stop a vCPU for about as long as the last
        // samples took (under emulation, milliseconds each -- 850 armed
        // pages of a shared set held 8 vCPUs for 10 s). Lowering the
        // budget only spaces the next windows; the open ones are closed.
        if (share > kShedFactor * cfg.max_handler_share && !follow.following(now) &&
            armed_pages.load(std::memory_order_relaxed) > 0)
          shed();
        share_now.store(share, std::memory_order_relaxed);
        measured_at = now;
        busy_at = busy;
        delay_at = delay;
        samples_at = sampled;
      }
      budget_now.store(rate(), std::memory_order_relaxed);
      if (now >= deadline) {
        {
          std::lock_guard<std::mutex> g(window_mu);
          if (pauses.load(std::memory_order_acquire) == 0 && accepting) open_next_locked();
        }
        deadline = now_ns() + period_of();
      } else {
        deadline = std::min(deadline, now + period_of());  // the budget grew: do not wait out the old period
      }
    }
    {
      std::lock_guard<std::mutex> g(window_mu);
      accepting = false;  // scan() from other threads may not reopen one
      close_all_locked();
    }
    drain();
  }

  bool register_all() {
    for (const GuestRamRegion& g : ram->regions_) {
      if (!sampled(g)) continue;
      uffdio_register reg{};
      reg.range.start = reinterpret_cast<std::uintptr_t>(g.host);
      reg.range.len = g.bytes;
      reg.mode = g.backing == RamBacking::memfd ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_WP;
      const std::uint64_t need = g.backing == RamBacking::memfd ? (std::uint64_t{1} << _UFFDIO_CONTINUE)
                                                                : (std::uint64_t{1} << _UFFDIO_WRITEPROTECT);
      if (::ioctl(uffd, UFFDIO_REGISTER, &reg) != 0 || (reg.ioctls & need) != need) {
        unregister_all();
        return false;
      }
    }
    return true;
  }

  void unregister_all() {
    for (const GuestRamRegion& g : ram->regions_) {
      if (!sampled(g)) continue;
      uffdio_range r{reinterpret_cast<std::uintptr_t>(g.host), g.bytes};
      (void)::ioctl(uffd, UFFDIO_UNREGISTER, &r);  // also wakes any waiter
    }
  }
};

Result<std::unique_ptr<UffdSampler>, Error> UffdSampler::create(GuestRam& ram, Migrator& migrator, GuestId guest,
                                                                const SamplerConfig& config) {
  if (config.window_pages == 0 || config.window_pages > (1u << 20))
    return make_error(Errc::invalid_argument, "sampler: window_pages must be 1..1048576, not ", config.window_pages);
  if (config.cpu_source != SampleCpuSource::thread_cpu && config.cpu_source != SampleCpuSource::vcpu_threads)
    return make_error(Errc::invalid_argument, "sampler: unknown cpu_source");
  if (!(config.max_handler_share > 0 && config.max_handler_share <= 1))
    return make_error(Errc::invalid_argument, "sampler: max_handler_share must be in (0, 1]");
  // A wrong id would drop every sample, or file it under another guest.
  const auto own = migrator.guest_stats(guest);
  if (!own) return make_error(Errc::invalid_argument, "sampler: guest ", guest, " is not in the migrator");
  for (const GuestRamRegion& g : ram.regions_) {
    if (g.backing != RamBacking::memfd || detail::guest_mapping_locked(g.host, g.bytes) != detail::MappingLock::locked)
      continue;
    char where[96];
    std::snprintf(where, sizeof where, "[0x%llx, 0x%llx)", static_cast<unsigned long long>(g.guest_phys),
                  static_cast<unsigned long long>(g.guest_phys + g.bytes));
    return make_error(Errc::unsupported, "sampler: memfd guest RAM at guest-physical ", where,
                      " is mlocked (mlock, or mlockall as with -overcommit mem-lock=on): the kernel refuses to "
                      "unmap its pages (MADV_DONTNEED), so it cannot be sampled");
  }
  std::unique_ptr<Impl> impl(new (std::nothrow) Impl());
  if (!impl) return make_error(Errc::no_memory, "sampler: out of memory");
  impl->ram = &ram;
  impl->mig = &migrator;
  impl->guest = guest;
  impl->cfg = config;
  impl->guest_vcpus = own->vcpus;
  impl->locked.assign(ram.regions_.size(), 0);
  impl->armed.resize(ram.regions_.size());
  impl->vcpus_recent.resize(ram.regions_.size());
  impl->vcpus_older.resize(ram.regions_.size());
  impl->whole.resize(ram.regions_.size());
  impl->per_vcpu.reset(new (std::nothrow) std::atomic<std::uint64_t>[kSamplerCountedVcpus]());
  if (!impl->per_vcpu) return make_error(Errc::no_memory, "sampler: out of memory");
  for (std::size_t r = 0; r < ram.regions_.size(); ++r) {
    const GuestRamRegion& g = ram.regions_[r];
    if (impl->sampled(g)) {
      const std::uint64_t words = Impl::chunks_of(g.bytes >> kFrameShift);  // a bit per page; a word per chunk
      impl->armed[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      impl->vcpus_recent[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      impl->vcpus_older[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      const std::uint64_t blocks = ((g.bytes >> kFrameShift) + Impl::kBlock - 1) / Impl::kBlock;
      impl->whole[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[(blocks + 63) / 64]());  // a bit per block
      if (!impl->armed[r] || !impl->vcpus_recent[r] || !impl->vcpus_older[r] || !impl->whole[r])
        return make_error(Errc::no_memory, "sampler: out of memory");
    }
    impl->any_memfd |= g.backing == RamBacking::memfd;
    impl->any_anon |= g.backing == RamBacking::anonymous;
  }
  impl->uffd = open_userfaultfd();
  if (impl->uffd < 0)
    return make_error(Errc::unsupported, "sampler: userfaultfd unavailable: ", std::strerror(errno));
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_THREAD_ID | (impl->any_memfd ? UFFD_FEATURE_MINOR_SHMEM : 0) |
                 (impl->any_anon ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0);
  if (::ioctl(impl->uffd, UFFDIO_API, &api) != 0) {
    const int err = errno;
    ::close(impl->uffd);
    return make_error(Errc::unsupported, "sampler: the kernel refused userfaultfd features",
                      impl->any_memfd ? " MINOR_SHMEM" : "", impl->any_anon ? " PAGEFAULT_FLAG_WP" : "",
                      " THREAD_ID: ", std::strerror(err));
  }
  impl->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) {
    ::close(impl->uffd);
    return make_error(Errc::no_memory, "sampler: eventfd: ", std::strerror(errno));
  }
  {
    std::lock_guard<std::mutex> g(ram.sampler_lock_);
    if (ram.sampler_) {
      ::close(impl->uffd);
      ::close(impl->wake_fd);
      return make_error(Errc::busy, "sampler: this guest RAM has a sampler already");
    }
    // Moves already between their pause and resume resume this sampler:
    // it starts paused once for each (GuestRam::pause_sampler).
    impl->pauses.store(ram.moves_paused_, std::memory_order_relaxed);
    std::unique_ptr<UffdSampler> s(new UffdSampler(impl.release()));
    ram.sampler_ = s.get();
    return s;
  }
}

UffdSampler::~UffdSampler() {
  stop();
  {
    std::lock_guard<std::mutex> g(impl_->ram->sampler_lock_);
    impl_->ram->sampler_ = nullptr;
  }
  ::close(impl_->uffd);
  ::close(impl_->wake_fd);
  delete impl_;
}

Status UffdSampler::set_vcpu_thread(std::uint32_t vcpu, pid_t tid) {
  // The registration holds for this thread, not its id: its start time
  // tells it from a later thread with the same id (Impl::who).
  std::uint64_t start = 0;
  long cpu = -1;
  if (tid > 0 && !thread_stat(tid, start, cpu)) return Errc::invalid_argument;  // no such thread here
  std::lock_guard<std::mutex> g(impl_->tid_mu);
  for (auto it = impl_->registered_tids.begin(); it != impl_->registered_tids.end();)
    it = it->second.vcpu == vcpu ? impl_->registered_tids.erase(it) : std::next(it);
  if (tid > 0) impl_->registered_tids[tid] = Impl::Registered{vcpu, start};
  return {};
}

Status UffdSampler::start() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (running()) return Errc::busy;
  // memfd RAM mlocked since create(): no window could open over it (see
  // create()'s message); refused before anything changes.
  for (const GuestRamRegion& g : impl_->ram->regions_)
    if (g.backing == RamBacking::memfd &&
        detail::guest_mapping_locked(g.host, g.bytes) == detail::MappingLock::locked)
      return Errc::unsupported;
  {
    std::lock_guard<std::mutex> g(impl_->window_mu);  // no window opens while stopped
    std::fill(impl_->locked.begin(), impl_->locked.end(), 0);
    impl_->regions_locked.store(0, std::memory_order_relaxed);
  }
  if (!impl_->register_all()) return Errc::unsupported;
  impl_->registered = true;
  impl_->stopping.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> g(impl_->window_mu);
    impl_->accepting = true;
  }
  // pthread_create, not std::thread: this library has no exceptions, and
  // std::thread reports a refused thread (pids.max, RLIMIT_NPROC, no room
  // for a stack) by throwing -- std::terminate here. A refusal is
  // no_memory, with everything as it was before start().
  // Named for top(1) and /proc/PID/task/*/comm, as VMMs name theirs.
  auto handler = +[](void* p) -> void* {
    pthread_setname_np(pthread_self(), "numaheap-uffd");
    static_cast<Impl*>(p)->run();
    return nullptr;
  };
  if (pthread_create(&impl_->thread, nullptr, handler, impl_) != 0) {
    {
      std::lock_guard<std::mutex> g(impl_->window_mu);
      impl_->accepting = false;
    }
    impl_->unregister_all();
    impl_->registered = false;
    return Errc::no_memory;
  }
  impl_->advice_running = false;
  if (impl_->cfg.follow_advice && impl_->cfg.pages_per_second) {
    auto adviser = +[](void* p) -> void* {
      pthread_setname_np(pthread_self(), "numaheap-advice");
      static_cast<Impl*>(p)->advise();
      return nullptr;
    };
    if (pthread_create(&impl_->advice_thread, nullptr, adviser, impl_) != 0) {
      impl_->stop_handler();  // the handler alone ran: every page mapped again
      return Errc::no_memory;
    }
    impl_->advice_running = true;
  }
  thread_running_.store(true, std::memory_order_release);
  return {};
}

void UffdSampler::stop() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (!running()) return;
  {
    std::lock_guard<std::mutex> g(impl_->advice_mu);
    impl_->stopping.store(true, std::memory_order_release);
  }
  impl_->advice_cv.notify_all();
  if (impl_->advice_running) pthread_join(impl_->advice_thread, nullptr);
  impl_->advice_running = false;
  impl_->stop_handler();
  thread_running_.store(false, std::memory_order_release);
}

Status UffdSampler::scan(Gfn first, std::uint64_t pages) {
  if (pages == 0 || first > impl_->ram->page_count() || pages > impl_->ram->page_count() - first)
    return Errc::invalid_argument;
  if (!running()) return Errc::busy;
  std::lock_guard<std::mutex> g(impl_->window_mu);
  if (impl_->pauses.load(std::memory_order_acquire) || !impl_->accepting) return Errc::busy;
  if (!impl_->open_gfns_locked(first, pages)) return Errc::unsupported;  // mlocked memfd RAM in the range
  return {};
}

Status UffdSampler::vcpu_moved(std::uint32_t vcpu) {
  if (!running()) return Errc::busy;
  impl_->moved_pending.fetch_or(std::uint64_t{1} << (vcpu % 64), std::memory_order_acq_rel);
  const std::uint64_t one = 1;
  (void)!::write(impl_->wake_fd, &one, sizeof one);
  return {};
}

std::uint64_t UffdSampler::vcpu_samples(std::uint32_t vcpu) const noexcept {
  return vcpu < kSamplerCountedVcpus ? impl_->per_vcpu[vcpu].load(std::memory_order_relaxed) : 0;
}

void UffdSampler::close_window() {
  std::lock_guard<std::mutex> g(impl_->window_mu);
  impl_->close_all_locked();
}

SamplerStats UffdSampler::stats() const noexcept {
  const Impl& m = *impl_;
  SamplerStats s;
  s.samples = m.samples.load(std::memory_order_relaxed);
  s.minor_samples = m.minor_samples.load(std::memory_order_relaxed);
  s.wp_samples = m.wp_samples.load(std::memory_order_relaxed);
  s.windows = m.windows.load(std::memory_order_relaxed);
  s.pages_windowed = m.pages_windowed.load(std::memory_order_relaxed);
  s.ns_handling = m.ns_handling.load(std::memory_order_relaxed);
  s.ns_per_sample = s.samples ? static_cast<double>(s.ns_handling) / static_cast<double>(s.samples) : 0;
  s.resolve_retries = m.resolve_retries.load(std::memory_order_relaxed);
  s.errors = m.errors.load(std::memory_order_relaxed);
  s.pages_armed = m.armed_pages.load(std::memory_order_relaxed);
  s.resolve_calls = m.resolve_calls.load(std::memory_order_relaxed);
  s.bursts = m.bursts.load(std::memory_order_relaxed);
  s.pages_burst = m.pages_burst.load(std::memory_order_relaxed);
  s.steps_requested = m.kicks.load(std::memory_order_relaxed);
  s.budget_pages_per_second = m.budget_now.load(std::memory_order_relaxed);
  s.handler_share = m.share_now.load(std::memory_order_relaxed);
  s.blocks_windowed = m.blocks_windowed.load(std::memory_order_relaxed);
  s.arm_calls = m.arm_calls.load(std::memory_order_relaxed);
  s.sheds = m.sheds.load(std::memory_order_relaxed);
  s.pages_shed = m.pages_shed.load(std::memory_order_relaxed);
  s.follow_extensions = m.follow_extensions.load(std::memory_order_relaxed);
  s.regions_locked = m.regions_locked.load(std::memory_order_relaxed);
  s.faults_outside_windows = m.faults_outside_windows.load(std::memory_order_relaxed);
  s.vcpu_unknown_samples = m.vcpu_unknown_samples.load(std::memory_order_relaxed);
  return s;
}

namespace detail {

void sampler_pause(UffdSampler& s, std::span<const Gfn> gfns, bool close) noexcept {
  if (!close) {
    s.impl_->pauses.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  s.impl_->close_gfns_locked(gfns);
  s.impl_->pauses.fetch_add(1, std::memory_order_acq_rel);
}

bool sampler_arm(UffdSampler& s, std::span<const Gfn> gfns) noexcept {
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  if (!s.impl_->accepting) return false;
  s.impl_->arm_gfns_locked(gfns);
  return true;
}

void sampler_resume(UffdSampler& s) noexcept { s.impl_->pauses.fetch_sub(1, std::memory_order_acq_rel); }

}  // namespace detail

}  // namespace numaheap
