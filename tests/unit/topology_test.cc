// Topology built through the builder API: validation, queries, fallback.
#include <gtest/gtest.h>

#include "numaheap/topology.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

Topology seed_like() {
  TopologyBuilder b("test");
  for (NodeId n = 0; n < 4; ++n) b.add_node(n, {4 * n, 4 * n + 1, 4 * n + 2, 4 * n + 3}, 2 * kGiB);
  const std::uint32_t d[4][4] = {{10, 21, 31, 21}, {21, 10, 21, 31}, {31, 21, 10, 21}, {21, 31, 21, 10}};
  for (NodeId a = 0; a < 4; ++a)
    for (NodeId c = 0; c < 4; ++c) b.set_distance(a, c, d[a][c]);
  auto t = b.build();
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return *t;
}

}  // namespace

TEST(Topology, BasicQueries) {
  Topology t = seed_like();
  EXPECT_EQ(t.node_count(), 4u);
  EXPECT_EQ(t.distance(0, 2), 31u);
  EXPECT_EQ(t.distance(3, 3), 10u);
  EXPECT_EQ(t.node_of_cpu(5), 1u);
  EXPECT_EQ(t.node_of_cpu(16), kNoNode);
  EXPECT_EQ(t.memory_nodes().to_string(), "0-3");
  EXPECT_EQ(t.index_of(7), -1);
  EXPECT_EQ(t.distance(0, 7), kMaxDistance);
}

TEST(Topology, FallbackOrderByDistanceWithTiesSpread) {
  Topology t = seed_like();
  // Node 0: self, then 1 and 3 (both 21), then 2 (31).
  auto f0 = t.fallback_order(0);
  ASSERT_EQ(f0.size(), 4u);
  EXPECT_EQ(f0[0], 0u);
  EXPECT_EQ(f0[3], 2u);
  // Node 2 also sees 1 and 3 at 21: it must not start on the same member
  // that node 0 put first.
  auto f2 = t.fallback_order(2);
  EXPECT_EQ(f2[0], 2u);
  EXPECT_NE(f0[1], f2[1]);
  EXPECT_EQ(f2[3], 0u);
}

TEST(Topology, MemorylessNodesAreNeverTargets) {
  TopologyBuilder b;
  b.add_node(0, {0}, kGiB).add_node(1, {1}, 0).add_node(4, {}, kGiB);
  auto t = b.build();
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->memory_nodes().to_string(), "0,4");
  auto f1 = t->fallback_order(1);
  ASSERT_EQ(f1.size(), 2u);
  for (NodeId n : f1) EXPECT_NE(n, 1u);
  EXPECT_FALSE(t->distances_given());
  EXPECT_EQ(t->distance(0, 4), 20u);
  EXPECT_EQ(t->distance(4, 4), 10u);
  EXPECT_EQ(t->raw_distance(0, 4), 0u);
}

TEST(Topology, DefaultFrameLayoutSkipsMfnZeroAndMemorylessNodes) {
  TopologyBuilder b;
  b.add_node(0, {0}, kGiB + 4096).add_node(1, {1}, 0).add_node(2, {}, kGiB);
  auto t = b.build();
  ASSERT_TRUE(t.has_value());
  const auto& n0 = *t->find(0);
  ASSERT_EQ(n0.frames.size(), 1u);
  EXPECT_GT(n0.frames[0].first_mfn, 0u);
  EXPECT_EQ(n0.frame_count(), (kGiB + 4096) / 4096);
  EXPECT_TRUE(t->find(1)->frames.empty());
  EXPECT_EQ(t->find(2)->frames[0].first_mfn % (1u << 18), 0u);
  EXPECT_EQ(t->node_of_mfn(n0.frames[0].first_mfn), 0u);
  EXPECT_EQ(t->node_of_mfn(0), kNoNode);
}

TEST(Topology, ValidationErrorsNameTheProblem) {
  struct Case {
    std::function<void(TopologyBuilder&)> setup;
    const char* what;
  };
  std::vector<Case> cases = {
      {[](TopologyBuilder&) {}, "no NUMA nodes"},
      {[](TopologyBuilder& b) { b.add_node(1024, {}, kGiB); }, "out of range"},
      {[](TopologyBuilder& b) { b.add_node(1, {}, kGiB).add_node(1, {}, kGiB); }, "listed twice"},
      {[](TopologyBuilder& b) { b.add_node(0, {3, 3}, kGiB); }, "cpu 3 listed twice"},
      {[](TopologyBuilder& b) { b.add_node(0, {3}, kGiB).add_node(1, {3}, kGiB); },
       "cpu 3 listed in node 0 and node 1"},
      {[](TopologyBuilder& b) { b.add_node(0, {}, kGiB, 2 * kGiB); }, "exceeds its size"},
      {[](TopologyBuilder& b) { b.add_node(0, {}, kGiB).set_distance(0, 5, 20); }, "unknown node 5"},
      {[](TopologyBuilder& b) { b.add_node(0, {}, kGiB).set_distance(0, 0, 300); }, "outside 1..255"},
      {[](TopologyBuilder& b) {
         b.add_node(0, {}, kGiB).add_node(1, {}, kGiB).set_distance(0, 0, 30).set_distance(0, 1, 20);
       },
       "distance to itself (30) exceeds its distance to node 1 (20)"},
      {[](TopologyBuilder& b) { b.add_node(0, {}, kGiB).set_frames(0, {{0, 10}}); }, "mfn 0"},
      {[](TopologyBuilder& b) {
         b.add_node(0, {}, kGiB).add_node(1, {}, kGiB).set_frames(0, {{10, 10}}).set_frames(1, {{15, 10}});
       },
       "overlap"},
      {[](TopologyBuilder& b) { b.add_node(0, {}, kGiB).set_frames(3, {{10, 10}}); }, "unknown node 3"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    TopologyBuilder b("case");
    cases[i].setup(b);
    auto t = b.build();
    ASSERT_FALSE(t.has_value()) << "case " << i;
    EXPECT_NE(t.error().message.find(cases[i].what), std::string::npos)
        << "case " << i << ": " << t.error().message;
    EXPECT_EQ(t.error().message.rfind("case: ", 0), 0u) << t.error().message;
  }
}

TEST(Topology, AsymmetricDistancesAreKept) {
  TopologyBuilder b;
  b.add_node(0, {0}, kGiB).add_node(1, {1}, kGiB);
  b.set_distance(0, 0, 10).set_distance(0, 1, 20).set_distance(1, 0, 30).set_distance(1, 1, 10);
  auto t = b.build();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->distance(0, 1), 20u);
  EXPECT_EQ(t->distance(1, 0), 30u);
}
