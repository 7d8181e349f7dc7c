// FrameTable: one 24-byte descriptor per managed frame.
//
// Descriptors of each frame range lie back to back in one reservation made
// with mmap(MAP_NORESERVE): untouched pages read as zeros and cost nothing,
// and an all-zero descriptor is valid -- it is a *tail*, a frame that belongs
// to whatever block starts at the nearest head below it. Only block heads
// are ever written at start-up, so initialising 1 TiB touches one descriptor
// per 1 GiB block.
//
// The node of a frame is not stored per frame: it is the node of the frame's
// range, found by binary search over the (few) ranges.
#pragma once

#include <atomic>
#include <boost/intrusive/list.hpp>
#include <cstdint>
#include <span>

#include "numaheap/frame.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/vector.h"

namespace numaheap {

// What a descriptor's head says about its block (low 3 bits of `state`).
enum class FrameKind : std::uint8_t {
  tail = 0,     // not a head: part of the block of the nearest head below
  free = 1,     // head of a free block on its node's free list
  used = 2,     // head of an allocated block
  cached = 3,   // order-0/9 head sitting in a per-CPU cache (or on its way
                // in or out of one), or an order-0 head free_bulk has
                // checked and is returning to its heap
  offline = 4,  // retired frame (order 0), never handed out again
};

// Flag bits of `state` above the kind.
inline constexpr std::uint8_t kKindMask = 0x07;
inline constexpr std::uint8_t kDirty = 0x08;           // free/cached: holds owner bytes
inline constexpr std::uint8_t kPendingOffline = 0x10;  // this frame: retire when freed
inline constexpr std::uint8_t kHasPending = 0x20;      // used head: a frame inside is pending
inline constexpr std::uint8_t kScrubbing = 0x40;       // free head: background scrub running

// Everything about a frame except its list links, as one 64-bit value that
// is loaded, stored and compared-and-swapped whole. Why one word: free()
// must check "allocated, of this order, by this owner" and take the block
// in one indivisible step; with separate fields a racing re-allocation (or
// a bulk allocation writing a fresh head) could change the owner between
// the check and the state change, and a double free would release another
// owner's block.
struct FrameWord {
  // used: the owner. free/cached + kDirty: whose bytes are inside
  // (kMixedOwner when several or unknown). Tails and clean blocks: 0 or
  // kNoOwner (meaningless: only `used` heads match an owner).
  OwnerId owner = 0;
  std::uint8_t state = 0;  // kind + flags
  std::uint8_t order = 0;  // heads: the block's order; tails: 0
  // Non-zero only on a used head alloc_bulk has just carved and not yet
  // returned: 1 + the order of a run starting here that it must scrub
  // before returning. Written and read only by that alloc_bulk call.
  std::uint8_t bulk_scrub = 0;
  // Bumped each time the head becomes `used`: a word read before a
  // free-and-reallocate never compares equal to the word after it, even
  // when the new owner and order are the old ones.
  std::uint8_t gen = 0;

  static constexpr FrameWord unpack(std::uint64_t v) noexcept {
    return FrameWord{static_cast<OwnerId>(v), static_cast<std::uint8_t>(v >> 32),
                     static_cast<std::uint8_t>(v >> 40), static_cast<std::uint8_t>(v >> 48),
                     static_cast<std::uint8_t>(v >> 56)};
  }
  constexpr std::uint64_t pack() const noexcept {
    return std::uint64_t{owner} | std::uint64_t{state} << 32 | std::uint64_t{order} << 40 |
           std::uint64_t{bulk_scrub} << 48 | std::uint64_t{gen} << 56;
  }
  constexpr FrameKind kind() const noexcept { return FrameKind(state & kKindMask); }
  // This head, now allocated to `new_owner` (a new generation).
  constexpr FrameWord allocated_to(OwnerId new_owner, std::uint8_t flags = 0) const noexcept {
    return FrameWord{new_owner, static_cast<std::uint8_t>(static_cast<std::uint8_t>(FrameKind::used) | flags),
                     order, 0, static_cast<std::uint8_t>(gen + 1)};
  }
  // allocated_to(new_owner) (no flags) computed on the packed word: three
  // instructions on alloc's fast path instead of an unpack and a repack.
  static constexpr std::uint64_t allocated_packed(std::uint64_t v, OwnerId new_owner) noexcept {
    return ((v + (std::uint64_t{1} << 56)) & 0xff00ff0000000000ull) |
           std::uint64_t{static_cast<std::uint8_t>(FrameKind::used)} << 32 | new_owner;
  }
};
static_assert(FrameWord::allocated_packed(FrameWord{7, 0x0b, 4, 3, 0xff}.pack(), 9) ==
                  FrameWord{7, 0x0b, 4, 3, 0xff}.allocated_to(9).pack(),
              "allocated_packed must equal allocated_to (gen wraps, bulk_scrub cleared)");

struct FrameDesc {
  using Hook = boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::normal_link>>;
  // Linked only while kind == free. Guarded by the node's lock. A
  // normal_link hook needs no construction, so zeroed memory is fine.
  Hook hook;
  // The packed FrameWord; all-zero is a tail. Always accessed through
  // std::atomic_ref. Who may change it depends on the kind: free, tail and
  // offline under the node lock; cached by whoever took the block out of a
  // cache or put it on its way into one (the cache's lock or an rseq
  // sequence decides who), or by the free_bulk call holding it; used by
  // its owner's free()/split() and by offline(), only through a
  // compare-and-swap of the whole word, so a double free, a free by the
  // wrong owner and an offline request racing each other are decided by
  // one indivisible check-and-transition.
  std::uint64_t word;

