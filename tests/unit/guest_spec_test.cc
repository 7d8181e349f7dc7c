// GuestSpec validation (libxl-like vNUMA rules) and the control-domain helper.
#include <gtest/gtest.h>

#include "numaheap/guest_spec.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

GuestSpec two_vnode_guest() {
  GuestSpec g;
  g.name = "vm";
  g.memory_bytes = 1024 * kMiB;
  g.vcpus = 4;
  g.vnodes = {VNodeSpec{512 * kMiB, {0, 1}, 0, {10, 21}}, VNodeSpec{512 * kMiB, {2, 3}, 1, {21, 10}}};
  return g;
}

}  // namespace

TEST(GuestSpec, ValidSpecsPass) {
  Topology t = builtin_default_topology();
  EXPECT_TRUE(validate_guest_spec(two_vnode_guest(), t).has_value());
  GuestSpec plain;
  plain.name = "plain";
  plain.memory_bytes = 256 * kMiB;
  plain.vcpus = 1;
  EXPECT_TRUE(validate_guest_spec(plain, t).has_value());
  GuestSpec autos = two_vnode_guest();
  for (auto& v : autos.vnodes) v.pnode = kNoNode;
  EXPECT_TRUE(validate_guest_spec(autos, t).has_value());
}

TEST(GuestSpec, EachRuleHasAPreciseError) {
  Topology t = builtin_default_topology();
  struct Case {
    std::function<void(GuestSpec&)> change;
    const char* what;
  };
  std::vector<Case> cases = {
      {[](GuestSpec& g) { g.memory_bytes = 0; g.vnodes.clear(); }, "memory size is 0"},
      {[](GuestSpec& g) { g.memory_bytes = 1000; g.vnodes.clear(); }, "not a multiple of 4 KiB"},
      {[](GuestSpec& g) { g.vcpus = 0; }, "no vCPUs"},
      {[](GuestSpec& g) { g.vcpus = 5000; }, "more than the 4096"},
      {[](GuestSpec& g) { g.vnodes[1].memory_bytes = 256 * kMiB; }, "sum to 768 MB, not the guest's 1024 MB"},
      {[](GuestSpec& g) { g.vnodes[1].vcpus = {1, 2, 3}; }, "vCPU 1 is in vnode 0 and vnode 1"},
      {[](GuestSpec& g) { g.vnodes[1].vcpus = {2}; }, "vCPU 3 is in no vnode"},
      {[](GuestSpec& g) { g.vnodes[1].vcpus = {2, 3, 9}; }, "lists vCPU 9"},
      {[](GuestSpec& g) { g.vnodes[1].pnode = 7; }, "pnode 7 does not exist"},
      {[](GuestSpec& g) { g.vnodes[0].distances = {10}; }, "1 distances for 2 vnodes"},
      {[](GuestSpec& g) { g.vnodes[0].distances = {30, 20}; }, "local distance 30 exceeds"},
      {[](GuestSpec& g) { g.vnodes[0].distances = {10, 0}; }, "outside 1..255"},
      {[](GuestSpec& g) { g.vnodes[0].distances.clear(); }, "some vnodes give distances"},
      {[](GuestSpec& g) { g.vnodes[0].memory_bytes = 0; }, "vnode 0 has no memory"},
      {[](GuestSpec& g) { g.devices = {DeviceSpec{"nic0", 9}}; }, "device 'nic0' is on node 9"},
      {[](GuestSpec& g) { g.devices = {DeviceSpec{"gpu", kNoNode}}; }, "no host node"},
      {[](GuestSpec& g) { g.allowed_nodes = NodeMask::single(12); }, "allowed node 12 does not exist"},
      {[](GuestSpec& g) { g.allowed_nodes = NodeMask::single(2); }, "outside the allowed nodes 2"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    GuestSpec g = two_vnode_guest();
    cases[i].change(g);
    auto r = validate_guest_spec(g, t);
    ASSERT_FALSE(r.has_value()) << "case " << i;
    EXPECT_NE(r.error().message.find(cases[i].what), std::string::npos)
        << "case " << i << ": " << r.error().message;
    EXPECT_EQ(r.error().message.rfind("guest 'vm': ", 0), 0u) << r.error().message;
  }
}

TEST(GuestSpec, MemorylessPnodeIsRejected) {
  TopologyBuilder b;
  b.add_node(0, {0}, 4096 * kMiB).add_node(1, {1}, 0);
  auto t = b.build();
  ASSERT_TRUE(t.has_value());
  GuestSpec g = two_vnode_guest();
  for (auto& v : g.vnodes) v.distances.clear();
  auto r = validate_guest_spec(g, *t);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("pnode 1 has no memory"), std::string::npos) << r.error().message;
}

TEST(ControlDomain, OneVnodePerNodeSpreadByFreeMemory) {
  Topology t = builtin_default_topology();  // free: 1931, 1902, 1910, 1907 MB
  auto dom0 = control_domain_spec(t, 1024 * kMiB);
  ASSERT_TRUE(dom0.has_value()) << dom0.error().message;
  ASSERT_EQ(dom0->vnodes.size(), 4u);
  EXPECT_EQ(dom0->vcpus, 4u);
  std::uint64_t sum = 0;
  for (std::size_t v = 0; v < 4; ++v) {
    const auto& vn = dom0->vnodes[v];
    EXPECT_EQ(vn.pnode, v);
    EXPECT_EQ(vn.vcpus, Vector<std::uint32_t>{static_cast<std::uint32_t>(v)});
    EXPECT_NEAR(static_cast<double>(vn.memory_bytes), 256.0 * kMiB, 8.0 * kMiB);  // 2 MiB rounding
    EXPECT_EQ(vn.distances[v], 10u);
    sum += vn.memory_bytes;
  }
  EXPECT_EQ(sum, 1024 * kMiB);
  EXPECT_EQ(dom0->vnodes[0].distances[2], 31u);
  // The node with most free memory gets the most.
  EXPECT_GE(dom0->vnodes[0].memory_bytes, dom0->vnodes[1].memory_bytes);
  EXPECT_TRUE(validate_guest_spec(*dom0, t).has_value());
}

TEST(ControlDomain, RefusesImpossibleSizes) {
  Topology t = builtin_default_topology();
  EXPECT_FALSE(control_domain_spec(t, 0).has_value());
  EXPECT_FALSE(control_domain_spec(t, 1000).has_value());
  auto big = control_domain_spec(t, 64ull << 30);
  ASSERT_FALSE(big.has_value());
  EXPECT_NE(big.error().message.find("only"), std::string::npos);
}
