// numaheap: the page allocator -- per-node buddy heaps with node-affinity
// flags, claims, scrubbing, per-CPU caches and offlining.
//
// Contract:
//  * Every entry point is thread-safe and noexcept; bad input returns an Errc
//    and leaves the allocator unchanged. Nothing allocates after create().
//  * alloc() prefers `node` (kNoNode: the calling CPU's node) and falls back
//    along Topology::fallback_order (distance order, ties spread, memoryless
//    nodes skipped), skipping nodes in `exclude`. exact_node: that node or
//    Errc::no_memory (per-CPU caches of the node are drained first).
//  * A frame freed by owner A is never handed to owner B holding A's bytes:
//    freed frames are dirty until scrubbed, on allocation or by scrub_some().
//    no_scrub skips the scrub only when every dirty byte is the same owner's.
//  * Claims reserve pages for an owner, globally or on one node; other owners
//    cannot take claimed memory; allocations flagged use_claim consume it.
//    Claims and allocations are checked against the same free counters under
//    the same locks: the sum of claims never exceeds free memory.
//  * offline(mfn) retires a free frame at once, or marks an in-use frame so
//    that it is retired when its block is freed.
//  * alloc_bulk()/free_bulk() move many 4 KiB frames at once (populating or
//    tearing down a guest) under one lock hold per node, all or nothing,
//    with the same placement, claim, ownership and scrub rules as alloc()
//    and free() applied to every frame.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "numaheap/frame.h"
#include "numaheap/node_mask.h"
#include "numaheap/platform.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// Bits of AllocRequest::flags.
struct AllocFlags {
  static constexpr std::uint32_t exact_node = 1u << 0;  // that node or fail
  static constexpr std::uint32_t no_scrub = 1u << 1;    // caller overwrites; same owner only
  static constexpr std::uint32_t use_claim = 1u << 2;   // consume the owner's claim first
  static constexpr std::uint32_t all = exact_node | no_scrub | use_claim;
};

struct AllocRequest {
  unsigned order = 0;            // 0..kMaxOrder
  NodeId node = kNoNode;         // preferred node; kNoNode = calling CPU's node
  std::uint32_t flags = 0;       // AllocFlags
  OwnerId owner = 0;             // 0..kMaxOwner
  NodeMask exclude{};            // never take memory from these nodes
};

struct Allocation {
  Mfn mfn = kInvalidMfn;  // head of the block (aligned to 2^order)
  NodeId node = kNoNode;  // node the block came from
};

// alloc()'s result, with Result's interface in 16 trivially copyable bytes,
// so that it is returned in two registers (rax:rdx) instead of through
// memory and alloc() can leave by a tail call (docs/fast-path.md). An error
// is an Allocation with mfn == kInvalidMfn (no block has that head) whose
// second word is the Errc; a value never has that mfn.
template <>
class [[nodiscard]] Result<Allocation, Errc> {
 public:
  Result(const Allocation& v) noexcept : rep_{.value = v} { assert(v.mfn != kInvalidMfn); }
  Result(Errc e) noexcept : rep_{.error = {kInvalidMfn, e}} {}

  // A value's mfn is never kInvalidMfn; `mfn` is the common initial member
  // of both alternatives, so it may be read whichever one is active.
  bool has_value() const noexcept { return rep_.value.mfn != kInvalidMfn; }
  explicit operator bool() const noexcept { return has_value(); }

  Allocation& value() & { assert(has_value()); return rep_.value; }
  const Allocation& value() const& { assert(has_value()); return rep_.value; }
  Allocation&& value() && { assert(has_value()); return std::move(rep_.value); }
  Allocation& operator*() & { return value(); }
  const Allocation& operator*() const& { return value(); }
  Allocation* operator->() { return &value(); }
  const Allocation* operator->() const { return &value(); }

  const Errc& error() const& { assert(!has_value()); return rep_.error.code; }
  Errc&& error() && { assert(!has_value()); return std::move(rep_.error.code); }

 private:
  struct ErrorRep {
    Mfn mfn;  // kInvalidMfn
    Errc code;
  };
  union Rep {
    Allocation value;
    ErrorRep error;
  } rep_;
};
static_assert(sizeof(Result<Allocation, Errc>) == 16 && std::is_trivially_copyable_v<Result<Allocation, Errc>>,
              "alloc()'s result fits two registers");

// An allocated block as the frame table records it (allocated_block()).
struct BlockInfo {
  unsigned order = 0;
  OwnerId owner = 0;
};

// Tunables; the defaults suit a hypervisor's 4 KiB / 2 MiB mix.
// Called when a node cannot serve an allocation, with no allocator lock
// held: frees up to `pages` frames of `node` (e.g. the cold store dropping
// ephemeral pages there, oldest first) and returns how many it freed; the
// allocation then retries that node once. It may free to this allocator
// but must not allocate from it.
struct ReclaimHook {
  void* ctx = nullptr;
  std::uint64_t (*fn)(void* ctx, NodeId node, std::uint64_t pages) = nullptr;
};

