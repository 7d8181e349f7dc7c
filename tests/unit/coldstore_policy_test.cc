// Policies on the real machines in tests/data/topologies (ids, CPUs and
// SLITs as numactl -H printed them; node sizes shrunk to fit fake memory):
// cold pages never land on an excluded (home) node, the nearest allowed
// node is filled first and farther ones only after it; dedup under
// same_node_only / within_distance follows the machine's own distances.
#include <gtest/gtest.h>

#include <string>

#include "numaheap/cold_store.h"
#include "numaheap/sharing.h"
#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

const char* const kMachines[] = {"amd-4s-opteron6276-8n", "arm-kunpeng920-4n", "ia64-hp-superdome-17n",
                                 "intel-2s-xeon-e5-2680", "power7-ibm-9179-8n-sparse", "seed-4node-libvirt"};

Topology real_machine(const std::string& name, std::uint64_t frames) {
  auto t = load_topology_numactl_file(std::string(NUMAHEAP_TEST_DATA) + "/topologies/" + name + "/numactl-H.txt");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return shrunk(*t, frames);
}

std::uint32_t nearest(const Topology& t, NodeMask home, NodeId n) {
  std::uint32_t d = ~0u;
  for (NodeId h : home) d = std::min(d, t.distance(h, n));
  return d;
}

}  // namespace

class RealMachine : public ::testing::TestWithParam<const char*> {};

TEST_P(RealMachine, ColdPagesAvoidTheHomeAndFillNearestFirst) {
  const Topology topo = real_machine(GetParam(), 32);
  ASSERT_GE(topo.memory_nodes().count(), 2u);
  // Every node as the home on small machines; first, middle and last on
  // big ones (each round builds a fresh host).
  std::vector<NodeId> homes(topo.memory_nodes().begin(), topo.memory_nodes().end());
  if (homes.size() > 4) homes = {homes.front(), homes[homes.size() / 2], homes.back()};
  for (NodeId home_node : homes) {
    FakeMachine mem(topo);
    auto pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    ColdStoreConfig c;
    c.owner = 800;
    c.max_entries = 1u << 13;
    c.watermark_pages = 4;
    c.watermark_fraction = 0;
    c.room_recheck = 1;  // exact watermarks
    c.access = mem.access();
    auto cs = std::move(ColdStore::create(*pa, c)).value();
    auto g = pinned_guest(*pa, "vm", 1, home_node, 4);
    ASSERT_NE(g, nullptr);
    const NodeMask home = g->home_nodes();
    PoolId p = *cs->create_pool(*g, PoolKind::ephemeral);
    const Vector<NodeId> order = cs->pool_node_order(p);
    ASSERT_EQ(order.size(), topo.memory_nodes().count() - 1);
    unsigned char page[kFrameSize];
    fill_page(page, 7);
    // Fill the store; the node sequence must never get nearer again.
    std::uint32_t last = 0;
    std::uint32_t k = 0;
    NodeId first = kNoNode;
    for (;; ++k) {
      auto r = cs->put(p, 0, k, page);
      if (!r) {
        EXPECT_EQ(r.error(), Errc::no_memory);
        break;
      }
      ASSERT_FALSE(home.test(*r)) << GetParam() << ": home " << home_node << " got page on " << *r;
      const std::uint32_t d = nearest(topo, home, *r);
      ASSERT_GE(d, last) << GetParam() << ": home " << home_node << ", page " << k << " went back to nearer node "
                         << *r;
      last = d;
      if (first == kNoNode) first = *r;
    }
    // The first page went to a node at the minimum distance.
    std::uint32_t best = ~0u;
    for (NodeId n : topo.memory_nodes())
      if (!home.test(n)) best = std::min(best, nearest(topo, home, n));
    EXPECT_EQ(nearest(topo, home, first), best) << GetParam() << " home " << home_node;
    EXPECT_EQ(first, order.front());
    // Every allowed node is at its watermark now; the home node untouched.
    for (NodeId n : order) {
      auto s = pa->stats(n);
      EXPECT_LE(s->free + s->cached, 4u) << GetParam() << " node " << n;
    }
    EXPECT_EQ(pa->stats(home_node)->used, 4u);
    EXPECT_TRUE(cs->check_invariants().has_value());
  }
}

TEST_P(RealMachine, DedupFollowsTheMachinesDistances) {
  const Topology topo = real_machine(GetParam(), 16);
  std::vector<NodeId> nodes(topo.memory_nodes().begin(), topo.memory_nodes().end());
  ASSERT_GE(nodes.size(), 2u);
  const NodeId a = nodes[0];
  // The nearest and the farthest other node from a.
  NodeId near = nodes[1], far = nodes[1];
  for (NodeId n : nodes)
    if (n != a) {
      if (topo.distance(a, n) < topo.distance(a, near)) near = n;
      if (topo.distance(a, n) > topo.distance(a, far)) far = n;
    }
  const std::uint32_t dn = std::max(topo.distance(a, near), topo.distance(near, a));
  for (int which = 0; which < 3; ++which) {
    const SharingPolicy pol = which == 0   ? SharingPolicy::across_nodes()
                              : which == 1 ? SharingPolicy::same_node_only()
                                           : SharingPolicy::within_distance(dn);
    FakeMachine mem(topo);
    auto pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    SharingConfig c;
    c.owner = 900;
    c.policy = pol;
    c.access = mem.access();
    auto sm = std::move(SharingManager::create(*pa, c)).value();
    auto ga = pinned_guest(*pa, "a", 1, a, 2), gn = pinned_guest(*pa, "near", 2, near, 2),
         gf = pinned_guest(*pa, "far", 3, far, 2);
    for (auto* g : {ga.get(), gn.get(), gf.get()}) {
      ASSERT_TRUE(sm->add_guest(*g).has_value());
      fill_page(mem.at(g->lookup(0).mfn), 99);
    }
    for (auto* g : {ga.get(), gn.get(), gf.get()}) (void)sm->scan(*g, 0, 1);
    const bool an = ga->lookup(0).mfn == gn->lookup(0).mfn, af = ga->lookup(0).mfn == gf->lookup(0).mfn;
    const bool far_is_farther = std::max(topo.distance(a, far), topo.distance(far, a)) > dn;
    if (which == 0) {
      EXPECT_TRUE(an && af) << GetParam();
    }
    if (which == 1) {
      EXPECT_FALSE(an || af) << GetParam();
      EXPECT_EQ(sm->stats().pages_sharing, near == far ? 2u : 0u) << GetParam();
    }
    if (which == 2) {
      EXPECT_TRUE(an) << GetParam();
      if (far_is_farther) {
        EXPECT_FALSE(af) << GetParam();
      }
    }
    EXPECT_TRUE(sm->check_invariants().has_value());
    for (auto* g : {ga.get(), gn.get(), gf.get()}) ASSERT_TRUE(sm->remove_guest(*g).has_value());
  }
}

INSTANTIATE_TEST_SUITE_P(Topologies, RealMachine, ::testing::ValuesIn(kMachines),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           std::string s = i.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });
