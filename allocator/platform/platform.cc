// Platform: per-node backing memory (host_memory, host library only) or
// hooks (frame_only). Core file: the host parts are behind NUMAHEAP_HOSTED.
#include "numaheap/platform.h"

#include <algorithm>
#include <cstring>

#include "allocator/platform/spin_lock.h"

#if NUMAHEAP_HOSTED
#include "allocator/platform/host/host_memory.h"
#endif

namespace numaheap {

Result<std::unique_ptr<Platform>, Error> Platform::create(const Topology& topo,
                                                          const PlatformConfig& config) {
  const MetadataHooks* meta = config.metadata ? config.metadata : default_metadata();
  if (!meta || !meta->alloc || !meta->release)
    return Error{Errc::invalid_argument,
                 "platform: no metadata memory (set PlatformConfig::metadata or numaheap_set_default_metadata)"};
  if (config.mode != MemoryMode::frame_only && config.mode != MemoryMode::host_memory)
    return Error{Errc::invalid_argument, "platform: unknown memory mode"};
  std::unique_ptr<Platform> p(new (meta) Platform());
  if (!p) return Error{Errc::no_memory, "platform: out of metadata memory"};
  p->config_ = config;
  p->metadata_ = meta;
  p->ranges_ = Vector<Mapping>(meta);
  p->node_maps_ = Vector<NodeMap>(meta);
  if (config.mode != MemoryMode::host_memory) return p;

#if NUMAHEAP_HOSTED
  for (const NodeInfo& node : topo.nodes()) {
    std::uint64_t frames = node.frame_count();
    if (frames == 0) continue;
    std::uint64_t bytes = frames << kFrameShift;
    if (!p->node_maps_.reserve(p->node_maps_.size() + 1))
      return Error{Errc::no_memory, "platform: out of metadata memory"};
    Error err;
    void* addr = host::map_node_memory(node.id, bytes, config.require_bind, &err);
    if (!addr) return err;
    p->node_maps_.push_back({addr, bytes});  // reserved above: cannot fail
    auto* base = static_cast<unsigned char*>(addr);
    for (const FrameRange& r : node.frames) {
      if (!p->ranges_.push_back({r.first_mfn, r.count, base}))
        return Error{Errc::no_memory, "platform: out of metadata memory"};
      base += r.count << kFrameShift;
    }
  }
  std::sort(p->ranges_.begin(), p->ranges_.end(),
            [](const Mapping& a, const Mapping& b) { return a.first < b.first; });
  return p;
#else
  (void)topo;
  return Error{Errc::unsupported,
               "platform: host_memory mode needs the host library (libnumaheap); the core is frame_only"};
#endif
}

Platform::~Platform() {
#if NUMAHEAP_HOSTED
  for (const NodeMap& m : node_maps_) host::unmap_node_memory(m.addr, m.bytes);
#endif
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
#if NUMAHEAP_HOSTED
  // Large runs: give the pages back; the next touch maps zeroed pages that
  // still follow the mapping's MPOL_BIND policy. Small runs: memset.
  if (count >= 512 && host::discard_memory(addr, bytes)) return;
#endif
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
#if NUMAHEAP_HOSTED
  return host::current_cpu();
#else
  return 0;
#endif
}

void Platform::relax() const noexcept {
  if (config_.hooks.relax) {
    config_.hooks.relax(config_.hooks.ctx);
    return;
  }
  cpu_relax();
}

std::uint64_t Platform::mapped_bytes() const noexcept {
  std::uint64_t n = 0;
  for (const NodeMap& m : node_maps_) n += m.bytes;
  return n;
}

}  // namespace numaheap
