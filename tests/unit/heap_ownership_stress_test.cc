// Ownership under races: a free() that names a block the caller does not
// hold must fail and change nothing, even while another thread is taking
// that very block. Three racers:
//  * a double-freer: owner A frees its block and at once frees it again,
//    while owner B allocates from the same per-CPU cache (which hands A's
//    block straight to B); A's second free must never release B's block;
//  * a never-allocated-frame racer: owner 0 (a valid owner, like a control
//    domain) frees frames it never held while owner 5 takes and returns
//    them with alloc_bulk/free_bulk and alloc/free;
//  * a checker: check_frames() under that load never reports corruption
//    that is not there (busy is allowed, invalid_frame is not), and is
//    exact once the threads have stopped.
// Both per-CPU cache paths (locked, lock-free on rseq). Run under TSan in CI.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <tuple>
#include <thread>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

using test::req;

constexpr int kRounds = 200000;

// Both threads start together (a spin on an atomic, no sleep).
struct StartLine {
  std::atomic<int> ready{0};
  void arrive_and_wait(int n) {
    ready.fetch_add(1);
    while (ready.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }
};

class heap_ownership_stress : public ::testing::TestWithParam<bool> {
 protected:
  // Every thread on cache slot 0 (locked path) or on its real CPU (rseq).
  std::unique_ptr<PageAllocator> make(const Topology& topo) {
    HeapConfig hc;
    hc.pcp_batch = 8;
    hc.pcp_high = 32;
    hc.use_rseq = GetParam();
    auto pa = GetParam() ? test::make(topo, {}, hc) : test::make(topo, test::frame_only(&cpu_), hc);
    if (pa && GetParam() && !pa->lockless_cpu_caches()) return nullptr;
    return pa;
  }
  test::FakeCpu cpu_;  // stays 0: both threads share one cache
};

// Frame -> holder (0 = nobody) as the threads see it; a conflict is a frame
// handed to two holders at once.
struct Holders {
  explicit Holders(Mfn end) : v(end) {}
  bool take(Mfn m, unsigned order, std::uint32_t who) {
    bool ok = true;
    for (std::uint64_t f = 0; f < frames_of_order(order); ++f) {
      std::uint32_t expect = 0;
      if (!v[m + f].compare_exchange_strong(expect, who)) ok = false;
    }
    return ok;
  }
  void give_back(Mfn m, unsigned order) {
    for (std::uint64_t f = 0; f < frames_of_order(order); ++f) v[m + f].store(0);
  }
  std::vector<std::atomic<std::uint32_t>> v;
};

Mfn end_of(const Topology& t) {
  Mfn end = 0;
  for (const NodeInfo& n : t.nodes())
    for (const FrameRange& r : n.frames) end = std::max(end, r.first_mfn + r.count);
  return end;
}

// Two threads of owner A free the same block at once (a double free from
// two vCPUs) while owner B keeps allocating blocks of that order: the loser
// must fail even when B has been handed the block in between -- its state
// then reads `used` again, so only the owner and generation tell.
// order 0: the per-CPU cache path. order 3: the buddy path, on a node
// filled with other blocks so the freed block is the only one B can get,
// with a thread hammering the node lock (a loser that read the descriptor
// then waits for the lock, the widest window a stale check can have).
struct DoubleFreeOutcome {
  std::uint64_t rounds = 0, freed_by_a = 0;
  int owner_free_failed = 0, conflicts = 0;
};

DoubleFreeOutcome double_free_race(PageAllocator& pa, const Topology& topo, unsigned order,
                                   bool hammer_lock, std::uint64_t rounds) {
  const NodeId node = topo.node_at(0).id;
  Holders holders(end_of(topo));
  constexpr OwnerId kA = 1, kB = 2, kFiller = 9;
  std::vector<Mfn> filler;
  if (order > 0) {  // all but one block of this order held by a bystander
    const std::uint64_t blocks = topo.node_at(0).frame_count() >> order;
    for (std::uint64_t i = 0; i + 1 < blocks; ++i)
      if (auto r = pa.alloc(req(order, node, AllocFlags::exact_node, kFiller))) filler.push_back(r->mfn);
  }
  DoubleFreeOutcome out;
  std::atomic<std::uint64_t> round{0}, freed_by_a{0}, attempts{0};
  std::atomic<int> owner_free_failed{0}, conflicts{0};
  std::atomic<Mfn> target{kInvalidMfn};
  std::atomic<bool> done{false};
  StartLine start;
  const int parties = hammer_lock ? 4 : 3;
  // Bounded in work and in time (a loaded 2-core machine runs few rounds).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> rounds_run{0};
  auto freer = [&](bool leader) {
    start.arrive_and_wait(parties);
    for (std::uint64_t r = 1; r <= rounds; ++r) {
      if (leader && std::chrono::steady_clock::now() > deadline) {
        stop = true;  // the follower, waiting for round r, sees it and leaves
        break;
      }
      if (leader) {
        Result<Allocation> got = Errc::no_memory;
        while (!(got = pa.alloc(req(order, node, AllocFlags::exact_node, kA)))) std::this_thread::yield();
        if (!holders.take(got->mfn, order, kA)) ++conflicts;
        holders.give_back(got->mfn, order);  // A is about to free it
        target.store(got->mfn, std::memory_order_release);
        round.store(r, std::memory_order_release);
      } else {
        while (round.load(std::memory_order_acquire) < r && !stop.load()) std::this_thread::yield();
        if (round.load(std::memory_order_acquire) < r) break;
      }
      if (pa.free(target.load(std::memory_order_acquire), order, kA)) ++freed_by_a;
      attempts.fetch_add(1);  // both have tried before the next round starts
      while (attempts.load(std::memory_order_acquire) < 2 * r) std::this_thread::yield();
      if (leader) rounds_run = r;
    }
    done = true;
  };
  std::thread a1(freer, true), a2(freer, false);
  std::thread b([&] {
    std::vector<Mfn> mine;
    start.arrive_and_wait(parties);
    while (!done.load(std::memory_order_acquire)) {
      if (auto r = pa.alloc(req(order, node, AllocFlags::exact_node, kB))) {
        if (!holders.take(r->mfn, order, kB)) ++conflicts;
        mine.push_back(r->mfn);
      }
      if (mine.size() >= 2 || (!mine.empty() && (order > 0 || done.load()))) {
        for (Mfn m : mine) {
          holders.give_back(m, order);
          if (!pa.free(m, order, kB)) ++owner_free_failed;
        }
        mine.clear();
      }
    }
    for (Mfn m : mine) {
      holders.give_back(m, order);
      if (!pa.free(m, order, kB)) ++owner_free_failed;
    }
  });
  std::thread hammer;
  if (hammer_lock)
    hammer = std::thread([&] {
      start.arrive_and_wait(parties);
      while (!done.load(std::memory_order_acquire)) (void)pa.stats(node);
    });
  a1.join();
  a2.join();
  b.join();
  if (hammer.joinable()) hammer.join();
  for (Mfn m : filler) (void)pa.free(m, order, kFiller);
  out.rounds = rounds_run;
  out.freed_by_a = freed_by_a;
  out.owner_free_failed = owner_free_failed;
  out.conflicts = conflicts;
  return out;
}

TEST_P(heap_ownership_stress, DoubleFreeNeverReleasesAnotherOwnersBlock) {
  const Topology topo = test::one_node(256);
  auto pa = make(topo);
  if (!pa) GTEST_SKIP() << "no rseq here";
  for (const auto& [order, hammer, rounds] :
       {std::tuple{0u, false, std::uint64_t{kRounds / 10}}, std::tuple{3u, true, std::uint64_t{kRounds / 20}}}) {
    const DoubleFreeOutcome o = double_free_race(*pa, topo, order, hammer, rounds);
    EXPECT_EQ(o.freed_by_a, o.rounds) << "order " << order << ": a double free released a block that was not A's";
    EXPECT_EQ(o.owner_free_failed, 0) << "order " << order << ": B could not free its own block";
    EXPECT_EQ(o.conflicts, 0) << "order " << order << ": a block had two holders";
    EXPECT_TRUE(pa->check_frames());
    EXPECT_EQ(pa->stats(0).value().used, 0u);
  }
}

// Owner 0 frees frames it never held -- exactly those owner 5 keeps taking
// and returning (the whole node is 64 frames) -- through free, free_bulk
// and split. A frame never allocated, or allocated to someone else, must
// match no owner at any instant of its hand-over.
TEST_P(heap_ownership_stress, NeverAllocatedFramesMatchNoOwner) {
  const Topology topo = test::one_node(64);
  auto pa = make(topo);
  if (!pa) GTEST_SKIP() << "no rseq here";
  constexpr OwnerId kZero = 0, kFive = 5;
  std::atomic<int> racer_ok{0}, owner_failed{0};
  std::atomic<bool> done{false};
  StartLine start;
  std::thread owner([&] {
    std::vector<Mfn> frames(48);
    start.arrive_and_wait(2);
    for (int i = 0; i < kRounds / 10; ++i) {
      if (pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, kFive), frames)) {
        if (!pa->free_bulk(frames, kFive)) ++owner_failed;
      }
      for (unsigned order : {0u, 0u, 3u}) {
        auto r = pa->alloc(req(order, 0, 0, kFive));
        if (r && !pa->free(r->mfn, order, kFive)) ++owner_failed;
      }
    }
    done = true;
  });
  std::thread racer([&] {
    start.arrive_and_wait(2);
    for (Mfn m = 0; !done.load(std::memory_order_acquire); m = (m + 1) % 64) {
      if (pa->free(m, 0, kZero)) ++racer_ok;
      const Mfn one[1] = {m};
      if (pa->free_bulk(one, kZero)) ++racer_ok;
      if (m % 8 == 0 && pa->split(m, 3, kZero)) ++racer_ok;
    }
  });
  owner.join();
  racer.join();
  EXPECT_EQ(racer_ok.load(), 0) << "owner 0 freed or split frames it never held";
  EXPECT_EQ(owner_failed.load(), 0) << "owner 5 lost its frames to the racer";
  EXPECT_TRUE(pa->check_frames());
  EXPECT_EQ(pa->stats(0).value().used, 0u);
}

