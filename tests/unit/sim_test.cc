// The workload simulator: trace format and its errors, the cost model on
// hand-computable traces, config validation, determinism, and the
// overcommit scenario's watermark behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "bench/sim/sim.h"
#include "numaheap/migrator.h"
#include "numaheap/topology_io.h"

namespace numaheap::sim {
namespace {

const PolicyResult& policy(const SimReport& r, const std::string& name) {
  for (const auto& p : r.policies)
    if (p.name == name) return p;
  ADD_FAILURE() << "no policy " << name;
  return r.policies.front();
}

std::string parse_error(const std::string& text) {
  auto t = parse_trace(text, "t.trace");
  if (t) return "(parsed)";
  EXPECT_EQ(t.error().code, Errc::parse_error);
  return t.error().message;
}

TEST(SimTrace, ParsesAccessesPlacementsAndComments) {
  auto t = parse_trace(
      "# a comment\n# vcpu 0 node 1\n#vcpu 1 node 2 at 7\r\n\n0 0 0x1fff R\n3 1 2000 W\n3 0 0X3000 R\n", "x");
  ASSERT_TRUE(t.has_value()) << t.error().message;
  ASSERT_EQ(t->accesses.size(), 3u);
  EXPECT_EQ(t->accesses[0].page, 1u);
  EXPECT_FALSE(t->accesses[0].write);
  EXPECT_EQ(t->accesses[1].page, 2u);  // hex without 0x
  EXPECT_TRUE(t->accesses[1].write);
  EXPECT_EQ(t->accesses[2].page, 3u);
  ASSERT_EQ(t->placements.size(), 2u);
  EXPECT_EQ(t->placements[1].vcpu, 1u);
  EXPECT_EQ(t->placements[1].node, 2u);
  EXPECT_EQ(t->placements[1].at, 7u);
  EXPECT_EQ(t->placements[1].line, 3u);
}

TEST(SimTrace, MalformedLinesNameFileAndLine) {
  EXPECT_EQ(parse_error("0 0 0x10 R\n1 0 xyz R\n"), "t.trace:2: address 'xyz' is not hex");
  EXPECT_EQ(parse_error("1 0 0x10 X\n"), "t.trace:1: access type must be R or W");
  EXPECT_EQ(parse_error("1 0 0x10\n"), "t.trace:1: expected '<seq> <vcpu> <address-hex> <R|W>'");
  EXPECT_EQ(parse_error("1 0 0x10 R extra\n"), "t.trace:1: expected '<seq> <vcpu> <address-hex> <R|W>'");
  EXPECT_EQ(parse_error("5 0 0x1 R\n4 0 0x1 R\n"), "t.trace:2: seq 4 goes backwards (previous 5)");
  EXPECT_EQ(parse_error("-1 0 0x1 R\n"), "t.trace:1: seq '-1' is not a decimal number");
  EXPECT_EQ(parse_error("1 4096 0x1 R\n"), "t.trace:1: vcpu '4096' is not a number below 4096");
  EXPECT_EQ(parse_error("1 0 0x1ffffffffffffffff R\n"), "t.trace:1: address '0x1ffffffffffffffff' is not hex");
  EXPECT_EQ(parse_error("# vcpu a node 1\n"), "t.trace:1: vcpu must be a number below 4096");
  EXPECT_EQ(parse_error("# vcpu 0 nod 1\n"), "t.trace:1: expected 'node N' with N below 1024");
  EXPECT_EQ(parse_error("# vcpu 0 node 1024\n"), "t.trace:1: expected 'node N' with N below 1024");
  EXPECT_EQ(parse_error("# vcpu 0 node 1 at\n"), "t.trace:1: expected '# vcpu V node N [at SEQ]'");
  EXPECT_EQ(parse_error("# vcpu 0 node 1 when 5\n"), "t.trace:1: expected 'at SEQ' with a decimal SEQ");
  EXPECT_EQ(parse_error("# vcpu 0 node 1\n# vcpu 0 node 2\n"),
            "t.trace:2: vcpu 0 already placed at seq 0 (line 1)");
  EXPECT_EQ(parse_error(std::string("1 0 0x1 R\n2 0 0x\0 R\n", 21)), "t.trace:2: NUL byte");
  auto missing = load_trace("/nonexistent/x.trace");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::io_error);
}

TEST(SimTrace, WorkloadChecksAgainstTheTopology) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 4;
  auto make = [&](const std::string& text) -> std::string {
    auto t = parse_trace(text, "t");
    EXPECT_TRUE(t.has_value());
    auto w = make_trace_workload(std::move(*t), topo, c);
    return w ? "(ok)" : w.error().message;
  };
  EXPECT_EQ(make("# vcpu 0 node 9\n0 0 0x1 R\n"), "t:1: node 9 is not in topology builtin:seed-4node-libvirt");
  EXPECT_EQ(make("0 0 0x1 R\n"), "t: vcpu 0 accesses memory at seq 0 before a '# vcpu 0 node N' line places it");
  EXPECT_EQ(make("# vcpu 0 node 0 at 5\n0 0 0x1 R\n"),
            "t: vcpu 0 accesses memory at seq 0 before a '# vcpu 0 node N' line places it");
  EXPECT_EQ(make("# vcpu 0 node 0\n"), "t: no accesses");
  EXPECT_EQ(make("# vcpu 0 node 0\n0 0 0x1 R\n"), "(ok)");