  FrameWord load(std::memory_order mo = std::memory_order_acquire) const noexcept {
    return FrameWord::unpack(std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(word)).load(mo));
  }
  void store(FrameWord w, std::memory_order mo = std::memory_order_release) noexcept {
    std::atomic_ref<std::uint64_t>(word).store(w.pack(), mo);
  }
  // The packed word itself (the fast paths work on it without unpacking).
  std::uint64_t load_packed(std::memory_order mo = std::memory_order_acquire) const noexcept {
    return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(word)).load(mo);
  }
  void store_packed(std::uint64_t v, std::memory_order mo = std::memory_order_release) noexcept {
    std::atomic_ref<std::uint64_t>(word).store(v, mo);
  }
  // Replaces the word only if it still equals `expected` (updated on failure).
  bool cas(FrameWord& expected, FrameWord desired) noexcept {
    std::uint64_t e = expected.pack();
    const bool ok = std::atomic_ref<std::uint64_t>(word).compare_exchange_strong(
        e, desired.pack(), std::memory_order_acq_rel, std::memory_order_acquire);
    if (!ok) expected = FrameWord::unpack(e);
    return ok;
  }
  // cas() on packed words; `expected` is not updated.
  bool cas_packed(std::uint64_t expected, std::uint64_t desired) noexcept {
    return std::atomic_ref<std::uint64_t>(word).compare_exchange_strong(
        expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  void fetch_or_state(std::uint8_t bits) noexcept {
    std::atomic_ref<std::uint64_t>(word).fetch_or(std::uint64_t{bits} << 32,
                                                  std::memory_order_acq_rel);
  }
  void clear_bulk_scrub() noexcept {
    std::atomic_ref<std::uint64_t>(word).fetch_and(~(std::uint64_t{0xff} << 48),
                                                   std::memory_order_acq_rel);
  }
  std::uint8_t load_state(std::memory_order mo = std::memory_order_acquire) const noexcept {
    return load(mo).state;
  }
  OwnerId owner() const noexcept { return load(std::memory_order_relaxed).owner; }
  unsigned order() const noexcept { return load(std::memory_order_relaxed).order; }
  static FrameKind kind_of(std::uint8_t s) noexcept { return FrameKind(s & kKindMask); }
  FrameKind kind() const noexcept { return kind_of(load_state()); }
};
static_assert(sizeof(FrameDesc) == 24, "descriptor budget is 24 bytes per frame");
// Descriptors share cache lines (the table starts on one): 2^kLineGroupOrder
// of them, from an index that is a multiple of it, fill whole lines exactly
// (8 x 24 B = 3 x 64 B). Per-CPU cache refills keep such groups whole
// (PageAllocator::Impl::refill) so two CPUs' hot frames rarely share one.
inline constexpr std::size_t kCacheLine = 64;
inline constexpr unsigned kLineGroupOrder = 3;
static_assert((sizeof(FrameDesc) << kLineGroupOrder) % kCacheLine == 0, "a group fills whole lines");

// What free() and split() demand of a block head whose word is `w`:
// allocated, of this order, by this owner. Errc::ok when it is. A free or
// cached block never matches an owner, whatever its `owner` field says.
inline Errc check_used_head(FrameWord w, unsigned order, OwnerId owner) noexcept {
  switch (w.kind()) {
    case FrameKind::free:
    case FrameKind::cached: return Errc::double_free;
    case FrameKind::tail:
    case FrameKind::offline: return Errc::invalid_frame;
    case FrameKind::used: break;
  }
  if (w.order != order) return Errc::invalid_order;
  if (w.owner != owner) return Errc::not_owner;
  return Errc::ok;
}

using FrameList = boost::intrusive::list<
    FrameDesc, boost::intrusive::member_hook<FrameDesc, FrameDesc::Hook, &FrameDesc::hook>,
    boost::intrusive::constant_time_size<false>>;

// A frame range of one node and where its descriptors live. Immutable.
struct FrameRangeInfo {
  Mfn first = 0;
  Mfn end = 0;                 // one past the last frame
  std::uint32_t node_index = 0;  // dense node index (Topology::index_of)
  std::uint64_t desc_base = 0;   // index of `first`'s descriptor
  bool contains(Mfn m) const noexcept { return m >= first && m < end; }
};

class FrameTable {
 public:
  // init() refuses frames at or above 2^kFrameBits: 4 PiB of 4 KiB frames,
  // x86-64's 52-bit physical addresses. Per-CPU cache entries hold a frame
  // number in kFrameBits bits (CacheEntry, per_cpu_cache.h).
  static constexpr unsigned kFrameBits = 40;
  static constexpr Mfn kFrameLimit = Mfn{1} << kFrameBits;

  FrameTable() = default;
  ~FrameTable();
  FrameTable(const FrameTable&) = delete;
  FrameTable& operator=(const FrameTable&) = delete;

  // Reserves descriptors for every frame of every node from `hooks`
  // (nothing written: the hooks' memory reads as zero).
  Result<void, Error> init(const Topology& topo, const MetadataHooks* hooks);

  // Range holding `mfn`, or nullptr when no node manages it.
  const FrameRangeInfo* find_range(Mfn mfn) const noexcept {
    if (only_) return only_->contains(mfn) ? only_ : nullptr;
    return find_range_slow(mfn);
  }
  FrameDesc& desc(const FrameRangeInfo& r, Mfn mfn) const noexcept {
    return descs_[r.desc_base + (mfn - r.first)];
  }
  FrameDesc* lookup(Mfn mfn, const FrameRangeInfo** range = nullptr) const noexcept {
    const FrameRangeInfo* r = find_range(mfn);
    if (range) *range = r;
    return r ? &desc(*r, mfn) : nullptr;
  }
  // The fast paths' lookups, only with a single range (else they return
  // nullptr and the caller takes an out-of-line path): no call, so the fast
  // paths need no callee-saved registers. single_lookup checks caller input
  // (nullptr when `mfn` is outside the range, or there are several ranges);
  // single_known_desc is known_desc for a frame taken from a list or cache.
  bool single_range() const noexcept { return only_ != nullptr; }
  std::uint32_t single_node_index() const noexcept { return only_node_index_; }
  FrameDesc* single_lookup(Mfn mfn) const noexcept {
    // With several ranges only_frames_ is 0, so no offset passes.
    const Mfn off = mfn - only_first_;
    if (off >= only_frames_) return nullptr;
    if (!only_descs_) __builtin_unreachable();  // set whenever only_frames_ is (init)
    return only_descs_ + off;
  }
  FrameDesc* single_known_desc(Mfn mfn) const noexcept {
    if (!only_) return nullptr;
    const Mfn off = mfn - only_first_;
    if (off >= only_frames_) [[unlikely]] __builtin_trap();  // internal state corrupt
    if (!only_descs_) __builtin_unreachable();
    return only_descs_ + off;
  }
  // Range of a frame the caller knows to be managed (a block head taken
  // from a list or a cache). Not for caller input: use find_range.
  const FrameRangeInfo& known_range(Mfn mfn) const noexcept {
    const FrameRangeInfo* r = find_range(mfn);
    if (!r) [[unlikely]] __builtin_trap();  // internal state corrupt
    return *r;
  }
  FrameDesc& known_desc(Mfn mfn) const noexcept {
    if (only_) {
      const Mfn off = mfn - only_first_;
      if (off >= only_frames_) [[unlikely]] __builtin_trap();  // internal state corrupt
      return only_descs_[off];
    }
    return desc(known_range(mfn), mfn);
  }
  // Frame number of a descriptor (which must belong to this table).
  Mfn mfn_of(const FrameDesc* d) const noexcept;

  std::span<const FrameRangeInfo> ranges() const noexcept { return ranges_; }
  std::uint64_t frame_count() const noexcept { return frames_; }
  // Metadata bytes per managed frame (descriptors + range table).
  double bytes_per_frame() const noexcept;

 private:
  const FrameRangeInfo* find_range_slow(Mfn mfn) const noexcept;
  Vector<FrameRangeInfo> ranges_;  // sorted by first; desc_base ascending too
  const FrameRangeInfo* only_ = nullptr;  // &ranges_[0] when it is the only range
  // With only_: its first frame, its frame count and its first descriptor
  // (the fast paths' lookup reads these three and only_). Set by init().
  Mfn only_first_ = 0;
  std::uint64_t only_frames_ = 0;
  FrameDesc* only_descs_ = nullptr;
  std::uint32_t only_node_index_ = 0;   // with only_: its node_index
  FrameDesc* descs_ = nullptr;          // from hooks_, reserved_bytes_ of them (with gaps: init)
  const MetadataHooks* hooks_ = nullptr;
  std::uint64_t frames_ = 0;  // managed frames (descriptors in use)
  std::uint64_t reserved_bytes_ = 0;
};

}  // namespace numaheap
