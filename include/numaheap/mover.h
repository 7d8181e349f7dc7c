// numaheap: movers -- what actually moves a guest page to another node.
//
// Contract (every Mover):
//  * move() gives one outcome per listed page, like move_pages(2)'s status
//    array: moved (now on the target, including "was already there"), busy
//    (try again later), no_memory (target full), pinned, shared, not_present,
//    invalid_node. A page's data is never lost or duplicated whatever the
//    outcome: either the old or the new frame holds it, never both as live.
//  * query() reports where pages are now (node, p2m-style flags, block
//    order); it never faults pages in.
//  * Calls on one Mover are serialised by the caller (the Migrator holds its
//    lock); guest vCPUs keep running concurrently throughout.
//  * No C++-heap allocation per call: batches are processed in fixed chunks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "numaheap/frame.h"
#include "numaheap/metadata.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

class GuestMemory;
struct GuestRange;

enum class MoveOutcome : std::uint8_t {
  moved = 0,
  busy = 1,
  no_memory = 2,
  pinned = 3,
  shared = 4,
  not_present = 5,
  invalid_node = 6,
};
inline constexpr std::size_t kMoveOutcomeCount = 7;
const char* move_outcome_name(MoveOutcome o) noexcept;

// Where one page is.
struct PageState {
  NodeId node = kNoNode;    // kNoNode: not present
  std::uint8_t flags = 0;   // P2mFlags (frame swap); kernel mover: present only
  std::uint8_t order = 0;   // order of the block holding the page
  // A frame of the page's block is pending offline (broken RAM): the page
  // must leave it (Mover::evacuate). Frame swap only.
  bool retiring = false;
};

// Large blocks: move the whole 2 MiB / 1 GiB block a listed page is in
// (keeps huge mappings; rehome), or split it and move only that 4 KiB page
// (the access policy). The kernel mover moves a huge block whole either way
// (the kernel migrates a THP whole); whole_blocks also brings along any of
// the block's pages the kernel left elsewhere (see KernelMover).
enum class MoveGranularity : std::uint8_t { pages = 0, whole_blocks = 1 };

struct MoveTotals {
  std::uint64_t frames_moved = 0;  // 4 KiB frames that changed node
  std::uint64_t flushes = 0;       // flush hook calls (frame swap)
};

// One move of several handed to Mover::move_each at once: move()'s
// arguments and, once it returns, move()'s result.
struct MoveRequest {
  std::span<const Gfn> gfns;
  NodeId target = kNoNode;
  MoveGranularity granularity = MoveGranularity::pages;
  std::span<MoveOutcome> out;
  Result<MoveTotals> result = Errc::unsupported;
};

