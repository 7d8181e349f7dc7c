// Placer, issue 19: the spec's constraints are honoured -- memory modes
// (bind / prefer / interleave) with the guest's and each vnode's node sets,
// hard and soft vCPU pins, and per-node CPU capacity for guests without
// vNUMA. Bind never places elsewhere (no_memory naming the constraint),
// prefer falls back with a warning, interleave spreads evenly and records
// an interleaved vnode's pieces in Placement::vnode_memory, which
// GuestMemory lays out.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "numaheap/guest_memory.h"
#include "numaheap/page_allocator.h"
#include "numaheap/placement.h"
#include "numaheap/topology_io.h"
#include "placement_fixtures.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

// The builtin machine: 4 nodes of 4 CPUs and about 2 GB, ring distances
// (0-1, 1-2, 2-3, 3-0 at 21; 0-2 and 1-3 at 31).
GuestSpec flat(std::uint64_t mb, std::uint32_t vcpus) {
  GuestSpec g;
  g.name = "g";
  g.memory_bytes = mb * kMiB;
  g.vcpus = vcpus;
  return g;
}

GuestSpec vnuma(std::size_t cells, std::uint64_t mb_each, std::uint32_t vcpus_each) {
  return placement_test::vnuma("g", cells, mb_each, vcpus_each);
}

NodeMask mask(std::initializer_list<NodeId> ids) {
  NodeMask m;
  for (NodeId id : ids) m.set(id);
  return m;
}

VcpuPin pin(std::uint32_t vcpu, std::initializer_list<std::uint32_t> cpus, bool soft = false) {
  VcpuPin p;
  p.vcpu = vcpu;
  p.soft = soft;
  for (auto c : cpus) (void)p.cpus.push_back(c);
  return p;
}

std::string reason(const Placement& p) { return std::string(p.reason.data(), p.reason.size()); }

std::size_t on(const Placement& p, NodeId node) {
  return static_cast<std::size_t>(std::count(p.vcpu_nodes.begin(), p.vcpu_nodes.end(), node));
}

}  // namespace

TEST(PlacementConstraints, GuestBindStaysInItsNodesetOrFailsNamingIt) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = flat(3000, 4);
  g.allowed_nodes = mask({2, 3});
  g.memory_mode = MemoryPolicy::bind;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes, mask({2, 3}));
  // One node cannot hold 3000 MB: refused, never placed elsewhere.
  g.allowed_nodes = mask({1});
  auto no = placer.place(g, placer.idle_usage());
  ASSERT_FALSE(no.has_value());
  EXPECT_EQ(no.error().code, Errc::no_memory);
  EXPECT_NE(no.error().message.find("nodeset 1, memory mode bind"), std::string::npos) << no.error().message;
  // unset behaves as bind.
  g.memory_mode = MemoryPolicy::unset;
  EXPECT_FALSE(placer.place(g, placer.idle_usage()).has_value());
}

TEST(PlacementConstraints, GuestPreferTakesItsNodesFirstThenFallsBackWithAWarning) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = flat(1000, 2);
  g.allowed_nodes = mask({3});
  g.memory_mode = MemoryPolicy::prefer;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes, mask({3}));
  EXPECT_EQ(reason(*p).find("warning"), std::string::npos) << reason(*p);
  g.memory_bytes = 3000 * kMiB;
  auto big = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(big.has_value()) << big.error().message;
  EXPECT_EQ(big->nodes.count(), 2u);
  EXPECT_EQ(reason(*big).rfind("warning: preferred nodes 3 could not hold it", 0), 0u) << reason(*big);
}

TEST(PlacementConstraints, GuestInterleaveSpreadsEvenlyOverTheWholeNodeset) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = flat(1200, 3);
  g.allowed_nodes = mask({0, 1, 2});
  g.memory_mode = MemoryPolicy::interleave;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(p->memory.size(), 3u);  // 1200 MB fit on one node; interleave uses all three
  for (const auto& s : p->memory) EXPECT_EQ(s.bytes, 400 * kMiB) << "node " << s.node;
  EXPECT_NE(reason(*p).find("interleaved over 3 nodes"), std::string::npos) << reason(*p);
}

