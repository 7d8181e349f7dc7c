// threads_n: allocator throughput at 1..N threads, each pinned to its own
// CPU, written once over a small traits struct so every allocator runs the
// very same loops, thread harness and cross-CPU ring. One binary per
// allocator (numaheap-bench-threads-<name>), as with the other benchmarks:
// Debian's jemalloc and tcmalloc replace malloc in whatever links them.
// bench/threads.py runs every binary and merges their JSON.
//
//   struct Alloc {
//     static constexpr const char* kName = "jemalloc";
//     using Handle = ...;                     // what free takes (void*, Mfn)
//     using Ctx = ...;                        // per-thread state
//     static bool setup(const CpuMap&);       // once, before any thread
//     static Ctx context(const Cpu&);         // on the pinned thread
//     static bool alloc(Ctx&, unsigned order, Handle&);          // 4 KiB << order
//     static void release(Ctx&, Handle, unsigned order);
//     static bool alloc_bulk(Ctx&, std::span<Handle>);           // order 0
//     static void free_bulk(Ctx&, std::span<const Handle>);
//   };
//
// Workloads (ops per thread = --ops; an op is one allocation and its free):
//   order0_pair   alloc + free of one 4 KiB block
//   mixed_orders  kMixedOrders sizes, kMixedWindow live (bench_common.h)
//   bulk          kBulk 4 KiB blocks in one call, freed in one call
//                 (numaheap's alloc_bulk/free_bulk; peers: a loop each)
//   cross_cpu     thread i allocates kBulk blocks at a time and hands them
//                 through a lock-free SPSC ring to thread (i+1) % n, which
//                 frees them (a guest torn down on another CPU)
//   cross_bulk    the same with kBulk blocks in one call each way
//                 (numaheap's alloc_bulk/free_bulk; peers: a loop each)
// Thread counts: 1, 2, 4, ... below N, and N (N = the CPUs this process may
// run on, --threads to change it). CPUs are taken in the order of the
// affinity mask, node by node, so n threads fill one node before the next;
// ids need not be dense. Each result is the median of --reps runs.
// Output: a table and, with --json FILE, {"allocator", "cpus": [{cpu,node}],
// "results": [{workload, threads, ops_per_thread, seconds, ops_per_s,
// ops_per_s_per_thread, efficiency, cpu_seconds, ops_per_cpu_s,
// cpu_efficiency}]}; efficiency = throughput at n / (n x throughput at 1)
// (wall time); cpu_seconds is the threads' own CPU time summed
// (CLOCK_THREAD_CPUTIME_ID), ops_per_cpu_s = n x ops / cpu_seconds, and
// cpu_efficiency = ops_per_cpu_s at n / at 1: the cost of sharing (cache
// lines, locks, spinning) without the time the threads were not running,
// which on a machine shared with other work is most of the wall-time loss.
#pragma once

#include <numa.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace numaheap::bench {

struct Cpu {
  unsigned cpu = 0;
  int node = 0;
};
using CpuMap = std::vector<Cpu>;

// The CPUs this process may run on, with their NUMA node (0 without
// libnuma), grouped by node and in id order within a node.
inline CpuMap allowed_cpus() {
  CpuMap out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {{0, 0}};
  const bool numa = numa_available() >= 0;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      const int node = numa ? numa_node_of_cpu(static_cast<int>(c)) : 0;
      out.push_back({c, node < 0 ? 0 : node});
    }
  std::stable_sort(out.begin(), out.end(), [](const Cpu& a, const Cpu& b) { return a.node < b.node; });
  if (out.empty()) out.push_back({0, 0});
  return out;
}

inline constexpr std::size_t kBulk = 64;          // blocks per bulk call / ring batch
inline constexpr std::size_t kRingSlots = 4096;   // per ring, a power of two

