// ClaimTable: pages reserved for owners, globally or on one node.
//
// Accounting (while `active`): spare = sum over nodes of (free - claimed on
// that node) - global claims, i.e. the free buddy frames nobody reserved.
// An allocation not covered by a claim takes from spare with a checked
// compare-and-swap, and a node allocation also needs free - claimed >= its
// size on that node; so reservations never exceed free memory. Frames in
// per-CPU caches are outside both (already taken from the heap).
//
// Locking: `records`, `global` guarded by `lock`. `active` is written only
// while holding every node lock and `lock`, so holding any one of them is
// enough to read it. `spare` is an atomic updated under a node lock.
// While no claim exists (`active` false) nothing is maintained: allocation
// fast paths touch no shared counter.
//
// Held records (PageAllocator::set_claims_aside): still reserved and counted
// in `claimed_`, `global` and `spare` like any record, but find() skips
// them, so the owner's allocations cannot consume them and new claims go to
// separate records. Invariant: at most one live and one held record per
// (owner, node).
#pragma once

#include <atomic>
#include <cstdint>

#include "allocator/platform/spin_lock.h"
#include "numaheap/frame.h"
#include "numaheap/metadata.h"

namespace numaheap {

struct ClaimRecord {
  OwnerId owner = kNoOwner;
  NodeId node = kNoNode;  // kNoNode: a global claim
  std::uint64_t remaining = 0;
  bool held = false;  // set aside: reserved, but neither consumed nor topped up
};

class ClaimTable {
 public:
  bool init(const MetadataHooks* hooks, std::uint32_t capacity) noexcept {
    capacity_ = capacity;
    return records_.allocate(hooks, capacity ? capacity : 1);
  }

  mutable SpinLock lock;
  bool active = false;                 // see header comment
  std::uint64_t global = 0;            // sum of global records (lock)
  std::atomic<std::int64_t> spare{0};  // see header comment; may dip below 0 after offlining

  // --- `lock` held ---
  // The live (not held) record of (owner, node).
  ClaimRecord* find(OwnerId owner, NodeId node) noexcept {
    for (std::uint32_t i = 0; i < size_; ++i)
      if (records_[i].owner == owner && records_[i].node == node && !records_[i].held) return &records_[i];
    return nullptr;
  }
  ClaimRecord* add(OwnerId owner, NodeId node) noexcept {
    if (size_ == capacity_) return nullptr;
    records_[size_] = ClaimRecord{owner, node, 0, false};
    return &records_[size_++];
  }
  void remove(ClaimRecord* r) noexcept { *r = records_[--size_]; }
  std::uint32_t size() const noexcept { return size_; }
  ClaimRecord& at(std::uint32_t i) const noexcept { return records_[i]; }

  // Takes `n` from spare if that much is there.
  bool take_spare(std::uint64_t n) noexcept {
    if (n == 0) return true;
    std::int64_t s = spare.load(std::memory_order_relaxed);
    do {
      if (s < static_cast<std::int64_t>(n)) return false;
    } while (!spare.compare_exchange_weak(s, s - static_cast<std::int64_t>(n),
                                          std::memory_order_relaxed));
    return true;
  }
  // Takes up to `n`; returns how much it got.
  std::uint64_t take_spare_upto(std::uint64_t n) noexcept {
    std::int64_t s = spare.load(std::memory_order_relaxed);
    std::int64_t got;
    do {
      got = s < 0 ? 0 : (s < static_cast<std::int64_t>(n) ? s : static_cast<std::int64_t>(n));
      if (got == 0) return 0;
    } while (!spare.compare_exchange_weak(s, s - got, std::memory_order_relaxed));
    return static_cast<std::uint64_t>(got);
  }
  void give_spare(std::uint64_t n) noexcept {
    spare.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  }

 private:
  MetadataArray<ClaimRecord> records_;
  std::uint32_t size_ = 0, capacity_ = 0;
};

}  // namespace numaheap
