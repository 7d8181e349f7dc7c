// PageAllocator::Impl: the state behind the public PageAllocator and the
// helpers its files share (page_allocator.cc: alloc/free and per-CPU
// caches; claims.cc: claims; maintenance.cc: offline, scrub, stats, checks;
// bulk.cc: alloc_bulk and free_bulk).
#pragma once

#include <atomic>
#include <memory>
#include <span>

#include "allocator/heap/claims.h"
#include "allocator/heap/frame_table.h"
#include "allocator/heap/node_heap.h"
#include "allocator/heap/per_cpu_cache.h"
#include "allocator/heap/rseq_cache.h"
#include "numaheap/page_allocator.h"
#include "numaheap/platform.h"

#if defined(NUMAHEAP_CHECK_INVARIANTS) && NUMAHEAP_CHECK_INVARIANTS
#include <cassert>
#define NUMAHEAP_DEBUG_CHECK(expr) assert(expr)
#else
#define NUMAHEAP_DEBUG_CHECK(expr) ((void)0)
#endif

namespace numaheap {

struct PageAllocator::Impl {
  NUMAHEAP_METADATA_NEW_DELETE
  // Immutable after create().
  Topology topo;
  HeapConfig config;
  // The reclaim hook: written by set_reclaim_hook (ctx before fn, release),
  // read by alloc's slow path (fn then ctx, acquire). No lock.
  std::atomic<void*> reclaim_ctx{nullptr};
  std::atomic<std::uint64_t (*)(void*, NodeId, std::uint64_t)> reclaim_fn{nullptr};
  // Asks the hook for `pages` frames of node index `ni`; how many came back.
  std::uint64_t reclaim(std::uint32_t ni, std::uint64_t pages) noexcept {
    auto fn = reclaim_fn.load(std::memory_order_acquire);
    if (!fn) return 0;
    return fn(reclaim_ctx.load(std::memory_order_acquire), topo.node_at(ni).id, pages);
  }
  std::unique_ptr<Platform> platform;
  FrameTable table;
  std::uint32_t node_count = 0;
  MetadataArray<NodeHeap> heaps;        // by dense node index
  MetadataArray<NodeId> cpu_node;       // cache slot -> preferred node id
  MetadataArray<std::uint32_t> cpu_node_index;  // same, as a dense index
  // Per cache slot, what the lock-free fast path needs in one load: the
  // slot's caches (order 0; the other cached orders follow it, see
  // PerCpuCaches::kSlots) on its preferred node,
  // or nullptr when that node has no memory (the slow path decides).
  struct CpuHome {
    CpuCache* caches = nullptr;
    NodeId node = kNoNode;
  };
  MetadataArray<CpuHome> home;
  PerCpuCaches pcp;
  ClaimTable claims;
  // Counters of check_invariants/check_frames (7 per node), reserved at
  // create() so that the checks allocate nothing; used only under a
  // StopTheWorld (every lock held).
  MetadataArray<std::uint64_t> check_scratch;

  // Per-CPU caches are used without their lock through rseq sequences
  // (rseq_cache.h) when this is set; immutable after create().
  bool use_rseq = false;
  // pcp.cpus() when use_rseq, else 0: the fast paths' single "rseq and a
  // CPU in range" check. Immutable after create().
  std::uint32_t fast_cpus = 0;

  std::uint32_t cpu_slot() const noexcept {
    const std::uint32_t cpu = use_rseq ? rseq::cpu() : platform->current_cpu();
    return cpu < pcp.cpus() ? cpu : cpu % pcp.cpus();  // no division when in range
  }
  // Locks a per-CPU cache (slot `cpu`). With rseq, a holder that is not on
  // that CPU makes sequences in flight there restart, so they see the lock.
  void lock_cache(CpuCache& c, std::uint32_t cpu) const noexcept {
    c.lock.lock();
    if (use_rseq && rseq::cpu() != cpu) rseq::fence_cpu(cpu);
  }
  NodeHeap& heap(std::uint32_t ni) const noexcept { return heaps[ni]; }