struct HeapConfig {
  std::uint32_t pcp_batch = 31;     // order-0 frames moved per refill/drain
  std::uint32_t pcp_high = 124;     // order-0 frames a CPU may hold per node
  // Orders 1..4 are cached too, sized from these: order k holds at most
  // pcp_high >> (k + 1) blocks and moves pcp_batch >> k (at least 1) at a
  // time; pcp_high = 0 turns orders 0..4 off.
  std::uint32_t pcp9_batch = 1;     // same for 2 MiB blocks (0 = no order-9 cache)
  std::uint32_t pcp9_high = 4;
  std::uint32_t max_claims = 256;   // (owner, node) claim records
  std::uint32_t cpus = 0;           // per-CPU cache slots; 0 = as many as the host/topology has
  // Lock-free per-CPU fast path with restartable sequences where the host
  // has them (x86-64 Linux, glibc rseq, membarrier RSEQ) and no
  // current_cpu hook is set; otherwise per-CPU caches take their lock.
  bool use_rseq = true;
};

struct NodeStats {
  NodeId node = kNoNode;
  std::uint64_t managed = 0;        // frames of this node
  std::uint64_t free = 0;           // frames on the buddy free lists
  std::uint64_t cached = 0;         // free frames held in per-CPU caches
  std::uint64_t used = 0;           // frames allocated
  std::uint64_t dirty = 0;          // free (buddy) frames awaiting scrub
  std::uint64_t claimed = 0;        // frames reserved by node claims on this node
  std::uint64_t offlined = 0;       // retired frames
  std::uint64_t pending_offline = 0;  // in-use frames to retire when freed
  std::uint64_t free_blocks[kOrderCount] = {};
  std::uint64_t dirty_blocks[kOrderCount] = {};
  int largest_free_order = -1;      // -1: no free block
};

enum class OfflineState : std::uint8_t { offlined = 0, pending = 1 };

class PageAllocator {
 public:
  NUMAHEAP_METADATA_NEW_DELETE
  // Errors: invalid_argument when a frame range of the platform reaches
  // frame 2^40 (4 PiB of 4 KiB frames, beyond x86-64's 52-bit physical
  // addresses: a per-CPU cache entry holds a frame number in 40 bits);
  // no_memory when metadata memory runs out.
  static Result<std::unique_ptr<PageAllocator>, Error> create(
      const Topology& topo, const PlatformConfig& platform = {}, const HeapConfig& heap = {});
  ~PageAllocator();
  PageAllocator(const PageAllocator&) = delete;
  PageAllocator& operator=(const PageAllocator&) = delete;

  // Errors: invalid_order, invalid_argument (owner or flags), invalid_node
  // (unknown node), no_memory (nothing free outside claims and exclusions).
  Result<Allocation> alloc(const AllocRequest& req) noexcept;
  // Errors: invalid_frame (unmanaged, not a block head, offline),
  // double_free, invalid_order (not the allocated order), not_owner.
  Status free(Mfn mfn, unsigned order, OwnerId owner) noexcept;
  // Turns an allocated block of `order` into 2^order allocated 4 KiB blocks
  // of the same owner, so one page of it can be moved or freed alone (guest
  // ballooning, page migration). Pending offlines stay with their frames.
  // Errors as free(); state unchanged on error.
  Status split(Mfn mfn, unsigned order, OwnerId owner) noexcept;

  // Fills `out` with out.size() allocated 4 KiB frames (order-0 blocks),
  // each one what alloc(req) could have handed out: the same node
  // preference and fallback, exact_node, exclude, owner, claims (use_claim
  // consumes the owner's claims, others cannot take claimed memory) and
  // scrubbing. All or nothing: on an error nothing is taken.
  // At most a per-CPU cache's worth (HeapConfig::pcp_high frames) for the
  // calling CPU's own node (named or kNoNode; no flag but no_scrub and
  // exact_node) comes from that CPU's cache, as alloc() would take each
  // frame, in no particular order (the cache is refilled from the heap in
  // one lock hold when short; the common case takes no heap lock). Other
  // requests, or one the cache cannot fill, are carved from the heaps:
  // the smallest free blocks first, whole blocks at a time, so the frames
  // come in ascending runs; a request that may fall back takes all it can
  // from the preferred node before the next one in fallback order
  // (node_of() tells where each frame is). Per-CPU caches are drained, and
  // the reclaim hook asked, before no_memory, as alloc() does.
  // Errors: invalid_order (req.order != 0), invalid_argument (owner, flags,
  // exact_node with its node excluded), invalid_node, no_memory.
  Status alloc_bulk(const AllocRequest& req, std::span<Mfn> out) noexcept;
  // Frees order-0 blocks of `owner` (from alloc_bulk, alloc or split).
  // Every frame is checked before anything changes; on an error none is
  // freed. At most a per-CPU cache's worth goes to the calling CPU's
  // caches (of each frame's node), as free() would put each frame, when
  // it fits there; otherwise, and for more than that, the frames go back
  // to the heap, runs of consecutive frames aligned to their length as one
  // block. Frames pending offline are retired (such a call takes the heap
  // way). Freed frames are dirty until scrubbed, as with free().
  // Errors: invalid_argument (owner), invalid_frame (unmanaged, not a block
  // head, offline), double_free (already free, or listed twice),
  // invalid_order (head of a larger block), not_owner.
  Status free_bulk(std::span<const Mfn> frames, OwnerId owner) noexcept;