// Single producer, single consumer ring of handles (one per thread pair).
template <class Handle>
class SpscRing {
 public:
  // Pushes all of `items` or nothing.
  bool push(std::span<const Handle> items) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    if (head + items.size() - tail_cache_ > kRingSlots) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head + items.size() - tail_cache_ > kRingSlots) return false;
    }
    for (std::size_t i = 0; i < items.size(); ++i) slots_[(head + i) & (kRingSlots - 1)] = items[i];
    head_.store(head + items.size(), std::memory_order_release);
    return true;
  }
  // Pops up to out.size() handles; returns how many.
  std::size_t pop(std::span<Handle> out) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (head_cache_ == tail) head_cache_ = head_.load(std::memory_order_acquire);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(head_cache_ - tail, out.size()));
    for (std::size_t i = 0; i < n; ++i) out[i] = slots_[(tail + i) & (kRingSlots - 1)];
    tail_.store(tail + n, std::memory_order_release);
    return n;
  }

 private:
  alignas(64) std::atomic<std::uint64_t> head_{0};  // written by the producer
  std::uint64_t tail_cache_ = 0;                    // producer's copy of tail_
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // written by the consumer
  std::uint64_t head_cache_ = 0;                    // consumer's copy of head_
  alignas(64) Handle slots_[kRingSlots];
};

struct ThreadsOptions {
  unsigned max_threads = 0;   // 0: every allowed CPU
  std::uint64_t ops = 1'000'000;
  unsigned reps = 3;
  std::string json;
};

struct ThreadsResult {
  std::string workload;
  unsigned threads = 0;
  std::uint64_t ops_per_thread = 0;
  double seconds = 0;
  double ops_per_s = 0;
  double efficiency = 0;
  double cpu_seconds = 0;
  double ops_per_cpu_s = 0;
  double cpu_efficiency = 0;
};

// The calling thread's CPU time in seconds.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline constexpr const char* kThreadsWorkloads[] = {"order0_pair", "mixed_orders", "bulk", "cross_cpu", "cross_bulk"};

template <class A>
class ThreadsBench {
  using Handle = typename A::Handle;
  using Ctx = typename A::Ctx;

 public:
  explicit ThreadsBench(CpuMap cpus) : cpus_(std::move(cpus)) {}

