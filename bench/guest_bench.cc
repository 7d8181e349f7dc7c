// Guest-level benchmarks: placement time on large machines (bar: under
// 1 ms per guest on 64 nodes) and populate throughput per page.
#include <benchmark/benchmark.h>

#include "numaheap/guest_memory.h"
#include "numaheap/placement.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {

// 64 nodes in 8 groups of 8 (16 in a group, 32 across), 2 CPUs and 64 GiB each.
const Topology& machine64() {
  static Topology t = [] {
    TopologyBuilder b("bench-64n");
    for (NodeId n = 0; n < 64; ++n) b.add_node(n, {2 * n, 2 * n + 1}, 64ull << 30);
    for (NodeId a = 0; a < 64; ++a)
      for (NodeId c = 0; c < 64; ++c) b.set_distance(a, c, a == c ? 10 : (a / 8 == c / 8 ? 16 : 32));
    return std::move(b.build()).value();
  }();
  return t;
}

GuestSpec guest(std::uint64_t gib, std::uint32_t vcpus) {
  GuestSpec g;
  g.name = "bench";
  g.memory_bytes = gib << 30;
  g.vcpus = vcpus;
  return g;
}

// Placement of one guest needing `nodes_needed` nodes' worth of memory, on a
// machine already a third full (so every decision has real choices).
void BM_place(benchmark::State& state, const Topology& topo, std::uint64_t gib, std::uint32_t vcpus) {
  Placer placer(topo);
  auto usage = placer.idle_usage();
  for (std::size_t i = 0; i < usage.size(); i += 3) usage[i].free_bytes /= 3;
  GuestSpec g = guest(gib, vcpus);
  std::size_t nodes = 0;
  for (auto _ : state) {
    auto p = placer.place(g, usage);
    if (!p) {
      state.SkipWithError(p.error().message.c_str());
      break;
    }
    nodes = p->nodes.count();
    benchmark::DoNotOptimize(p->cost);
  }
  state.counters["nodes_in_set"] = static_cast<double>(nodes);
  state.counters["machine_nodes"] = static_cast<double>(topo.node_count());
}

void BM_populate(benchmark::State& state) {
  const Topology& topo = machine64();
  auto pa = std::move(PageAllocator::create(topo)).value();
  GuestSpec g = guest(1, 1);
  Placement p;
  p.memory = {{5, 1ull << 30}};
  OwnerId owner = 1;
  for (auto _ : state) {
    auto gm = std::move(GuestMemory::create(*pa, g, p, owner++)).value();
    auto rep = gm->populate();
    if (!rep) {
      state.SkipWithError(rep.error().message.c_str());
      break;
    }
    state.PauseTiming();
    (void)gm->destroy();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>((1ull << 30) >> kFrameShift));
}

}  // namespace

BENCHMARK_CAPTURE(BM_place, small_64n, machine64(), 8, 4)->Name("place_64n_1node/numaheap");
BENCHMARK_CAPTURE(BM_place, medium_64n, machine64(), 200, 16)->Name("place_64n_4nodes/numaheap");
BENCHMARK_CAPTURE(BM_place, large_64n, machine64(), 1000, 64)->Name("place_64n_16nodes/numaheap");
BENCHMARK(BM_populate)->Name("guest_populate_1g_frame_only/numaheap")->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
