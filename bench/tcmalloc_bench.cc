// gperftools' tcmalloc: tc_memalign(4096, bytes) / tc_free, per-thread caches.
// No NUMA placement (first touch). Linking it replaces malloc in this binary.
// Workloads in peer_bench.h: <workload>/tcmalloc.
#include <gperftools/tcmalloc.h>

#include "peer_bench.h"

namespace {

struct Tcmalloc {
  static constexpr const char* kName = "tcmalloc";
  struct Ctx {};
  static Ctx context() { return {}; }
  static void* alloc(Ctx, std::size_t bytes) { return tc_memalign(4096, bytes); }
  static void release(Ctx, void* p, std::size_t) { tc_free(p); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::peer_main<Tcmalloc>(argc, argv); }
