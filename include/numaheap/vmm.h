// numaheap: guest RAM of a KVM-style VMM as its own host mappings, and a
// user-space hinting-fault sampler over them (host library only).
//
// A VMM (QEMU, cloud-hypervisor, Firecracker shape) keeps guest RAM in one
// or a few big mappings (anonymous, memfd/shmem, hugetlb) that it registers
// with KVM as memory slots. GuestRam takes those mappings and the guest's
// vNUMA layout, binds every vnode's guest-physical range to its node(s),
// populates it and is the migrator's Mover for it (move_pages(2)). The
// UffdSampler feeds the migrator access samples from userfaultfd faults.
//
// Contract (GuestRam):
//  * create() validates everything first (alignment, overlaps, vnode ranges
//    inside registered RAM, known memory nodes, every region mapped for
//    read and write, memfd regions MAP_SHARED -- /proc/self/maps): bad
//    input is a clear error naming the range, and nothing is bound or
//    populated. A bind or populate
//    that the kernel refuses is reported with the range and node; the ranges
//    bound so far get their default policy back.
//  * Guest frame g is guest-physical address g * 4096; page_count() is the
//    end of the highest region. Frames in no region (holes) are not_present.
//  * A vnode placed on k nodes is split into k contiguous parts of about
//    equal size, each split point the 2 MiB boundary of guest-physical
//    space nearest the even split (so no hugetlb page is split, and each
//    part is within 2 MiB of its even share; a node whose part would be
//    empty gets none), each part bound (MPOL_BIND) to one node
//    and given to the migrator as its own GuestRange.
//  * move() as KernelMover, region by region; pages of a region marked
//    `shared` (mapped by another process or twice: memfd) move with
//    MPOL_MF_MOVE_ALL. move_each() moves the huge blocks of all its
//    requests (regions not through the move helper) with one move_pages
//    call per KernelMover::kBlockGroup of them, each to its own target.
//    node_frames() is the kernel's per-node MemFree /
//    MemTotal (sysfs), so the migrator's watermark is the real one.
//  * relayout() (a rehome) rebinds the affected ranges to their new nodes
//    (without moving: the migrator moves) and keeps the layout. A rebind
//    the kernel refuses is an error (unsupported, no_memory): the ranges
//    get their old binding back and the layout is unchanged.
//  * Mover calls (query, move, move_each) are serialised by a lock of the
//    GuestRam: a VMM may call them itself (the C API) while a migrator
//    steps the same RAM; one waits for the other. GuestRam never unmaps the
//    VMM's memory; after create() (populate) it only maps pages back that a
//    move through the helper unmapped (MADV_POPULATE_READ, no write).
//
// Contract (UffdSampler):
//  * memfd RAM: userfaultfd minor-fault mode. A window of pages loses its
//    page-table entries (MADV_DONTNEED on the shared mapping: the data stays
//    in the page cache); the next access, read or write, faults in the
//    accessing thread; the handler thread records it and maps the page back
//    with UFFDIO_CONTINUE. Anonymous RAM: write-protect mode -- writes only,
//    reads are never sampled. hugetlb RAM is not sampled.
//  * Huge blocks: an aligned 2 MiB block that one huge page maps
//    (KernelMover::huge_block) is armed and resolved whole -- write-protect
//    or zap the 2 MiB, one fault, the whole block resolved -- so it gives
//    one sample per window and keeps its huge mapping; in the budget's walk
//    it costs one page. The migrator's keep_huge_pages policy then moves
//    the block whole on one node's samples (GuestRam::query reports it as
//    order 9 when its region's guest_phys is 2 MiB aligned).
//  * Who accessed: the faulting thread id (UFFD_FEATURE_THREAD_ID). A thread
//    registered with set_vcpu_thread, or named "CPU n/KVM" (QEMU's name for
//    vCPU n), gives record_vcpu_access(vcpu) when cpu_source is
//    vcpu_threads (the VMM keeps Migrator::set_vcpu_cpu up to date);
//    otherwise the CPU the faulting thread is blocked on, read from
//    /proc/self/task/TID/stat (at most every 10 ms per thread), gives
//    record_access(cpu). What is known of a thread id is checked against
//    the thread's start time at each such read: an id the kernel gave to a
//    new thread is not taken for the old thread's vCPU (registrations end
//    with their thread). vcpu_threads with a vCPU id the migrator has no
//    slot for (>= MigrateGuestOptions::vcpus): record_access(cpu), counted
//    in vcpu_unknown_samples -- not dropped.
//  * A sample is the fault that clears a windowed page's armed bit (one
//    per page, or huge block, and window); other faults the handler gets
//    (a page zapped by someone else, a second thread on the same page)
//    are resolved but are no samples (faults_outside_windows).
//  * mlocked memfd RAM (VM_LOCKED: mlock, mlockall -- QEMU -overcommit
//    mem-lock=on) cannot be windowed: the kernel refuses MADV_DONTNEED
//    there. Windows skip the mlocked parts of a region (whole 2 MiB blocks,
//    SamplerStats::pages_locked); create() and start() refuse a region
//    with nothing else (unsupported). Locked while running, the first
//    refused window reads the locks again: a region locked whole leaves
//    windowing (regions_locked), one locked in part is windowed around
//    that part -- one error either way -- and scan() over a locked part
//    answers unsupported.
//  * Budget: at most pages_per_second pages are windowed per second, in
//    windows of window_pages, scaled down (adaptive budget) by the
//    migrator's sampling advice (Migrator::sample_share: all of it after a
//    vCPU move or while pages move, down to 1/32 when placement is quiet)
//    and by the handler's load: while the handler thread's busy time plus
//    its run-queue wait (schedstat) is more than max_handler_share of one
//    CPU, the budget halves per window (each sample stalls the faulting
//    vCPU at least that long). A windowed page
//    stays unmapped / protected until its first access (sampled however
//    late it comes), a move of it, close_window() or stop().
//    pages_per_second 0: only scan() and vcpu_moved() open windows.
//  * vCPU moves: the sampler keeps, per 64-page chunk, which vCPUs (id mod
//    64) it sampled there lately (the last two sweeps). vcpu_moved(v) opens
//    windows at once, whatever the budget, over the chunks v was sampled in
//    and then those nobody was sampled in yet (skipping chunks known to be
//    other vCPUs' only), up to burst_pages (v's own chunks first when the
//    budget runs out): the moved vCPU's pages are sampled on
//    its next touch of each, so the migrator can make them follow. For 2 s
//    after, a sample from a moved vCPU asks the migrator for a step at once
//    (Migrator::request_step, at most one per 200 ms): its pages follow
//    without waiting out the migrator's period.
//  * Faults are read up to 64 per read(); the batch's pages are resolved
//    with one UFFDIO_CONTINUE / UFFDIO_WRITEPROTECT per run of adjacent
//    pages.
//  * No sample loses or changes data; stop() returns with every page of
//    every region mapped and writable: pending faults resolved, the open
//    window closed, the ranges unregistered.
//  * Before GuestRam moves pages, those of them the sampler unmapped are
//    mapped back and no new window opens until the move returns (a zapped
//    page is invisible to move_pages).
//  * Threads: start() spawns one handler thread. set_vcpu_thread, scan,
//    vcpu_moved, close_window, stats and vcpu_samples may be called from
//    any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "numaheap/migrator.h"
#include "numaheap/mover.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// anonymous: MAP_PRIVATE | MAP_ANONYMOUS. memfd: a MAP_SHARED mapping of
// shmem (memfd_create, /dev/shm, or MAP_SHARED | MAP_ANONYMOUS, which is
// shmem too). hugetlb: MAP_HUGETLB or a hugetlbfs / MFD_HUGETLB file.
enum class RamBacking : std::uint8_t { anonymous = 0, memfd = 1, hugetlb = 2 };
const char* ram_backing_name(RamBacking b) noexcept;

