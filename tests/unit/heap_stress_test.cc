// Concurrency: threads allocating and freeing across nodes (every frame has
// at most one holder at any time), and claims under contention (never
// over-committed: every successful claim can be allocated in full later).
// Run under TSan in CI.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

using test::req;

class heap_stress_caches : public ::testing::TestWithParam<bool> {};

// Both per-CPU cache paths: locked, and lock-free on rseq.
TEST_P(heap_stress_caches, ThreadsAllocFreeAcrossNodes) {
  const Topology topo = test::two_nodes(4096);
  HeapConfig hc;
  hc.pcp_batch = 8;
  hc.pcp_high = 32;
  hc.use_rseq = GetParam();
  auto pa = test::make(topo, {}, hc);
  ASSERT_TRUE(pa);
  if (GetParam() && !pa->lockless_cpu_caches()) GTEST_SKIP() << "no rseq here";
  Mfn end = 0;
  for (const NodeInfo& n : topo.nodes()) end = std::max(end, n.frames.back().first_mfn + n.frames.back().count);
  std::vector<std::atomic<std::uint32_t>> holder(end);  // frame -> owner, 0 = none
  constexpr int kThreads = 4;
  std::atomic<int> conflicts{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const OwnerId me = static_cast<OwnerId>(t + 1);
      std::mt19937 rng(static_cast<unsigned>(t * 7919 + 1));
      std::vector<std::pair<Mfn, unsigned>> mine;
      for (int i = 0; i < 20000; ++i) {
        if (mine.size() < 64 && (rng() % 3 != 0 || mine.empty())) {
          static constexpr unsigned kOrders[] = {0, 0, 0, 0, 1, 3, 9};
          AllocRequest r = req(kOrders[rng() % 7], rng() % 3 == 0 ? kNoNode : rng() % 2,
                               rng() % 4 == 0 ? AllocFlags::exact_node : 0, me);
          auto a = pa->alloc(r);
          if (!a) continue;
          for (std::uint64_t f = 0; f < frames_of_order(r.order); ++f) {
            std::uint32_t expect = 0;
            if (!holder[a->mfn + f].compare_exchange_strong(expect, me)) ++conflicts;
          }
          mine.push_back({a->mfn, r.order});
        } else {
          const std::size_t k = rng() % mine.size();
          auto [m, o] = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          for (std::uint64_t f = 0; f < frames_of_order(o); ++f) holder[m + f].store(0);
          if (!pa->free(m, o, me)) ++errors;
        }
      }
      for (auto [m, o] : mine) {
        for (std::uint64_t f = 0; f < frames_of_order(o); ++f) holder[m + f].store(0);
        if (!pa->free(m, o, me)) ++errors;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(pa->check_frames());
  pa->drain_all();
  for (NodeId n : {0u, 1u}) {
    auto st = pa->stats(n).value();
    EXPECT_EQ(st.free, 4096u);
    EXPECT_EQ(st.largest_free_order, 12);
  }
}

INSTANTIATE_TEST_SUITE_P(heap_stress, heap_stress_caches, ::testing::Values(false, true),
                         [](const auto& param_info) {
                           return std::string(param_info.param ? "rseq" : "locked");
                         });

TEST(heap_stress, ClaimsNeverOvercommitted) {
  const Topology topo = test::two_nodes(2048);
  auto pa = test::make(topo);
  ASSERT_TRUE(pa);
  struct Won { NodeId node; std::uint64_t pages; };
  constexpr int kClaimers = 2, kAllocators = 2;
  std::vector<std::vector<Won>> won(kClaimers);
  std::vector<std::vector<std::pair<Mfn, unsigned>>> taken(kAllocators);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClaimers; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 11));
      for (int i = 0; i < 400; ++i) {
        const std::uint64_t pages = 1 + rng() % 48;
        const NodeId node = rng() % 3 == 0 ? kNoNode : rng() % 2;
        if (pa->claim(static_cast<OwnerId>(100 + t), pages, node)) won[t].push_back({node, pages});
      }
    });
  for (int t = 0; t < kAllocators; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 23));
      for (int i = 0; i < 3000; ++i) {
        const unsigned order = rng() % 4 == 0 ? 2 : 0;
        auto a = pa->alloc(req(order, rng() % 2, 0, static_cast<OwnerId>(200 + t)));
        if (a) taken[t].push_back({a->mfn, order});
        if (rng() % 5 == 0 && !taken[t].empty()) {
          auto [m, o] = taken[t].back();
          taken[t].pop_back();
          EXPECT_TRUE(pa->free(m, o, static_cast<OwnerId>(200 + t)));
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_TRUE(pa->check_invariants());
  // Every claim that succeeded must now be allocatable in full by its owner.
  for (int t = 0; t < kClaimers; ++t) {
    const OwnerId owner = static_cast<OwnerId>(100 + t);
    std::uint64_t on_node[2] = {0, 0}, global = 0;
    for (const Won& w : won[t]) (w.node == kNoNode ? global : on_node[w.node]) += w.pages;
    EXPECT_EQ(pa->claimed_by(owner), on_node[0] + on_node[1] + global);
    for (NodeId n : {0u, 1u})
      for (std::uint64_t i = 0; i < on_node[n]; ++i)
        ASSERT_TRUE(pa->alloc(req(0, n, AllocFlags::exact_node | AllocFlags::use_claim, owner)))
            << "owner " << owner << " node " << n << " page " << i;
    for (std::uint64_t i = 0; i < global; ++i)
      ASSERT_TRUE(pa->alloc(req(0, kNoNode, AllocFlags::use_claim, owner))) << "global page " << i;
    EXPECT_EQ(pa->claimed_by(owner), 0u);
  }
  EXPECT_TRUE(pa->check_frames());
}

}  // namespace
}  // namespace numaheap
