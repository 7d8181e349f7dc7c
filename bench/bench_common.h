// Shared by the allocator benchmarks: the threads2 scaling harness and the
// workload shapes, so both binaries measure exactly the same thing.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
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

}  // namespace numaheap::bench