// Every mover overrides page_count, query and move. They have bodies (an
// empty guest that supports nothing) rather than being pure: a pure virtual
// needs the C++ runtime's __cxa_pure_virtual, which the freestanding core
// may not reference. Movers are allocated through the metadata hooks
// (class-scoped new/delete), so the core can delete one without the
// global operator delete.
class Mover {
 public:
  NUMAHEAP_METADATA_NEW_DELETE
  virtual ~Mover() = default;
  // Guest frames covered: gfns 0 .. page_count()-1.
  virtual std::uint64_t page_count() const noexcept { return 0; }
  // States of gfns [first, first + out.size()). Errors: invalid_argument
  // (range outside the guest), unsupported (kernel refused the query).
  virtual Status query(Gfn first, std::span<PageState> out) noexcept {
    (void)first, (void)out;
    return Errc::unsupported;
  }
  // Moves each page of `gfns` to `target`; out.size() == gfns.size().
  // Errors (whole call, no page touched): invalid_argument, invalid_node
  // (target unknown or without memory), unsupported.
  virtual Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                  std::span<MoveOutcome> out) noexcept {
    (void)gfns, (void)target, (void)granularity, (void)out;
    return Errc::unsupported;
  }
  // Each request as move() would do it (its result in request.result), the
  // requests independent of one another (distinct pages). A mover whose
  // moves have a fixed cost per call may do them together: GuestRam moves
  // the huge blocks of all of them with one move_pages call (each such call
  // costs Linux a round trip to every CPU). By default, one after another.
  virtual void move_each(std::span<MoveRequest> requests) noexcept {
    for (MoveRequest& r : requests) r.result = move(r.gfns, r.target, r.granularity, r.out);
  }
  // Free and managed 4 KiB frames of `node` where the mover allocates, for
  // the destination watermark; false when unknown (the kernel keeps its own).
  virtual bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept {
    (void)node, (void)free, (void)managed;
    return false;
  }
  // A number that grows whenever a frame under the guest may have been
  // marked pending offline (PageAllocator::offline_events); 0 when the
  // mover has no such frames to watch.
  virtual std::uint64_t offline_events() const noexcept { return 0; }
  // Moves the whole block of each listed page to a fresh block on `target`
  // even when it is there already, so its old frames can be retired.
  // Outcomes as move(). Errors as move(); unsupported by default.
  virtual Result<MoveTotals> evacuate(std::span<const Gfn> gfns, NodeId target, std::span<MoveOutcome> out) noexcept {
    (void)gfns, (void)target, (void)out;
    return Errc::unsupported;
  }
  // Collapses the 2^order pages of the aligned gfn range at `head`, each
  // mapped alone (4 KiB blocks, e.g. after a split), into one new block of
  // that order on `target`: one huge mapping again. Every page is copied,
  // the ones on other nodes (stragglers) included, so none is left behind.
  // `out`: moved, or why nothing changed (busy: an entry is not a plain
  // 4 KiB page of this guest or changed meanwhile; no_memory: no free
  // block of that order on `target`; pinned, shared, not_present).
  // frames_moved: frames that changed node. Errors (nothing touched):
  // invalid_argument (head misaligned or outside the guest, order not
  // 1..kMaxCoalesceOrder), invalid_node, unsupported (the default: the
  // kernel's khugepaged collapses a VMM's mappings itself).
  static constexpr unsigned kMaxCoalesceOrder = 9;
  virtual Result<MoveTotals> coalesce(Gfn head, unsigned order, NodeId target, MoveOutcome& out) noexcept {
    (void)head, (void)order, (void)target;
    out = MoveOutcome::busy;
    return Errc::unsupported;
  }
  // The guest's RAM now belongs on these ranges' pnodes (a rehome): the
  // mover passes it on to whoever keeps the guest's layout. Errors:
  // invalid_argument (the ranges do not match the guest's vnodes).
  virtual Status relayout(std::span<const GuestRange> layout) noexcept {
    (void)layout;
    return {};
  }
};

// ---- frame swap: the hypervisor owns the p2m ----

// A run of guest frames handed to the embedder's hooks.
struct GfnRun {
  Gfn first = 0;
  std::uint64_t pages = 0;
};

// What the embedder supplies. All hooks are called from the migrating thread
// with no numaheap lock held.
struct FrameSwapHooks {
  void* ctx = nullptr;
  // Revoke write access to these runs (EPT / shadow / stage-2 W bit). Takes
  // effect only once flush() has returned. Required.
  void (*write_protect)(void* ctx, const GfnRun* runs, std::size_t count) = nullptr;
  // TLB / EPT shootdown: returns only when no CPU can still use a
  // translation that was changed before the call. Required.
  void (*flush)(void* ctx) = nullptr;
  // Optional dirty-log check: true if the run was written after its
  // write_protect took effect, by a writer the protection does not stop (a
  // backend, emulated DMA: anything that writes guest memory through the
  // p2m rather than the vCPU's write-protected translation). The page then
  // keeps its old frame and the outcome is busy. With this hook set the
  // mover asks it only after a flush that follows the copy, and relies on
  // such writers (a) finishing a write begun with an old translation before
  // that flush returns and (b) waiting while the entry is `migrating`
  // before they translate afresh.
  bool (*dirtied)(void* ctx, GfnRun run) = nullptr;
  // Restore write access (now to the new frame, or the old one on failure).
  void (*unprotect)(void* ctx, const GfnRun* runs, std::size_t count) = nullptr;
  // Optional copy of `frames` contiguous frames; default: memcpy through
  // PageAllocator::frame_address (host memory) or the platform copy hook.
  void (*copy)(void* ctx, Mfn dst, Mfn src, std::uint64_t frames) = nullptr;
};

