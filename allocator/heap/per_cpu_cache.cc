// PerCpuCaches: storage set-up.
#include "allocator/heap/per_cpu_cache.h"


namespace numaheap {

bool PerCpuCaches::init(const MetadataHooks* hooks, std::uint32_t cpus, std::uint32_t nodes, std::uint32_t batch0,
                        std::uint32_t high0, std::uint32_t batch9, std::uint32_t high9) noexcept {
  cpus_ = cpus;
  nodes_ = nodes;
  high0_ = high0;
  high9_ = batch9 ? high9 : 0;
  const std::size_t n = static_cast<std::size_t>(cpus) * nodes * kSlots;
  const std::size_t per = std::size_t{high0_} + high9_;
  if (!caches_.allocate(hooks, n) || !storage_.allocate(hooks, per * cpus * nodes + 1)) return false;
  Mfn* next = storage_.get();
  for (std::size_t i = 0; i < n; i += kSlots) {
    CpuCache& c0 = caches_[i];
    c0.order = 0;
    c0.high = high0_;
    c0.batch = batch0 ? batch0 : 1;
    if (c0.batch > c0.high) c0.batch = c0.high;
    c0.frames = next;
    next += high0_;
    CpuCache& c9 = caches_[i + 1];
    c9.order = 9;
    c9.high = high9_;
    c9.batch = batch9 > high9_ ? high9_ : batch9;
    c9.frames = next;
    next += high9_;
  }
  return true;
}

}  // namespace numaheap