// Huge page size assumed for hugetlb regions (alignment of host, bytes and
// guest_phys).
inline constexpr std::uint64_t kHugetlbPageSize = std::uint64_t{2} << 20;

struct GuestRamRegion {
  void* host = nullptr;            // the VMM's mapping (4 KiB aligned; 2 MiB for hugetlb)
  std::uint64_t bytes = 0;         // multiple of the page size
  std::uint64_t guest_phys = 0;    // guest-physical base, aligned as host
  RamBacking backing = RamBacking::anonymous;
  bool shared = false;             // also mapped elsewhere: moves need MPOL_MF_MOVE_ALL
};

struct VnodeRam {
  std::uint32_t vnode = 0;
  std::uint64_t guest_phys = 0, bytes = 0;  // inside registered regions, 4 KiB aligned
  NodeMask nodes;                           // placed node(s); each must have memory
};

struct GuestRamOptions {
  bool bind = true;      // mbind each vnode part to its node
  bool populate = true;  // fault every page in (MADV_POPULATE_WRITE, else touch)
  // Shared memfd RAM moves through a forked helper process (guest_ram.cc,
  // docs/integrating.md). false: no child is forked (e.g. a seccomp filter
  // that forbids fork); moves go from the VMM's own mapping.
  bool move_helper = true;
  // create() checks each region's mapping in /proc/self/maps (read-write;
  // memfd: MAP_SHARED, else dropping page-table entries loses data). A VMM
  // without /proc (a jail) is refused (unsupported) unless it vouches for
  // its mappings here; with /proc readable this changes nothing.
  bool trust_mappings = false;
  // TESTS ONLY: act as on a kernel without MADV_POPULATE_WRITE (touch one
  // byte per page) to exercise the fallback.
  bool populate_by_touch = false;
};

