// `numaheap stat`'s reading of /proc: numa_maps sums, vCPU thread names,
// field 39 of stat, and a recorded tree (tests/data/proc/kvm-4vcpu-3node: a
// libvirt-style 4-vCPU KVM guest with 2 MiB hugetlb and 4 KiB mappings on
// nodes 0 and 1 of a 3-node host, a hand-started qemu without named vCPU
// threads, and a shell).
#include <gtest/gtest.h>

#include "numaheap/topology_io.h"
#include "proc_stat.h"
#include "topology_json.h"

using namespace numaheap;
using namespace numaheap::tools;

namespace {

const std::string kTree = std::string(NUMAHEAP_TEST_DATA) + "/proc/kvm-4vcpu-3node";
constexpr std::uint64_t kKiB = 1024, kPage = 4 * kKiB, kHuge = 2048 * kKiB;

}  // namespace

TEST(ProcStat, NumaMapsSumsPagesTimesTheMappingsPageSize) {
  auto m = parse_numa_maps(
      "7f0000000000 bind:0 file=/dev/hugepages/x huge dirty=3 N0=2 N1=1 kernelpagesize_kB=2048\n"
      "7f1000000000 default anon=10 dirty=10 N1=10 kernelpagesize_kB=4\n"
      "7f2000000000 default\n"
      "7f3000000000 default anon=5 N3=5\n"  // no kernelpagesize_kB: 4 KiB
      "7f4000000000 default file=/huge/Nfile N0=1 kernelpagesize_kB=1048576 huge\n",
      "maps");
  ASSERT_TRUE(m.has_value()) << m.error().message;
  ASSERT_EQ(m->nodes.size(), 3u);
  EXPECT_EQ(m->nodes[0].bytes, 2 * kHuge + 1024 * 1024 * kKiB);
  EXPECT_EQ(m->nodes[1].bytes, 1 * kHuge + 10 * kPage);
  EXPECT_EQ(m->nodes[3].bytes, 5 * kPage);
  EXPECT_EQ(m->nodes[0].huge, (std::map<std::uint64_t, std::uint64_t>{{2048, 2}, {1048576, 1}}));
  EXPECT_EQ(m->nodes[1].huge, (std::map<std::uint64_t, std::uint64_t>{{2048, 1}}));
  EXPECT_TRUE(m->nodes[3].huge.empty());
  EXPECT_EQ(m->total_bytes(), 3 * kHuge + 1024 * 1024 * kKiB + 15 * kPage);

  for (const char* bad : {"7f00 default N0=x kernelpagesize_kB=4\n", "7f00 default N0 kernelpagesize_kB=4\n",
                          "7f00 default N5000=1\n", "7f00 default N0=1 kernelpagesize_kB=big\n"}) {
    auto r = parse_numa_maps(std::string("7e00 default\n") + bad, "f/numa_maps");
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(std::string(r.error().message.c_str()).find("f/numa_maps:2:"), std::string::npos)
        << r.error().message.c_str();
  }
}

TEST(ProcStat, VcpuThreadNames) {
  EXPECT_EQ(vcpu_index_of("CPU 0/KVM\n"), 0u);
  EXPECT_EQ(vcpu_index_of("CPU 17/TCG"), 17u);
  for (const char* no : {"qemu-system-x86\n", "CPU /KVM", "CPU x/KVM", "CPU 1/HVF", "CPU 1/KVMx", "cpu 1/KVM",
                         "IO mon_iothread", "CPU 1"})
    EXPECT_FALSE(vcpu_index_of(no).has_value()) << no;
}

// Field 39 counted after the last ')': a command name with spaces and
// parentheses must not shift the fields (awk '{print $39}' gets it wrong).
TEST(ProcStat, StatField39AfterTheLastParenthesis) {
  std::string tail = " S 1 2 2 0 -1 4194624 1 0 0 0 5 6 0 0 20 0 9 0 100 1000 10 18446744073709551615 1 1 0 0 0 0 0 "
                     "4096 0 0 0 0 -1 13 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
  auto a = last_cpu_of_stat("4250 (CPU 0/KVM)" + tail, "s");
  ASSERT_TRUE(a.has_value()) << a.error().message.c_str();
  EXPECT_EQ(*a, 13);
  auto b = last_cpu_of_stat("77 (a) b (c d))" + tail, "s");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, 13);
  EXPECT_FALSE(last_cpu_of_stat("4250 (CPU 0/KVM) S 1 2 3\n", "s").has_value());
  EXPECT_FALSE(last_cpu_of_stat("no parenthesis", "s").has_value());
}

TEST(ProcStat, RecordedTreeFindsTheQemuProcesses) {
  EXPECT_EQ(find_qemu_processes(kTree), (std::vector<int>{4242, 6001}));
}

