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

#include "allocator/platform/spin_lock.h"
#include "numaheap/frame.h"
#include "numaheap/metadata.h"

namespace numaheap {

// Layout is read by the rseq sequences (rseq_cache.h): keep it standard.
struct alignas(64) CpuCache {
  SpinLock lock;
  // Guarded by `lock`, or changed while it is free by an rseq sequence on
  // this cache's CPU (rseq_cache.h). Invariant: count <= high; every
  // frames[i < count] is the head of a block of `order` on this cache's
  // node whose descriptor kind is `cached`.
  std::uint32_t count = 0;
  std::uint32_t high = 0;   // immutable after create
  std::uint32_t batch = 0;  // immutable after create
  std::uint8_t order = 0;   // immutable after create
  Mfn* frames = nullptr;    // `high` entries, immutable pointer
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
  std::uint32_t cpus() const noexcept { return cpus_; }
  std::uint32_t nodes() const noexcept { return nodes_; }

 private:
  std::uint32_t cpus_ = 0, nodes_ = 0;
  std::int8_t slot_by_order_[kOrderCount] = {};  // -1: not cached (set by init)
  MetadataArray<CpuCache> caches_;
  MetadataArray<Mfn> storage_;
};

}  // namespace numaheap
