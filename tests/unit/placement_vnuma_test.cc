// Placer, issue 19: vNUMA guests get one host node per vnode where memory
// and CPUs allow, their vdistances matched to host distances, a warning when
// vnodes must share; memory splits exact to the byte (a property over
// random guests on every real topology in tests/data); affinity groups in
// the library (PlacementSession); utilization from recorded /proc/stat; the
// control-domain layout from the allocator's free memory above watermarks.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "numaheap/page_allocator.h"
#include "numaheap/placement.h"
#include "numaheap/topology_io.h"
#include "placement_fixtures.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

using placement_test::vnuma;

void set_vdistances(GuestSpec& g, const std::vector<std::vector<std::uint32_t>>& rows) {
  for (std::size_t v = 0; v < rows.size(); ++v) {
    g.vnodes[v].distances.clear();
    for (auto d : rows[v]) (void)g.vnodes[v].distances.push_back(d);
  }
}

Topology fixture(const std::string& machine) {
  auto t = load_topology_numactl_file(std::string(NUMAHEAP_TEST_DATA) + "/topologies/" + machine +
                                      "/numactl-H.txt");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return *t;
}

std::vector<std::string> machines() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(NUMAHEAP_TEST_DATA) + "/topologies"))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::set<NodeId> distinct(const Placement& p) {
  return std::set<NodeId>(p.vnode_pnodes.begin(), p.vnode_pnodes.end());
}

bool has(const Placement& p, const char* text) {
  return std::string_view(p.reason.data(), p.reason.size()).find(text) != std::string_view::npos;
}

}  // namespace

// The case of issue 19: vnodes 0 and 1 both went to node 1 (8 vCPUs on 4
// CPUs) and node 3 stayed empty.
TEST(PlacementVnuma, FourVnodesOnTheIdleSeedMachineGetFourNodes) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto p = placer.place(vnuma("four", 4, 500, 4), placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(distinct(*p).size(), 4u) << p->reason.c_str();
  EXPECT_FALSE(has(*p, "warning")) << p->reason.c_str();
  for (std::uint32_t cpu = 0; cpu < 16; ++cpu)  // each vnode's vCPUs on its own node
    EXPECT_EQ(p->vcpu_nodes[cpu], p->vnode_pnodes[cpu / 4]);
  for (const auto& s : p->memory) EXPECT_EQ(s.bytes, 500 * kMiB);
}

TEST(PlacementVnuma, TwoCellsDeclaredAt21GoToTwoNodesAt21) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = vnuma("pair", 2, 256, 1);
  set_vdistances(g, {{10, 21}, {21, 10}});
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(distinct(*p).size(), 2u) << p->reason.c_str();
  EXPECT_EQ(t.distance(p->vnode_pnodes[0], p->vnode_pnodes[1]), 21u);
  EXPECT_TRUE(has(*p, "vdistances matched within 0")) << p->reason.c_str();
  // Declared far apart: the far pair (31).
  set_vdistances(g, {{10, 31}, {31, 10}});
  auto q = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(t.distance(q->vnode_pnodes[0], q->vnode_pnodes[1]), 31u) << q->reason.c_str();
}

// On the 8-node Opteron (16 inside a socket pair, 22 across), cells
// declared near (16) land on host pairs at 16, the far ones at 22.
TEST(PlacementVnuma, CellsDeclaredNearGoToNearNodes) {
  Topology t = fixture("amd-4s-opteron6276-8n");
  Placer placer(t);
  GuestSpec g = vnuma("quad", 4, 1024, 2);
  set_vdistances(g, {{10, 16, 22, 22}, {16, 10, 22, 22}, {22, 22, 10, 16}, {22, 22, 16, 10}});
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(distinct(*p).size(), 4u);
  const auto& n = p->vnode_pnodes;
  EXPECT_EQ(t.distance(n[0], n[1]), 16u) << p->reason.c_str();
  EXPECT_EQ(t.distance(n[2], n[3]), 16u) << p->reason.c_str();
  EXPECT_EQ(t.distance(n[0], n[2]), 22u) << p->reason.c_str();
  EXPECT_EQ(t.distance(n[1], n[3]), 22u) << p->reason.c_str();
}