struct GuestRamStats {
  std::uint64_t pages = 0;                // 4 KiB pages of registered RAM
  std::uint64_t populated_madvise = 0;    // pages populated by MADV_POPULATE_WRITE
  std::uint64_t populated_touch = 0;      // pages populated by touching
  std::uint64_t moves = 0, pages_moved = 0, moves_all = 0;  // moves_all: MPOL_MF_MOVE_ALL calls
  std::uint64_t moves_via_helper = 0;  // region moves made through the move helper (shared memfd RAM)
  std::uint64_t moves_grouped = 0;     // move_each() calls whose blocks moved together
  // Region moves the helper could not map for (its MADV_POPULATE_READ
  // failed): they went the old way, from the VMM's mapping; the errno of
  // the last such answer (0: none).
  std::uint64_t helper_refusals = 0;
  std::uint32_t helper_last_errno = 0;
};

class UffdSampler;
namespace detail {
// Internal (vmm/host): GuestRam closes its sampler's window around a move
// (or, moving through its helper, leaves it open: `close` false), and arms
// the pages it moves through the helper (false: the sampler is not running,
// nothing armed).
void sampler_pause(UffdSampler& s, std::span<const Gfn> gfns, bool close) noexcept;
void sampler_resume(UffdSampler& s) noexcept;
bool sampler_arm(UffdSampler& s, std::span<const Gfn> gfns) noexcept;
}  // namespace detail

class GuestRam final : public Mover {
 public:
  // The topology must outlive the GuestRam; the mappings must outlive it.
  // Errors: invalid_argument (alignment, overlap, empty, vnode range outside
  // RAM, a region not mapped read-write, a memfd region not MAP_SHARED, or a
  // mapping the kernel cannot populate), invalid_node (unknown or
  // memoryless node), unsupported (the kernel refused mbind; or
  // /proc/self/maps unreadable and options.trust_mappings not set),
  // no_memory (populate failed); the message names the range.
  static Result<std::unique_ptr<GuestRam>, Error> create(const Topology& topo, std::span<const GuestRamRegion> regions,
                                                         std::span<const VnodeRam> vnodes,
                                                         const GuestRamOptions& options = {});
  ~GuestRam() override;

