// Shared by the allocator benchmarks: the threads2 scaling harness and the
// workload shapes (mixed orders, churn), so every binary measures exactly the
// same thing. peer_bench.h builds the malloc-style peers' workloads on it.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace numaheap::bench {

// Pins the calling thread to one CPU (best effort).
inline void pin_to_cpu(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % CPU_SETSIZE, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Seconds for `threads` threads (pinned to CPUs 0..threads-1) to each run
// work(thread_index, ops) after a common start signal.
template <class Work>
double timed_threads(unsigned threads, std::uint64_t ops, Work work) {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      pin_to_cpu(t);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      work(t, ops);
    });
  while (ready.load() != threads) {
  }
  const auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// 2-thread / 1-thread throughput ratio of `work`.
template <class Work>
double scaling_ratio(std::uint64_t ops, Work work) {
  const double t1 = timed_threads(1, ops, work);
  const double t2 = timed_threads(2, ops, work);
  return (2.0 * static_cast<double>(ops) / t2) / (static_cast<double>(ops) / t1);
}

// A loop that shares nothing between threads: the machine's own scaling.
inline void share_nothing(unsigned t, std::uint64_t ops) {
  std::uint64_t x = 0x9E3779B97F4A7C15ull ^ t;
  for (std::uint64_t i = 0; i < ops * 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  asm volatile("" : : "r"(x));  // keep the result alive
}

// The mixed workload: sizes in frames' orders, weighted toward 4 KiB.
inline constexpr unsigned kMixedOrders[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 9, 0};
inline constexpr std::size_t kMixedWindow = 256;  // live allocations kept

// The churn workload (fragmentation): within a budget of kChurnBudget bytes,
// fill to 3/4 with orders drawn from kMixedOrders, replace random live blocks
// for kChurnRounds x the live count, then free random blocks down to 1/2.
// Every allocator sees the same sequence (fixed seed). Afterwards the caller
// asks for the largest 2^k x 4 KiB block that still fits (churn_probe).
inline constexpr std::uint64_t kChurnBudget = std::uint64_t{256} << 20;
inline constexpr unsigned kChurnMaxOrder = 16;  // 2^16 x 4 KiB = the whole budget
inline constexpr unsigned kChurnRounds = 4;

struct ChurnResult {
  std::uint64_t live_bytes = 0;  // still allocated when the probe runs
  std::uint64_t failures = 0;    // allocations refused during the churn
  int largest_order = -1;        // largest order the probe got (-1: none)
};

// Live blocks of the churn: the caller reserves capacity before the budget
// applies (kChurnBudget >> 12 entries is always enough).
template <class Handle>
struct ChurnBlock {
  Handle h;
  unsigned order;
};

// alloc(order) -> std::optional<Handle>; release(Handle, order).
template <class Handle, class Alloc, class Release>
ChurnResult churn(std::vector<ChurnBlock<Handle>>& live, Alloc alloc, Release release) {
  ChurnResult r;
  std::uint64_t x = 0x2545F4914F6CDD1Dull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  auto fill = [&](std::uint64_t target) {
    while (r.live_bytes < target) {
      const unsigned order = kMixedOrders[next() % 16];
      auto h = alloc(order);
      if (!h) {
        ++r.failures;
        return;
      }
      live.push_back({*h, order});
      r.live_bytes += std::uint64_t{4096} << order;
    }
  };
  auto drop_random = [&] {
    const std::size_t i = static_cast<std::size_t>(next() % live.size());
    release(live[i].h, live[i].order);
    r.live_bytes -= std::uint64_t{4096} << live[i].order;
    live[i] = live.back();
    live.pop_back();
  };
  fill(kChurnBudget / 4 * 3);
  const std::size_t rounds = kChurnRounds * live.size();
  for (std::size_t i = 0; i < rounds && !live.empty(); ++i) {
    drop_random();
    fill(kChurnBudget / 4 * 3);
  }
  while (r.live_bytes > kChurnBudget / 2 && !live.empty()) drop_random();
  return r;
}

// Largest order k <= kChurnMaxOrder whose 2^k x 4 KiB allocation succeeds
// (the block is freed again), or -1.
template <class Alloc, class Release>
int churn_probe(Alloc alloc, Release release) {
  for (int k = static_cast<int>(kChurnMaxOrder); k >= 0; --k) {
    auto h = alloc(static_cast<unsigned>(k));
    if (h) {
      release(*h, static_cast<unsigned>(k));
      return k;
    }
  }
  return -1;
}

}  // namespace numaheap::bench
