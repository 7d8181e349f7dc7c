// numaheap: page sharing (deduplication) with a NUMA node policy.
//
// Contract:
//  * Opt-in per guest: add_guest() refuses a guest whose spec().sharing is
//    false (dedup is a side channel between guests, so it is off unless
//    asked for). remove_guest() must run before the guest is destroyed: it
//    gives the guest private copies of every page it shares and forgets it.
//  * scan(guest, first, count) hashes each eligible page (present; not
//    pinned, device, migrating or already shared) with XXH3, confirms a
//    match byte for byte, maps the page read-only (P2mFlags::shared) to one
//    frame owned by SharingConfig::owner, and frees the duplicate. Pages
//    seen once are remembered as candidates, so a later scan of any guest
//    can match them; a candidate is re-validated (same frame, same bytes)
//    before it is merged.
//  * Zero pages: every all-zero page maps to its own node's zero frame (one
//    per node, created on demand), so zero pages never cross nodes whatever
//    the policy and cost no hashing. They count as shared pages in stats.
//  * SharingPolicy decides which frames may merge: across_nodes (any),
//    same_node_only (KSM's merge_across_nodes=0), within_distance(d) (SLIT
//    distance both ways <= d). set_policy() returns Errc::busy while any
//    guest page is mapped to a shared frame; unmerge_all() first.
//  * A write to a shared page is the embedder's write fault: write_fault()
//    copies the frame onto the writer's node (exact node first, then the
//    allocator's distance fallback), maps the copy writable for that guest
//    alone, and frees the shared frame with its last user. The migrator
//    never moves shared pages (they carry P2mFlags::shared).
//  * Freed frames go back to the allocator dirty; it scrubs them before any
//    other owner gets them, so after an unshare no other guest can read the
//    old bytes from a recycled frame.
//  * Guest writes racing a scan: the final byte comparison of a page runs
//    after SharingHooks::write_protect has returned for it (the embedder
//    makes the gfn read-only and flushes TLBs); without that hook the
//    embedder promises the scanned range is not written during scan() (guest
//    paused). Writes to a page after it is shared must go to write_fault().
//  * Thread-safe: one lock (the manager's, a core spin lock) guards the
//    index, the frames and their reverse maps; page hashing runs outside
//    it. Lock order: sharing lock, then a guest's lock (split_to_pages),
//    then the allocator's.
//  * Memory: the manager, its hash tables (open addressing, grown by
//    doubling) and reverse maps come from metadata hooks
//    (SharingConfig::metadata, else numaheap::default_metadata()); tables
//    grow under the manager's lock (scan and merge are not a hot path).
//    When they cannot grow a merge is skipped (counted in merge_failures),
//    a page is not remembered as a candidate, or the call fails with
//    no_memory -- never with a half-made change.
//  * Errors never change state; nothing aborts on bad input.
#pragma once

#include <cstdint>
#include <memory>

#include "numaheap/frame.h"
#include "numaheap/frame_access.h"
#include "numaheap/guest_memory.h"
#include "numaheap/metadata.h"
#include "numaheap/page_allocator.h"
#include "numaheap/result.h"
#include "numaheap/vector.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

class SharingPolicy {
 public:
  enum class Kind : std::uint8_t { across_nodes = 0, same_node_only = 1, within_distance = 2 };

  static constexpr SharingPolicy across_nodes() noexcept { return SharingPolicy(Kind::across_nodes, 0); }
  static constexpr SharingPolicy same_node_only() noexcept { return SharingPolicy(Kind::same_node_only, 0); }
  // Frames merge when the SLIT distance is <= d in both directions. d is
  // 1..255 (set_policy refuses others).
  static constexpr SharingPolicy within_distance(std::uint32_t d) noexcept {
    return SharingPolicy(Kind::within_distance, d);
  }

  constexpr SharingPolicy() = default;
  Kind kind() const noexcept { return kind_; }
  std::uint32_t max_distance() const noexcept { return max_distance_; }
  // May a page on node `a` map to a frame on node `b`?
  bool allows(const Topology& topo, NodeId a, NodeId b) const noexcept;
  bool operator==(const SharingPolicy&) const = default;

 private:
  constexpr SharingPolicy(Kind k, std::uint32_t d) : kind_(k), max_distance_(d) {}
  Kind kind_ = Kind::across_nodes;
  std::uint32_t max_distance_ = 0;
};

struct SharingHooks {
  void* ctx = nullptr;
  // Make `gfn` of `guest` read-only and flush its TLB entries; true when
  // done. Called before the final comparison of a page being merged.
  bool (*write_protect)(void* ctx, const GuestMemory& guest, Gfn gfn) = nullptr;
  // Undo write_protect for a page that was not merged after all.
  void (*write_unprotect)(void* ctx, const GuestMemory& guest, Gfn gfn) = nullptr;
};