TEST(PlacementVnuma, SharingANodeOnlyWhenNeededAndSaidSo) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto p = placer.place(vnuma("five", 5, 200, 1), placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(distinct(*p).size(), 4u);  // all four nodes used, one holds two vnodes
  EXPECT_TRUE(has(*p, "warning: vnodes ")) << p->reason.c_str();
  EXPECT_TRUE(has(*p, "share node")) << p->reason.c_str();
  // Too much memory for distinct nodes: vnodes of 1000 MB, nodes with
  // about 1800 MB above the watermark each: 6 vnodes need two to share.
  auto q = placer.place(vnuma("six", 6, 900, 1), placer.idle_usage());
  ASSERT_TRUE(q.has_value()) << q.error().message;
  EXPECT_EQ(distinct(*q).size(), 4u);
}

TEST(PlacementVnuma, CpuCapacityCountsVcpusAlreadyPlaced) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  auto usage = placer.idle_usage();
  usage[0].vcpus = 4;  // nodes 0 and 2 already run 4 vCPUs on their 4 CPUs
  usage[2].vcpus = 4;
  auto p = placer.place(vnuma("two", 2, 256, 4), usage);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(distinct(*p), (std::set<NodeId>{1, 3})) << p->reason.c_str();
  EXPECT_FALSE(has(*p, "warning")) << p->reason.c_str();
  // Every node full: placed, but the reason warns about the overcommit.
  usage[1].vcpus = 4;
  usage[3].vcpus = 4;
  auto q = placer.place(vnuma("two", 2, 256, 4), usage);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(distinct(*q).size(), 2u);
  EXPECT_TRUE(has(*q, "vCPUs on 4 CPUs")) << q->reason.c_str();
}

TEST(PlacementVnuma, PinnedVnodesStayAndAutoOnesAvoidThem) {
  Topology t = builtin_default_topology();
  Placer placer(t);
  GuestSpec g = vnuma("mixed", 3, 300, 2);
  g.vnodes[1].pnode = 2;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->vnode_pnodes[1], 2u);
  EXPECT_EQ(distinct(*p).size(), 3u);
}

// A 2 x Xeon 6230-like SNC2 machine (4 nodes, 2 per socket, 11 / 12 / 21)
// with free memory not on MiB boundaries: the reported 500000 MB guest.
TEST(PlacementSplit, FiveHundredThousandMegabytesOverFourNodesIsExact) {
  TopologyBuilder b("snc2");
  const std::uint64_t free[4] = {128000 * kMiB + 12345 * 4096, 127990 * kMiB + 777 * 4096,
                                 125001 * kMiB + 3 * 4096, 130000 * kMiB + 4096};
  for (NodeId n = 0; n < 4; ++n) {
    std::vector<CpuId> cpus;
    for (CpuId c = 0; c < 20; ++c) cpus.push_back(n * 20 + c);
    b.add_node(n, cpus, 131072 * kMiB, free[n]);
  }
  const std::uint32_t d[4][4] = {{10, 11, 21, 21}, {11, 10, 21, 21}, {21, 21, 10, 11}, {21, 21, 11, 10}};
  for (NodeId x = 0; x < 4; ++x)
    for (NodeId y = 0; y < 4; ++y) b.set_distance(x, y, d[x][y]);
  auto t = b.build();
  ASSERT_TRUE(t.has_value()) << t.error().message;
  Placer placer(*t);
  GuestSpec g;
  g.name = "big";
  g.memory_bytes = 500000 * kMiB;
  g.vcpus = 40;
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->memory.size(), 4u);
  std::uint64_t sum = 0, sum_mb = 0;
  for (const auto& s : p->memory) {
    sum += s.bytes;
    sum_mb += s.bytes / kMiB;
    EXPECT_EQ(s.bytes % kMiB, 0u) << "node " << s.node << ": " << s.bytes;
  }
  EXPECT_EQ(sum, g.memory_bytes);
  EXPECT_EQ(sum_mb, 500000u);
}

