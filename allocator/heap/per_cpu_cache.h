// PerCpuCaches: small stacks of free order-0 (and order-9) blocks per CPU
// and per node, so the common allocation and free take one uncontended
// lock instead of the node's. Refilled and drained in batches under one
// node-lock acquisition (as Linux's per-CPU page lists), bounded by `high`.
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
  static constexpr unsigned kSlots = 2;  // slot 0: order 0, slot 1: order 9

  // Allocates every cache and its storage. False when out of memory.
  bool init(const MetadataHooks* hooks, std::uint32_t cpus, std::uint32_t nodes, std::uint32_t batch0, std::uint32_t high0,
            std::uint32_t batch9, std::uint32_t high9) noexcept;

  // Cache slot for an order, or -1 when the order is not cached.
  int slot_of(unsigned order) const noexcept {
    if (order == 0) return high0_ ? 0 : -1;
    if (order == 9) return high9_ ? 1 : -1;
    return -1;
  }
  CpuCache& at(std::uint32_t cpu, std::uint32_t node_index, int slot) const noexcept {
    return caches_[(static_cast<std::size_t>(cpu) * nodes_ + node_index) * kSlots +
                   static_cast<std::size_t>(slot)];
  }
  std::uint32_t cpus() const noexcept { return cpus_; }
  std::uint32_t nodes() const noexcept { return nodes_; }

 private:
  std::uint32_t cpus_ = 0, nodes_ = 0, high0_ = 0, high9_ = 0;
  MetadataArray<CpuCache> caches_;
  MetadataArray<Mfn> storage_;
};

}  // namespace numaheap