TEST(ProcStat, RecordedKvmGuest) {
  auto topo = load_topology_sysfs(kTree);
  ASSERT_TRUE(topo.has_value()) << topo.error().message.c_str();
  auto g = read_guest_stat(kTree, 4242, *topo);
  ASSERT_TRUE(g.has_value()) << g.error().message.c_str();
  EXPECT_EQ(g->name, "vm1");
  EXPECT_EQ(g->comm, "qemu-system-x86");
  ASSERT_EQ(g->vcpus.size(), 4u);
  const int tids[] = {4250, 4251, 4252, 4253}, cpus[] = {1, 2, 3, 9};
  const NodeId nodes[] = {0, 0, 0, 2};
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(g->vcpus[i].index, i);
    EXPECT_EQ(g->vcpus[i].tid, tids[i]);
    EXPECT_EQ(g->vcpus[i].accel, "KVM");
    EXPECT_EQ(g->vcpus[i].cpu, cpus[i]);
    EXPECT_EQ(g->vcpus[i].node, nodes[i]);
  }
  // numa_maps: node 0 has 8436 base pages and 300 huge pages, node 1 4216
  // base pages and 84 + 128 huge pages.
  const std::uint64_t n0 = 8436 * kPage + 300 * kHuge, n1 = 4216 * kPage + 212 * kHuge;
  ASSERT_EQ(g->memory.nodes.size(), 2u);
  EXPECT_EQ(g->memory.nodes[0].bytes, n0);
  EXPECT_EQ(g->memory.nodes[1].bytes, n1);
  EXPECT_EQ(g->memory.nodes[1].huge, (std::map<std::uint64_t, std::uint64_t>{{2048, 212}}));
  ASSERT_TRUE(g->local_fraction.has_value());
  EXPECT_DOUBLE_EQ(*g->local_fraction, 0.75 * static_cast<double>(n0) / static_cast<double>(n0 + n1));
  // Node 1 has no vCPU: all of it moves, 3/4 to node 0 and 1/4 to node 2.
  ASSERT_TRUE(g->move.has_value());
  EXPECT_EQ(g->move->bytes, n1);
  EXPECT_EQ(g->move->from, (std::map<NodeId, std::uint64_t>{{1, n1}}));
  EXPECT_EQ(g->move->to, (std::map<NodeId, std::uint64_t>{{0, n1 / kPage * 3 / 4 * kPage},
                                                           {2, n1 / kPage / 4 * kPage}}));

  auto j = guest_to_json(*g);
  EXPECT_EQ(j["local_fraction"], 0.4422);  // four decimals
  EXPECT_EQ(j["nodes"].size(), 3u);  // 0 and 1 with memory, 2 with a vCPU
  EXPECT_EQ(j["nodes"][2]["memory_bytes"], 0u);
  EXPECT_EQ(j["nodes"][2]["vcpus"], 1u);
  EXPECT_EQ(j["nodes"][0]["memory_mb"], 632.95);  // 663699456 bytes, two decimals as numastat
  EXPECT_EQ(j["total_bytes"], n0 + n1);
}

TEST(ProcStat, QemuWithoutNamedThreadsShowsMemoryOnly) {
  auto topo = load_topology_sysfs(kTree);
  ASSERT_TRUE(topo.has_value());
  auto g = read_guest_stat(kTree, 6001, *topo);
  ASSERT_TRUE(g.has_value());
  EXPECT_TRUE(g->vcpus.empty());
  EXPECT_EQ(g->memory.nodes[2].bytes, (1500 + 32768 + 20) * kPage);
  EXPECT_FALSE(g->local_fraction.has_value());
  EXPECT_FALSE(g->move.has_value());
  EXPECT_NE(render_guest_text(*g).find("debug-threads=on"), std::string::npos);
}

TEST(ProcStat, MissingProcessIsAnErrorNamingIt) {
  auto topo = builtin_default_topology();
  auto g = read_guest_stat(kTree, 99999, topo);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, Errc::io_error);
  EXPECT_NE(std::string(g.error().message.c_str()).find("99999"), std::string::npos);
}

// The share-out: by vCPU count, 4 KiB granularity, the remainder to the
// node with the most vCPUs; every byte accounted for.
TEST(ProcStat, MoveSharesOutByVcpuCount) {
  GuestStat g;
  for (unsigned i = 0; i < 3; ++i) g.vcpus.push_back(VcpuThread{i, 10 + static_cast<int>(i), "TCG", 0, i == 0 ? 0u : 1u});
  g.memory.nodes[2].bytes = 5 * kPage;
  g.memory.nodes[1].bytes = 1 * kPage;
  summarise(g);
  ASSERT_TRUE(g.move.has_value());
  EXPECT_EQ(g.move->bytes, 5 * kPage);
  EXPECT_EQ(g.move->to, (std::map<NodeId, std::uint64_t>{{0, 1 * kPage}, {1, 4 * kPage}}));
  ASSERT_TRUE(g.local_fraction.has_value());
  EXPECT_DOUBLE_EQ(*g.local_fraction, (0.0 + 1.0 / 6 + 1.0 / 6) / 3);

  // All memory already where the vCPUs run: nothing to move.
  g.memory.nodes.erase(2);
  summarise(g);
  ASSERT_TRUE(g.move.has_value());
  EXPECT_EQ(g.move->bytes, 0u);
  EXPECT_TRUE(g.move->to.empty());
}