  auto cpuless = TopologyBuilder("test:cpuless").add_node(0, {0, 1}, 1ull << 30).add_node(1, {}, 1ull << 30).build();
  ASSERT_TRUE(cpuless.has_value());
  auto t = parse_trace("# vcpu 0 node 1\n0 0 0x1 R\n", "t");
  ASSERT_TRUE(t.has_value());
  auto w = make_trace_workload(std::move(*t), *cpuless, c);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().message, "t:1: node 1 has no CPUs to run a vCPU");
}

// vCPU 0 on node 0 uses page 1, vCPU 1 on node 1 page 2; from seq 500 on,
// vCPU 1 runs on node 2. Ten periods of 100 accesses.
std::string two_page_trace() {
  std::string s = "# vcpu 0 node 0\n# vcpu 1 node 1\n# vcpu 1 node 2 at 500\n";
  for (int i = 0; i < 1000; ++i)
    s += std::to_string(i) + " " + std::to_string(i % 2) + " " + (i % 2 ? "0x2000" : "0x1abc") + " R\n";
  return s;
}

TEST(SimRun, CostModelOnAHandComputableTrace) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 10;
  c.split_page_cost = 0;  // a two-page guest is all 4 KiB mappings (the split cost has its own test)
  auto t = parse_trace(two_page_trace(), "two");
  ASSERT_TRUE(t.has_value());
  auto w = make_trace_workload(std::move(*t), topo, c);
  ASSERT_TRUE(w.has_value()) << w.error().message;
  ASSERT_EQ((*w)->guests().size(), 1u);
  EXPECT_EQ((*w)->guests()[0].pages, 2u);
  EXPECT_EQ((*w)->first_touch_node(0, 0), 0u);
  EXPECT_EQ((*w)->first_touch_node(0, 1), 1u);  // first touched by vCPU 1 on node 1
  auto rep = run(topo, **w, c, policy_names());
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  ASSERT_EQ(rep->periods, 10u);
  ASSERT_EQ(rep->vcpu_moves.size(), 1u);
  EXPECT_DOUBLE_EQ(rep->vcpu_moves[0].at_s, 5);

  const PolicyResult& none = policy(*rep, "none");
  const double remote = topo.distance(2, 1) / 10.0;
  for (int k = 0; k < 5; ++k) {
    EXPECT_DOUBLE_EQ(none.local_ratio[k], 1.0) << k;
    EXPECT_DOUBLE_EQ(none.access_cost[k], 1.0) << k;
  }
  for (int k = 5; k < 10; ++k) {
    EXPECT_DOUBLE_EQ(none.local_ratio[k], 0.5) << k;
    EXPECT_DOUBLE_EQ(none.access_cost[k], (1.0 + remote) / 2) << k;
  }
  EXPECT_EQ(none.pages_migrated, 0u);
  EXPECT_DOUBLE_EQ(none.local_ratio_mean, 0.75);

  const PolicyResult& oracle = policy(*rep, "oracle");
  EXPECT_DOUBLE_EQ(oracle.local_ratio_final, 1.0);
  EXPECT_DOUBLE_EQ(oracle.local_ratio_mean, 1.0);
  EXPECT_DOUBLE_EQ(oracle.access_cost_mean, 1.0);  // its moves are free
  EXPECT_EQ(oracle.pages_migrated, 1u);

  const PolicyResult& naive = policy(*rep, "naive");
  EXPECT_EQ(naive.pages_migrated, 1u);
  EXPECT_DOUBLE_EQ(naive.local_ratio[5], 0.5);  // moves count from the next period
  EXPECT_DOUBLE_EQ(naive.local_ratio[6], 1.0);
  EXPECT_GT(naive.access_cost[5], none.access_cost[5]);  // paid the copy
  // In local accesses of 100 ns: the copy at 8 GB/s plus 3.7 us per page;
  // two samples (one per page) of 1 us every period.
  const double copy = 4096.0 / 8e9 * 1e9 / 100, op = 3.7e3 / 100, sample = 1e3 / 100;
  EXPECT_NEAR(naive.access_cost[5] * 100, (1.0 + remote) / 2 * 100 + copy + op + 2 * sample, 1e-9);
  EXPECT_NEAR(naive.access_cost[4] * 100, 100 + 2 * sample, 1e-9);  // settled: only the samples
  EXPECT_NEAR(naive.migration_seconds, 4096.0 / 8e9 + 3.7e-6, 1e-15);
  EXPECT_EQ(naive.move_ops, 1u);
  EXPECT_NEAR(naive.cost_samples, 2 * sample / 100, 1e-12);
  EXPECT_NEAR(naive.cost_placement + naive.cost_moves + naive.cost_samples + naive.cost_contention + naive.cost_split,
              naive.access_cost_mean, 1e-12);
  EXPECT_DOUBLE_EQ(naive.mib_moved[4], 0);
  EXPECT_DOUBLE_EQ(naive.mib_moved[5], 1.0 / 256);

  // numaheap: vCPU 1 left node 1 for node 2 (no vCPU there any more), and
  // the embedder steps the migrator at the move, so page 2 -- sampled only
  // on node 1 -- goes to node 2 before period 5 runs, as the oracle's does
  // (naive waits for a sample from node 2).
  const PolicyResult& nh = policy(*rep, "numaheap");
  EXPECT_EQ(nh.pages_migrated, 1u);
  EXPECT_EQ(nh.pages_bounced, 0u);
  EXPECT_DOUBLE_EQ(nh.local_ratio_final, 1.0);
  EXPECT_DOUBLE_EQ(nh.local_ratio[5], 1.0);
  EXPECT_DOUBLE_EQ(nh.local_ratio_mean, 1.0);
  EXPECT_GT(nh.local_ratio_mean, naive.local_ratio_mean);
  EXPECT_GT(nh.samples_used, 0u);
}