// Property: on every machine of tests/data, guests placed in order (with
// and without vNUMA) get shares summing to their memory exactly, each a
// 4 KiB multiple within the node's room above its watermark, and whole MiB
// when the guest is whole MiB and the set's whole-MiB room holds it; with
// random constraints now and then (a nodeset and mode for the guest and
// for vnode 0, vCPU 0 pinned), bound memory stays in its set and the pin
// decides vCPU 0's node.
RC_GTEST_PROP(PlacementSplit, SharesSumExactlyOnEveryRealMachine, ()) {
  static const std::vector<std::string> all = machines();
  const std::string machine = *rc::gen::elementOf(all);
  Topology t = fixture(machine);
  Placer placer(t);
  auto usage = placer.idle_usage();
  const int guests = *rc::gen::inRange(1, 8);
  for (int k = 0; k < guests; ++k) {
    GuestSpec g;
    g.name = "g" + std::to_string(k);
    const bool whole_mb = *rc::gen::arbitrary<bool>();
    const std::uint64_t mb = *rc::gen::inRange<std::uint64_t>(1, 60000);
    g.memory_bytes = whole_mb ? mb * kMiB : mb * kMiB + *rc::gen::inRange<std::uint64_t>(1, 256) * 4096;
    g.vcpus = *rc::gen::inRange<std::uint32_t>(1, 33);
    const bool with_vnuma = *rc::gen::inRange(0, 4) == 0 && g.vcpus >= 2;
    if (with_vnuma) {
      const std::uint32_t cells = *rc::gen::inRange<std::uint32_t>(2, std::min<std::uint32_t>(g.vcpus, 6) + 1);
      const std::uint64_t pages = g.memory_bytes / 4096;
      for (std::uint32_t v = 0; v < cells; ++v) {
        VNodeSpec vn;
        vn.memory_bytes = (v + 1 == cells ? pages - pages / cells * (cells - 1) : pages / cells) * 4096;
        for (std::uint32_t c = v; c < g.vcpus; c += cells) (void)vn.vcpus.push_back(c);
        g.vnodes.push_back(std::move(vn));
      }
    }
    // Constraints now and then: a guest nodeset with a mode, a vnode node
    // set with a mode, a hard pin of vCPU 0 to one node's CPUs.
    std::vector<NodeId> ids;
    for (const auto& n : t.nodes())
      if (n.has_memory()) ids.push_back(n.id);
    auto some_nodes = [&] {
      NodeMask m;
      const auto count = *rc::gen::inRange<std::size_t>(1, std::min<std::size_t>(ids.size(), 4) + 1);
      for (std::size_t x = 0; x < count; ++x) m.set(*rc::gen::elementOf(ids));
      return m;
    };
    auto some_mode = [] {
      return *rc::gen::element(MemoryPolicy::unset, MemoryPolicy::bind, MemoryPolicy::prefer, MemoryPolicy::interleave);
    };
    if (*rc::gen::inRange(0, 4) == 0) {
      g.allowed_nodes = some_nodes();
      g.memory_mode = some_mode();
    }
    if (with_vnuma && *rc::gen::inRange(0, 3) == 0) {
      NodeMask m = some_nodes();
      if (!g.allowed_nodes.empty()) m = m & g.allowed_nodes;
      if (!m.empty()) {
        g.vnodes[0].nodes = m;
        g.vnodes[0].memory_mode = some_mode();
      }
    }
    NodeId pin_node = kNoNode;
    if (*rc::gen::inRange(0, 4) == 0) {
      const NodeInfo& n = t.node_at(*rc::gen::inRange<std::size_t>(0, t.node_count()));
      if (n.has_cpus()) {
        VcpuPin pin;
        pin.vcpu = 0;
        (void)pin.cpus.assign(n.cpus.begin(), n.cpus.size());
        g.vcpu_pins.push_back(std::move(pin));
        pin_node = n.id;
      }
    }
    auto p = placer.place(g, usage);
    if (!p) {
      RC_ASSERT(p.error().code == Errc::no_memory);
      continue;
    }
    std::uint64_t sum = 0, mib_room = 0;
    for (const auto& s : p->memory) {
      const auto i = static_cast<std::size_t>(t.index_of(s.node));
      const std::uint64_t wm = placer.watermark(s.node);
      const std::uint64_t room = usage[i].free_bytes > wm ? usage[i].free_bytes - wm : 0;
      RC_ASSERT(s.bytes % 4096 == 0);
      RC_ASSERT(s.bytes <= room);
      sum += s.bytes;
      mib_room += room / kMiB * kMiB;
    }
    RC_ASSERT(sum == g.memory_bytes);
    if (!with_vnuma && whole_mb && mib_room >= g.memory_bytes)
      for (const auto& s : p->memory) RC_ASSERT(s.bytes % kMiB == 0);
    // bind / interleave over a nodeset: nothing outside it.
    const bool guest_bound = !g.allowed_nodes.empty() && g.memory_mode != MemoryPolicy::prefer;
    if (guest_bound)
      for (const auto& s : p->memory) RC_ASSERT(g.allowed_nodes.test(s.node));
    if (with_vnuma) {
      RC_ASSERT(p->vnode_pnodes.size() == g.vnodes.size());
      // The pieces cover each vnode exactly, in vnode order; each node
      // holds exactly the pieces placed on it; a bound vnode stays in its set.
      std::vector<std::uint64_t> per_vnode(g.vnodes.size(), 0);
      std::uint32_t last = 0;
      for (const auto& piece : p->vnode_memory) {
        RC_ASSERT(piece.vnode < g.vnodes.size());
        RC_ASSERT(piece.vnode >= last);
        last = piece.vnode;
        per_vnode[piece.vnode] += piece.bytes;
        const VNodeSpec& vn = g.vnodes[piece.vnode];
        const MemoryPolicy mode = vn.memory_mode != MemoryPolicy::unset ? vn.memory_mode : g.memory_mode;
        if (!vn.nodes.empty() && mode != MemoryPolicy::prefer) RC_ASSERT(vn.nodes.test(piece.node));
      }
      for (std::size_t v = 0; v < g.vnodes.size(); ++v) RC_ASSERT(per_vnode[v] == g.vnodes[v].memory_bytes);
      for (const auto& s : p->memory) {
        std::uint64_t on = 0;
        for (const auto& piece : p->vnode_memory)
          if (piece.node == s.node) on += piece.bytes;
        RC_ASSERT(on == s.bytes);
      }
    }
    RC_ASSERT(p->vcpu_nodes.size() == g.vcpus);
    if (pin_node != kNoNode) RC_ASSERT(p->vcpu_nodes[0] == pin_node);
    placer.commit(*p, usage);
  }
}

