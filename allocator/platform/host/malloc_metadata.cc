// The host library's default metadata hooks (platform_contract.h): calloc
// for small blocks; anonymous MAP_NORESERVE mappings for large tables, so a
// 1 TiB machine's frame table costs nothing until it is touched.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "numaheap/platform_contract.h"

namespace {

constexpr std::size_t kMapThreshold = 1u << 20;

void* host_alloc(void*, std::size_t bytes, std::size_t align, std::uint32_t) noexcept {
  if (bytes == 0) bytes = 1;
  if (bytes >= kMapThreshold) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  if (align < alignof(std::max_align_t)) align = alignof(std::max_align_t);
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes) != 0) return nullptr;
  std::memset(p, 0, bytes);
  return p;
}

void host_release(void*, void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if ((bytes ? bytes : 1) >= kMapThreshold) munmap(p, bytes);
  else std::free(p);
}

}  // namespace

extern "C" const numaheap_metadata_hooks numaheap_host_metadata_hooks = {nullptr, host_alloc, host_release};
