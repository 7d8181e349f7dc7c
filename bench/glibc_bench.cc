// glibc's malloc as a page allocator: aligned_alloc(4096, bytes) / free.
// No NUMA placement (first touch). Workloads in peer_bench.h: <workload>/glibc.
#include <cstdlib>

#include "peer_bench.h"

namespace {

struct Glibc {
  static constexpr const char* kName = "glibc";
  struct Ctx {};
  static Ctx context() { return {}; }
  static void* alloc(Ctx, std::size_t bytes) { return std::aligned_alloc(4096, bytes); }
  static void release(Ctx, void* p, std::size_t) { std::free(p); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::peer_main<Glibc>(argc, argv); }
