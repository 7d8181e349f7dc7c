// threads_n for mimalloc with its defaults (a heap per thread, its own NUMA
// node detection): mi_malloc_aligned(bytes, 4096) / mi_free.
#include <mimalloc.h>

#include "threads_peer.h"

namespace {
struct Mimalloc {
  static constexpr const char* kName = "mimalloc";
  static void* alloc(std::size_t bytes) { return mi_malloc_aligned(bytes, 4096); }
  static void release(void* p, std::size_t) { mi_free(p); }
};
}  // namespace

int main(int argc, char** argv) {
  return numaheap::bench::threads_main<numaheap::bench::MallocThreads<Mimalloc>>(argc, argv);
}
