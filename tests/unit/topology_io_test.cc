// Topology loaders (sysfs, numactl text, libnuma, built-in) and the
// `numactl -H` renderer, against real machines' sysfs snapshots and what
// numactl 2.0.16 printed for them, plus synthetic trees for the odd cases
// real kernels produce.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "numaheap/topology.h"
#include "numaheap/topology_io.h"
#include "temp_sysfs_tree.h"

using namespace numaheap;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

const std::string kTopologies = std::string(NUMAHEAP_TEST_DATA) + "/topologies";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every fixture folder (one per machine).
std::vector<std::string> fixture_dirs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kTopologies))
    if (e.is_directory() && fs::exists(e.path() / "numactl-H.txt"))
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool has_sysfs(const std::string& dir) {
  return fs::is_directory(fs::path(dir) / "sys/devices/system/node");
}

Topology must(Result<Topology, Error> r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? *r : Topology();
}

// The node with that id; a test failure (not a crash) when there is none.
const NodeInfo& node_of(const Topology& t, NodeId id) {
  static const NodeInfo none;
  const NodeInfo* n = t.find(id);
  if (n == nullptr) ADD_FAILURE() << "no node " << id << " in " << t.source();
  return n ? *n : none;
}

using TempTree = test::TempSysfsTree;

std::string meminfo(NodeId id, std::uint64_t total_kb, std::uint64_t free_kb) {
  std::string p = "Node " + std::to_string(id) + " ";
  return p + "MemTotal:       " + std::to_string(total_kb) + " kB\n" + p +
         "MemFree:        " + std::to_string(free_kb) + " kB\n" + p +
         "MemUsed:        " + std::to_string(total_kb - free_kb) + " kB\n" + p +
         "Active:           12345 kB\n";
}

