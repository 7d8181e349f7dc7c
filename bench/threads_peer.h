// threads_n for the malloc-style peers (threads_bench.h): a peer gives
// alloc(bytes) / release(p); the allocator keeps its defaults (its own
// per-thread or per-CPU caches and arenas, its own NUMA policy), the
// threads are pinned like numaheap's. Bulk is a loop of kBulk allocations,
// then a loop of kBulk frees. Blocks are 4 KiB aligned, 4 KiB << order.
#pragma once

#include "threads_bench.h"

namespace numaheap::bench {

template <class P>
struct MallocThreads {
  static constexpr const char* kName = P::kName;
  using Handle = void*;
  struct Ctx {};
  static bool setup(const CpuMap&) { return true; }
  static Ctx context(const Cpu&) { return {}; }
  static bool alloc(Ctx&, unsigned order, Handle& h) {
    return (h = P::alloc(std::size_t{4096} << order)) != nullptr;
  }
  static void release(Ctx&, Handle h, unsigned order) { P::release(h, std::size_t{4096} << order); }
  static bool alloc_bulk(Ctx& c, std::span<Handle> out) {
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!alloc(c, 0, out[i])) {
        for (std::size_t k = 0; k < i; ++k) release(c, out[k], 0);
        return false;
      }
    return true;
  }
  static void free_bulk(Ctx& c, std::span<const Handle> in) {
    for (Handle h : in) release(c, h, 0);
  }
};

}  // namespace numaheap::bench