  // --- page_allocator.cc ---
  // alloc() and free() beyond their lock-free fast paths.
  // Out of line, so that the fast paths stay short (free tail-calls them).
  [[gnu::noinline]] Result<Allocation> alloc_slow(const AllocRequest& req) noexcept;
  [[gnu::noinline]] Status free_slow(Mfn mfn, unsigned order, OwnerId owner) noexcept;
  // alloc()'s fast path popped entry `e`, a block holding bytes that may
  // not all be the requester's (or no_scrub is not set): makes the block
  // `used` by the requester and scrubs it, unless the word shows that an
  // owner the entry's tag cannot name asked for its own bytes (no_scrub).
  [[gnu::noinline]] Result<Allocation> alloc_dirty(CacheEntry e, NodeId node,
                                                   const AllocRequest& req) noexcept;
  // alloc()'s fast path popped entry `e` (no scrub needed) but the frame
  // table has several ranges: finds the descriptor and stores the word.
  [[gnu::noinline]] Result<Allocation> alloc_popped(CacheEntry e, NodeId node,
                                                    const AllocRequest& req) noexcept;
  // free()'s check and compare-and-swap (page_allocator.cc).
  [[gnu::always_inline]] inline bool take_for_cache(FrameDesc& d, Mfn mfn, unsigned order, OwnerId owner,
                                                    CacheEntry& e) noexcept;
  // free() with several frame ranges, or a frame outside the single one.
  [[gnu::noinline]] Status free_ranges(Mfn mfn, unsigned order, OwnerId owner) noexcept;
  // push_locked on the calling CPU's slot (out of line: free() tail-calls it).
  [[gnu::noinline]] Status push_here(std::uint32_t ni, int slot, CacheEntry e) noexcept;
  // A freed (now `cached`) block goes on cache slot `slot` of `cpu` for
  // node `ni` under the cache's lock, draining a batch when it is full.
  // Always succeeds (a Status so that free() can tail-call it).
  [[gnu::noinline]] Status push_locked(std::uint32_t cpu, std::uint32_t ni, int slot,
                                       CacheEntry e) noexcept;
  // One node: per-CPU cache or buddy. kInvalidMfn when it cannot serve.
  Mfn try_node(std::uint32_t ni, const AllocRequest& req, std::uint32_t cpu) noexcept;
  Mfn alloc_buddy(std::uint32_t ni, const AllocRequest& req) noexcept;
  // c.lock held: a batch of blocks from node `ni`'s heap, or `need` when
  // that is more, never beyond c.high.
  void refill(CpuCache& c, std::uint32_t ni, std::uint32_t need = 0) noexcept;
  void drain(CpuCache& c, std::uint32_t ni, std::uint32_t n) noexcept;  // c.lock held
  void drain_node_index(std::uint32_t ni) noexcept;
  void scrub_if_needed(Mfn mfn, unsigned order, bool dirty, OwnerId dirty_owner,
                       const AllocRequest& req) const noexcept;

  // --- bulk.cc ---
  struct BulkTry {
    bool done = false;           // every frame taken
    std::uint64_t first = 0;     // frames the first allowed node could give
    std::uint64_t total = 0;     // frames all allowed nodes could give
    std::uint64_t to_scrub = 0;  // frames taken that need scrubbing
  };
  // One attempt of alloc_bulk under the locks of the nodes it may use:
  // all of `out` or nothing. `whole_from_first`: give up (before taking
  // anything) unless the first allowed node covers all of it.
  BulkTry bulk_try(const AllocRequest& req, NodeId pref, std::span<Mfn> out,
                   bool whole_from_first) noexcept;
  // Scrubs the runs of `out` take_frames marked (no lock held).
  void scrub_bulk(std::span<const Mfn> out) noexcept;
  // alloc_bulk of at most a cache's worth for the calling CPU's own node,
  // no flag but no_scrub and exact_node: every frame from that CPU's
  // order-0 cache, as alloc() would take it (the cache refilled in one
  // node-lock hold when short). False: not served, nothing taken.
  bool bulk_from_cache(const AllocRequest& req, NodeId pref, std::span<Mfn> out) noexcept;
  // free_bulk's step 2 for `frames`, all of node `ni`, taken (cached,
  // dirty, no pending bit) and at most a cache's worth: onto the calling
  // CPU's order-0 cache for that node, as free() would put them, if they
  // fit. False (nothing changed) when they do not: the heap takes them,
  // runs merged into whole blocks in one lock hold -- draining the cache's
  // coldest frames one by one to make room would cost more, and split the
  // blocks a caller such as the frame-swap mover frees whole (its 64 old
  // frames of a batch; draining them singly cost migrate_4k a quarter of
  // its speed).
  bool bulk_to_cache(std::span<const Mfn> frames, std::uint32_t ni) noexcept;

  // --- claims.cc ---
  // What a bulk request may still book, across the nodes it has quoted.
  struct Quote {
    std::int64_t spare = 0;     // unreserved free frames left
    std::uint64_t global = 0;   // the owner's global claim left (use_claim)
  };
  // A node lock held: the state quote() starts from.
  Quote begin_quote(const AllocRequest& req) noexcept;
  // A node lock held (`ni`'s): how many of `want` frames charge(ni, .., req)
  // would accept now, after earlier nodes booked what `q` says; q updated.
  std::uint64_t quote(std::uint32_t ni, std::uint64_t want, const AllocRequest& req,
                      Quote& q) noexcept;
  // Node lock of `ni` held. Checks and books `pages` leaving node `ni` for
  // `req` (claims and spare). False: not allowed (claims protect them).
  bool charge(std::uint32_t ni, std::uint64_t pages, const AllocRequest& req) noexcept;
  // Node lock held: `pages` came back to node `ni`'s free lists.
  void credit(std::uint64_t pages) noexcept {
    if (claims.active) claims.give_spare(pages);
  }
  // Blocks of `order` a refill may take from node `ni` (node lock held), booked.
  std::uint64_t charge_upto(std::uint32_t ni, std::uint64_t blocks, unsigned order) noexcept;
  void lock_all_heaps() const noexcept;
  void unlock_all_heaps() const noexcept;
};

}  // namespace numaheap
