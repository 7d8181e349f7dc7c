// Host side of the platform: mmap + mbind, madvise, sched_getcpu, sysconf.
#include "allocator/platform/host/host_memory.h"

#include <numaif.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace numaheap::host {

namespace {

// Binds [addr, addr+bytes) to `node` with MPOL_BIND. maxnode is the mask's
// bit count + 1 (the kernel ignores the last bit it is told about).
int bind_to_node(void* addr, std::uint64_t bytes, NodeId node) noexcept {
  unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
  constexpr unsigned long kBits = 8 * sizeof(unsigned long);
  mask[node / kBits] |= 1ul << (node % kBits);
  long rc = mbind(addr, bytes, MPOL_BIND, mask, kMaxNodes + 1, 0);
  return rc == 0 ? 0 : errno;
}

}  // namespace

void* map_node_memory(NodeId node, std::uint64_t bytes, bool require_bind, Error* err) noexcept {
  void* addr = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  if (addr == MAP_FAILED) {
    const int e = errno;
    *err = make_error(Errc::no_memory, "platform: mmap of ", bytes >> 20, " MiB for node ", node,
                      " failed: ", std::strerror(e));
    return nullptr;
  }
  if (int e = bind_to_node(addr, bytes, node); e != 0 && require_bind) {
    munmap(addr, bytes);
    *err = make_error(e == EINVAL ? Errc::invalid_node : Errc::io_error, "platform: mbind(MPOL_BIND) of node ",
                      node, "'s memory failed: ", std::strerror(e),
                      e == EINVAL ? " (is the node present on this host?)" : "");
    return nullptr;
  }
  return addr;
}

void unmap_node_memory(void* addr, std::uint64_t bytes) noexcept { munmap(addr, bytes); }

bool discard_memory(void* addr, std::uint64_t bytes) noexcept {
  return madvise(addr, bytes, MADV_DONTNEED) == 0;
}

std::uint32_t current_cpu() noexcept {
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0u : static_cast<std::uint32_t>(cpu);
}

std::uint32_t configured_cpus() noexcept {
  const long n = sysconf(_SC_NPROCESSORS_CONF);
  return n > 0 ? static_cast<std::uint32_t>(n) : 1u;
}

}  // namespace numaheap::host