  // ---- Mover ----
  std::uint64_t page_count() const noexcept override { return page_count_; }
  Status query(Gfn first, std::span<PageState> out) noexcept override;
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                          std::span<MoveOutcome> out) noexcept override;
  void move_each(std::span<MoveRequest> requests) noexcept override;
  bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept override;
  Status relayout(std::span<const GuestRange> layout) noexcept override;

  // The migrator's options for this RAM: its layout (one range per vnode
  // part) and vCPU slots.
  MigrateGuestOptions migrate_options(std::uint32_t vcpus, bool vnuma_bound) const;
  // Current layout (gfn ranges per vnode part with their node): a copy,
  // safe from any thread while a rehome (relayout) replaces it.
  std::vector<GuestRange> layout() const;
  std::span<const GuestRamRegion> regions() const noexcept { return regions_; }
  // Host address of a guest frame, or null in a hole (or past page_count()).
  void* host_address(Gfn gfn) const noexcept;
  // Guest frame of a host address inside a region. Errors: invalid_argument.
  Result<Gfn> gfn_of(const void* host) const noexcept;
  GuestRamStats stats() const noexcept;
  // TESTS ONLY: every region's KernelMover::set_huge_probe_for_testing.
  void set_huge_probe_for_testing(bool (*probe)(void* ctx, const void* head), void* ctx) noexcept {
    for (KernelMover& m : movers_) m.set_huge_probe_for_testing(probe, ctx);
  }

 private:
  friend class UffdSampler;
  struct Part;
  GuestRam() = default;
  int region_of_gfn(Gfn gfn) const noexcept;
  // Around a move (under sampler_lock_): counts the move in moves_paused_
  // and, with an attached sampler, maps back the listed pages it has
  // unmapped and keeps new windows from opening until resume. A sampler
  // attached between the two starts with moves_paused_ pauses, so each
  // resume matches a pause of the sampler attached then.
  void pause_sampler(std::span<const Gfn> gfns, bool close) noexcept;
  void resume_sampler() noexcept;
  // Closes the sampler's windows over the listed pages (maps them back).
  void close_sampler_windows(std::span<const Gfn> gfns) noexcept;
  // The move helper (guest_ram.cc, move_helper.h): a forked child that maps
  // the shared regions too and sleeps; pages are moved through its mapping
  // while the VMM's own is zapped, so no TLB shootdown reaches the running
  // vCPUs.
  struct Helper {
    int pid = -1;   // negative: no longer used (still to reap)
    int sock = -1;  // parent's end: requests out, answers in
  };
  enum class HelperMap : std::uint8_t { mapped, refused, gone };
  void start_helper() noexcept;
  HelperMap helper_map(std::size_t r, std::span<const Gfn> local) noexcept;
  bool zap_for_move(std::size_t r, std::span<const Gfn> local, std::span<const Gfn> gfns) noexcept;
  void map_back(std::size_t r, std::span<const Gfn> local) noexcept;
  void madvise_runs(std::size_t r, std::span<const Gfn> local, int advice) noexcept;
  // move() with mover_mu_ held.
  Result<MoveTotals> move_locked(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                 std::span<MoveOutcome> out) noexcept;
  // move()'s work on its list (the caller's checks and the sampler pause
  // done): `failed` set on an error.
  void move_run(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity, std::span<MoveOutcome> out,
                MoveTotals& totals, Errc& failed) noexcept;
  // Region r's pages move through the helper.
  bool via_helper(std::size_t r) const noexcept;
  // Pauses the sampler for a move of gfns (closing the windows over listed
  // memfd pages that do not move through the helper).
  void pause_for_move(std::span<const Gfn> gfns) noexcept;
  // Serialises the Mover calls (query, move, move_each): the Migrator makes
  // one at a time, but a VMM may call them itself (the C API exports them)
  // while the migrator's thread steps the same RAM. Guards helper_ (its
  // pid, and the pairing of a request on the socket with its answer) and
  // the zap / move / map-back sequence of each run. Taken before
  // sampler_lock_.
  std::mutex mover_mu_;
  Helper helper_;  // guarded by mover_mu_ (read unlocked only by the destructor)
  std::atomic<std::uint64_t> grouped_moves_{0};
  std::atomic<std::uint64_t> helper_moves_{0};
  std::atomic<std::uint64_t> helper_refusals_{0};
  std::atomic<std::uint32_t> helper_last_errno_{0};

  const Topology* topo_ = nullptr;
  std::vector<GuestRamRegion> regions_;  // sorted by guest_phys; immutable after create
  std::vector<KernelMover> movers_;      // one per region (4 KiB regions; hugetlb too)
  mutable std::mutex layout_mu_;         // guards layout_ (read by any thread, replaced by relayout)
  std::vector<GuestRange> layout_;       // guarded by layout_mu_ (written only at create and by relayout)
  std::uint64_t page_count_ = 0;
  std::atomic<std::uint64_t> populated_madvise_{0}, populated_touch_{0}, moves_{0}, pages_moved_{0},
      moves_all_{0};
  std::mutex sampler_lock_;           // guards sampler_ and moves_paused_
  UffdSampler* sampler_ = nullptr;    // attached sampler or null; guarded by sampler_lock_
  int moves_paused_ = 0;              // moves between pause_sampler and resume_sampler; guarded by sampler_lock_
};

