// libnuma: numa_alloc_onnode(bytes, 0) / numa_free -- an mmap + mbind per
// allocation and a munmap per free, so it never fragments but pays two or
// three system calls per block. Workloads in peer_bench.h: <workload>/libnuma.
#include <numa.h>

#include <cstdio>
#include <cstdlib>

#include "peer_bench.h"

namespace {

struct Libnuma {
  static constexpr const char* kName = "libnuma";
  struct Ctx {};
  static Ctx context() {
    static const bool ok = numa_available() >= 0;
    if (!ok) {
      std::fprintf(stderr, "libnuma bench: NUMA not available\n");
      std::exit(1);
    }
    return {};
  }
  static void* alloc(Ctx, std::size_t bytes) { return numa_alloc_onnode(bytes, 0); }
  static void release(Ctx, void* p, std::size_t bytes) { numa_free(p, bytes); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::peer_main<Libnuma>(argc, argv); }