// Contention: a copy that takes the whole next period, at half the nodes'
// bandwidth, makes every access to its source's and destination's pages
// in that period cost 1.5 times as much; nothing else is charged.
TEST(SimRun, CopiesSlowTheNodesTheyFlowThrough) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 10;
  c.bandwidth_gb_s = 4096e-9;    // one 4 KiB copy takes a second: one period
  c.node_bandwidth_gb_s = 8192e-9;
  c.page_overhead_us = 0;
  c.sample_us = 0;
  c.split_page_cost = 0;  // the two pages are 4 KiB mappings: only contention here
  auto t = parse_trace(two_page_trace(), "two");
  ASSERT_TRUE(t.has_value());
  auto w = make_trace_workload(std::move(*t), topo, c);
  ASSERT_TRUE(w.has_value());
  auto rep = run(topo, **w, c, {"none", "naive"});
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  const PolicyResult& naive = policy(*rep, "naive");
  const double copy = 1e9 / 100;  // one second in local accesses
  // Period 5: vCPU 1 (node 2) reads page 2 on node 1; naive moves it (paid here).
  const double remote = topo.distance(2, 1) / 10.0;
  EXPECT_NEAR(naive.access_cost[5] * 100, (1.0 + remote) / 2 * 100 + copy, 1e-6);
  // Period 6: both pages local; page 2's copy flows the whole period through
  // nodes 1 and 2, so its 50 accesses cost 1.5; page 1 (node 0) is untouched.
  EXPECT_NEAR(naive.access_cost[6], (50 * 1.0 + 50 * 1.5) / 100, 1e-12);
  EXPECT_DOUBLE_EQ(naive.access_cost[7], 1.0);
  EXPECT_GT(naive.cost_contention, 0);
  c.node_bandwidth_gb_s = 1;  // plenty: no measurable contention
  auto rep2 = run(topo, **w, c, {"naive"});
  ASSERT_TRUE(rep2.has_value());
  EXPECT_NEAR(rep2->policies[0].access_cost[6], 1.0, 1e-5);
}