TEST_P(heap_ownership_stress, CheckFramesNeverReportsFalseCorruption) {
  const Topology topo = test::two_nodes(2048);
  auto pa = make(topo);
  if (!pa) GTEST_SKIP() << "no rseq here";
  constexpr int kChecks = 200;
  std::atomic<int> checks{0}, invalid{0}, busy{0};
  std::atomic<std::uint64_t> progress{0};
  std::thread worker([&] {
    std::mt19937 rng(11);
    std::vector<std::pair<Mfn, unsigned>> mine;
    std::vector<Mfn> bulk(32);
    for (std::uint64_t i = 0; checks.load(std::memory_order_acquire) < kChecks; ++i) {
      progress.store(i, std::memory_order_release);
      if (i % 16 == 0 && pa->alloc_bulk(req(0, kNoNode, 0, 3), bulk)) (void)pa->free_bulk(bulk, 3);
      if (mine.size() < 48 && (rng() % 3 != 0 || mine.empty())) {
        // Every cached order (0..4 and 9) and one that is not (5).
        constexpr unsigned kOrders[8] = {0, 0, 1, 2, 3, 4, 5, 9};
        const unsigned order = kOrders[rng() % 8];
        if (auto r = pa->alloc(req(order, kNoNode, 0, 3))) mine.push_back({r->mfn, order});
      } else {
        const std::size_t k = rng() % mine.size();
        (void)pa->free(mine[k].first, mine[k].second, 3);
        mine[k] = mine.back();
        mine.pop_back();
      }
    }
    for (auto [m, o] : mine) (void)pa->free(m, o, 3);
  });
  // A check stops the world: the worker makes some progress between two
  // checks (the checker waits on its counter), or the checker starves it.
  std::uint64_t seen = 0;
  while (checks.load() < kChecks) {
    if (progress.load(std::memory_order_acquire) < seen + 16) {
      std::this_thread::yield();
      continue;
    }
    seen = progress.load(std::memory_order_acquire);
    const Status st = pa->check_frames();
    if (!st && st.error() == Errc::busy) ++busy;
    else if (!st) ++invalid;
    checks.fetch_add(1, std::memory_order_release);
  }
  worker.join();
  EXPECT_EQ(invalid.load(), 0) << "check_frames reported corruption on a healthy allocator ("
                               << busy.load() << " of " << kChecks << " busy)";
  std::printf("busy %d of %d\n", busy.load(), kChecks);
  EXPECT_TRUE(pa->check_frames());  // quiescent: exact
}

INSTANTIATE_TEST_SUITE_P(paths, heap_ownership_stress, ::testing::Values(false, true),
                         [](const auto& p) { return std::string(p.param ? "rseq" : "locked"); });

}  // namespace
}  // namespace numaheap
