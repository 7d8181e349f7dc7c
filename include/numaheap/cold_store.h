// numaheap: the cold-page store -- tmem-like pools of whole pages kept on
// "any node but the guest's own".
//
// Contract:
//  * Pools belong to a guest (create_pool refuses a guest whose
//    spec().cold_store is off) and are ephemeral (a cache: pages may vanish
//    under memory pressure) or persistent (pages stay until flushed).
//    Pages are addressed by (pool, object, index) and hold kFrameSize bytes.
//  * Placement: every page comes from PageAllocator::alloc with exclude =
//    the guest's home nodes. Nodes are tried nearest to the home first
//    (smallest distance from any home node, ties by id): each node whose
//    free memory is above its watermark gets an exact-node attempt, in that
//    order (as Linux demotion tries its nearest lower-tier node exactly
//    first). Ephemeral puts stop there and fail with Errc::no_memory.
//    Persistent puts then take memory below the watermarks (the allocator's
//    distance fallback, exclusions kept) and finally drop ephemeral pages on
//    the allowed nodes to make room; only then do they fail (no_memory).
//  * A failed put never loses what is stored: a put to a key that already
//    holds a page overwrites that page in place and cannot fail.
//  * reclaim(node, pages) drops up to `pages` ephemeral pages on `node`,
//    oldest put first, and frees their frames; persistent pages are never
//    dropped. The allocator calls it (through reclaim_hook) when an
//    allocation would fail; it must not hold any allocator lock then.
//  * get() says hit (page copied out), miss (nothing stored under the key)
//    or dropped (an ephemeral page stored there was reclaimed). A dropped
//    marker lasts until the key is put, flushed or its pool destroyed, or
//    until its slot is needed for a new page (oldest marker first), after
//    which the key reads as a miss.
//  * Freed frames (flush, reclaim, destroy_pool) go back to the allocator
//    dirty: it scrubs them before any other owner gets them. With
//    ColdStoreConfig::scrub_on_free they are also zeroed at once.
//  * A pool made from a GuestMemory follows the guest's home: it holds
//    the guest's home record (GuestMemory::home_record(), which outlives
//    the guest) and the first put after the record's generation changed
//    (a rehome's relayout) runs set_pool_home with the new home first.
//    Pages stored before stay on the new home until that put (or an
//    explicit set_pool_home). A pool made from a NodeMask follows nothing.
//  * Memory: the store, its tables and its node orders come from
//    metadata hooks (ColdStoreConfig::metadata, else
//    numaheap::default_metadata()). No allocation after create() except
//    create_pool's and set_pool_home's node order and set_pool_home's work
//    list (also run by the first put after the pool's guest was rehomed),
//    and stats()'s per-node list; when they cannot allocate the call fails
//    with no_memory (stats: per_node empty and !ok()) and changes nothing.
//    The entry table, the key index and the per-node age lists are
//    preallocated (ColdStoreConfig::max_entries). One lock (the core's spin
//    lock) guards them; page copies into fresh frames and allocator calls
//    for them run outside it.
//  * Errors never change state; nothing aborts on bad input.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "numaheap/frame.h"
#include "numaheap/frame_access.h"
#include "numaheap/guest_memory.h"
#include "numaheap/metadata.h"
#include "numaheap/node_mask.h"
#include "numaheap/page_allocator.h"
#include "numaheap/result.h"
#include "numaheap/vector.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

using PoolId = std::uint32_t;
using ObjectId = std::uint64_t;

enum class PoolKind : std::uint8_t { ephemeral = 0, persistent = 1 };
enum class ColdGet : std::uint8_t { hit = 0, miss = 1, dropped = 2 };

struct ColdStoreConfig {
  // Owner of cold frames: reserved by the embedder, no guest's id.
  OwnerId owner = kMaxOwner - 1;
  std::uint32_t max_pools = 64;
  // Pages (and dropped markers) the store can index; preallocated.
  std::uint64_t max_entries = 1u << 16;
  // A node counts as having room when free - claimed pages exceed
  // max(watermark_pages, watermark_fraction * managed pages).
  std::uint64_t watermark_pages = 256;
  double watermark_fraction = 0.01;
  // A node's free memory is read (PageAllocator::stats, which visits every
  // CPU's cache) at most once per this many pages put there; in between a
  // node may go up to this many pages below its watermark. 1 = exact.
  std::uint32_t room_recheck = 32;
  bool scrub_on_free = false;
  FrameAccess access{};  // frame_only mode: required
  // Where the store's metadata comes from; must outlive it. nullptr:
  // numaheap::default_metadata().
  const MetadataHooks* metadata = nullptr;
};