struct FrameSwapOptions {
  std::uint32_t batch = 64;  // blocks per flush pair (1..64)
  // TESTS ONLY: a deliberately broken mover that copies before
  // write_protect + flush, so writes racing the copy are lost. The
  // no-lost-writes tests run it as a negative test that must fail.
  bool unsafe_copy_before_protect = false;
};

// Protocol per batch: mark entries `migrating` (CAS; fails -> busy),
// allocate exactly on the target (no_scrub: the copy overwrites it),
// write_protect + flush, copy, [with dirtied: flush, dirtied? (-> busy,
// old frame kept)], swap the p2m entries (CAS), clear `migrating`, flush,
// unprotect, free the old frames (the allocator keeps them dirty;
// scrubbing is deferred to it, off the critical path). Flushes per batch:
// two, three with a dirtied hook.
// Target 4 KiB frames of a batch come from one contiguous block when the
// node has one (split), else one by one.
// Concurrent p2m writers must respect `migrating` (GuestMemory's split,
// balloon and destroy do, and the sharing manager). An entry whose frame
// or order changes mid-move anyway undoes that block's move: the entries
// go back to the old block, the new one is freed, the outcome is busy
// (not_present for a 4 KiB page that vanished). A free the allocator
// refuses is counted on the guest (GuestMemory::note_lost_frames).
class FrameSwapMover final : public Mover {
 public:
  // Errors: invalid_argument (a required hook missing -- write_protect,
  // flush, unprotect; copy too when the guest's frames have no address --
  // or a bad batch).
  static Result<FrameSwapMover> create(GuestMemory& guest, const FrameSwapHooks& hooks,
                                       const FrameSwapOptions& options = {});
  std::uint64_t page_count() const noexcept override;
  Status query(Gfn first, std::span<PageState> out) noexcept override;
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                          std::span<MoveOutcome> out) noexcept override;
  bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept override;
  // The guest allocator's offline events; query() sets `retiring`.
  std::uint64_t offline_events() const noexcept override;
  Result<MoveTotals> evacuate(std::span<const Gfn> gfns, NodeId target, std::span<MoveOutcome> out) noexcept override;
  // GuestMemory::relayout.
  Status relayout(std::span<const GuestRange> layout) noexcept override;
  // Same protocol as a move of one block: mark the 4 KiB entries
  // `migrating`, allocate the block exactly on the target, write_protect +
  // flush, copy, [dirtied], swap every entry to the block (CAS), clear
  // `migrating`, flush, unprotect, free the old frames (dirty).
  Result<MoveTotals> coalesce(Gfn head, unsigned order, NodeId target, MoveOutcome& out) noexcept override;
  GuestMemory& guest() const noexcept { return *guest_; }

  static constexpr std::uint32_t kMaxBatch = 64;

 private:
  FrameSwapMover() = default;
  struct Batch;
  Result<MoveTotals> move_all(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity, bool fresh,
                              std::span<MoveOutcome> out) noexcept;
  Result<MoveTotals> move_chunk(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity, bool fresh,
                                std::span<MoveOutcome> out) noexcept;
  GuestMemory* guest_ = nullptr;  // immutable after create
  FrameSwapHooks hooks_{};        // immutable after create
  FrameSwapOptions options_{};
};