// Where a sample's CPU comes from.
enum class SampleCpuSource : std::uint8_t {
  thread_cpu = 0,    // the faulting thread's CPU (/proc/self/task/TID/stat)
  vcpu_threads = 1,  // registered / "CPU n/KVM" threads -> record_vcpu_access; others as thread_cpu
};

struct SamplerConfig {
  std::uint32_t pages_per_second = 4096;  // budget; 0: windows only on scan() / vcpu_moved()
  std::uint32_t window_pages = 256;       // pages per window (1 .. 1 << 20)
  SampleCpuSource cpu_source = SampleCpuSource::thread_cpu;
  // Adaptive budget: the faulting vCPUs' wait on the handler thread, as a
  // share of one CPU, to stay under (0 < share <= 1; 1 = no cap): the
  // handler's busy time plus, in a period with samples, its time waiting
  // for a CPU (schedstat run delay). Natively a sample costs the handler
  // ~5-15 us and it rarely waits, so the cap bites only where faults are
  // dear (emulation, an overloaded host).
  double max_handler_share = 0.05;
  // Scale the budget by Migrator::sample_share (false: always all of it).
  bool follow_advice = true;
  // vcpu_moved(): pages windowed at once, at most (0: vcpu_moved does
  // nothing). Default 256 MiB, Linux NUMA balancing's scan size.
  std::uint32_t burst_pages = 1u << 16;
};

struct SamplerStats {
  // Accesses recorded: first faults on pages armed by a window, one per
  // page (per huge block armed whole) and window. Faults on pages no
  // window armed are not samples: faults_outside_windows.
  std::uint64_t samples = 0;
  std::uint64_t minor_samples = 0;  // memfd: reads and writes
  std::uint64_t wp_samples = 0;     // anonymous: writes
  std::uint64_t windows = 0;        // windows opened
  std::uint64_t pages_windowed = 0;
  std::uint64_t ns_handling = 0;    // handler time over all samples (read to resolved)
  double ns_per_sample = 0;         // ns_handling / samples (0 before any)
  std::uint64_t resolve_retries = 0;  // a resolve that found the page mapped already (woken instead)
  std::uint64_t errors = 0;         // ioctls that failed (the thread was woken and refaults)
  std::uint64_t pages_armed = 0;    // unmapped / write-protected now, awaiting their first access
  std::uint64_t resolve_calls = 0;  // UFFDIO_CONTINUE / UFFDIO_WRITEPROTECT calls resolving faults
  std::uint64_t bursts = 0, pages_burst = 0;  // vcpu_moved() windows and the pages they armed
  double budget_pages_per_second = 0;  // the budget in force now (after advice and the handler cap)
  double handler_share = 0;            // the handler's busy + run-queue wait share of one CPU, last measured
  std::uint64_t blocks_windowed = 0;   // huge 2 MiB blocks armed whole (their pages count in pages_windowed)
  std::uint64_t steps_requested = 0;   // Migrator::request_step calls for moved vCPUs' samples
  // Zaps (memfd) and protection changes (anonymous) that armed windows: one
  // per run of adjacent pages of a region armed together, each a TLB
  // shootdown of every CPU the VMM runs on.
  std::uint64_t arm_calls = 0;
  // Times the handler's share was over 4x max_handler_share, no moved vCPU
  // being followed, and the open windows were closed; the pages they held.
  std::uint64_t sheds = 0, pages_shed = 0;
  // Times a moved vCPU's sample found the migrator still moving pages and
  // the following (no shed meanwhile) went on for another 2 s.
  std::uint64_t follow_extensions = 0;
  // memfd regions dropped from windowing since start() because the kernel
  // refused to zap them (MADV_DONTNEED: EINVAL) and all of the region is
  // mlocked -- e.g. mlock of the RAM. Their pages are not windowed again
  // until stop() and a start() that finds them unlocked; nonzero means
  // those regions give no samples. (Locked in part: see pages_locked.)
  std::uint64_t regions_locked = 0;
  // Faults the handler resolved on pages no window had armed (the page was
  // zapped for another reason, or a second thread faulted on a page whose
  // first fault was taken): resolved, neither counted in samples nor
  // recorded in the migrator.
  std::uint64_t faults_outside_windows = 0;
  // vcpu_threads: samples from a thread registered or named as a vCPU the
  // migrator has no slot for (id >= MigrateGuestOptions::vcpus), recorded
  // by the thread's CPU (record_access) instead of dropped.
  std::uint64_t vcpu_unknown_samples = 0;
  // memfd pages windows skip because their mapping is mlocked, in whole
  // 2 MiB blocks of the region (a region locked in part is windowed
  // around that part; the pages of regions_locked count too). Read at
  // start() and after a refused zap.
  std::uint64_t pages_locked = 0;
};

