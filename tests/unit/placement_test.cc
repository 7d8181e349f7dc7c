// Placer: behaviour on the seed machine, and quality against an exhaustive
// search on the real machines of tests/data (<= 8 nodes exhaustively).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "numaheap/placement.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

GuestSpec guest(std::string name, std::uint64_t mb, std::uint32_t vcpus) {
  GuestSpec g;
  g.name = std::move(name);
  g.memory_bytes = mb * kMiB;
  g.vcpus = vcpus;
  return g;
}

Topology fixture(const std::string& machine) {
  auto t = load_topology_numactl_file(std::string(NUMAHEAP_TEST_DATA) + "/topologies/" + machine +
                                      "/numactl-H.txt");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return *t;
}

std::uint64_t distance_sum(const Topology& t, const NodeMask& set) {
  std::uint64_t s = 0;
  for (NodeId a : set)
    for (NodeId b : set)
      if (a != b) s += t.distance(a, b);
  return s;
}

struct Exhaustive {
  std::size_t count = 0;           // smallest feasible set size
  std::uint64_t min_distance = 0;  // smallest distance sum among those
};

// Every subset of the memory nodes: the smallest size whose usable memory
// and CPUs fit (what the placer promises), and the best distance sum there.
Exhaustive exhaustive(const Topology& t, const Placer& placer, const GuestSpec& g,
                      const std::vector<NodeUsage>& usage) {
  std::vector<NodeId> ids;
  for (const auto& n : t.nodes()) ids.push_back(n.id);
  const std::size_t n = ids.size();
  std::uint64_t all_cpus = 0;
  for (const auto& node : t.nodes()) all_cpus += node.cpus.size();
  const std::uint64_t need_cpus = all_cpus >= g.vcpus ? g.vcpus : 0;
  Exhaustive best{n + 1, 0};
  for (std::uint64_t bits = 1; bits < (1ull << n); ++bits) {
    NodeMask set;
    std::uint64_t mem = 0, cpus = 0;
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i)
      if (bits >> i & 1) {
        set.set(ids[i]);
        const NodeInfo& node = t.node_at(i);
        std::uint64_t wm = placer.watermark(node.id);
        std::uint64_t f = usage[i].free_bytes;
        if (!node.has_memory() || f <= wm) ok = false;
        else mem += (f - wm) / 4096 * 4096;
        cpus += node.cpus.size();
      }
    if (!ok || mem < g.memory_bytes || cpus < need_cpus) continue;
    std::size_t k = set.count();
    std::uint64_t d = distance_sum(t, set);
    if (k < best.count || (k == best.count && d < best.min_distance)) best = {k, d};
  }
  return best;
}

}  // namespace

TEST(Placement, SmallGuestFitsOnOneNode) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  auto p = placer.place(guest("small", 1024, 2), usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes.count(), 1u);
  ASSERT_EQ(p->memory.size(), 1u);
  EXPECT_EQ(p->memory[0].bytes, 1024 * kMiB);
  EXPECT_EQ(p->vcpu_nodes.size(), 2u);
  EXPECT_EQ(p->vcpu_nodes[0], p->memory[0].node);
  EXPECT_NE(p->reason.find("fits on one node"), std::string::npos) << p->reason;
  // The node with the most free memory (node 0: 1931 MB) wins on an idle host.
  EXPECT_EQ(p->memory[0].node, 0u);
}

TEST(Placement, SpillsToTheNearestNodeNotTheFarthest) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  auto p = placer.place(guest("big", 3000, 4), usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(p->nodes.count(), 2u);
  NodeId a = p->nodes.first(), b = p->nodes.next(a + 1);
  EXPECT_EQ(t.distance(a, b), 21u) << p->nodes.to_string();  // never a 31 pair
  std::uint64_t sum = 0;
  for (const auto& s : p->memory) sum += s.bytes;
  EXPECT_EQ(sum, 3000 * kMiB);
  EXPECT_NE(p->reason.find("2 nodes needed"), std::string::npos) << p->reason;
}

TEST(Placement, MoreVcpusThanANodeHasCpusTakesTwoNodes) {
  Topology t = builtin_default_topology();  // 4 CPUs per node
  Placer placer(t);
  auto usage = placer.idle_usage();
  auto p = placer.place(guest("wide", 512, 8), usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes.count(), 2u);
  EXPECT_EQ(p->vcpu_nodes.size(), 8u);
}

TEST(Placement, GuestsGoNearTheirDevices) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  GuestSpec g = guest("nvme-user", 1024, 2);
  g.devices = {DeviceSpec{"nvme0", 2}};
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->nodes.to_string(), "2");
  EXPECT_NE(p->reason.find("all devices local"), std::string::npos) << p->reason;
}

TEST(Placement, AffinityAndAntiAffinity) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  PlacementHints near3;
  near3.affinity_nodes = NodeMask::single(3);
  auto p = placer.place(guest("peer", 1024, 2), usage, near3);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->nodes.to_string(), "3");
  PlacementHints apart;
  apart.anti_affinity_nodes = NodeMask::single(0);
  auto q = placer.place(guest("apart", 1024, 2), usage, apart);
  ASSERT_TRUE(q.has_value());
  EXPECT_FALSE(q->nodes.test(0));
}

