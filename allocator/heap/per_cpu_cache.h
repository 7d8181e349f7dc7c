// PerCpuCaches: small stacks of free blocks per CPU, per node and per
// cached order (0, 1..4 and 9), so the common allocation and free take one
// uncontended lock (or none: rseq_cache.h) instead of the node's. Refilled
// and drained in batches under one node-lock acquisition (as Linux's
// per-CPU page lists), bounded by `high`.
//
// Limits: order 0 and order 9 as HeapConfig says; each order k in 1..4
// holds at most (pcp_high >> (k + 1)) blocks, i.e. about pcp_high / 2
// frames, moved (pcp_batch >> k) at a time (at least 1). pcp_high 0 turns
// orders 0..4 off, pcp9_batch 0 order 9.
//
// Lock order: a cache's lock, then a node lock, then the claims lock.
#pragma once

#include <cstdint>

#include <type_traits>

#include "allocator/heap/frame_table.h"
#include "allocator/platform/fault_injection.h"
#include "allocator/platform/spin_lock.h"
#include "numaheap/frame.h"
#include "numaheap/metadata.h"

namespace numaheap {

// One per-CPU cache entry: a cached block's head frame plus what alloc()
// needs to hand the block out with a plain store of its descriptor word,
// without loading the word first (docs/fast-path.md):
//   bits  0..39  the head frame (FrameTable::init refuses frames >= 2^40,
//                i.e. more than 4 PiB: x86-64's physical address limit)
//   bits 40..55  the dirty tag: 0 clean; 1 dirty with bytes of an owner the
//                tag cannot name (an id >= kTaggedOwners, or kMixedOwner):
//                scrubbed for any requester; 2 + o dirty with owner o's
//                bytes only, o < kTaggedOwners. Exact, never a hash: a tag
//                equal to 2 + o means owner o and nobody else.
//   bits 56..63  the descriptor's generation (the same bits as in the word)
// kNoEntry (all ones) is no entry: tags stop at 2 + (kTaggedOwners - 1).
using CacheEntry = std::uint64_t;
inline constexpr CacheEntry kNoEntry = ~CacheEntry{0};
namespace cache_entry {
inline constexpr unsigned kMfnBits = 40;
inline constexpr Mfn kMfnLimit = Mfn{1} << kMfnBits;  // frames below it fit an entry
static_assert(FrameTable::kFrameLimit <= kMfnLimit, "every managed frame fits an entry");
inline constexpr unsigned kTagShift = 40;
inline constexpr std::uint32_t kTagClean = 0;
inline constexpr std::uint32_t kTagDirtyUnknown = 1;
inline constexpr std::uint32_t kTagBias = 2;
inline constexpr OwnerId kTaggedOwners = 0xfffd;  // owners 0..0xfffc have their own tag
inline constexpr std::uint64_t kGenMask = FrameWord{0, 0, 0, 0, 0xff}.pack();
static_assert(kGenMask == 0xff00000000000000ull, "the generation is the entry's top byte too");
}  // namespace cache_entry

// The dirty tag of a block that is `dirty` with `owner`'s bytes.
constexpr std::uint32_t cache_dirty_tag(bool dirty, OwnerId owner) noexcept {
  if (!dirty) return cache_entry::kTagClean;
  if (owner < cache_entry::kTaggedOwners) return owner + cache_entry::kTagBias;
  if (!std::is_constant_evaluated() && NUMAHEAP_FAULT(entry_tag_truncates))
    return static_cast<std::uint16_t>(owner + cache_entry::kTagBias);
  return cache_entry::kTagDirtyUnknown;
}
// The entry of block `mfn` whose (cached) descriptor word is `word`.
constexpr CacheEntry make_cache_entry(Mfn mfn, std::uint64_t word) noexcept {
  const FrameWord w = FrameWord::unpack(word);
  return mfn | std::uint64_t{cache_dirty_tag((w.state & kDirty) != 0, w.owner)} << cache_entry::kTagShift |
         (word & cache_entry::kGenMask);
}
constexpr Mfn entry_mfn(CacheEntry e) noexcept { return e & (cache_entry::kMfnLimit - 1); }
constexpr std::uint32_t entry_tag(CacheEntry e) noexcept {
  return static_cast<std::uint16_t>(e >> cache_entry::kTagShift);
}
// The word alloc() stores for the block: used by `owner`, `order`, the next
// generation -- FrameWord::allocated_to of the cached word, from the entry.
constexpr std::uint64_t entry_allocated_word(CacheEntry e, unsigned order, OwnerId owner) noexcept {
  return ((e + (std::uint64_t{1} << 56)) & cache_entry::kGenMask) |
         FrameWord{owner, static_cast<std::uint8_t>(FrameKind::used), static_cast<std::uint8_t>(order), 0, 0}.pack();
}
// Whether handing the block to `owner` needs a scrub: it is dirty, and
// unless no_scrub was asked, or some byte may be another owner's (a
// kTagDirtyUnknown block is scrubbed; alloc's out-of-line path may look at
// the word first to spare an owner its own bytes).
constexpr bool entry_needs_scrub(CacheEntry e, bool no_scrub, OwnerId owner) noexcept {
  const std::uint32_t tag = entry_tag(e);
  return tag != cache_entry::kTagClean && !(no_scrub && tag == owner + cache_entry::kTagBias);
}
// The invariant of a cached entry (see CpuCache): `word` is the cached
// head of `order` that `e` describes.
constexpr bool entry_matches(CacheEntry e, std::uint64_t word, unsigned order) noexcept {
  const FrameWord w = FrameWord::unpack(word);
  return w.kind() == FrameKind::cached && w.order == order && w.bulk_scrub == 0 &&
         !(w.state & ~(kKindMask | kDirty)) && make_cache_entry(entry_mfn(e), word) == e;
}
namespace cache_entry {
inline constexpr std::uint8_t kCachedDirty = static_cast<std::uint8_t>(FrameKind::cached) | kDirty;
static_assert(entry_allocated_word(make_cache_entry(123, FrameWord{7, kCachedDirty, 4, 0, 0xff}.pack()), 4, 9) ==
                  FrameWord{7, kCachedDirty, 4, 0, 0xff}.allocated_to(9).pack(),
              "alloc's blind store writes what allocated_to would (generation wraps)");
static_assert(make_cache_entry(kMfnLimit - 1, FrameWord{kTaggedOwners - 1, kCachedDirty, 0, 0, 0xff}.pack()) != kNoEntry,
              "the largest entry is not kNoEntry");
static_assert(entry_tag(make_cache_entry(5, FrameWord{0x10001, kCachedDirty, 0, 0, 0}.pack())) == kTagDirtyUnknown &&
                  entry_needs_scrub(make_cache_entry(5, FrameWord{0x10001, kCachedDirty, 0, 0, 0}.pack()), true, 0x10001) &&
                  entry_needs_scrub(make_cache_entry(5, FrameWord{0x10001, kCachedDirty, 0, 0, 0}.pack()), true, 1),
              "an owner beyond the tag's range is never matched by the tag");
static_assert(!entry_needs_scrub(make_cache_entry(5, FrameWord{kTaggedOwners - 1, kCachedDirty, 0, 0, 0}.pack()), true,
                                 kTaggedOwners - 1) &&
                  entry_needs_scrub(make_cache_entry(5, FrameWord{kTaggedOwners - 1, kCachedDirty, 0, 0, 0}.pack()),
                                    false, kTaggedOwners - 1) &&
                  !entry_needs_scrub(make_cache_entry(5, FrameWord{kNoOwner, 3, 0, 0, 0}.pack()), false, 1),
              "no_scrub spares only the owner's own bytes; clean blocks are never scrubbed");
}  // namespace cache_entry

// Layout is read by the rseq sequences (rseq_cache.h): keep it standard.
struct alignas(64) CpuCache {
  SpinLock lock;
  // Guarded by `lock`, or changed while it is free by an rseq sequence on
  // this cache's CPU (rseq_cache.h). Invariant: count <= high; every
  // entries[i < count], e for frame f = entry_mfn(e), is the head of a
  // block of `order` on this cache's node and word(f) == cached(gen(e),
  // dirty(e), owner): kind `cached`, no flag but kDirty, this order, the
  // entry's generation, and dirty + owner as the entry's tag says
  // (entry_matches(e, word(f), order); checked at pop in debug builds and
  // by check_invariants). Whoever pushes an entry builds it from the word
  // it just wrote or compared-and-swapped (make_cache_entry); nobody edits
  // the word of a frame while it sits in a cache (offline() drains first).
  std::uint32_t count = 0;
  std::uint32_t high = 0;   // immutable after create
  std::uint32_t batch = 0;  // immutable after create
  std::uint8_t order = 0;   // immutable after create
  CacheEntry* entries = nullptr;  // `high` entries, immutable pointer
};

// `count` as seen without the lock: drains skip empty caches and stats sum
// them without fencing every CPU. Writers holding `lock` store it with
// relaxed atomics (set_count) so this read is well defined; the cache's own
// CPU may change it at any moment in an rseq sequence, so the value is a
// hint (exact only while nothing allocates or frees), never a reservation.
inline std::uint32_t peek_count(const CpuCache& c) noexcept { return __atomic_load_n(&c.count, __ATOMIC_RELAXED); }
inline void set_count(CpuCache& c, std::uint32_t n) noexcept { __atomic_store_n(&c.count, n, __ATOMIC_RELAXED); }

class PerCpuCaches {
 public:
  // Slots 0..4: orders 0..4; slot 5: order 9. Slots of one CPU and node
  // are adjacent (at(cpu, ni, 0) + slot is at(cpu, ni, slot)).
  static constexpr unsigned kSlots = 6;
  static constexpr unsigned kMidOrders = 4;  // orders 1..kMidOrders cached
  static constexpr unsigned kSlotOrder[kSlots] = {0, 1, 2, 3, 4, 9};