// vcpu_samples() counts vCPUs below this.
inline constexpr std::uint32_t kSamplerCountedVcpus = 1024;

class UffdSampler {
 public:
  // ram and migrator must outlive the sampler; `guest` is ram's id in the
  // migrator. Errors: unsupported (no userfaultfd, the kernel lacks
  // minor-fault / write-protect / thread-id support for the RAM's
  // backings, or memfd RAM is mlocked: the message names the region),
  // invalid_argument (config, or `guest` not in the migrator), busy (ram
  // has a sampler). Created while a move of ram runs, it starts
  // paused until that move returns.
  static Result<std::unique_ptr<UffdSampler>, Error> create(GuestRam& ram, Migrator& migrator, GuestId guest,
                                                            const SamplerConfig& config = {});
  ~UffdSampler();  // stop()s
  UffdSampler(const UffdSampler&) = delete;
  UffdSampler& operator=(const UffdSampler&) = delete;

  // Thread `tid` runs vCPU `vcpu` (tid 0: forget the vCPU's thread). The
  // registration ends when that thread exits (a later thread given the
  // same id is not that vCPU). Errors: invalid_argument (tid is no thread
  // of this process; nothing changes).
  Status set_vcpu_thread(std::uint32_t vcpu, pid_t tid);
  // Registers the RAM with userfaultfd and starts the handler thread.
  // Errors: busy (running), unsupported (registration refused, or a memfd
  // region's mapping is mlocked: no window could open over it -- create()
  // names the region).
  Status start();
  void stop();  // idempotent; every page mapped and writable on return
  bool running() const noexcept { return thread_running_.load(std::memory_order_acquire); }
  // Opens a window on gfns [first, first + pages) now; pages in holes or
  // hugetlb are skipped. Errors: invalid_argument, busy (not running, or a
  // move is in progress), unsupported (the range holds mlocked memfd RAM:
  // not windowed, see pages_locked; the rest of the range is).
  Status scan(Gfn first, std::uint64_t pages);
  // vCPU `vcpu` now runs on another node (call it after
  // Migrator::set_vcpu_cpu): opens windows at once over the chunks it was
  // sampled in lately, then those with no samples yet, up to burst_pages
  // (see the contract). Done by the handler thread (after a move in
  // progress returns). Errors: busy (not running).
  Status vcpu_moved(std::uint32_t vcpu);
  // Closes every open window: maps back / unprotects every page still
  // awaiting its first access.
  void close_window();
  SamplerStats stats() const noexcept;
  // Samples taken from vCPU `vcpu` so far (0 when vcpu >=
  // kSamplerCountedVcpus or never sampled).
  std::uint64_t vcpu_samples(std::uint32_t vcpu) const noexcept;

  struct NUMAHEAP_INTERNAL Impl;

 private:
  explicit UffdSampler(Impl* impl) noexcept : impl_(impl) {}
  friend void detail::sampler_pause(UffdSampler& s, std::span<const Gfn> gfns, bool close) noexcept;
  friend void detail::sampler_resume(UffdSampler& s) noexcept;
  friend bool detail::sampler_arm(UffdSampler& s, std::span<const Gfn> gfns) noexcept;
  Impl* impl_;
  std::atomic<bool> thread_running_{false};
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