TEST(PlacementSession, AffinityGroupsTogetherAntiAffinityApart) {
  Topology t = builtin_default_topology();
  PlacementSession s(t);
  auto guest = [](std::string name, const char* aff, const char* anti) {
    GuestSpec g;
    g.name = std::move(name);
    g.memory_bytes = 256 * kMiB;
    g.vcpus = 1;
    g.affinity_group = aff;
    g.anti_affinity_group = anti;
    return g;
  };
  auto a = s.place(guest("web1", "web", ""));
  ASSERT_TRUE(a.has_value()) << a.error().message;
  auto b = s.place(guest("web2", "web", ""));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->nodes, a->nodes) << b->reason.c_str();  // room there: the same node
  EXPECT_TRUE(has(*b, "near affinity group")) << b->reason.c_str();
  // Four replicas kept apart: four distinct nodes.
  std::set<NodeId> seen;
  std::vector<std::pair<GuestSpec, Placement>> replicas;
  for (int i = 0; i < 4; ++i) {
    GuestSpec g = guest("db" + std::to_string(i), "", "db");
    auto p = s.place(g);
    ASSERT_TRUE(p.has_value());
    ASSERT_EQ(p->nodes.count(), 1u);
    seen.insert(*p->nodes.begin());
    replicas.emplace_back(std::move(g), std::move(*p));
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(s.hints_for(guest("x", "", "db")).anti_affinity_nodes.count(), 4u);
  // Released replicas leave the group and give their memory back.
  const std::uint64_t before = s.usage()[t.index_of(*replicas[0].second.nodes.begin())].free_bytes;
  s.release(replicas[0].first, replicas[0].second);
  EXPECT_EQ(s.hints_for(guest("x", "", "db")).anti_affinity_nodes.count(), 3u);
  EXPECT_EQ(s.usage()[t.index_of(*replicas[0].second.nodes.begin())].free_bytes, before + 256 * kMiB);
  // A wrong-sized usage is refused without a crash.
  PlacementSession bad(t, std::vector<NodeUsage>(2));
  EXPECT_FALSE(bad.valid());
  EXPECT_EQ(bad.usage().size(), t.node_count());
}

