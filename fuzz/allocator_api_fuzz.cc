// libFuzzer harness for the allocator through its C API: a fuzzed topology
// (1-4 nodes, sparse ids, a memoryless node, ranges with holes), then an
// arbitrary sequence of alloc / free (valid and not) / claim / release /
// offline / scrub / drain / bulk alloc and free (valid and not), with the
// full consistency check after each step and the model-free properties that
// must always hold: no block handed out twice, exact_node and exclusions
// honoured, valid frees succeed, a bulk free with a bad entry frees nothing.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <vector>

#include "numaheap/numaheap.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

struct Held {
  uint32_t order, owner, node;
};

// A newly handed out block [mfn, mfn + 2^order) overlaps nothing held.
bool fresh(const std::map<uint64_t, Held>& held, uint64_t mfn, uint32_t order) {
  auto next = held.lower_bound(mfn);
  if (next != held.end() && next->first < mfn + (uint64_t{1} << order)) return false;
  if (next == held.begin()) return true;
  auto prev = std::prev(next);
  return prev->first + (uint64_t{1} << prev->second.order) <= mfn;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const unsigned nodes = in.ConsumeIntegralInRange<unsigned>(1, 4);
  uint32_t ids[4];
  uint64_t next_mfn = 1;
  for (unsigned i = 0; i < nodes; ++i) {
    ids[i] = i == 0 ? 0 : ids[i - 1] + in.ConsumeIntegralInRange<uint32_t>(1, 300);
    const bool memoryless = i > 0 && in.ConsumeBool();
    const uint32_t cpu = i;
    numaheap_topology_builder_add_node(b, ids[i], &cpu, 1, memoryless ? 0 : 4u << 20);
    if (!memoryless) {
      const unsigned ranges = in.ConsumeIntegralInRange<unsigned>(1, 2);
      for (unsigned r = 0; r < ranges; ++r) {
        next_mfn += in.ConsumeIntegralInRange<uint64_t>(0, 600);
        const uint64_t count = in.ConsumeIntegralInRange<uint64_t>(1, 700);
        numaheap_topology_builder_add_frames(b, ids[i], next_mfn, count);
        next_mfn += count;
      }
    }
  }
  for (unsigned i = 0; i < nodes; ++i)
    for (unsigned j = 0; j < nodes; ++j)
      if (i != j) numaheap_topology_builder_set_distance(b, ids[i], ids[j], in.ConsumeIntegralInRange<uint32_t>(11, 40));
  numaheap_topology* t = nullptr;
  const int built = numaheap_topology_builder_build(b, &t, nullptr, 0);
  numaheap_topology_builder_free(b);
  if (built != NUMAHEAP_OK) return 0;

  numaheap_config c;
  numaheap_config_init(&c);
  c.cpus = 2;
  c.pcp_batch = in.ConsumeIntegralInRange<uint32_t>(1, 8);
  c.pcp_high = c.pcp_batch + in.ConsumeIntegralInRange<uint32_t>(0, 16);
  c.max_claims = 8;
  numaheap_heap* h = nullptr;
  require(numaheap_create(t, &c, &h, nullptr, 0) == NUMAHEAP_OK);

  std::map<uint64_t, Held> held;
  while (in.remaining_bytes() > 0) {
    const uint64_t pick = in.ConsumeIntegral<uint16_t>();
    switch (in.ConsumeIntegralInRange<int>(0, 10)) {
      case 0:
      case 1: {
        numaheap_alloc_request r;
        r.order = in.ConsumeIntegralInRange<uint32_t>(0, 20);
        r.node = in.ConsumeBool() ? NUMAHEAP_NO_NODE : (in.ConsumeBool() ? ids[pick % nodes] : static_cast<uint32_t>(pick));
        r.flags = in.ConsumeIntegralInRange<uint32_t>(0, 8);
        r.owner = in.ConsumeIntegralInRange<uint32_t>(1, 4);
        numaheap_nodemask ex{};
        if (in.ConsumeBool()) numaheap_nodemask_set(&ex, ids[in.ConsumeIntegralInRange<unsigned>(0, nodes - 1)]);
        r.exclude = &ex;
        uint64_t mfn = 0;
        uint32_t node = 0;
        if (numaheap_alloc(h, &r, &mfn, &node) == NUMAHEAP_OK) {
          require(r.order <= NUMAHEAP_MAX_ORDER);
          require((mfn & ((uint64_t{1} << r.order) - 1)) == 0);
          require(!(ex.bits[node / 64] >> (node % 64) & 1));
          if ((r.flags & NUMAHEAP_ALLOC_EXACT_NODE) && r.node != NUMAHEAP_NO_NODE) require(node == r.node);
          require(fresh(held, mfn, r.order));  // never handed out twice
          held[mfn] = Held{r.order, r.owner, node};
        }
        break;
      }
      case 2:
        if (!held.empty()) {
          auto it = std::next(held.begin(), static_cast<long>(pick % held.size()));
          require(numaheap_free(h, it->first, it->second.order, it->second.owner) == NUMAHEAP_OK);
          held.erase(it);
        }
        break;
      case 3: {  // arbitrary free: must fail unless it names a held block exactly
        const uint64_t mfn = in.ConsumeIntegralInRange<uint64_t>(0, next_mfn + 8);
        const uint32_t order = in.ConsumeIntegralInRange<uint32_t>(0, 19);
        const uint32_t owner = in.ConsumeIntegralInRange<uint32_t>(1, 4);
        auto it = held.find(mfn);
        const bool valid = it != held.end() && it->second.order == order && it->second.owner == owner;
        require((numaheap_free(h, mfn, order, owner) == NUMAHEAP_OK) == valid);
        if (valid) held.erase(it);
        break;
      }
      case 4:
        (void)numaheap_claim(h, in.ConsumeIntegralInRange<uint32_t>(1, 4),
                             in.ConsumeIntegralInRange<uint64_t>(0, 3000),
                             in.ConsumeBool() ? NUMAHEAP_NO_NODE : ids[pick % nodes]);
        break;
      case 5:
        require(numaheap_release_owner(h, in.ConsumeIntegralInRange<uint32_t>(1, 4)) == NUMAHEAP_OK);
        break;
      case 6: {
        int pending = 0;
        (void)numaheap_offline(h, in.ConsumeIntegralInRange<uint64_t>(0, next_mfn + 8), &pending);
        break;
      }
      case 7:
        (void)numaheap_scrub_some(h, ids[pick % nodes], pick % 64);
        break;
      case 9: {  // bulk allocation: all or nothing, every frame new
        numaheap_alloc_request r;
        r.order = in.ConsumeIntegralInRange<uint32_t>(0, 1);
        r.node = in.ConsumeBool() ? NUMAHEAP_NO_NODE : ids[pick % nodes];
        r.flags = in.ConsumeIntegralInRange<uint32_t>(0, 8);
        r.owner = in.ConsumeIntegralInRange<uint32_t>(1, 4);
        numaheap_nodemask ex{};
        if (in.ConsumeBool()) numaheap_nodemask_set(&ex, ids[in.ConsumeIntegralInRange<unsigned>(0, nodes - 1)]);
        r.exclude = &ex;
        std::vector<uint64_t> got(in.ConsumeIntegralInRange<size_t>(0, 300), ~uint64_t{0});
        if (numaheap_alloc_bulk(h, &r, got.data(), got.size()) != NUMAHEAP_OK) {
          for (uint64_t m : got) require(m == ~uint64_t{0});
          break;
        }
        require(r.order == 0);
        for (uint64_t m : got) {
          require(fresh(held, m, 0));  // also catches duplicates within `got`
          held[m] = Held{0, r.owner, 0};
        }
        break;
      }
      case 10: {  // bulk free of one owner's 4 KiB blocks, maybe with a bad entry
        const uint32_t owner = in.ConsumeIntegralInRange<uint32_t>(1, 4);
        std::vector<uint64_t> list;
        for (auto& [mfn, hb] : held)
          if (hb.order == 0 && hb.owner == owner && in.ConsumeBool()) list.push_back(mfn);
        bool bad = false;
        if (in.ConsumeBool()) {  // anything but an unlisted 4 KiB block of `owner`
          const uint64_t mfn = in.ConsumeIntegralInRange<uint64_t>(0, next_mfn + 8);
          auto it = held.find(mfn);
          bool listed = false;
          for (uint64_t m : list) listed |= m == mfn;
          bad = listed || it == held.end() || it->second.order != 0 || it->second.owner != owner;
          list.insert(list.begin() + static_cast<long>(pick % (list.size() + 1)), mfn);
        }
        require((numaheap_free_bulk(h, list.data(), list.size(), owner) == NUMAHEAP_OK) == !bad);
        if (!bad)
          for (uint64_t m : list) held.erase(m);
        break;
      }
      default:
        numaheap_drain_all(h);
        break;
    }
    require(numaheap_check(h, 1) == NUMAHEAP_OK);
  }
  for (auto& [mfn, hb] : held) require(numaheap_free(h, mfn, hb.order, hb.owner) == NUMAHEAP_OK);
  require(numaheap_check(h, 1) == NUMAHEAP_OK);
  numaheap_destroy(h);
  numaheap_topology_free(t);
  return 0;
}