struct SharingConfig {
  // Owner of shared frames: reserved by the embedder, distinct from every
  // guest's owner id (so no guest can free or be billed for them).
  OwnerId owner = kMaxOwner;
  SharingPolicy policy = SharingPolicy::across_nodes();
  FrameAccess access{};  // how to read frames (frame_only mode: required)
  SharingHooks hooks{};
  // Merge all-zero pages into per-node zero frames (see the contract).
  bool zero_pages = true;
  // Where the manager's metadata comes from; must outlive it. nullptr:
  // numaheap::default_metadata().
  const MetadataHooks* metadata = nullptr;
};

struct SharingNodeStats {
  NodeId node = kNoNode;
  std::uint64_t frames = 0;     // shared frames on this node (zero frames included)
  std::uint64_t mappings = 0;   // guest pages mapped to them
  std::uint64_t saved = 0;      // mappings - frames
};

struct SharingStats {
  std::uint64_t pages_shared = 0;   // shared frames (KSM pages_shared)
  std::uint64_t pages_sharing = 0;  // guest pages mapped to a shared frame
  std::uint64_t pages_saved = 0;    // pages_sharing - pages_shared
  std::uint64_t zero_mappings = 0;  // guest pages mapped to a zero frame
  std::uint64_t candidates = 0;     // pages remembered, not (yet) merged
  // Counters since create().
  std::uint64_t pages_scanned = 0;
  std::uint64_t bytes_hashed = 0;
  std::uint64_t bytes_compared = 0;
  std::uint64_t merges = 0;         // guest pages merged
  std::uint64_t unshares = 0;       // guest pages given a private copy
  std::uint64_t refused_by_policy = 0;  // equal content, but policy said no
  std::uint64_t merge_failures = 0;     // no memory / raced / protect refused
  Vector<SharingNodeStats> per_node;  // nodes with shared frames, by id (!ok(): out of memory)
};

class SharingManager {
 public:
  NUMAHEAP_METADATA_NEW_DELETE

  // Errors: invalid_argument (owner reserved or equal to nothing usable,
  // bad policy), unsupported (frame_only mode without FrameAccess),
  // no_memory (its tables cannot be allocated; nothing is left behind).
  static Result<std::unique_ptr<SharingManager>, Error> create(PageAllocator& pa,
                                                              const SharingConfig& config);
  ~SharingManager();  // frees shared frames only if no guest maps them
  SharingManager(const SharingManager&) = delete;
  SharingManager& operator=(const SharingManager&) = delete;

  // Errors: invalid_argument (not opted in, owner collides with ours, other
  // allocator), busy (already added), no_memory (guest table).
  Result<void, Error> add_guest(GuestMemory& guest);
  // Gives the guest private copies of its shared pages (on each gfn's home
  // node) and forgets it. Errors: invalid_argument (unknown guest),
  // no_memory (some copies could not be made; the rest stay shared and the
  // guest stays registered -- retry after freeing memory).
  Result<void, Error> remove_guest(GuestMemory& guest);

  // Scans gfns [first, first + count) of a registered guest (clamped to the
  // guest's p2m). Returns the number of its pages merged by this call.
  // Errors: invalid_argument (unknown guest).
  Result<std::uint64_t> scan(GuestMemory& guest, Gfn first, std::uint64_t count) noexcept;

  // The guest wrote (or is about to write) `gfn`. A shared page gets a
  // private copy on `writer_node` (kNoNode: the gfn's home node); any other
  // present page needs nothing. Errors: invalid_argument (unknown guest or
  // node), not_present, no_memory (nothing free; the page stays shared).
  Status write_fault(GuestMemory& guest, Gfn gfn, NodeId writer_node) noexcept;
  // Same, with the node of the CPU the writing vCPU runs on.
  Status write_fault_cpu(GuestMemory& guest, Gfn gfn, CpuId writer_cpu) noexcept;
  // A sharer asks for its own copy (onto the gfn's home node).
  Status unshare(GuestMemory& guest, Gfn gfn) noexcept { return write_fault(guest, gfn, kNoNode); }

  // Unshares every page of every guest (each onto its home node) and drops
  // the candidate index. Errors: no_memory (frames or the work list; the
  // rest stays shared).
  Result<void, Error> unmerge_all();

  SharingPolicy policy() const noexcept;
  // Errors: busy (guest pages are merged), invalid_argument (distance 0 or
  // above 255). Switching drops remembered candidates.
  Status set_policy(SharingPolicy policy) noexcept;

  SharingStats stats() const;
  // Every shared frame's reverse map matches the guests' p2m entries, refs
  // equal reverse-map sizes, the hash index holds each frame once, per-node
  // counters match a recount.
  Status check_invariants() const;

  struct NUMAHEAP_INTERNAL Impl;

 private:
  explicit SharingManager(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
