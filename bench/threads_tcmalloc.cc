// threads_n for gperftools' tcmalloc with its defaults (per-thread caches):
// tc_memalign(4096, bytes) / tc_free.
#include <gperftools/tcmalloc.h>

#include "threads_peer.h"

namespace {
struct Tcmalloc {
  static constexpr const char* kName = "tcmalloc";
  static void* alloc(std::size_t bytes) { return tc_memalign(4096, bytes); }
  static void release(void* p, std::size_t) { tc_free(p); }
};
}  // namespace

int main(int argc, char** argv) {
  return numaheap::bench::threads_main<numaheap::bench::MallocThreads<Tcmalloc>>(argc, argv);
}