  // Wall seconds for `n` threads (on cpus_[0..n)) to each run `workload`
  // for `ops` ops after a common start, and their CPU seconds summed;
  // false when an allocation failed.
  bool run(const std::string& workload, unsigned n, std::uint64_t ops, double& seconds, double& cpu_seconds) {
    std::vector<double> cpu(n, 0.0);
    std::vector<SpscRing<Handle>> rings(n);  // ring t: thread t -> thread (t+1) % n
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false}, failed{false};
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t)
      pool.emplace_back([&, t] {
        pin_to_cpu(cpus_[t].cpu);
        Ctx c = A::context(cpus_[t]);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        bool ok = true;
        const double c0 = thread_cpu_seconds();
        if (workload == "order0_pair") ok = pairs(c, ops);
        else if (workload == "mixed_orders") ok = mixed(c, ops);
        else if (workload == "bulk") ok = bulk(c, ops);
        else ok = cross(c, ops, workload == "cross_bulk", rings[t], rings[(t + n - 1) % n], failed);
        cpu[t] = thread_cpu_seconds() - c0;
        if (!ok) failed.store(true);
      });
    while (ready.load() != n) {
    }
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu_seconds = 0;
    for (double c : cpu) cpu_seconds += c;
    return !failed.load();
  }

  const CpuMap& cpus() const { return cpus_; }

 private:
  static bool pairs(Ctx& c, std::uint64_t ops) {
    for (std::uint64_t i = 0; i < ops; ++i) {
      Handle h;
      if (!A::alloc(c, 0, h)) return false;
      A::release(c, h, 0);
    }
    return true;
  }

  static bool mixed(Ctx& c, std::uint64_t ops) {
    struct Live {
      Handle h;
      unsigned order;
      bool used;
    };
    std::vector<Live> live(kMixedWindow, Live{Handle{}, 0, false});
    bool ok = true;
    for (std::uint64_t i = 0; i < ops && ok; ++i) {
      Live& slot = live[i % kMixedWindow];
      if (slot.used) A::release(c, slot.h, slot.order);
      slot.order = kMixedOrders[i % 16];
      ok = slot.used = A::alloc(c, slot.order, slot.h);
    }
    for (auto& l : live)
      if (l.used) A::release(c, l.h, l.order);
    return ok;
  }

  static bool bulk(Ctx& c, std::uint64_t ops) {
    Handle batch[kBulk];
    for (std::uint64_t i = 0; i < ops; i += kBulk) {
      if (!A::alloc_bulk(c, batch)) return false;
      A::free_bulk(c, batch);
    }
    return true;
  }

  // Allocates `ops` blocks into `out` (kBulk at a time: one alloc per
  // block, or with `bulk` one alloc_bulk) and frees as many arriving on
  // `in` (one release each, or with `bulk` one free_bulk per arrival);
  // both at once, so no thread waits on a full ring while its own ring
  // fills. Stops early when another thread failed (its blocks would never
  // come).
  static bool cross(Ctx& c, std::uint64_t ops, bool bulk, SpscRing<Handle>& out, SpscRing<Handle>& in,
                    const std::atomic<bool>& failed) {
    Handle batch[kBulk];
    std::size_t pending = 0;  // allocated, not yet pushed
    std::uint64_t made = 0, freed = 0;
    while (made < ops || pending || freed < ops) {
      if (failed.load(std::memory_order_relaxed)) return true;
      if (!pending && made < ops) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kBulk, ops - made));
        if (bulk && !A::alloc_bulk(c, std::span<Handle>(batch, want))) return false;
        for (std::size_t i = 0; i < want && !bulk; ++i)
          if (!A::alloc(c, 0, batch[i])) {
            for (std::size_t k = 0; k < i; ++k) A::release(c, batch[k], 0);
            return false;
          }
        pending = want;
        made += want;
      }
      if (pending && out.push(std::span<const Handle>(batch, pending))) pending = 0;
      Handle got[kBulk];
      const std::size_t n = in.pop(got);
      if (bulk && n) A::free_bulk(c, std::span<const Handle>(got, n));
      for (std::size_t i = 0; i < n && !bulk; ++i) A::release(c, got[i], 0);
      freed += n;
      if (!n && pending) std::this_thread::yield();  // more threads than CPUs: let the consumer run
    }
    return true;
  }

  CpuMap cpus_;
};

// 1, 2, 4, ... below max, then max.
inline std::vector<unsigned> thread_counts(unsigned max) {
  std::vector<unsigned> out;
  for (unsigned n = 1; n < max; n *= 2) out.push_back(n);
  out.push_back(max);
  return out;
}

inline int threads_usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--threads N] [--ops OPS] [--reps R] [--json FILE]\n"
               "  N: most threads (default: every CPU this process may use)\n"
               "  OPS: ops per thread per run (default 1000000); R: runs, median (default 3)\n",
               argv0);
  return 2;
}

inline bool parse_threads_options(int argc, char** argv, ThreadsOptions& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    auto number = [&](std::uint64_t& v) {
      if (!has_value) return false;
      char* end = nullptr;
      v = std::strtoull(argv[++i], &end, 10);
      return end && *end == '\0' && v > 0;
    };
    std::uint64_t v = 0;
    if (a == "--threads" && number(v) && v <= CPU_SETSIZE) o.max_threads = static_cast<unsigned>(v);
    else if (a == "--ops" && number(v)) o.ops = v;
    else if (a == "--reps" && number(v) && v <= 100) o.reps = static_cast<unsigned>(v);
    else if (a == "--json" && has_value) o.json = argv[++i];
    else return false;
  }
  return true;
}