  // Reserves `pages` more frames for `owner` on `node` (kNoNode: anywhere).
  // Errors: claim_exceeded (not enough unclaimed free memory), invalid_node,
  // invalid_argument, busy (claim table full).
  Status claim(OwnerId owner, std::uint64_t pages, NodeId node = kNoNode) noexcept;
  // Drops every claim of `owner` (what is left of them), held ones too.
  Status release_owner(OwnerId owner) noexcept;
  // A scope for a call that claims and allocates on an owner's behalf and
  // must undo only its own part (GuestMemory::populate, balloon_up):
  // set_claims_aside() holds the owner's current claims -- still reserved,
  // so nobody else can take that memory, and still counted by claimed_by(),
  // but the owner's use_claim allocations no longer consume them and new
  // claims start fresh records. restore_claims() then drops what is left of
  // the claims made since, and brings the held ones back unchanged. Without
  // a set_claims_aside() before, restore_claims() drops every claim.
  // Errors: invalid_argument (owner), busy (claims already set aside).
  Status set_claims_aside(OwnerId owner) noexcept;
  Status restore_claims(OwnerId owner) noexcept;
  // Outstanding claim of an owner: on `node`, global ones (kNoNode), or all
  // of them together (kAllNodes).
  static constexpr NodeId kAllNodes = kNoNode - 1;
  std::uint64_t claimed_by(OwnerId owner, NodeId node = kAllNodes) const noexcept;
  std::uint64_t global_claimed() const noexcept;

  // Errors: invalid_frame (unmanaged), busy (the frame kept moving between
  // a per-CPU cache and its heap while we looked; retry).
  Result<OfflineState> offline(Mfn mfn) noexcept;
  // A number that grows each time a frame is marked pending offline (or
  // retired at once) and never goes down: a migrator compares it with its
  // last look to know when to search its pages for frames to evacuate.
  // Takes each node's heap lock briefly.
  std::uint64_t offline_events() const noexcept;
  // True when the allocated block of `order` whose head is `mfn` holds a
  // frame pending offline (freeing the block retires that frame). False
  // for anything else (free, unmanaged, another order). Lock-free.
  bool offline_pending(Mfn mfn, unsigned order) const noexcept;
  // Background scrub of up to `budget` frames of `node`; frames cleaned.
  std::uint64_t scrub_some(NodeId node, std::uint64_t budget) noexcept;
  // Returns every per-CPU cache's frames (of all nodes / one node) to the heaps.
  void drain_all() noexcept;
  void drain_node(NodeId node) noexcept;

  Result<NodeStats> stats(NodeId node) const noexcept;
  // Lists, counters, caches and claims (locks everything; cheap-ish).
  Status check_invariants() const noexcept;
  // Additionally walks every descriptor: free+used+cached+offlined =
  // managed per node, tails clean (slow: O(frames)). Exact when nothing
  // runs concurrently. Under load some frames may be in transit (freed
  // but not yet in a per-CPU cache, popped but not yet marked used, held
  // by a bulk call): it walks again until none are, and returns busy if
  // they never settle -- never invalid_frame for a state that is not
  // corruption. Allocates nothing.
  Status check_frames() const noexcept;

  void* frame_address(Mfn mfn) const noexcept;  // host_memory mode only
  NodeId node_of(Mfn mfn) const noexcept;       // kNoNode when unmanaged
  const Topology& topology() const noexcept;
  const Platform& platform() const noexcept;
  double metadata_bytes_per_frame() const noexcept;
  // True when per-CPU caches run lock-free on restartable sequences.
  bool lockless_cpu_caches() const noexcept;
  // Installs (or, with {}, removes) the reclaim hook. Set it before other
  // threads use the allocator, or accept that a racing allocation may
  // still see the previous hook.
  void set_reclaim_hook(const ReclaimHook& hook) noexcept;
  // The allocated block whose head is `mfn`: its order and owner, read
  // from the frame table (no lock; a snapshot, exact while the block's
  // owner does not free or split it). For consistency checks such as
  // GuestMemory::check_invariants. Errors: invalid_frame (unmanaged, or
  // not the head of an allocated block: a tail, free, cached or offline).
  Result<BlockInfo> allocated_block(Mfn mfn) const noexcept;
  // 4 KiB frames in allocated blocks of `owner` (walks every block head
  // with all locks held: slow, for consistency checks).
  std::uint64_t frames_owned_by(OwnerId owner) const noexcept;

  struct NUMAHEAP_INTERNAL Impl;

 private:
  explicit PageAllocator(Impl* impl) noexcept : impl_(impl) {}
  Impl* impl_;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