  // Allocates every cache and its storage. False when out of memory.
  bool init(const MetadataHooks* hooks, std::uint32_t cpus, std::uint32_t nodes, std::uint32_t batch0, std::uint32_t high0,
            std::uint32_t batch9, std::uint32_t high9) noexcept;

  // Cache slot for an order, or -1 when the order is not cached.
  // `order` may be any caller's value (one compare and one load).
  int slot_of(unsigned order) const noexcept {
    return order < kOrderCount ? slot_by_order_[order] : -1;
  }
  CpuCache& at(std::uint32_t cpu, std::uint32_t node_index, int slot) const noexcept {
    return caches_[(static_cast<std::size_t>(cpu) * nodes_ + node_index) * kSlots +
                   static_cast<std::size_t>(slot)];
  }
  // Blocks a cache of `slot` holds at most (CpuCache::high of every CPU's,
  // kept here too: reading it from a cache would pull that CPU's busy line).
  std::uint32_t high(int slot) const noexcept { return high_[slot]; }
  std::uint32_t cpus() const noexcept { return cpus_; }
  std::uint32_t nodes() const noexcept { return nodes_; }

 private:
  std::uint32_t cpus_ = 0, nodes_ = 0;
  std::int8_t slot_by_order_[kOrderCount] = {};  // -1: not cached (set by init)
  std::uint32_t high_[kSlots] = {};                // set by init
  MetadataArray<CpuCache> caches_;
  MetadataArray<CacheEntry> storage_;
};

}  // namespace numaheap