struct ColdNodeStats {
  NodeId node = kNoNode;
  std::uint64_t ephemeral = 0;   // pages stored on this node
  std::uint64_t persistent = 0;
};

struct ColdStoreStats {
  std::uint64_t pools = 0;
  std::uint64_t pages = 0;        // stored pages (both kinds)
  std::uint64_t dropped_markers = 0;
  std::uint64_t puts = 0, put_failures = 0, gets = 0, hits = 0, misses = 0, dropped_gets = 0;
  std::uint64_t flushes = 0, reclaimed = 0;
  Vector<ColdNodeStats> per_node;  // every node, by id (!ok(): out of memory)
};

class ColdStore {
 public:
  NUMAHEAP_METADATA_NEW_DELETE

  // Errors: invalid_argument (owner reserved, sizes 0 or too large),
  // unsupported (frame_only mode without FrameAccess), no_memory (its
  // tables cannot be allocated; nothing is left behind).
  static Result<std::unique_ptr<ColdStore>, Error> create(PageAllocator& pa, const ColdStoreConfig& config);
  ~ColdStore();  // frees every stored page
  ColdStore(const ColdStore&) = delete;
  ColdStore& operator=(const ColdStore&) = delete;

  // A pool for `guest` (which must have opted in), excluding its home nodes
  // -- now and after every rehome (see the contract). The pool may outlive
  // the guest; it then keeps the guest's last home.
  // Errors: invalid_argument (not opted in, owner collides, no memory node
  // outside the home), busy (pool table full), no_memory (its node order).
  Result<PoolId, Error> create_pool(const GuestMemory& guest, PoolKind kind);
  // The same for an embedder without a GuestMemory: `home` is what to
  // avoid; `name` (for messages) is cut to kGuestNameMax bytes.
  Result<PoolId, Error> create_pool(NodeMask home, PoolKind kind, std::string_view name = "pool");
  // The pool's guest was rehomed: later puts avoid `home`, and pages
  // stored on a node of `home` move to the nearest allowed node with room
  // (ephemeral pages that find none are dropped; persistent ones stay until
  // flushed). Returns how many persistent pages stayed on the home. A put
  // racing the change may fail with busy (put again). Allocates its work
  // list. Errors: invalid_argument (no such pool, no memory node outside
  // `home`), no_memory (node order or work list); nothing changes then.
  Result<std::uint64_t> set_pool_home(PoolId pool, NodeMask home);
  // Frees every page of the pool. Errors: invalid_argument (no such pool).
  Status destroy_pool(PoolId pool) noexcept;

  // Stores kFrameSize bytes from `page`; returns the node holding them.
  // A pool made from a guest first follows the guest's home if it changed.
  // Errors: invalid_argument (no pool, null page), no_memory (see contract;
  // also when the pool's guest now lives on every memory node).
  Result<NodeId> put(PoolId pool, ObjectId object, std::uint32_t index, const void* page) noexcept;
  // Copies the page out to `out` (kFrameSize bytes) on a hit.
  // Errors: invalid_argument (no pool, null out).
  Result<ColdGet> get(PoolId pool, ObjectId object, std::uint32_t index, void* out) noexcept;
  // Removes one page (or dropped marker); absent keys are fine.
  Status flush(PoolId pool, ObjectId object, std::uint32_t index) noexcept;
  // Removes every page of an object; returns how many entries went.
  Result<std::uint64_t> flush_object(PoolId pool, ObjectId object) noexcept;

  // Drops up to `pages` ephemeral pages stored on `node`, oldest first;
  // returns how many frames were freed.
  std::uint64_t reclaim(NodeId node, std::uint64_t pages) noexcept;
  // The same as a plain function for the allocator's reclaim hook
  // (ctx = the ColdStore).
  static std::uint64_t reclaim_hook(void* ctx, NodeId node, std::uint64_t pages) noexcept;

  // Where a stored page lives (kNoNode when absent or dropped); for tests
  // and tools.
  NodeId node_of(PoolId pool, ObjectId object, std::uint32_t index) const noexcept;
  // Nodes a pool's pages may use, nearest first (empty for no pool; empty
  // and !ok() when out of memory).
  Vector<NodeId> pool_node_order(PoolId pool) const;

  ColdStoreStats stats() const;
  // Index, entries, pool lists and age lists agree; every stored frame is
  // outside its pool's home (but for persistent pages set_pool_home could
  // not move); counters match a recount.
  Status check_invariants() const;

  struct NUMAHEAP_INTERNAL Impl;

 private:
  explicit ColdStore(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
