// The fair baseline: jemalloc with one arena per NUMA node (extent hooks
// that bind every extent to the node with mbind) and a per-thread explicit
// tcache, called with MALLOCX_ARENA | MALLOCX_TCACHE. Same workloads and
// names as numaheap_bench.cc (<workload>/jemalloc). Debian's jemalloc has no
// je_ prefix: linking it replaces malloc in this binary only.
#include <benchmark/benchmark.h>
#include <jemalloc/jemalloc.h>
#include <numa.h>
#include <numaif.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_common.h"

namespace {

extent_hooks_t* g_default_hooks = nullptr;

// The hooks struct comes first so jemalloc's extent_hooks_t* is also ours:
// the alloc hook runs inside arenas.create, before the arena index is known.
struct NodeHooks {
  extent_hooks_t hooks;
  unsigned node;
};

void* node_alloc(extent_hooks_t* h, void* new_addr, size_t size, size_t alignment, bool* zero,
                 bool* commit, unsigned arena_ind) {
  void* p = g_default_hooks->alloc(g_default_hooks, new_addr, size, alignment, zero, commit,
                                   arena_ind);
  if (!p) return nullptr;
  const unsigned node = reinterpret_cast<NodeHooks*>(h)->node;
  unsigned long mask[16] = {};
  mask[node / 64] = 1ul << (node % 64);
  if (mbind(p, size, MPOL_BIND, mask, 16 * 64 + 1, 0) != 0) {
    g_default_hooks->dalloc(g_default_hooks, p, size, *commit, arena_ind);
    return nullptr;
  }
  return p;
}

struct Arenas {
  std::vector<unsigned> arena_of_node;
  std::vector<NodeHooks*> hooks;
};

Arenas& arenas() {
  static Arenas a = [] {
    Arenas out;
    size_t sz = sizeof(g_default_hooks);
    if (mallctl("arena.0.extent_hooks", &g_default_hooks, &sz, nullptr, 0) != 0) std::abort();
    const int max = numa_available() < 0 ? 0 : numa_max_node();
    out.arena_of_node.assign(static_cast<size_t>(max) + 1, ~0u);
    for (int n = 0; n <= max; ++n) {
      if (numa_available() >= 0 && !numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(n)))
        continue;
      auto* nh = new NodeHooks{*g_default_hooks, static_cast<unsigned>(n)};
      nh->hooks.alloc = &node_alloc;
      extent_hooks_t* hp = &nh->hooks;
      unsigned arena = 0;
      sz = sizeof(arena);
      if (mallctl("arenas.create", &arena, &sz, &hp, sizeof(hp)) != 0) {
        std::fprintf(stderr, "jemalloc bench: arenas.create failed for node %d\n", n);
        std::exit(1);
      }
      out.arena_of_node[static_cast<size_t>(n)] = arena;
      out.hooks.push_back(nh);
    }
    return out;
  }();
  return a;
}

// Flags for node 0 with this thread's own explicit tcache.
int flags_node0() {
  thread_local unsigned tc = [] {
    unsigned t = 0;
    size_t sz = sizeof(t);
    if (mallctl("tcache.create", &t, &sz, nullptr, 0) != 0) std::abort();
    return t;
  }();
  return static_cast<int>(MALLOCX_ARENA(arenas().arena_of_node[0]) | MALLOCX_TCACHE(tc) |
                          MALLOCX_ALIGN(4096));
}

void pair(benchmark::State& state, size_t bytes) {
  const int f = flags_node0();
  for (auto _ : state) {
    void* p = mallocx(bytes, f);
    benchmark::DoNotOptimize(p);
    dallocx(p, f);
  }
}
void order0_pair(benchmark::State& state) { pair(state, 4096); }
void order9_pair(benchmark::State& state) { pair(state, size_t{2} << 20); }

void mixed_orders(benchmark::State& state) {
  const int f = flags_node0();
  std::vector<void*> live(numaheap::bench::kMixedWindow, nullptr);
  size_t i = 0;
  for (auto _ : state) {
    void*& slot = live[i % numaheap::bench::kMixedWindow];
    if (slot) dallocx(slot, f);
    slot = mallocx(size_t{4096} << numaheap::bench::kMixedOrders[i % 16], f);
    ++i;
  }
  for (void* p : live)
    if (p) dallocx(p, f);
}

void threads2(benchmark::State& state) {
  constexpr std::uint64_t kOps = 2'000'000;
  auto work = [](unsigned, std::uint64_t ops) {
    const int f = flags_node0();
    for (std::uint64_t i = 0; i < ops; ++i) {
      void* p = mallocx(4096, f);
      benchmark::DoNotOptimize(p);
      dallocx(p, f);
    }
  };
  double je = 0, sn = 0;
  for (auto _ : state) {
    sn = numaheap::bench::scaling_ratio(kOps, numaheap::bench::share_nothing);
    je = numaheap::bench::scaling_ratio(kOps, work);
  }
  state.counters["ratio_jemalloc"] = je;
  state.counters["ratio_share_nothing"] = sn;
  state.counters["relative"] = je / sn;
}

void populate(benchmark::State& state, size_t bytes) {
  const int f = flags_node0();
  const size_t n = (size_t{1} << 30) / bytes;
  std::vector<void*> got(n);
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) got[i] = mallocx(bytes, f);
    for (size_t i = 0; i < n; ++i) dallocx(got[i], f);
  }
  state.counters["ns_per_page"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>((size_t{1} << 30) / 4096),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
void populate_1g(benchmark::State& state) { populate(state, 4096); }
void populate_1g_2m(benchmark::State& state) { populate(state, size_t{2} << 20); }

BENCHMARK(order0_pair)->Name("order0_pair/jemalloc");
BENCHMARK(order9_pair)->Name("order9_pair/jemalloc");
BENCHMARK(mixed_orders)->Name("mixed_orders/jemalloc");
BENCHMARK(threads2)->Name("threads2/jemalloc")->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(populate_1g)->Name("populate_1g/jemalloc")->Unit(benchmark::kMillisecond);
BENCHMARK(populate_1g_2m)->Name("populate_1g_2m/jemalloc")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
