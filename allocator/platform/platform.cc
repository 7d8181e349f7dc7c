// Platform: per-node backing memory (host_memory) or hooks (frame_only).
#include "numaheap/platform.h"

#include <numaif.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

namespace numaheap {

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

Result<std::unique_ptr<Platform>, Error> Platform::create(const Topology& topo,
                                                          const PlatformConfig& config) {
  std::unique_ptr<Platform> p(new (std::nothrow) Platform());
  if (!p) return Error{Errc::no_memory, "platform: out of memory"};
  p->config_ = config;
  if (config.mode != MemoryMode::host_memory) return p;

  for (const NodeInfo& node : topo.nodes()) {
    std::uint64_t frames = node.frame_count();
    if (frames == 0) continue;
    std::uint64_t bytes = frames << kFrameShift;
    void* addr = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      return Error{Errc::no_memory, "platform: mmap of " + std::to_string(bytes >> 20) +
                                        " MiB for node " + std::to_string(node.id) +
                                        " failed: " + std::strerror(err)};
    }
    p->node_maps_.push_back({addr, bytes});
    if (int err = bind_to_node(addr, bytes, node.id); err != 0 && config.require_bind) {
      return Error{err == EINVAL ? Errc::invalid_node : Errc::io_error,
                   "platform: mbind(MPOL_BIND) of node " + std::to_string(node.id) +
                       "'s memory failed: " + std::strerror(err) +
                       (err == EINVAL ? " (is the node present on this host?)" : "")};
    }
    auto* base = static_cast<unsigned char*>(addr);
    for (const FrameRange& r : node.frames) {
      p->ranges_.push_back({r.first_mfn, r.count, base});
      base += r.count << kFrameShift;
    }
  }
  std::sort(p->ranges_.begin(), p->ranges_.end(),
            [](const Mapping& a, const Mapping& b) { return a.first < b.first; });
  return p;
}

Platform::~Platform() {
  for (const NodeMap& m : node_maps_) munmap(m.addr, m.bytes);
}

void* Platform::frame_address(Mfn mfn) const noexcept {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), mfn,
                             [](Mfn m, const Mapping& r) { return m < r.first; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (mfn - it->first >= it->count) return nullptr;
  return it->base + ((mfn - it->first) << kFrameShift);
}

void Platform::zero_frames(Mfn first, std::uint64_t count) const noexcept {
  if (config_.mode == MemoryMode::frame_only) {
    if (config_.hooks.scrub) config_.hooks.scrub(config_.hooks.ctx, first, count);
    return;
  }
  auto* addr = static_cast<unsigned char*>(frame_address(first));
  if (!addr) return;
  const std::uint64_t bytes = count << kFrameShift;
  // Large runs: give the pages back; the next touch maps zeroed pages that
  // still follow the mapping's MPOL_BIND policy. Small runs: memset.
  if (count >= 512 && madvise(addr, bytes, MADV_DONTNEED) == 0) return;
  std::memset(addr, 0, bytes);
}

bool Platform::copy_frame(Mfn dst, Mfn src) const noexcept {
  if (config_.mode == MemoryMode::frame_only) {
    if (!config_.hooks.copy) return false;
    config_.hooks.copy(config_.hooks.ctx, dst, src);
    return true;
  }
  void* d = frame_address(dst);
  const void* s = frame_address(src);
  if (!d || !s) return false;
  std::memcpy(d, s, kFrameSize);
  return true;
}

std::uint32_t Platform::current_cpu() const noexcept {
  if (config_.hooks.current_cpu) return config_.hooks.current_cpu(config_.hooks.ctx);
  int cpu = sched_getcpu();
  return cpu < 0 ? 0u : static_cast<std::uint32_t>(cpu);
}

void Platform::relax() const noexcept {
  if (config_.hooks.relax) {
    config_.hooks.relax(config_.hooks.ctx);
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::uint64_t Platform::mapped_bytes() const noexcept {
  std::uint64_t n = 0;
  for (const NodeMap& m : node_maps_) n += m.bytes;
  return n;
}

}  // namespace numaheap