TEST(PlacementConstraints, VnodeNodesetsBindAndPreferAndInterleave) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = vnuma(3, 600, 1);
  g.vnodes[0].nodes = mask({2, 3});  // bind: one of 2, 3
  g.vnodes[1].nodes = mask({2, 3});
  g.vnodes[2].nodes = mask({0, 1});
  g.vnodes[2].memory_mode = MemoryPolicy::interleave;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_TRUE(mask({2, 3}).test(p->vnode_pnodes[0]));
  EXPECT_TRUE(mask({2, 3}).test(p->vnode_pnodes[1]));
  EXPECT_NE(p->vnode_pnodes[0], p->vnode_pnodes[1]);
  // vnode 2: 300 MB on each of nodes 0 and 1, recorded piece by piece.
  ASSERT_EQ(p->vnode_memory.size(), 4u);
  EXPECT_EQ(p->vnode_memory[2].vnode, 2u);
  EXPECT_EQ(p->vnode_memory[2].node, 0u);
  EXPECT_EQ(p->vnode_memory[2].bytes, 300 * kMiB);
  EXPECT_EQ(p->vnode_memory[3].node, 1u);
  EXPECT_EQ(p->vnode_memory[3].bytes, 300 * kMiB);
  EXPECT_NE(reason(*p).find("vnode 2 -> nodes 0-1 (interleaved)"), std::string::npos) << reason(*p);
  std::uint64_t sum = 0;
  for (const auto& s : p->memory) sum += s.bytes;
  EXPECT_EQ(sum, g.memory_bytes);

  // Bound vnodes that do not fit their nodeset: refused, naming it.
  GuestSpec full = vnuma(3, 1500, 1);
  for (auto& vn : full.vnodes) vn.nodes = mask({1, 2});
  auto no = placer.place(full, placer.idle_usage());
  ASSERT_FALSE(no.has_value());
  EXPECT_EQ(no.error().code, Errc::no_memory);
  EXPECT_NE(no.error().message.find("is bound to nodes 1-2 (memory mode bind)"), std::string::npos)
      << no.error().message;
  // Preferred: the same guest goes elsewhere for the third vnode, with a warning.
  for (auto& vn : full.vnodes) vn.memory_mode = MemoryPolicy::prefer;
  auto pref = placer.place(full, placer.idle_usage());
  ASSERT_TRUE(pref.has_value()) << pref.error().message;
  EXPECT_NE(reason(*pref).find("preferred nodes 1-2 had no room"), std::string::npos) << reason(*pref);
  std::size_t in_set = 0;
  for (NodeId n : pref->vnode_pnodes) in_set += mask({1, 2}).test(n) ? 1 : 0;
  EXPECT_EQ(in_set, 2u);
}

// libvirt's strict memnode over several nodes is MPOL_BIND over them: a
// cell no single node of its set can hold takes memory from several.
TEST(PlacementConstraints, BoundVnodeTooBigForOneNodeOfItsSetSpreadsOverIt) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = vnuma(2, 1, 1);
  g.vnodes[0].memory_bytes = 3000 * kMiB;
  g.vnodes[1].memory_bytes = 200 * kMiB;
  g.memory_bytes = 3200 * kMiB;
  g.vnodes[0].nodes = mask({1, 2});
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  std::uint64_t on_set = 0;
  std::size_t pieces = 0;
  for (const auto& piece : p->vnode_memory)
    if (piece.vnode == 0) {
      EXPECT_TRUE(mask({1, 2}).test(piece.node)) << piece.node;
      on_set += piece.bytes;
      ++pieces;
    }
  EXPECT_EQ(on_set, 3000 * kMiB);
  EXPECT_EQ(pieces, 2u);
  EXPECT_NE(reason(*p).find("(bound to 1-2, spread: no single node of them holds it)"), std::string::npos)
      << reason(*p);
}

TEST(PlacementConstraints, PinnedVnodeWithPreferFallsBackButBindRefuses) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  std::vector<NodeUsage> usage = placer.idle_usage();
  usage[1].free_bytes = 300 * kMiB;  // node 1 nearly full
  GuestSpec g = vnuma(2, 800, 2);
  g.vnodes[0].pnode = 1;
  auto no = placer.place(g, usage);
  ASSERT_FALSE(no.has_value());
  EXPECT_NE(no.error().message.find("vnode 0 needs 800 MB on node 1 (pinned, memory mode bind)"),
            std::string::npos)
      << no.error().message;
  g.vnodes[0].memory_mode = MemoryPolicy::prefer;
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_NE(p->vnode_pnodes[0], 1u);
  EXPECT_NE(reason(*p).find("warning: vnode 0's preferred nodes 1 had no room"), std::string::npos) << reason(*p);
}