// ---- kernel move: a VMM whose guest RAM is a host mapping ----

// Guest frame g lives at base + g * 4096. Uses move_pages(2) on this
// process: statuses -EBUSY/-EAGAIN/-EIO/-EINVAL -> busy, -ENOMEM -> no_memory,
// -ENOENT/-EFAULT -> not_present, -EACCES (mapped by other processes) ->
// shared, -EPERM (locked) -> pinned. A whole-call ENODEV (node missing) ->
// invalid_node; EPERM (seccomp, capabilities) -> unsupported.
// move_all: the mapping's pages are also mapped elsewhere (a memfd mapped
// twice, another process): move with MPOL_MF_MOVE_ALL (needs CAP_SYS_NICE;
// without it the kernel reports those pages -EACCES: shared).
// node_frames() is the kernel's MemFree / MemTotal of the node (sysfs), so
// the migrator's watermark is the real one.
// Huge pages: an aligned 2 MiB range of the mapping (base 2 MiB aligned)
// that one huge page maps -- hugetlb (`hugetlb` at create), or a
// transparent huge page found by the PAGEMAP_SCAN ioctl on
// /proc/self/pagemap (Linux 6.7+, no privilege needed), else by
// /proc/self/pagemap frame numbers + /proc/kpageflags (CAP_SYS_ADMIN and
// root; without them, or when a range is not one whole THP, the range is
// 4 KiB pages: the old behaviour) -- is
// reported by query() as order 9 (kHugeBlockOrder), so the migrator's
// keep_huge_pages policy judges it as one block. move() with whole_blocks
// moves the block of each listed page: move_pages on its first page (the
// kernel migrates the huge page whole, 512 pages, not split; the first
// pages of up to kBlockGroup blocks listed one after another in one call,
// since each moving call costs a round trip to every CPU), then any
// page of the block still elsewhere (a 4 KiB range, a split) on its own;
// listed pages outside huge blocks move as pages, a run of them per call;
// the block's 512 nodes are asked before and after in one query each, so
// frames_moved is what changed node. A listed page's outcome is moved when
// every present page of its block is on target, else why the first one
// that is not failed. A gfn outside the mapping is not_present; a block
// the mapping does not hold whole moves its listed page alone. A
// move_pages call refused after another moved pages (or that moved part of
// its own batch first) is no whole-call error: move() returns what changed
// node, with busy for pages not tried or whose fate is unknown. move() with
// pages refuses a page of a huge block (busy, unless it is on target):
// the kernel would move the whole huge page for it (512 pages for one),
// and a block two nodes share would bounce between them.
class KernelMover final : public Mover {
 public:
  // Errors: invalid_argument (null/unaligned base, 0 pages), unsupported
  // (host base page size is not 4 KiB).
  static Result<KernelMover> create(void* base, std::uint64_t pages, bool move_all = false, bool hugetlb = false);
  static constexpr unsigned kHugeBlockOrder = 9;
  static constexpr std::uint64_t kHugeBlockPages = std::uint64_t{1} << kHugeBlockOrder;
  // Blocks whose first pages move in one move_pages call (see above).
  static constexpr std::size_t kBlockGroup = 16;
  // One huge block to move with move_blocks().
  struct BlockMove {
    const KernelMover* mover = nullptr;
    std::uint64_t head = 0;          // the block's first page (aligned) in mover's mapping
    NodeId target = kNoNode;
    MoveOutcome* out = nullptr;      // its outcome, as move(whole_blocks) gives it
    std::uint64_t* frames = nullptr;  // += its frames that changed node
  };
  // Moves distinct huge blocks, of one or several movers of process `pid`'s
  // mappings (0: this process), each to its own target, with one moving
  // move_pages call per kBlockGroup of them (blocks of MPOL_MF_MOVE_ALL
  // movers in calls of their own) plus one per block the kernel split. A
  // refused call (unsupported, invalid_node, no_memory, ...) stops the
  // moving, not the accounting: every block gets its outcome and frames
  // from where the kernel says its pages are (busy: not tried, turned
  // away, or where it is could not be asked). The call's error is
  // returned instead only when no frame changed node and none could have
  // unseen; outcomes are then partly written and mean nothing.
  static Status move_blocks(int pid, std::span<const BlockMove> blocks) noexcept;
  std::uint64_t page_count() const noexcept override { return pages_; }
  Status query(Gfn first, std::span<PageState> out) noexcept override;
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                          std::span<MoveOutcome> out) noexcept override;
  // move() through process `pid`'s mapping of the same pages at the same
  // addresses (move_pages(pid, ...)); pid 0 is this process (move()). For
  // GuestRam's move helper (vmm/host/guest_ram.cc): the pages must be
  // mapped there.
  Result<MoveTotals> move_through(int pid, std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                  std::span<MoveOutcome> out) noexcept;
  // Whether the kernel lets this process move pages through `pid` with
  // this mover's flags now: a move_pages of no pages, which passes the
  // same checks as a real one (CAP_SYS_NICE for MPOL_MF_MOVE_ALL, ptrace
  // access to pid, LSM, seccomp) and touches nothing. Errors: unsupported
  // (refused, or no such process), as move_through's.
  Status may_move_through(int pid) const noexcept;
  // query() of process `pid`'s mapping of the same pages (pid 0: query()).
  // GuestRam asks its move helper where pages are that the VMM's mapping
  // no longer maps (moved through the helper, not touched since).
  Status query_through(int pid, Gfn first, std::span<PageState> out) noexcept;
  bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept override;
  void* base() const noexcept { return base_; }
  bool moves_all() const noexcept { return move_all_; }
  // True when one huge page maps the whole aligned 2 MiB block holding
  // `page` now (see above); false outside the mapping or when unknown. The
  // last block's answer is kept for kProbeReuseNs: a scan that asks about
  // a block in pieces (the migrator queries 64 pages at a time, the
  // sampler probes a block before arming it) reads pagemap once. An answer
  // that much out of date is harmless: queries and block moves report what
  // the kernel did.
  bool huge_block(std::uint64_t page) const noexcept;
  static constexpr std::uint64_t kProbeReuseNs = 20'000'000;
  // The two ways huge_block() tells a THP (head: an aligned 2 MiB address
  // of this process): 1 one THP maps it, 0 not, -1 this way cannot tell
  // here (no PAGEMAP_SCAN before Linux 6.7; frame numbers and page flags
  // need CAP_SYS_ADMIN and root). Public for the tests that compare them.
  static int thp_by_pagemap_scan(const void* head) noexcept;
  static int thp_by_frame_flags(const void* head) noexcept;
  // TESTS ONLY: huge_block() answers from `probe` (ctx, host address of an
  // aligned 2 MiB range) instead of pagemap / kpageflags, so block moves
  // can be tested where the frame numbers cannot be read.
  void set_huge_probe_for_testing(bool (*probe)(void* ctx, const void* head), void* ctx) noexcept {
    probe_ = probe;
    probe_ctx_ = ctx;
  }

 private:
  KernelMover() = default;

  unsigned char* base_ = nullptr;  // immutable after create
  std::uint64_t pages_ = 0;
  bool move_all_ = false;          // immutable after create
  bool hugetlb_ = false;           // immutable after create
  bool (*probe_)(void* ctx, const void* head) = nullptr;  // tests only
  void* probe_ctx_ = nullptr;
  // huge_block()'s last pagemap answer: (head << 1) | huge, and when (ns,
  // CLOCK_MONOTONIC_COARSE). Any thread, relaxed std::atomic_ref accesses
  // (the class stays movable); a torn pair only ages or refreshes an answer.
  mutable std::uint64_t probed_key_ = ~std::uint64_t{0};
  mutable std::uint64_t probed_ns_ = 0;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
