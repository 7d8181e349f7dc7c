// threads_n for jemalloc with its defaults (automatic arenas, implicit
// tcache): mallocx(bytes, MALLOCX_ALIGN(4096)) / sdallocx.
#include <jemalloc/jemalloc.h>

#include "threads_peer.h"

namespace {
struct Jemalloc {
  static constexpr const char* kName = "jemalloc";
  static void* alloc(std::size_t bytes) { return mallocx(bytes, MALLOCX_ALIGN(4096)); }
  static void release(void* p, std::size_t bytes) { sdallocx(p, bytes, MALLOCX_ALIGN(4096)); }
};
}  // namespace

int main(int argc, char** argv) {
  return numaheap::bench::threads_main<numaheap::bench::MallocThreads<Jemalloc>>(argc, argv);
}