TEST(PlacementConstraints, HardPinsDecideTheVcpusNodeAndCountAgainstIt) {
  Topology t = builtin_default_topology();
  PlacementSession s(t);
  GuestSpec g = flat(1000, 4);
  (void)g.vcpu_pins.push_back(pin(kAllVcpus, {8, 9, 10, 11}));  // node 2's CPUs
  auto p = s.place(g);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(on(*p, 2), 4u);
  EXPECT_EQ(p->nodes, mask({2}));  // memory drawn to the pinned vCPUs
  EXPECT_EQ(s.usage()[2].vcpus, 4u);
  // A pin across nodes: the node of the memory when the pin includes it.
  GuestSpec v = vnuma(2, 500, 1);
  v.vnodes[0].pnode = 1;
  v.vnodes[1].pnode = 3;
  (void)v.vcpu_pins.push_back(pin(0, {0, 1, 2, 3, 4}));        // nodes 0 (4 CPUs) and 1 (1)
  (void)v.vcpu_pins.push_back(pin(1, {0, 1, 2, 4, 5}));        // nodes 0 (3) and 1 (2), not 3
  Placer placer(t);
  auto q = placer.place(v, placer.idle_usage());
  ASSERT_TRUE(q.has_value()) << q.error().message;
  EXPECT_EQ(q->vcpu_nodes[0], 1u);  // its vnode is on node 1, which the pin includes
  EXPECT_EQ(q->vcpu_nodes[1], 0u);  // not node 3: the pin's node with most CPUs
  EXPECT_NE(reason(*q).find("vnode 1's vCPUs 1 are pinned away from its memory"), std::string::npos) << reason(*q);
}

TEST(PlacementConstraints, HardPinsOverfillingANodeAreReported) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = flat(500, 6);
  (void)g.vcpu_pins.push_back(pin(kAllVcpus, {4, 5, 6, 7}));
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(on(*p, 1), 6u);
  EXPECT_NE(reason(*p).find("warning: node 1 runs 6 vCPUs on 4 CPUs"), std::string::npos) << reason(*p);
}

TEST(PlacementConstraints, SoftPinsPullMemoryAndPlaceVcpusWhereCpusAreFree) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = flat(800, 2);
  (void)g.vcpu_pins.push_back(pin(kAllVcpus, {12, 13}, true));  // node 3, preferred
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes, mask({3}));
  EXPECT_EQ(on(*p, 3), 2u);
  // With node 3 out of memory, the guest goes elsewhere (soft is not a limit).
  std::vector<NodeUsage> usage = placer.idle_usage();
  usage[3].free_bytes = 0;
  auto q = placer.place(g, usage);
  ASSERT_TRUE(q.has_value()) << q.error().message;
  EXPECT_FALSE(q->nodes.test(3));
}

TEST(PlacementConstraints, GuestsWithoutVnumaCountCpusPerNode) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  std::vector<NodeUsage> usage = placer.idle_usage();
  usage[0].vcpus = 2;  // node 0 has 2 of its 4 CPUs free
  GuestSpec g = flat(3000, 6);
  g.allowed_nodes = mask({0, 1});
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  // Memory about half and half; the vCPUs would be 3 + 3, but node 0 has 2 free.
  EXPECT_EQ(on(*p, 0), 2u);
  EXPECT_EQ(on(*p, 1), 4u);
  EXPECT_EQ(reason(*p).find("warning"), std::string::npos) << reason(*p);
  // Two nodes full of vCPUs: a 6-vCPU guest goes to the two with free CPUs.
  usage = placer.idle_usage();
  usage[0].vcpus = 4;
  usage[1].vcpus = 4;
  auto q = placer.place(flat(500, 6), usage);
  ASSERT_TRUE(q.has_value()) << q.error().message;
  EXPECT_EQ(q->nodes, mask({2, 3}));
}

TEST(PlacementConstraints, GuestMemoryLaysOutAnInterleavedVnodePieceByPiece) {
  Topology t = builtin_default_topology();
  auto pa = PageAllocator::create(t);
  ASSERT_TRUE(pa.has_value()) << pa.error().message;
  GuestSpec g = vnuma(2, 256, 1);
  g.vnodes[1].nodes = mask({2, 3});
  g.vnodes[1].memory_mode = MemoryPolicy::interleave;
  auto p = Placer(t).place(g, heap_usage(**pa));
  ASSERT_TRUE(p.has_value()) << p.error().message;
  auto gm = GuestMemory::create(**pa, g, *p, 21);
  ASSERT_TRUE(gm.has_value()) << gm.error().message;
  auto layout = (*gm)->layout();
  ASSERT_EQ(layout.size(), 3u);
  EXPECT_EQ(layout[1].vnode, 1u);
  EXPECT_EQ(layout[1].pnode, 2u);
  EXPECT_EQ(layout[1].pages, (128 * kMiB) >> kFrameShift);
  EXPECT_EQ(layout[2].vnode, 1u);
  EXPECT_EQ(layout[2].pnode, 3u);

}
