// mimalloc with its per-node arena API: one exclusive arena of node-0 memory
// (our mmap, bound with mbind, handed over with mi_manage_os_memory_ex and
// numa_node 0) and a per-thread heap in it (mi_heap_new_in_arena), called
// with mi_heap_malloc_aligned / mi_free. Linking it replaces malloc in this
// binary. Workloads in peer_bench.h: <workload>/mimalloc. The churn gets its
// own 256 MiB arena with OS allocation turned off (mi_option_limit_os_alloc).
#include <mimalloc.h>
#include <numaif.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "peer_bench.h"

namespace {

// Node 0's arena: address space only (MAP_NORESERVE), large enough for
// populate_1g of 4 KiB-aligned 4 KiB blocks.
constexpr std::size_t kArenaBytes = std::size_t{8} << 30;
constexpr std::size_t kArenaAlign = std::size_t{64} << 20;  // segment-aligned

mi_arena_id_t make_arena(std::size_t bytes) {
  void* raw = mmap(nullptr, bytes + kArenaAlign, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    std::perror("mimalloc bench: mmap");
    std::exit(1);
  }
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  void* start = reinterpret_cast<void*>((base + kArenaAlign - 1) & ~(kArenaAlign - 1));
  unsigned long mask[16] = {1ul};  // node 0
  if (mbind(start, bytes, MPOL_BIND, mask, 16 * 64 + 1, 0) != 0) {
    std::perror("mimalloc bench: mbind");
    std::exit(1);
  }
  mi_arena_id_t id{};
  if (!mi_manage_os_memory_ex(start, bytes, /*is_committed=*/true, /*is_large=*/false,
                              /*is_zero=*/true, /*numa_node=*/0, /*exclusive=*/true, &id)) {
    std::fprintf(stderr, "mimalloc bench: mi_manage_os_memory_ex failed\n");
    std::exit(1);
  }
  return id;
}

struct ThreadHeap {
  mi_heap_t* heap;
  ~ThreadHeap() { mi_heap_delete(heap); }
};

struct Mimalloc {
  static constexpr const char* kName = "mimalloc";
  using Ctx = mi_heap_t*;
  static Ctx context() {
    static const mi_arena_id_t arena = make_arena(kArenaBytes);
    thread_local ThreadHeap th{mi_heap_new_in_arena(arena)};
    return th.heap;
  }
  static Ctx churn_context() {
    mi_option_set(mi_option_limit_os_alloc, 1);
    return mi_heap_new_in_arena(make_arena(numaheap::bench::kChurnBudget));
  }
  static void* alloc(Ctx h, std::size_t bytes) { return mi_heap_malloc_aligned(h, bytes, 4096); }
  static void release(Ctx, void* p, std::size_t) { mi_free(p); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::peer_main<Mimalloc>(argc, argv); }
