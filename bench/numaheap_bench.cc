// numaheap's side of the allocator benchmarks (see jemalloc_bench.cc for the
// baseline). Host-memory mode on node 0 of this host (2 GiB reserved,
// untouched), owner 1, no_scrub -- jemalloc does not zero either.
// Names: <workload>/numaheap. JSON: --benchmark_format=json.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "cycle_counter.h"
#include "numaheap/page_allocator.h"

namespace numaheap {
namespace {

Topology host_node0(std::uint64_t bytes) {
  std::vector<CpuId> cpus;
  const long n = sysconf(_SC_NPROCESSORS_CONF);
  for (long c = 0; c < n; ++c) cpus.push_back(static_cast<CpuId>(c));
  return TopologyBuilder("bench:node0").add_node(0, cpus, bytes).build().value();
}

PageAllocator& heap() {
  static std::unique_ptr<PageAllocator> pa = [] {
    PlatformConfig pc;
    pc.mode = MemoryMode::host_memory;
    auto r = PageAllocator::create(host_node0(std::uint64_t{2} << 30), pc);
    if (!r) {
      std::fprintf(stderr, "numaheap bench: %s\n", r.error().message.c_str());
      std::exit(1);
    }
    return std::move(r).value();
  }();
  return *pa;
}

AllocRequest request(unsigned order, OwnerId owner = 1) {
  AllocRequest r;
  r.order = order;
  r.flags = AllocFlags::no_scrub;
  r.owner = owner;
  return r;
}

void pair(benchmark::State& state, unsigned order, NodeId node = kNoNode) {
  PageAllocator& pa = heap();
  AllocRequest r = request(order);
  r.node = node;
  bench::CycleCounter cycles;
  for (auto _ : state) {
    auto a = pa.alloc(r);
    benchmark::DoNotOptimize(a);
    (void)pa.free(a->mfn, order, 1);
  }
  cycles.report(state);
}
void order0_pair(benchmark::State& state) { pair(state, 0); }
void order9_pair(benchmark::State& state) { pair(state, 9); }

// The floor of the pair's safety cost (issue 17's cycle budget,
// docs/fast-path.md): the one thing free cannot do without if it is to
// catch a double free racing on another CPU -- load a descriptor word and
// compare-and-swap it, as free's fast path does (same orderings) -- and
// nothing else: no cache, no lookup, no checks. The pair can never be
// faster than this; bench/report.py compares it with the peers' pairs.
void locked_rmw_floor(benchmark::State& state) {
  alignas(64) static std::uint64_t word = 0;
  bench::CycleCounter cycles;
  for (auto _ : state) {
    std::uint64_t w = std::atomic_ref<std::uint64_t>(word).load(std::memory_order_relaxed);
    benchmark::DoNotOptimize(std::atomic_ref<std::uint64_t>(word).compare_exchange_strong(
        w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire));
  }
  cycles.report(state);
}

// The pair asking for the calling CPU's own node by id (a hypervisor's
// "this vCPU's node"; every CPU is on node 0 here). numaheap only: the
// peers have no node argument (bench/report.py ignores the name).
void order0_pair_own_node(benchmark::State& state) { pair(state, 0, 0); }

// Same pair, but the owner changes each time, so every frame is scrubbed.
void order0_pair_scrubbed(benchmark::State& state) {
  PageAllocator& pa = heap();
  OwnerId owner = 1;
  for (auto _ : state) {
    AllocRequest r = request(0, owner);
    r.flags = 0;
    auto a = pa.alloc(r);
    benchmark::DoNotOptimize(a);
    (void)pa.free(a->mfn, 0, owner);
    owner = owner == 1 ? 2 : 1;
  }
}

void mixed_orders(benchmark::State& state) {
  PageAllocator& pa = heap();
  std::vector<std::pair<Mfn, unsigned>> live(bench::kMixedWindow, {kInvalidMfn, 0});
  // Made once, as the peers compute only a size in the loop (an
  // AllocRequest carries a 128-byte node mask).
  std::vector<AllocRequest> reqs;
  for (unsigned order = 0; order <= 9; ++order) reqs.push_back(request(order));
  std::size_t i = 0;
  bench::CycleCounter cycles;
  for (auto _ : state) {
    auto& slot = live[i % bench::kMixedWindow];
    if (slot.first != kInvalidMfn) (void)pa.free(slot.first, slot.second, 1);
    const unsigned order = bench::kMixedOrders[i % 16];
    auto a = pa.alloc(reqs[order]);
    slot = {a ? a->mfn : kInvalidMfn, order};
    ++i;
  }
  cycles.report(state);
  for (auto& [m, o] : live)
    if (m != kInvalidMfn) (void)pa.free(m, o, 1);
}

// Fragmentation: the shared churn (bench_common.h) on its own 256 MiB node,
// then the largest free order from stats() (per-CPU caches drained first)
// and the largest order an allocation still gets.
void churn(benchmark::State& state) {
  bench::ChurnResult res{};
  int largest_free = -1;
  for (auto _ : state) {
    PlatformConfig pc;
    pc.mode = MemoryMode::host_memory;
    auto made = PageAllocator::create(host_node0(bench::kChurnBudget), pc);
    if (!made) {
      state.SkipWithError(made.error().message.c_str());
      return;
    }
    PageAllocator& pa = **made;
    std::vector<bench::ChurnBlock<Mfn>> live;
    live.reserve(bench::kChurnBudget >> kFrameShift);
    auto alloc = [&pa](unsigned order) -> std::optional<Mfn> {
      AllocRequest r = request(order);
      r.node = 0;
      r.flags |= AllocFlags::exact_node;
      auto a = pa.alloc(r);
      if (!a) return std::nullopt;
      return a->mfn;
    };
    auto release = [&pa](Mfn m, unsigned order) { (void)pa.free(m, order, 1); };
    res = bench::churn(live, alloc, release);
    pa.drain_all();
    largest_free = pa.stats(0)->largest_free_order;
    res.largest_order = bench::churn_probe(alloc, release);
  }
  state.counters["largest_order"] = res.largest_order;
  state.counters["largest_free_order"] = largest_free;
  state.counters["live_mib"] = static_cast<double>(res.live_bytes >> 20);
  state.counters["alloc_failures"] = static_cast<double>(res.failures);
}

void threads2(benchmark::State& state) {
  PageAllocator& pa = heap();
  constexpr std::uint64_t kOps = 2'000'000;
  auto work = [&pa](unsigned t, std::uint64_t ops) {
    const OwnerId owner = t + 1;
    const AllocRequest r = request(0, owner);
    for (std::uint64_t i = 0; i < ops; ++i) {
      auto a = pa.alloc(r);
      benchmark::DoNotOptimize(a);
      (void)pa.free(a->mfn, 0, owner);
    }
  };
  double nh = 0, sn = 0;
  for (auto _ : state) {
    sn = bench::scaling_ratio(kOps, bench::share_nothing);
    nh = bench::scaling_ratio(kOps, work);
  }
  state.counters["ratio_numaheap"] = nh;
  state.counters["ratio_share_nothing"] = sn;
  state.counters["relative"] = nh / sn;  // bar: >= 0.9
}

// Two CPUs each cycling an order-0 pair on their own cache, once with the
// second CPU's hot frame far from the first's and once with it the first's
// neighbour (frame number +-1). Descriptors are 24 bytes, so neighbouring
// frames share a 64-byte line unless a line boundary falls between them:
// if two CPUs' hot frames share one, every pair's store and compare-and-swap
// bounce the line between the CPUs (false sharing). Refills take whole
// aligned 8-frame groups (3 lines), so frames that reach two CPUs' caches by
// refill never share a line ("refill" below); a frame one CPU allocated and
// another freed (a cross-CPU free) goes to the freeing CPU's cache wherever
// its neighbours are, and can ("handed": the price of 24-byte descriptors).
//   far       B's hot frame is the first it gets, >= 64 frames from A's
//   refill    B allocates until it gets A's hot frame +-1 (from its own refill)
//   handed    A allocates two neighbouring frames, keeps one hot and hands
//             the other to B, which frees it on its CPU and cycles it
// Counters: ns per pair per thread in each mode (both threads run kOps
// pairs after a common start; wall time / kOps; medians of the
// iterations), and relative = far / refill (1.0: the neighbour costs
// nothing). A fresh allocator per mode and iteration.
enum class Neighbour { far, refill, handed };

double neighbour_ns(Neighbour mode, bool& found) {
  constexpr std::uint64_t kOps = 2'000'000;
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  auto made = PageAllocator::create(host_node0(std::uint64_t{256} << 20), pc);
  if (!made) return -1;
  PageAllocator& pa = **made;
  const AllocRequest r = request(0);
  // Set-up, one CPU after the other (the threads are joined in between).
  Mfn hot_a = kInvalidMfn, hot_b = kInvalidMfn;
  std::thread([&] {
    bench::pin_to_cpu(0);
    if (mode == Neighbour::handed) {
      std::vector<Mfn> held;
      for (int i = 0; i < 64 && hot_b == kInvalidMfn; ++i) {
        held.push_back(pa.alloc(r)->mfn);
        for (std::size_t j = 0; j + 1 < held.size() && hot_b == kInvalidMfn; ++j)
          if (held[j] + 1 == held.back() || held[j] == held.back() + 1) {
            hot_a = held[j];
            hot_b = held.back();
          }
      }
      for (Mfn m : held)  // the rest go back first: hot_a ends on top
        if (m != hot_a && m != hot_b) (void)pa.free(m, 0, 1);
      if (hot_a != kInvalidMfn) (void)pa.free(hot_a, 0, 1);
    } else {
      hot_a = pa.alloc(r)->mfn;
      (void)pa.free(hot_a, 0, 1);
    }
  }).join();
  std::thread([&] {
    bench::pin_to_cpu(1);
    if (mode == Neighbour::handed) {
      if (hot_b != kInvalidMfn) (void)pa.free(hot_b, 0, 1);  // on B's CPU: B's cache
      return;
    }
    std::vector<Mfn> held;
    for (int i = 0; i < 4096 && hot_b == kInvalidMfn; ++i) {
      const Mfn m = pa.alloc(r)->mfn;
      const Mfn d = m > hot_a ? m - hot_a : hot_a - m;
      if (mode == Neighbour::refill ? d == 1 : d >= 64) hot_b = m;
      else held.push_back(m);
    }
    for (Mfn m : held) (void)pa.free(m, 0, 1);
    if (hot_b != kInvalidMfn) (void)pa.free(hot_b, 0, 1);  // last: on top
  }).join();
  found = hot_a != kInvalidMfn && hot_b != kInvalidMfn;
  bool same = true;  // each thread kept getting its hot frame back
  const double secs = bench::timed_threads(2, kOps, [&](unsigned t, std::uint64_t ops) {
    const Mfn want = t == 0 ? hot_a : hot_b;
    Mfn last = kInvalidMfn;
    for (std::uint64_t i = 0; i < ops; ++i) {
      last = pa.alloc(r)->mfn;
      (void)pa.free(last, 0, 1);
    }
    if (last != want) same = false;
  });
  found = found && same;
  return secs * 1e9 / static_cast<double>(kOps);
}

void neighbour_cpus(benchmark::State& state) {
  std::vector<double> far, refill, handed;
  bool found = true, ok = true;
  for (auto _ : state) {
    bool f[3] = {};
    far.push_back(neighbour_ns(Neighbour::far, f[0]));
    refill.push_back(neighbour_ns(Neighbour::refill, f[1]));
    handed.push_back(neighbour_ns(Neighbour::handed, f[2]));
    found = found && f[0] && f[1] && f[2];
    ok = ok && far.back() > 0 && refill.back() > 0 && handed.back() > 0;
  }
  if (!ok) {
    state.SkipWithError("cannot create the allocator");
    return;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  state.counters["ns_far"] = median(far);
  state.counters["ns_refill_neighbour"] = median(refill);
  state.counters["ns_handed_neighbour"] = median(handed);
  // 1 when the set-up got the frames it looked for and each thread cycled
  // its own hot frame throughout (else the mode measured something else).
  state.counters["set_up_ok"] = found ? 1 : 0;
  state.counters["relative"] = median(far) / median(refill);  // 1.0: no false sharing
}

// 1 GiB of exact-node blocks of `order`, allocated one call each, then
// freed one call each.
void populate(benchmark::State& state, unsigned order) {
  PageAllocator& pa = heap();
  const std::size_t n = (std::size_t{1} << 30 >> kFrameShift) >> order;
  std::vector<Mfn> got(n);
  AllocRequest r = request(order);
  r.node = 0;
  r.flags |= AllocFlags::exact_node;
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) got[i] = pa.alloc(r)->mfn;
    for (std::size_t i = 0; i < n; ++i) (void)pa.free(got[i], order, 1);
  }
  state.counters["ns_per_page"] = benchmark::Counter(
      static_cast<double>(state.iterations() * (n << order)),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
void populate_1g_single(benchmark::State& state) { populate(state, 0); }
void populate_1g_2m(benchmark::State& state) { populate(state, 9); }

// What a hypervisor populating a guest's 4 KiB extents calls: 262144
// exact-node order-0 frames of the owner in one alloc_bulk, then one
// free_bulk of all of them (every frame checked, runs merged back).
void populate_1g(benchmark::State& state) {
  PageAllocator& pa = heap();
  const std::size_t n = std::size_t{1} << 30 >> kFrameShift;
  std::vector<Mfn> got(n);
  AllocRequest r = request(0);
  r.node = 0;
  r.flags |= AllocFlags::exact_node;
  for (auto _ : state) {
    if (!pa.alloc_bulk(r, got) || !pa.free_bulk(got, 1)) {
      state.SkipWithError("bulk allocation or free failed");
      return;
    }
  }
  state.counters["ns_per_page"] = benchmark::Counter(
      static_cast<double>(state.iterations() * n),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void init_1tib(benchmark::State& state) {
  TopologyBuilder b("bench:1tib-8n");
  for (NodeId n = 0; n < 8; ++n) b.add_node(n, {n * 2, n * 2 + 1}, std::uint64_t{128} << 30);
  const Topology topo = b.build().value();
  double per_frame = 0;
  for (auto _ : state) {
    auto pa = PageAllocator::create(topo, PlatformConfig{});
    if (!pa) {
      state.SkipWithError(pa.error().message.c_str());
      return;
    }
    per_frame = (*pa)->metadata_bytes_per_frame();
    benchmark::DoNotOptimize(pa);
  }
  state.counters["metadata_bytes_per_frame"] = per_frame;
  state.counters["lockless_cpu_caches"] = heap().lockless_cpu_caches() ? 1 : 0;
  state.counters["frames"] = static_cast<double>(topo.total_frames());
}

BENCHMARK(order0_pair)->Name("order0_pair/numaheap");
BENCHMARK(order0_pair_own_node)->Name("order0_pair_own_node/numaheap");
BENCHMARK(order9_pair)->Name("order9_pair/numaheap");
BENCHMARK(locked_rmw_floor)->Name("locked_rmw_floor/numaheap");
BENCHMARK(order0_pair_scrubbed)->Name("order0_pair_scrubbed/numaheap");
BENCHMARK(mixed_orders)->Name("mixed_orders/numaheap");
BENCHMARK(churn)->Name("churn/numaheap")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(threads2)->Name("threads2/numaheap")->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(neighbour_cpus)->Name("neighbour_cpus/numaheap")->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(populate_1g)->Name("populate_1g/numaheap")->Unit(benchmark::kMillisecond);
BENCHMARK(populate_1g_single)->Name("populate_1g_single/numaheap")->Unit(benchmark::kMillisecond);
BENCHMARK(populate_1g_2m)->Name("populate_1g_2m/numaheap")->Unit(benchmark::kMicrosecond);
BENCHMARK(init_1tib)->Name("init_1tib/numaheap")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace numaheap

BENCHMARK_MAIN();
