// PerCpuCaches: storage set-up.
#include "allocator/heap/per_cpu_cache.h"

#include <algorithm>


namespace numaheap {

bool PerCpuCaches::init(const MetadataHooks* hooks, std::uint32_t cpus, std::uint32_t nodes, std::uint32_t batch0,
                        std::uint32_t high0, std::uint32_t batch9, std::uint32_t high9) noexcept {
  cpus_ = cpus;
  nodes_ = nodes;
  // Per slot: blocks held at most, blocks per refill/drain.
  std::uint32_t high[kSlots], batch[kSlots];
  for (unsigned s = 0; s <= kMidOrders; ++s) {
    high[s] = s == 0 ? high0 : high0 >> (s + 1);
    batch[s] = std::min(std::max<std::uint32_t>(batch0 >> s, 1), high[s]);
  }
  high[kSlots - 1] = batch9 ? high9 : 0;
  batch[kSlots - 1] = std::min(batch9, high[kSlots - 1]);
  std::size_t per = 0;
  for (unsigned s = 0; s < kSlots; ++s) {
    per += high[s];
    high_[s] = high[s];
  }
  for (auto& s : slot_by_order_) s = -1;
  for (unsigned s = 0; s < kSlots; ++s)
    if (high[s]) slot_by_order_[kSlotOrder[s]] = static_cast<std::int8_t>(s);
  const std::size_t n = static_cast<std::size_t>(cpus) * nodes * kSlots;
  if (!caches_.allocate(hooks, n) || !storage_.allocate(hooks, per * cpus * nodes + 1)) return false;
  CacheEntry* next = storage_.get();
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned s = static_cast<unsigned>(i % kSlots);
    CpuCache& c = caches_[i];
    c.order = static_cast<std::uint8_t>(kSlotOrder[s]);
    c.high = high[s];
    c.batch = batch[s];
    c.entries = next;
    next += high[s];
  }
  return true;
}

}  // namespace numaheap
