// cycles_per_pair: time-stamp-counter ticks per benchmark iteration, read
// with __rdtsc around the timed loop (x86-64; elsewhere the counter is
// absent). TSC ticks are reference cycles at the TSC's fixed rate (the
// "cpu MHz" /proc/cpuinfo shows on this VM), and they count wall time, so
// a descheduled thread inflates them: compare medians of one quiet run.
// docs/fast-path.md turns them into a per-instruction budget.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace numaheap::bench {

class CycleCounter {
 public:
  CycleCounter() noexcept : start_(now()) {}
  // Sets state.counters["cycles_per_pair"] (after the loop).
  void report(benchmark::State& state) const {
#if defined(__x86_64__)
    const std::uint64_t ticks = now() - start_;
    if (state.iterations() > 0)
      state.counters["cycles_per_pair"] =
          static_cast<double>(ticks) / static_cast<double>(state.iterations());
#else
    (void)state;
#endif
  }

 private:
  static std::uint64_t now() noexcept {
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0;
#endif
  }
  std::uint64_t start_;
};

}  // namespace numaheap::bench