TEST(SimRun, ExampleTraceAndDeterminism) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 20;
  auto run_once = [&] {
    auto t = load_trace(std::string(NUMAHEAP_TEST_DATA) + "/traces/example.trace");
    EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
    auto w = make_trace_workload(std::move(*t), topo, c);
    EXPECT_TRUE(w.has_value());
    auto rep = run(topo, **w, c, policy_names());
    EXPECT_TRUE(rep.has_value());
    return *rep;
  };
  const SimReport a = run_once(), b = run_once();
  ASSERT_EQ(a.policies.size(), 5u);
  for (std::size_t i = 0; i < a.policies.size(); ++i) {
    EXPECT_EQ(a.policies[i].local_ratio, b.policies[i].local_ratio);
    EXPECT_EQ(a.policies[i].pages_migrated, b.policies[i].pages_migrated);
  }
  EXPECT_EQ(a.guest_pages, 36u);
  // vCPU 1 moved to node 3 halfway: first touch never recovers its pages.
  EXPECT_LT(policy(a, "none").local_ratio_final, 0.6);
  EXPECT_GE(policy(a, "oracle").local_ratio_final, policy(a, "numaheap").local_ratio_final);
}

TEST(SimRun, BadConfigAndNamesAreRefused) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 0.5;  // shorter than one period
  EXPECT_EQ(validate(c), "seconds must be one period .. 86400");
  c = {};
  c.guest_scale = 0;
  EXPECT_EQ(validate(c), "guest scale must be in (0, 1]");
  c = {};
  c.bandwidth_gb_s = std::nan("");
  EXPECT_FALSE(validate(c).empty());
  c = {};
  c.period_ms = 0;
  EXPECT_FALSE(validate(c).empty());
  c = {};
  c.page_overhead_us = -1;
  EXPECT_EQ(validate(c), "per-page overhead must be 0 .. 1e6 us");
  c = {};
  c.sample_us = std::nan("");
  EXPECT_EQ(validate(c), "sample cost must be 0 .. 1e6 us");
  c = {};
  c.node_bandwidth_gb_s = 0;
  EXPECT_EQ(validate(c), "node bandwidth must be 1e-6 .. 1e6 GB/s");
  c = {};
  c.vcpu_move_us = -1;
  EXPECT_EQ(validate(c), "vCPU move cost must be 0 .. 1e9 us");
  c = {};
  auto bad = make_scenario("nope", topo, c);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message, "unknown scenario 'nope' (known: vcpu-move, mixed, overcommit, phases)");
  c.guest_scale = 0.05;
  c.seconds = 4;
  auto w = make_scenario("vcpu-move", topo, c);
  ASSERT_TRUE(w.has_value());
  auto r = run(topo, **w, c, {"none", "smart"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "unknown policy 'smart' (known: none, naive, autonuma, numaheap, oracle, numaheap-follow)");
  r = run(topo, **w, c, {"none", "none"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "policy 'none' given twice");
  auto one = TopologyBuilder("test:one").add_node(0, {0}, 1ull << 30).build();
  ASSERT_TRUE(one.has_value());
  auto single = make_scenario("mixed", *one, c);
  ASSERT_FALSE(single.has_value());
  EXPECT_EQ(single.error().message, "scenario mixed needs at least two nodes with CPUs and memory");
}

// vCPU advice in the simulator: numaheap reports it once per moved vCPU
// when its memory is all behind; numaheap-follow moves those vCPUs back
// instead of the memory, pays for each, and moves no page.
TEST(SimRun, VcpuAdviceReportedAndFollowed) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.guest_scale = 0.05;
  c.seconds = 8;
  auto w = make_scenario("vcpu-move", topo, c);
  ASSERT_TRUE(w.has_value());
  auto r = run(topo, **w, c, {"numaheap", kFollowPolicy, "oracle"});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const PolicyResult &nh = r->policies[0], &follow = r->policies[1];
  EXPECT_EQ(nh.vcpu_advice, 4u);  // the four vCPUs, in the step after they moved
  EXPECT_EQ(nh.vcpus_moved, 0u);  // reported, not followed
  EXPECT_GT(nh.pages_migrated, 0u);
  EXPECT_EQ(follow.vcpus_moved, 4u);
  EXPECT_EQ(follow.pages_migrated, 0u);
  EXPECT_DOUBLE_EQ(follow.migration_seconds, 4 * c.vcpu_move_us * 1e-6);
  EXPECT_DOUBLE_EQ(follow.local_ratio_final, 1.0);  // back with their memory
}