std::string meminfo_total_only(NodeId id, std::uint64_t total_kb) {
  std::string p = "Node " + std::to_string(id) + " ";
  return p + "MemTotal:       " + std::to_string(total_kb) + " kB\n" + p +
         "MemUsed:        " + std::to_string(total_kb) + " kB\n";
}

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST(TopologyIoFixtures, AllMachinesPresent) {
  std::vector<std::string> names;
  for (const auto& d : fixture_dirs()) names.push_back(fs::path(d).filename().string());
  for (const char* want : {"amd-4s-opteron6276-8n", "arm-kunpeng920-4n", "ia64-hp-superdome-17n",
                           "intel-2s-xeon-e5-2680", "power7-ibm-9179-8n-sparse",
                           "seed-4node-libvirt"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
}

TEST(TopologyIoFixtures, SysfsRendersExactlyLikeNumactl) {
  int checked = 0;
  for (const auto& dir : fixture_dirs()) {
    if (!has_sysfs(dir)) continue;
    SCOPED_TRACE(dir);
    const std::string expected = slurp(dir + "/numactl-H.txt");
    auto t = load_topology_sysfs(dir);
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ(t->source().view(), "sysfs:" + dir);
    EXPECT_EQ(render_numactl(*t), expected);
    // The node directory itself is accepted too.
    auto t2 = load_topology_sysfs(dir + "/sys/devices/system/node");
    ASSERT_TRUE(t2.has_value()) << t2.error().message;
    EXPECT_EQ(render_numactl(*t2), expected);
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(TopologyIoFixtures, NumactlTextRoundTrips) {
  int checked = 0;
  for (const auto& dir : fixture_dirs()) {
    SCOPED_TRACE(dir);
    const std::string text = slurp(dir + "/numactl-H.txt");
    auto t = parse_numactl_text(text, "fixture");
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ(t->source(), "fixture");
    EXPECT_EQ(render_numactl(*t), text);

    const std::string path = dir + "/numactl-H.txt";
    auto f = load_topology_numactl_file(path);
    ASSERT_TRUE(f.has_value()) << f.error().message;
    EXPECT_EQ(f->source().view(), "numactl:" + path);
    EXPECT_EQ(render_numactl(*f), text);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(TopologyIoFixtures, TextAndSysfsAgree) {
  for (const auto& dir : fixture_dirs()) {
    if (!has_sysfs(dir)) continue;
    SCOPED_TRACE(dir);
    Topology s = must(load_topology_sysfs(dir));
    Topology x = must(parse_numactl_text(slurp(dir + "/numactl-H.txt")));
    ASSERT_EQ(s.node_count(), x.node_count());
    EXPECT_EQ(s.node_mask(), x.node_mask());
    EXPECT_EQ(s.memory_nodes(), x.memory_nodes());
    EXPECT_EQ(s.cpu_nodes(), x.cpu_nodes());
    for (std::size_t i = 0; i < s.node_count(); ++i) {
      const NodeInfo& a = s.node_at(i);
      const NodeInfo& b = x.node_at(i);
      EXPECT_EQ(a.id, b.id);
      EXPECT_EQ(a.cpus, b.cpus);
      // The text only keeps whole MB.
      EXPECT_EQ(a.memory_bytes >> 20, b.memory_bytes >> 20);
      EXPECT_EQ(a.free_bytes >> 20, b.free_bytes >> 20);
      for (const NodeInfo& c : s.nodes()) EXPECT_EQ(s.distance(a.id, c.id), x.distance(a.id, c.id));
    }
    for (CpuId c = 0; c < s.max_cpu(); ++c) EXPECT_EQ(s.node_of_cpu(c), x.node_of_cpu(c));
  }
}

TEST(TopologyIoFixtures, Power7SparseIds) {
  Topology t = must(load_topology_sysfs(kTopologies + "/power7-ibm-9179-8n-sparse"));
  std::vector<NodeId> ids;
  for (const auto& n : t.nodes()) ids.push_back(n.id);
  EXPECT_EQ(ids, (std::vector<NodeId>{0, 1, 4, 5, 8, 9, 12, 13}));
  EXPECT_EQ(t.node_mask().to_string(), "0-1,4-5,8-9,12-13");
  EXPECT_FALSE(t.has_node(2));
  for (const auto& n : t.nodes()) EXPECT_EQ(n.cpus.size(), 32u) << n.id;
  EXPECT_EQ(t.node_of_cpu(64), 4u);
  EXPECT_EQ(t.node_of_cpu(255), 13u);
  EXPECT_EQ(t.max_cpu(), 256u);
  EXPECT_EQ(t.distance(4, 5), 20u);
  EXPECT_EQ(t.distance(4, 12), 40u);
  EXPECT_EQ(t.node_at(0).memory_bytes >> 20, 57088u);
  // Fallback: self first, then the pair partner, then the rest.
  auto f = t.fallback_order(8);
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(f[0], 8u);
  EXPECT_EQ(f[1], 9u);
}

TEST(TopologyIoFixtures, Ia64CpulessNode) {
  Topology t = must(load_topology_sysfs(kTopologies + "/ia64-hp-superdome-17n"));
  ASSERT_EQ(t.node_count(), 17u);
  const NodeInfo* n16 = t.find(16);
  ASSERT_NE(n16, nullptr);
  EXPECT_TRUE(n16->cpus.empty());
  EXPECT_FALSE(n16->has_cpus());
  EXPECT_TRUE(n16->has_memory());
  EXPECT_EQ(n16->memory_bytes >> 20, 996u);
  EXPECT_EQ(n16->free_bytes >> 20, 753u);
  EXPECT_FALSE(t.cpu_nodes().test(16));
  EXPECT_TRUE(t.memory_nodes().test(16));
  EXPECT_EQ(t.max_cpu(), 128u);
  for (NodeId id = 0; id < 16; ++id) EXPECT_EQ(node_of(t, id).cpus.size(), 8u) << id;
  EXPECT_EQ(t.distance(0, 16), 14u);
  // Node 0 falls back to itself, then to the interleaved node 16 (14).
  auto f = t.fallback_order(0);
  ASSERT_EQ(f.size(), 17u);
  EXPECT_EQ(f[0], 0u);
  EXPECT_EQ(f[1], 16u);
}

TEST(TopologyIoFixtures, OtherMachinesSpotChecks) {
  Topology amd = must(load_topology_sysfs(kTopologies + "/amd-4s-opteron6276-8n"));
  EXPECT_EQ(amd.node_count(), 8u);
  EXPECT_EQ(node_of(amd, 5).memory_bytes >> 20, 8192u);
  EXPECT_EQ(amd.distance(0, 3), 22u);
  Topology arm = must(load_topology_sysfs(kTopologies + "/arm-kunpeng920-4n"));
  EXPECT_EQ(arm.node_count(), 4u);
  EXPECT_EQ(node_of(arm, 3).cpus.front(), 96u);
  EXPECT_EQ(node_of(arm, 3).cpus.size(), 32u);
  EXPECT_EQ(arm.distance(1, 2), 25u);
  EXPECT_EQ(arm.fallback_order(0)[1], 1u);
  Topology intel = must(load_topology_sysfs(kTopologies + "/intel-2s-xeon-e5-2680"));
  EXPECT_EQ(intel.node_count(), 2u);
  EXPECT_EQ(intel.node_of_cpu(8), 1u);
  EXPECT_EQ(intel.distance(0, 1), 21u);
  for (const auto& t : {amd, arm, intel})
    for (const auto& n : t.nodes()) EXPECT_EQ(t.fallback_order(n.id)[0], n.id);
}

// ---------------------------------------------------------------- built-in

TEST(TopologyIoBuiltin, SeedFourNodeMachine) {
  EXPECT_EQ(builtin_default_numactl_text(),
            slurp(kTopologies + "/seed-4node-libvirt/numactl-H.txt"));
  Topology t = builtin_default_topology();
  EXPECT_EQ(t.source(), "builtin:seed-4node-libvirt");
  EXPECT_EQ(t.node_count(), 4u);
  std::size_t cpus = 0;
  for (const auto& n : t.nodes()) cpus += n.cpus.size();
  EXPECT_EQ(cpus, 16u);
  EXPECT_EQ(t.distance(0, 2), 31u);
  EXPECT_EQ(t.distance(0, 1), 21u);
  EXPECT_EQ(t.node_of_cpu(13), 3u);
  EXPECT_EQ(node_of(t, 1).memory_bytes, 1951 * kMiB);
  EXPECT_EQ(render_numactl(t), builtin_default_numactl_text());
  // Fallback for node 0: self, 1 and 3 (tie at 21, either order), then 2.
  auto f = t.fallback_order(0);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], 0u);
  EXPECT_EQ(f[3], 2u);
}

// ---------------------------------------------------------------- live host

TEST(TopologyIoLive, LibnumaLoadsThisHost) {
  auto t = load_topology_libnuma();
  if (!t && t.error().code == Errc::unsupported) GTEST_SKIP() << t.error().message;
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->source(), "libnuma");
  EXPECT_GE(t->node_count(), 1u);
  EXPECT_FALSE(t->memory_nodes().empty());
  for (const auto& n : t->nodes()) {
    EXPECT_EQ(t->fallback_order(n.id).empty(), t->memory_nodes().empty());
    EXPECT_EQ(t->distance(n.id, n.id), kLocalDistance);
  }
  // The same host through its /sys agrees on everything but free memory.
  auto s = load_topology_sysfs("/");
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->source(), "sysfs:/");
  ASSERT_EQ(s->node_count(), t->node_count());
  for (std::size_t i = 0; i < s->node_count(); ++i) {
    EXPECT_EQ(s->node_at(i).id, t->node_at(i).id);
    EXPECT_EQ(s->node_at(i).cpus, t->node_at(i).cpus);
    EXPECT_EQ(s->node_at(i).memory_bytes, t->node_at(i).memory_bytes);
    for (const auto& n : t->nodes())
      EXPECT_EQ(s->raw_distance(s->node_at(i).id, n.id), t->raw_distance(t->node_at(i).id, n.id));
  }
}

// ------------------------------------------------------- synthetic sysfs trees

TEST(TopologyIoSysfs, MissingDistanceFiles) {
  TempTree tree;
  tree.node(0, "00000003\n", meminfo(0, 2097152, 1048576), "");
  tree.node(1, "0000000c\n", meminfo(1, 2097152, 1048576), "");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_FALSE(t.distances_given());
  EXPECT_EQ(t.raw_distance(0, 1), 0u);
  EXPECT_EQ(t.distance(0, 0), kLocalDistance);
  EXPECT_EQ(t.distance(0, 1), kRemoteDistance);
  EXPECT_EQ(render_numactl(t),
            "available: 2 nodes (0-1)\n"
            "node 0 cpus: 0 1\n"
            "node 0 size: 2048 MB\n"
            "node 0 free: 1024 MB\n"
            "node 1 cpus: 2 3\n"
            "node 1 size: 2048 MB\n"
            "node 1 free: 1024 MB\n"
            "No distance information available.\n");
  // What the renderer gives back parses to the same thing.
  Topology back = must(parse_numactl_text(render_numactl(t)));
  EXPECT_EQ(render_numactl(back), render_numactl(t));
  EXPECT_FALSE(back.distances_given());
}

TEST(TopologyIoSysfs, MissingMemFreeAndMeminfo) {
  TempTree tree;
  tree.node(0, "00000001\n", meminfo_total_only(0, 1048576), "10 20 20\n");
  tree.node(1, "00000002\n", "", "20 10 20\n");
  tree.node(2, "00000004\n", "Node 2 Active: 5 kB\n", "20 20 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).memory_bytes, 1024 * kMiB);
  EXPECT_EQ(node_of(t, 0).free_bytes, kUnknownBytes);
  EXPECT_EQ(node_of(t, 1).memory_bytes, kUnknownBytes);
  EXPECT_FALSE(node_of(t, 1).has_memory());
  EXPECT_EQ(node_of(t, 2).memory_bytes, kUnknownBytes);
  const std::string r = render_numactl(t);
  EXPECT_NE(r.find("node 0 size: 1024 MB\nnode 0 free: <not available>\n"), std::string::npos) << r;
  EXPECT_NE(r.find("node 1 size: <not available>\nnode 1 free: <not available>\n"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("node 2 size: <not available>\n"), std::string::npos) << r;
  Topology back = must(parse_numactl_text(r));
  EXPECT_EQ(node_of(back, 0).free_bytes, kUnknownBytes);
  EXPECT_EQ(render_numactl(back), r);
}

TEST(TopologyIoSysfs, CpumapWithoutNewlineWithNulsAndBlanks) {
  TempTree tree;
  tree.node(0, "0000000f", meminfo(0, 1048576, 1000), std::string("10 20 20 20\n\0", 13));
  tree.node(1, std::string("000000f0\n\0", 10), meminfo(1, 1048576, 1000) + std::string("\0", 1),
            "20 10 20 20");
  tree.node(2, std::string("00000f00\n\0\0\0", 12), meminfo(2, 1048576, 1000), "20 20 10 20 \n");
  tree.node(3, "  0000f000  \n\n", meminfo(3, 1048576, 1000), std::string("20 20 20 10\n\0", 13));
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).cpu_vector(), (std::vector<CpuId>{0, 1, 2, 3}));
  EXPECT_EQ(node_of(t, 1).cpu_vector(), (std::vector<CpuId>{4, 5, 6, 7}));
  EXPECT_EQ(node_of(t, 2).cpu_vector(), (std::vector<CpuId>{8, 9, 10, 11}));
  EXPECT_EQ(node_of(t, 3).cpu_vector(), (std::vector<CpuId>{12, 13, 14, 15}));
  EXPECT_EQ(node_of(t, 1).free_bytes, 1000u << 10);
  EXPECT_EQ(t.distance(1, 0), 20u);
  EXPECT_EQ(t.distance(3, 3), 10u);
  EXPECT_TRUE(t.distances_given());
}

TEST(TopologyIoSysfs, EmptyFiles) {
  TempTree tree;
  tree.node(0, "00000003\n", meminfo(0, 1048576, 1000), "10 20\n");
  tree.mkdir("node1");
  tree.write("node1/cpumap", "");   // no CPUs (numactl prints none)
  tree.write("node1/cpulist", "");  // ignored: there is a cpumap
  tree.write("node1/meminfo", "");  // unknown sizes
  tree.write("node1/distance", "20 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_TRUE(node_of(t, 1).cpus.empty());
  EXPECT_EQ(node_of(t, 1).memory_bytes, kUnknownBytes);
  EXPECT_EQ(t.raw_distance(1, 0), 20u);
  EXPECT_EQ(render_numactl(t),
            "available: 2 nodes (0-1)\n"
            "node 0 cpus: 0 1\n"
            "node 0 size: 1024 MB\n"
            "node 0 free: 0 MB\n"
            "node 1 cpus:\n"
            "node 1 size: <not available>\n"
            "node 1 free: <not available>\n"
            "node distances:\n"
            "node   0   1 \n"
            "  0:  10  20 \n"
            "  1:  20  10 \n");
}

TEST(TopologyIoSysfs, EmptyDistanceFileEndsTheTableLikeLibnuma) {
  // libnuma stops reading distances at an empty file and, with no id absent
  // below it, drops the whole table.
  TempTree tree;
  tree.node(0, "1\n", meminfo(0, 1048576, 1000), "10 20 30\n");
  tree.node(1, "2\n", meminfo(1, 1048576, 1000), "");
  tree.write("node1/distance", "");
  tree.node(2, "4\n", meminfo(2, 1048576, 1000), "30 20 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_FALSE(t.distances_given());
  EXPECT_NE(render_numactl(t).find("No distance information available.\n"), std::string::npos);

  // With a gap below it (no node 1), the rows before the empty file stay.
  TempTree sparse;
  sparse.node(0, "1\n", meminfo(0, 1048576, 1000), "10 20 30\n");
  sparse.node(2, "2\n", meminfo(2, 1048576, 1000), "20 10 30\n");
  sparse.node(5, "4\n", meminfo(5, 1048576, 1000), "");
  sparse.write("node5/distance", "");
  Topology s = must(load_topology_sysfs(sparse.root()));
  EXPECT_EQ(s.raw_distance(0, 2), 20u);
  EXPECT_EQ(s.raw_distance(2, 5), 30u);
  EXPECT_EQ(s.raw_distance(5, 0), 0u);
  EXPECT_NE(render_numactl(s).find("No distance information available.\n"), std::string::npos);
}

TEST(TopologyIoSysfs, CpulistOnlyNode) {
  // Old kernels have cpumap only; some trees have cpulist only. Without any
  // cpumap we fall back to cpulist (numactl itself would show no CPUs).
  TempTree tree;
  tree.node(0, "", meminfo(0, 1048576, 1000), "10 20\n");
  tree.write("node0/cpulist", "0-3,8,10-11\n");
  tree.node(1, "", meminfo(1, 1048576, 1000), "20 10\n");
  tree.write("node1/cpulist", std::string("4-7\n\0", 5));
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).cpu_vector(), (std::vector<CpuId>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(node_of(t, 1).cpu_vector(), (std::vector<CpuId>{4, 5, 6, 7}));
  EXPECT_EQ(t.node_of_cpu(9), kNoNode);
}

TEST(TopologyIoSysfs, CpumapWinsOverCpulist) {
  TempTree tree;
  tree.node(0, "00000001\n", meminfo(0, 1048576, 1000), "10\n");
  tree.write("node0/cpulist", "0-7\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).cpu_vector(), (std::vector<CpuId>{0}));
}

TEST(TopologyIoSysfs, MemorylessNode) {
  TempTree tree;
  tree.node(0, "00000003\n", meminfo(0, 4194304, 2097152), "10 20 20\n");
  tree.node(1, "0000000c\n", meminfo(1, 0, 0), "20 10 20\n");
  tree.node(2, "00000030\n", meminfo(2, 4194304, 1048576), "20 20 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_FALSE(node_of(t, 1).has_memory());
  EXPECT_EQ(node_of(t, 1).memory_bytes, 0u);
  EXPECT_EQ(t.memory_nodes().to_string(), "0,2");
  EXPECT_EQ(t.cpu_nodes().to_string(), "0-2");
  // A memoryless node is never a fallback target, its own list starts elsewhere.
  auto f1 = t.fallback_order(1);
  ASSERT_EQ(f1.size(), 2u);
  EXPECT_EQ(std::count(f1.begin(), f1.end(), 1u), 0);
  auto f0 = t.fallback_order(0);
  ASSERT_EQ(f0.size(), 2u);
  EXPECT_EQ(f0[0], 0u);
  EXPECT_EQ(f0[1], 2u);
  EXPECT_NE(render_numactl(t).find("node 1 size: 0 MB\nnode 1 free: 0 MB\n"), std::string::npos);
}

TEST(TopologyIoSysfs, WideCpumapWithCpuAbove4000) {
  // 200 words = 6400 bits; CPU 4001 is bit 1 of word 125 (counting from the
  // least significant, last word), CPU 0 the lowest bit of the last word.
  std::vector<std::string> words(200, "00000000");
  words[199] = "00000001";        // cpu 0
  words[199 - 125] = "00000002";  // cpu 125*32+1 = 4001
  words[0] = "80000000";          // cpu 199*32+31 = 6399
  std::string map;
  for (std::size_t i = 0; i < words.size(); ++i) map += (i ? "," : "") + words[i];
  TempTree tree;
  tree.node(0, map + "\n", meminfo(0, 1048576, 1000), "10 20\n");
  tree.node(1, "00000002,00000000\n", meminfo(1, 1048576, 1000), "20 10\n");  // cpu 33
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).cpu_vector(), (std::vector<CpuId>{0, 4001, 6399}));
  EXPECT_EQ(node_of(t, 1).cpu_vector(), (std::vector<CpuId>{33}));
  EXPECT_EQ(t.node_of_cpu(4001), 0u);
  EXPECT_EQ(t.max_cpu(), 6400u);
  EXPECT_NE(render_numactl(t).find("node 0 cpus: 0 4001 6399\n"), std::string::npos);
}

TEST(TopologyIoSysfs, ShortWordsAndSparseDistances) {
  // Old kernels print the first word with fewer digits; distance lines may
  // be shorter than the node count (the rest is not given) or longer.
  TempTree tree;
  tree.node(0, "f\n", meminfo(0, 1048576, 1000), "10 20 40 99 99\n");
  tree.node(4, "f0\n", meminfo(4, 1048576, 1000), "20 10\n");
  tree.node(9, "3,00000000\n", meminfo(9, 1048576, 1000), "40 40 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 9).cpu_vector(), (std::vector<CpuId>{32, 33}));
  EXPECT_EQ(t.raw_distance(0, 9), 40u);
  EXPECT_EQ(t.raw_distance(4, 9), 0u);  // not given
  EXPECT_EQ(t.distance(4, 9), kRemoteDistance);
  EXPECT_EQ(render_numactl(t).substr(render_numactl(t).find("node distances:")),
            "node distances:\n"
            "node   0   4   9 \n"
            "  0:  10  20  40 \n"
            "  4:  20  10   0 \n"
            "  9:  40  40  10 \n");
}

TEST(TopologyIoSysfs, DistanceRowMissingForFirstNodeOnly) {
  TempTree tree;
  tree.node(0, "1\n", meminfo(0, 1048576, 1000), "");
  tree.node(1, "2\n", meminfo(1, 1048576, 1000), "21 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_TRUE(t.distances_given());
  EXPECT_EQ(t.raw_distance(0, 1), 0u);
  EXPECT_EQ(t.distance(0, 1), kRemoteDistance);
  EXPECT_EQ(t.distance(1, 0), 21u);
  EXPECT_NE(render_numactl(t).find("  0:   0   0 \n  1:  21  10 \n"), std::string::npos);
}

TEST(TopologyIoSysfs, IgnoresNonNodeEntries) {
  TempTree tree;
  tree.node(3, "1\n", meminfo(3, 1048576, 1000), "10\n");
  tree.write("online", "3\n");
  tree.write("possible", "0-7\n");
  tree.write("has_cpu", std::string("3\n\0", 3));
  tree.mkdir("power");
  tree.mkdir("nodefoo");
  tree.mkdir("node3x");
  tree.write("uevent", "");
  Topology t = must(load_topology_sysfs(tree.node_dir()));
  EXPECT_EQ(t.node_count(), 1u);
  EXPECT_EQ(t.nodes()[0].id, 3u);
  EXPECT_EQ(render_numactl(t),
            "available: 1 nodes (3)\n"
            "node 3 cpus: 0\n"
            "node 3 size: 1024 MB\n"
            "node 3 free: 0 MB\n"
            "node distances:\n"
            "node   3 \n"
            "  3:  10 \n");
}

TEST(TopologyIoSysfs, MeminfoReadLikeLibnuma) {
  // The number right before "kB" (any case), blanks skipped; it must stand
  // alone, else the value is unknown; the last matching line decides.
  TempTree tree;
  tree.node(0, "1\n", "junk line\nNode 0 MemFree:\t 77 kB\nNode 0 MemTotal: 2048kB\n",
            "10 20 20 20 20\n");
  tree.node(1, "2\n", "Node 1 MemTotal: 2048000 KB\nNode 1 MemFree: 1024 kb\n", "20 10 20 20 20\n");
  tree.node(2, "4\n", "Node 2 MemTotal:2048000kB\nNode 2 MemFree: lots kB\n", "20 20 10 20 20\n");
  tree.node(3, "8\n",
            "Node 3 MemTotal: 4096 kB\nNode 3 MemTotal: 8192 kB\nNode 3 MemFree: 0x10 kB\n",
            "20 20 20 10 20\n");
  tree.node(4, "10\n", std::string("Node 4 MemTotal: 4096 kB\n\0Node 4 MemFree: 10 kB\n", 48),
            "20 20 20 20 10\n");
  Topology t = must(load_topology_sysfs(tree.root()));
  EXPECT_EQ(node_of(t, 0).memory_bytes, 2048u << 10);
  EXPECT_EQ(node_of(t, 0).free_bytes, 77u << 10);
  EXPECT_EQ(node_of(t, 1).memory_bytes, 2048000ull << 10);
  EXPECT_EQ(node_of(t, 1).free_bytes, 1024u << 10);
  EXPECT_EQ(node_of(t, 2).memory_bytes, kUnknownBytes);
  EXPECT_EQ(node_of(t, 2).free_bytes, kUnknownBytes);
  EXPECT_EQ(node_of(t, 3).memory_bytes, 8192u << 10);
  EXPECT_EQ(node_of(t, 3).free_bytes, kUnknownBytes);
  EXPECT_EQ(node_of(t, 4).memory_bytes, 4096u << 10);
  EXPECT_EQ(node_of(t, 4).free_bytes, kUnknownBytes);
}

// ------------------------------------------------------- numactl text quirks

TEST(TopologyIoText, ToleratesCrlfTrailingBlanksAndBlankLines) {
  const std::string clean(builtin_default_numactl_text());
  std::string crlf;
  for (char c : clean) {
    if (c == '\n') crlf += "  \r\n";
    else crlf += c;
  }
  crlf = "\n\n" + crlf + "\r\n\n  \n";
  Topology t = must(parse_numactl_text(crlf, "ticket.txt"));
  EXPECT_EQ(render_numactl(t), clean);
  // No final newline at all.
  std::string cut = clean.substr(0, clean.size() - 1);
  EXPECT_EQ(render_numactl(must(parse_numactl_text(cut))), clean);
}

TEST(TopologyIoText, NotAvailableAndCpulessNodes) {
  const std::string text =
      "available: 3 nodes (0,2,7)\n"
      "node 0 cpus: 0 1 2 3\n"
      "node 0 size: 4096 MB\n"
      "node 0 free: <not available>\n"
      "node 2 cpus:\n"
      "node 2 size: 0 MB\n"
      "node 2 free: 0 MB\n"
      "node 7 cpus: 4 5\n"
      "node 7 size: <not available>\n"
      "node 7 free: <not available>\n"
      "node distances:\n"
      "node   0   2   7 \n"
      "  0:  10  20  30 \n"
      "  2:  20  10  30 \n"
      "  7:  30  30  10 \n";
  Topology t = must(parse_numactl_text(text));
  EXPECT_EQ(render_numactl(t), text);
  EXPECT_EQ(node_of(t, 0).free_bytes, kUnknownBytes);
  EXPECT_EQ(node_of(t, 0).memory_bytes, 4096 * kMiB);
  EXPECT_FALSE(node_of(t, 2).has_memory());
  EXPECT_FALSE(node_of(t, 2).has_cpus());
  EXPECT_EQ(t.node_of_cpu(5), 7u);
  EXPECT_EQ(t.distance(7, 2), 30u);
}

TEST(TopologyIoText, WideIdsRenderWithPrintfPadding) {
  // "% 3d " gives " 250 " for ids of three digits.
  const std::string text =
      "available: 2 nodes (8,250)\n"
      "node 8 cpus: 0\n"
      "node 8 size: 1 MB\n"
      "node 8 free: 0 MB\n"
      "node 250 cpus: 1\n"
      "node 250 size: 1 MB\n"
      "node 250 free: 1 MB\n"
      "node distances:\n"
      "node   8  250 \n"
      "  8:  10  200 \n"
      " 250:  200  10 \n";
  Topology t = must(parse_numactl_text(text));
  EXPECT_EQ(render_numactl(t), text);
}