TEST(NodeUtilization, FromRecordedProcStat) {
  Topology t = builtin_default_topology();
  const std::string dir = std::string(NUMAHEAP_TEST_DATA) + "/procstat/";
  auto a = read_text_file(dir + "seed-t0.stat");
  auto b = read_text_file(dir + "seed-t1.stat");
  ASSERT_TRUE(a && b);
  auto ta = parse_proc_stat(*a, "seed-t0.stat");
  auto tb = parse_proc_stat(*b, "seed-t1.stat");
  ASSERT_TRUE(ta.has_value()) << ta.error().message;
  ASSERT_TRUE(tb.has_value()) << tb.error().message;
  EXPECT_EQ(ta->present.size(), 16u);
  auto u = node_utilization(t, *ta, *tb);
  ASSERT_EQ(u.size(), 4u);
  EXPECT_DOUBLE_EQ(u[0], 0.75);
  EXPECT_DOUBLE_EQ(u[1], 0.25);
  EXPECT_DOUBLE_EQ(u[2], 0.0);
  EXPECT_DOUBLE_EQ(u[3], 1.0);
  // The same sample twice: no time passed, unknown.
  for (double x : node_utilization(t, *ta, *ta)) EXPECT_EQ(x, -1.0);
  // The placer then prefers the idle node for a one-node guest.
  Placer placer(t);
  auto usage = placer.idle_usage();
  for (std::size_t i = 0; i < usage.size(); ++i) usage[i].utilization = u[i];
  GuestSpec g;
  g.name = "idle-seeker";
  g.memory_bytes = 512 * kMiB;
  g.vcpus = 2;
  auto p = placer.place(g, usage);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->nodes.to_string(), "2") << p->reason.c_str();
}

TEST(NodeUtilization, BadProcStatNamesFileAndLine) {
  auto r = parse_proc_stat("cpu  1 2 3 4\ncpu0 1 2 x 4\n", "stat");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::parse_error);
  EXPECT_NE(r.error().message.find("stat:2:"), std::string::npos) << r.error().message;
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2\n", "s").has_value());           // too few fields
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3 4\ncpu0 1 2 3 4\n", "s").has_value());  // twice
  EXPECT_FALSE(parse_proc_stat("cpu99999999999 1 2 3 4\n", "s").has_value());
  EXPECT_FALSE(parse_proc_stat("intr 1 2 3\n", "s").has_value());  // no cpu lines
  auto missing = read_cpu_times("/nonexistent-root");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::io_error);
  Topology t = builtin_default_topology();
  std::vector<NodeUsage> wrong(3);
  EXPECT_FALSE(measure_node_utilization(t, wrong, std::chrono::milliseconds(0)).has_value());
}

TEST(NodeUtilization, LiveProcStatGivesFractionsOrUnknown) {
  if (!std::filesystem::exists("/proc/stat")) GTEST_SKIP() << "no /proc/stat";
  auto here = load_topology_sysfs("/");
  if (!here) GTEST_SKIP() << here.error().message;
  std::vector<NodeUsage> usage(here->node_count());
  auto r = measure_node_utilization(*here, usage, std::chrono::milliseconds(50));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  for (const auto& u : usage) EXPECT_TRUE(u.utilization == -1.0 || (u.utilization >= 0 && u.utilization <= 1));
}

// The control-domain layout follows what the allocator has free now, above
// the watermarks, not the topology's load-time figures.
TEST(ControlDomain, LayoutFromTheAllocatorsFreeMemoryAboveWatermarks) {
  Topology t = builtin_default_topology();
  auto pa = PageAllocator::create(t);
  ASSERT_TRUE(pa.has_value()) << pa.error().message;
  Placer placer(t);
  // Claim most of node 0 (1500 MB): it has little left to give.
  ASSERT_TRUE((*pa)->claim(7, (1500 * kMiB) >> kFrameShift, 0).has_value());
  auto g = control_domain_spec(**pa, 1024 * kMiB);
  ASSERT_TRUE(g.has_value()) << g.error().message;
  auto usage = heap_usage(**pa);
  std::uint64_t sum = 0;
  for (const auto& v : g->vnodes) {
    const auto i = static_cast<std::size_t>(t.index_of(v.pnode));
    EXPECT_LE(v.memory_bytes + placer.watermark(v.pnode), usage[i].free_bytes) << "node " << v.pnode;
    sum += v.memory_bytes;
    if (v.pnode == 0) {
      EXPECT_LT(v.memory_bytes, 200 * kMiB);
    }
  }
  EXPECT_EQ(sum, 1024 * kMiB);
  // The layout is placeable as it is.
  EXPECT_TRUE(placer.place(*g, usage).has_value());
  // More than is free above the watermarks: refused, the message says so.
  auto too_big = control_domain_spec(**pa, 7000 * kMiB);
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("above the watermarks"), std::string::npos)
      << too_big.error().message;
  // The topology overload still uses the topology's figures.
  EXPECT_TRUE(control_domain_spec(t, 7000 * kMiB).has_value());
}