TEST(SimRun, NormalizeMergesPerPageAndNode) {
  std::vector<GuestShape> g(2);
  g[0].pages = 4;
  g[1].pages = 2;
  std::vector<Touch> t = {{1, 1, 3, 1, 5}, {0, 2, 1, 2, 9}, {0, 2, 0, 1, 4}, {0, 2, 1, 3, 1}, {1, 0, 3, 1, 2}};
  normalize_touches(t, g);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].gfn, 2u);
  EXPECT_EQ(t[0].node, 0u);
  EXPECT_EQ(t[1].node, 1u);
  EXPECT_DOUBLE_EQ(t[1].count, 5);
  EXPECT_DOUBLE_EQ(t[1].first, 1);
  EXPECT_EQ(t[2].guest, 1u);
  EXPECT_EQ(t[2].gfn, 0u);
  EXPECT_EQ(t[3].gfn, 1u);
}

TEST(SimRun, OvercommitKeepsNumaheapAboveItsWatermark) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 12;
  c.guest_scale = 0.25;  // room on the target (40% of the guest) above its watermark
  auto w = make_scenario("overcommit", topo, c);
  ASSERT_TRUE(w.has_value());
  auto rep = run(topo, **w, c, {"naive", "numaheap"});
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  const PolicyResult& naive = policy(*rep, "naive");
  const PolicyResult& nh = policy(*rep, "numaheap");
  EXPECT_EQ(naive.min_free_pages, 0u);  // naive fills the target to the last frame
  // numaheap keeps its default watermark free: 2% of the node, at most
  // watermark_max_pages.
  std::uint64_t smallest = ~0ull;
  for (const auto& n : topo.nodes()) smallest = std::min(smallest, n.frame_count());
  EXPECT_GE(nh.min_free_pages, std::min<std::uint64_t>(smallest / 50, MigratorConfig{}.watermark_max_pages));
  EXPECT_GT(nh.min_free_pages, 0u);
  EXPECT_GT(nh.pages_migrated, 0u);
}

// Huge pages in the model: an access through a 4 KiB mapping costs
// split_page_cost more; first touch never splits (no split cost), naive
// splits every block it moves a page of, numaheap moves blocks whole and
// coalesces, so it ends with fewer 4 KiB-mapped pages than naive.
TEST(SimRun, SplitPagesCostAndNumaheapKeepsBlocksWhole) {
  const Topology topo = builtin_default_topology();
  SimConfig c;
  c.seconds = 20;
  c.guest_scale = 0.05;
  auto w = make_scenario("vcpu-move", topo, c);
  ASSERT_TRUE(w.has_value()) << w.error().message;
  auto rep = run(topo, **w, c, {"none", "naive", "numaheap"});
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  const PolicyResult& none = policy(*rep, "none");
  const PolicyResult& naive = policy(*rep, "naive");
  const PolicyResult& nh = policy(*rep, "numaheap");
  EXPECT_EQ(none.cost_split, 0);
  EXPECT_EQ(none.split_pages_final, 0u);
  EXPECT_GT(naive.cost_split, 0);
  EXPECT_GT(naive.split_pages_final, 0u);
  EXPECT_LT(nh.split_pages_final, naive.split_pages_final);
  EXPECT_GT(nh.blocks_moved_whole, 0u);
  EXPECT_EQ(naive.blocks_moved_whole, 0u);
  EXPECT_GT(naive.blocks_split, nh.blocks_split);
  EXPECT_LT(nh.cost_split, naive.cost_split);
  for (const PolicyResult* p : {&none, &naive, &nh})
    EXPECT_NEAR(p->cost_placement + p->cost_moves + p->cost_samples + p->cost_contention + p->cost_split,
                p->access_cost_mean, 1e-9)
        << p->name;
  // Off: nobody pays for 4 KiB mappings.
  c.split_page_cost = 0;
  auto w0 = make_scenario("vcpu-move", topo, c);
  ASSERT_TRUE(w0.has_value());
  auto rep0 = run(topo, **w0, c, {"naive"});
  ASSERT_TRUE(rep0.has_value());
  EXPECT_EQ(rep0->policies[0].cost_split, 0);
  c.split_page_cost = -1;
  EXPECT_EQ(validate(c), "split-page cost must be 0 .. 1e6 local accesses");
}

}  // namespace
}  // namespace numaheap::sim
