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
#include <vector>

#include "numaheap/frame.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap {

// What a descriptor's head says about its block (low 3 bits of `state`).
enum class FrameKind : std::uint8_t {
  tail = 0,     // not a head: part of the block of the nearest head below
  free = 1,     // head of a free block on its node's free list
  used = 2,     // head of an allocated block
  cached = 3,   // order-0/9 head sitting in a per-CPU cache, or an order-0
                // head free_bulk has checked and is returning to its heap
  offline = 4,  // retired frame (order 0), never handed out again
};

// Flag bits of `state` above the kind.
inline constexpr std::uint8_t kKindMask = 0x07;
inline constexpr std::uint8_t kDirty = 0x08;           // free/cached: holds owner bytes
inline constexpr std::uint8_t kPendingOffline = 0x10;  // this frame: retire when freed
inline constexpr std::uint8_t kHasPending = 0x20;      // used head: a frame inside is pending
inline constexpr std::uint8_t kScrubbing = 0x40;       // free head: background scrub running

struct FrameDesc {
  using Hook = boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::normal_link>>;
  // Linked only while kind == free. Guarded by the node's lock. A
  // normal_link hook needs no construction, so zeroed memory is fine.
  Hook hook;
  // used: the owner. free/cached + kDirty: whose bytes are inside
  // (kMixedOwner when several or unknown). Guarded like `state`.
  OwnerId owner;
  // Kind + flags. Who may change it depends on the kind: free/tail/offline
  // under the node lock; cached under the per-CPU cache's lock (a frame
  // free_bulk holds: by that call, until it returns it under the node
  // lock); used by the owner, leaving `used` only through a
  // compare-and-swap (so a concurrent double free or an offline request
  // is never lost). Always accessed through std::atomic_ref.
  std::uint8_t state;
  std::uint8_t order;  // heads: the block's order; tails: 0
  // Non-zero only on a used head alloc_bulk has just carved and not yet
  // returned: 1 + the order of a run starting here that it must scrub
  // before returning. Written and read only by that alloc_bulk call.
  std::uint8_t bulk_scrub;
  std::uint8_t reserved;

  std::uint8_t load_state(std::memory_order mo = std::memory_order_acquire) const noexcept {
    return std::atomic_ref<std::uint8_t>(const_cast<std::uint8_t&>(state)).load(mo);
  }
  void store_state(std::uint8_t s, std::memory_order mo = std::memory_order_release) noexcept {
    std::atomic_ref<std::uint8_t>(state).store(s, mo);
  }
  bool cas_state(std::uint8_t& expected, std::uint8_t desired) noexcept {
    return std::atomic_ref<std::uint8_t>(state).compare_exchange_strong(
        expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  void fetch_or_state(std::uint8_t bits) noexcept {
    std::atomic_ref<std::uint8_t>(state).fetch_or(bits, std::memory_order_acq_rel);
  }
  static FrameKind kind_of(std::uint8_t s) noexcept { return FrameKind(s & kKindMask); }
  FrameKind kind() const noexcept { return kind_of(load_state()); }
};
static_assert(sizeof(FrameDesc) == 24, "descriptor budget is 24 bytes per frame");

// What free() and split() demand of a block head in state `s`: allocated,
// of this order, by this owner. Errc::ok when it is.
inline Errc check_used_head(const FrameDesc& d, std::uint8_t s, unsigned order,
                            OwnerId owner) noexcept {
  switch (FrameDesc::kind_of(s)) {
    case FrameKind::free:
    case FrameKind::cached: return Errc::double_free;
    case FrameKind::tail:
    case FrameKind::offline: return Errc::invalid_frame;
    case FrameKind::used: break;
  }
  if (d.order != order) return Errc::invalid_order;
  if (d.owner != owner) return Errc::not_owner;
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
  FrameTable() = default;
  ~FrameTable();
  FrameTable(const FrameTable&) = delete;
  FrameTable& operator=(const FrameTable&) = delete;

  // Reserves descriptors for every frame of every node (nothing written).
  Result<void, Error> init(const Topology& topo);

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
  // Range of a frame the caller knows to be managed (a block head taken
  // from a list or a cache). Not for caller input: use find_range.
  const FrameRangeInfo& known_range(Mfn mfn) const noexcept {
    const FrameRangeInfo* r = find_range(mfn);
    if (!r) [[unlikely]] __builtin_trap();  // internal state corrupt
    return *r;
  }
  FrameDesc& known_desc(Mfn mfn) const noexcept { return desc(known_range(mfn), mfn); }
  // Frame number of a descriptor (which must belong to this table).
  Mfn mfn_of(const FrameDesc* d) const noexcept;

  const std::vector<FrameRangeInfo>& ranges() const noexcept { return ranges_; }
  std::uint64_t frame_count() const noexcept { return frames_; }
  // Metadata bytes per managed frame (descriptors + range table).
  double bytes_per_frame() const noexcept;

 private:
  const FrameRangeInfo* find_range_slow(Mfn mfn) const noexcept;
  std::vector<FrameRangeInfo> ranges_;  // sorted by first; desc_base ascending too
  const FrameRangeInfo* only_ = nullptr;  // &ranges_[0] when it is the only range
  FrameDesc* descs_ = nullptr;          // mmap'd, frames_ entries
  std::uint64_t frames_ = 0;
  std::uint64_t reserved_bytes_ = 0;
};

}  // namespace numaheap