inline std::string threads_json(const char* allocator, const CpuMap& cpus, unsigned used,
                                const std::vector<ThreadsResult>& rs) {
  std::string s = std::string("{\n  \"allocator\": \"") + allocator + "\",\n  \"cpus\": [";
  for (unsigned i = 0; i < used; ++i)
    s += (i ? ", " : "") + std::string("{\"cpu\": ") + std::to_string(cpus[i].cpu) +
         ", \"node\": " + std::to_string(cpus[i].node) + "}";
  s += "],\n  \"results\": [\n";
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const auto& r = rs[i];
    char line[400];
    std::snprintf(line, sizeof line,
                  "    {\"workload\": \"%s\", \"threads\": %u, \"ops_per_thread\": %llu, "
                  "\"seconds\": %.6f, \"ops_per_s\": %.1f, \"ops_per_s_per_thread\": %.1f, "
                  "\"efficiency\": %.4f, \"cpu_seconds\": %.6f, \"ops_per_cpu_s\": %.1f, "
                  "\"cpu_efficiency\": %.4f}%s\n",
                  r.workload.c_str(), r.threads, static_cast<unsigned long long>(r.ops_per_thread),
                  r.seconds, r.ops_per_s, r.ops_per_s / r.threads, r.efficiency, r.cpu_seconds,
                  r.ops_per_cpu_s, r.cpu_efficiency, i + 1 < rs.size() ? "," : "");
    s += line;
  }
  return s + "  ]\n}\n";
}

// Exit codes: 0 ok, 1 an allocation failed or the JSON could not be
// written, 2 usage.
template <class A>
int threads_main(int argc, char** argv) {
  ThreadsOptions o;
  if (!parse_threads_options(argc, argv, o)) return threads_usage(argv[0]);
  CpuMap cpus = allowed_cpus();
  const unsigned max = o.max_threads ? o.max_threads : static_cast<unsigned>(cpus.size());
  if (max > cpus.size())  // more threads than CPUs: CPUs are reused (not pinned 1:1)
    for (std::size_t i = cpus.size(); i < max; ++i) cpus.push_back(cpus[i % cpus.size()]);
  if (!A::setup(CpuMap(cpus.begin(), cpus.begin() + max))) {
    std::fprintf(stderr, "%s: setup failed\n", A::kName);
    return 1;
  }
  ThreadsBench<A> bench(cpus);
  std::vector<ThreadsResult> results;
  std::printf("%-10s %-13s %7s %16s %10s %14s\n", "allocator", "workload", "threads", "ops/s/thread",
              "efficiency", "cpu_efficiency");
  for (const char* w : kThreadsWorkloads) {
    double one = 0, one_cpu = 0;  // throughput at 1 thread: per wall, per CPU second
    for (unsigned n : thread_counts(max)) {
      std::vector<double> secs, cpu_secs;
      for (unsigned r = 0; r < o.reps; ++r) {
        double s = 0, c = 0;
        if (!bench.run(w, n, o.ops, s, c)) {
          std::fprintf(stderr, "%s: %s at %u threads: an allocation failed\n", A::kName, w, n);
          return 1;
        }
        secs.push_back(s);
        cpu_secs.push_back(c);
      }
      std::sort(secs.begin(), secs.end());
      std::sort(cpu_secs.begin(), cpu_secs.end());
      ThreadsResult res;
      res.workload = w;
      res.threads = n;
      res.ops_per_thread = o.ops;
      res.seconds = secs[secs.size() / 2];
      res.ops_per_s = static_cast<double>(o.ops) * n / res.seconds;
      res.cpu_seconds = cpu_secs[cpu_secs.size() / 2];
      res.ops_per_cpu_s = res.cpu_seconds > 0 ? static_cast<double>(o.ops) * n / res.cpu_seconds : 0;
      if (n == 1) one = res.ops_per_s, one_cpu = res.ops_per_cpu_s;
      res.efficiency = one > 0 ? res.ops_per_s / (n * one) : 0;
      res.cpu_efficiency = one_cpu > 0 ? res.ops_per_cpu_s / one_cpu : 0;
      std::printf("%-10s %-13s %7u %16.0f %10.3f %14.3f\n", A::kName, w, n, res.ops_per_s / n,
                  res.efficiency, res.cpu_efficiency);
      results.push_back(res);
    }
  }
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    f << threads_json(A::kName, cpus, max, results);
    if (!f.good()) {
      std::fprintf(stderr, "%s: cannot write %s\n", A::kName, o.json.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace numaheap::bench