TEST(Placement, SequentialGuestsSpreadAndRunOut) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  NodeMask used;
  for (int i = 0; i < 4; ++i) {
    auto p = placer.place(guest("g" + std::to_string(i), 1500, 2), usage);
    ASSERT_TRUE(p.has_value()) << i << ": " << p.error().message;
    EXPECT_EQ(p->nodes.count(), 1u);
    EXPECT_FALSE(used.intersects(p->nodes)) << "guest " << i << " on " << p->nodes.to_string();
    used |= p->nodes;
    placer.commit(*p, usage);
  }
  auto full = placer.place(guest("late", 1500, 2), usage);
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, Errc::no_memory);
  EXPECT_NE(full.error().message.find("needs 1500 MB"), std::string::npos) << full.error().message;
}

TEST(Placement, AllowedNodesAreHonoured) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  GuestSpec g = guest("tuned", 2500, 2);
  g.allowed_nodes = *NodeMask::parse("1,3");
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes.to_string(), "1,3");
  g.memory_bytes = 5000 * kMiB;
  EXPECT_FALSE(placer.place(g, usage).has_value());
}

TEST(Placement, VnumaPinnedAndAuto) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  GuestSpec g = guest("vnuma", 2048, 4);
  g.vnodes = {VNodeSpec{1024 * kMiB, {0, 1}, 2, {}}, VNodeSpec{1024 * kMiB, {2, 3}, kNoNode, {}}};
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(p->vnode_pnodes.size(), 2u);
  EXPECT_EQ(p->vnode_pnodes[0], 2u);
  EXPECT_NE(p->vnode_pnodes[1], 2u);                  // its own node
  EXPECT_EQ(t.distance(2, p->vnode_pnodes[1]), 21u);  // and a near one
  EXPECT_EQ(p->vcpu_nodes[0], 2u);
  EXPECT_EQ(p->vcpu_nodes[3], p->vnode_pnodes[1]);
  g.vnodes[0].memory_bytes = 1900 * kMiB;  // cannot fit above the watermark
  g.vnodes[1].memory_bytes = 148 * kMiB;
  auto q = placer.place(g, usage);
  ASSERT_FALSE(q.has_value());
  EXPECT_NE(q.error().message.find("vnode 0 needs 1900 MB on node 2"), std::string::npos)
      << q.error().message;
}

TEST(Placement, RejectsBadInputWithoutSideEffects) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  auto before = usage;
  EXPECT_FALSE(placer.place(guest("", 0, 1), usage).has_value());
  std::vector<NodeUsage> short_usage(2);
  auto r = placer.place(guest("x", 10, 1), short_usage);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  for (std::size_t i = 0; i < usage.size(); ++i) EXPECT_EQ(usage[i].free_bytes, before[i].free_bytes);
}

// The quality bar: on every real machine with <= 8 nodes, for a batch of
// guests placed in order, the placer uses as few nodes as an exhaustive
// search and its distance sum is within 10% of the best possible.
TEST(PlacementQuality, MatchesExhaustiveSearchOnRealMachines) {
  for (const char* machine : {"seed-4node-libvirt", "intel-2s-xeon-e5-2680", "arm-kunpeng920-4n",
                              "amd-4s-opteron6276-8n", "power7-ibm-9179-8n-sparse"}) {
    Topology t = fixture(machine);
    Placer placer(t);
    auto usage = placer.idle_usage();
    std::uint64_t node_mb = 0;
    std::uint32_t node_cpus = 0;
    for (const auto& n : t.nodes()) {
      node_mb = std::max(node_mb, n.memory_bytes >> 20);
      node_cpus = std::max<std::uint32_t>(node_cpus, static_cast<std::uint32_t>(n.cpus.size()));
    }
    // A batch: half a node, 1.5 nodes, 2.5 nodes, a quarter, a wide one...
    const double sizes[] = {0.5, 1.5, 0.25, 2.5, 0.3, 1.2, 0.1};
    int placed = 0;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      GuestSpec g = guest(std::string(machine) + "-" + std::to_string(i),
                          static_cast<std::uint64_t>(sizes[i] * static_cast<double>(node_mb)),
                          std::max<std::uint32_t>(1, node_cpus / 2));
      auto best = exhaustive(t, placer, g, usage);
      auto p = placer.place(g, usage);
      if (best.count > t.node_count()) {
        EXPECT_FALSE(p.has_value()) << g.name << " fits nowhere, yet was placed";
        continue;
      }
      ASSERT_TRUE(p.has_value()) << g.name << ": " << p.error().message;
      EXPECT_EQ(p->nodes.count(), best.count) << g.name << " on " << p->nodes.to_string();
      std::uint64_t d = distance_sum(t, p->nodes);
      EXPECT_LE(static_cast<double>(d), 1.10 * static_cast<double>(best.min_distance))
          << g.name << " on " << p->nodes.to_string() << ": " << p->reason;
      placer.commit(*p, usage);
      ++placed;
    }
    EXPECT_GE(placed, 4) << machine;
  }
}

TEST(Placement, WorksBeyondSixteenNodes) {
  // 64 nodes in 8 groups of 8: 10 local, 16 in group, 32 across.
  TopologyBuilder b("64n");
  for (NodeId n = 0; n < 64; ++n) b.add_node(n, {2 * n, 2 * n + 1}, 4096 * kMiB);
  for (NodeId a = 0; a < 64; ++a)
    for (NodeId c = 0; c < 64; ++c) b.set_distance(a, c, a == c ? 10 : (a / 8 == c / 8 ? 16 : 32));
  auto t = b.build();
  ASSERT_TRUE(t.has_value());
  Placer placer(*t);
  auto usage = placer.idle_usage();
  auto p = placer.place(guest("huge", 5 * 4000, 10), usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes.count(), 5u);
  NodeId group = p->nodes.first() / 8;
  for (NodeId n : p->nodes) EXPECT_EQ(n / 8, group) << p->nodes.to_string();
}
