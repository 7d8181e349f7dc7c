// The workloads of the malloc-style peers (jemalloc, glibc, mimalloc,
// tcmalloc, libnuma), written once over a small traits struct, so each peer's
// file only says how it allocates and frees. Same names and shapes as
// numaheap_bench.cc: <workload>/<allocator>. A peer:
//
//   struct Peer {
//     static constexpr const char* kName = "glibc";
//     using Ctx = ...;                         // per-thread state (tcache, heap, flags)
//     static Ctx context();                    // the calling thread's
//     static void* alloc(Ctx, std::size_t bytes);   // 4 KiB aligned; nullptr on failure
//     static void release(Ctx, void* p, std::size_t bytes);
//     // optional, called in the churn's child process: a context whose
//     // allocations are limited to kChurnBudget. Without it the child limits
//     // its address space (RLIMIT_AS) to what it has mapped + kChurnBudget.
//     static Ctx churn_context();
//   };
//
//   int main(int argc, char** argv) { return numaheap::bench::peer_main<Peer>(argc, argv); }
#pragma once

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_common.h"
#include "cycle_counter.h"

namespace numaheap::bench {

// Caps the address space at what is mapped now + `extra` bytes (soft limit).
inline bool limit_address_space(std::uint64_t extra) {
  char buf[128] = {};
  const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  const std::uint64_t pages = std::strtoull(buf, nullptr, 10);
  const std::uint64_t mapped = pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) != 0) return false;
  lim.rlim_cur = mapped + extra;
  return setrlimit(RLIMIT_AS, &lim) == 0;
}

template <class P>
struct PeerBench {
  using Ctx = typename P::Ctx;

  static std::string name(const char* workload) { return std::string(workload) + "/" + P::kName; }

  static void pair(benchmark::State& state, std::size_t bytes) {
    const Ctx c = P::context();
    CycleCounter cycles;
    for (auto _ : state) {
      void* p = P::alloc(c, bytes);
      benchmark::DoNotOptimize(p);
      P::release(c, p, bytes);
    }
    cycles.report(state);
  }

  static void mixed_orders(benchmark::State& state) {
    const Ctx c = P::context();
    std::vector<std::pair<void*, std::size_t>> live(kMixedWindow, {nullptr, 0});
    std::size_t i = 0;
    CycleCounter cycles;
    for (auto _ : state) {
      auto& slot = live[i % kMixedWindow];
      if (slot.first) P::release(c, slot.first, slot.second);
      const std::size_t bytes = std::size_t{4096} << kMixedOrders[i % 16];
      slot = {P::alloc(c, bytes), bytes};
      ++i;
    }
    cycles.report(state);
    for (auto& [p, bytes] : live)
      if (p) P::release(c, p, bytes);
  }

  static void threads2(benchmark::State& state) {
    constexpr std::uint64_t kOps = 2'000'000;
    auto work = [](unsigned, std::uint64_t ops) {
      const Ctx c = P::context();
      for (std::uint64_t i = 0; i < ops; ++i) {
        void* p = P::alloc(c, 4096);
        benchmark::DoNotOptimize(p);
        P::release(c, p, 4096);
      }
    };
    double peer = 0, sn = 0;
    for (auto _ : state) {
      sn = scaling_ratio(kOps, share_nothing);
      peer = scaling_ratio(kOps, work);
    }
    state.counters[std::string("ratio_") + P::kName] = peer;
    state.counters["ratio_share_nothing"] = sn;
    state.counters["relative"] = peer / sn;  // bar: >= 0.9
  }

  static void populate(benchmark::State& state, std::size_t bytes) {
    const Ctx c = P::context();
    const std::size_t n = (std::size_t{1} << 30) / bytes;
    std::vector<void*> got(n);
    for (auto _ : state) {
      bool ok = true;
      for (std::size_t i = 0; i < n; ++i) ok &= (got[i] = P::alloc(c, bytes)) != nullptr;
      for (std::size_t i = 0; i < n; ++i)
        if (got[i]) P::release(c, got[i], bytes);
      if (!ok) {
        state.SkipWithError("allocation failed");
        return;
      }
    }
    state.counters["ns_per_page"] = benchmark::Counter(
        static_cast<double>(state.iterations()) * static_cast<double>((std::size_t{1} << 30) / 4096),
        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  }

  // In a forked child, so the budget and the churned heap never reach the
  // other workloads; the result comes back through a pipe.
  static ChurnResult churn_child() {
    std::vector<ChurnBlock<void*>> live;
    live.reserve(kChurnBudget >> 12);
    const Ctx c = [] {
      if constexpr (requires { P::churn_context(); }) {
        return P::churn_context();
      } else {
        const Ctx ctx = P::context();
        if (!limit_address_space(kChurnBudget)) _exit(2);
        return ctx;
      }
    }();
    auto alloc = [c](unsigned order) -> std::optional<void*> {
      void* p = P::alloc(c, std::size_t{4096} << order);
      if (!p) return std::nullopt;
      return p;
    };
    auto release = [c](void* p, unsigned order) { P::release(c, p, std::size_t{4096} << order); };
    ChurnResult r = churn(live, alloc, release);
    r.largest_order = churn_probe(alloc, release);
    return r;
  }

  static void churn_bench(benchmark::State& state) {
    ChurnResult res{};
    for (auto _ : state) {
      int fds[2];
      if (pipe(fds) != 0) {
        state.SkipWithError("pipe failed");
        return;
      }
      const pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        const ChurnResult r = churn_child();
        const bool ok = write(fds[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r);
        _exit(ok ? 0 : 1);
      }
      close(fds[1]);
      const ssize_t n = pid < 0 ? -1 : read(fds[0], &res, sizeof res);
      close(fds[0]);
      int status = 0;
      if (pid > 0) waitpid(pid, &status, 0);
      if (n != static_cast<ssize_t>(sizeof res)) {
        state.SkipWithError("churn child failed");
        return;
      }
    }
    state.counters["largest_order"] = res.largest_order;
    state.counters["live_mib"] = static_cast<double>(res.live_bytes >> 20);
    state.counters["alloc_failures"] = static_cast<double>(res.failures);
  }

  static void register_all() {
    using benchmark::RegisterBenchmark;
    // churn first: its child should see a heap no other workload has grown.
    RegisterBenchmark(name("churn").c_str(), churn_bench)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(name("order0_pair").c_str(), pair, std::size_t{4096});
    RegisterBenchmark(name("order9_pair").c_str(), pair, std::size_t{2} << 20);
    RegisterBenchmark(name("mixed_orders").c_str(), mixed_orders);
    RegisterBenchmark(name("threads2").c_str(), threads2)
        ->Iterations(3)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    RegisterBenchmark(name("populate_1g").c_str(), populate, std::size_t{4096})
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(name("populate_1g_2m").c_str(), populate, std::size_t{2} << 20)
        ->Unit(benchmark::kMicrosecond);
  }
};

template <class P>
int peer_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  PeerBench<P>::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace numaheap::bench
