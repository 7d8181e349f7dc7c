// Issue 15's bar for the migrator, checked by the simulator on the honest
// cost model (per-page overhead, hinting-fault samples, copy contention) at
// its defaults, on every built-in scenario and every real topology in
// tests/data (the seed 4-node machine is `builtin`):
//  * numaheap's mean access cost is <= none's, naive's and autonuma's;
//  * on vcpu-move it is within 5% of the oracle's, also at
//    --split-page-cost 0 (the policy, not the model, closes the gap);
//  * pages bounced <= the oracle's bounced + 1% of the pages naive moves.
// Guests are scaled to a quarter (a tenth under the sanitizers) so the
// suite stays fast (NUMAHEAP_SIM_FULL=1 runs them full size).
//
// Where numaheap does not reach the bar yet, the case is listed in
// kKnownGaps with the baseline it loses to: that comparison is reported
// (as a test property and on stdout) instead of asserted, everything else
// still is -- and a listed gap that has closed fails, so the list only
// shrinks. docs/simulator.md says why each gap is there.
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/sim/sim.h"
#include "numaheap/topology_io.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NUMAHEAP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NUMAHEAP_SANITIZED 1
#endif
#endif

namespace numaheap::sim {
namespace {

// The bar is defined at quarter size. Under the sanitizers guests are a
// tenth (a quarter would take ~30 minutes there): the builtin and the sparse
// machine's cases run (memory safety of the policies and the simulator) and
// print their figures,
// but the cost comparisons are not asserted -- at a tenth the room left on a
// full node is below numaheap's watermark, a different trade-off than the
// bar's (seen: overcommit on builtin, numaheap 2.051 vs autonuma 1.985).
#ifdef NUMAHEAP_SANITIZED
constexpr double kScale = 0.1;
constexpr bool kAssertBar = false;
#else
constexpr double kScale = 0.25;
constexpr bool kAssertBar = true;
#endif

struct Case {
  const char* topology;  // directory under tests/data/topologies, or "builtin"
  const char* scenario;
};

// (scenario, baseline numaheap still loses to there, on some topology).
struct Gap {
  const char* scenario;
  const char* baseline;
};
// Empty since session 6: quick moves closed phases and mixed, the capped
// watermark overcommit. A gap that opens again goes here with its reason.
constexpr std::array<Gap, 0> kKnownGaps{};

// The sparse machine the sanitizer builds run next to builtin (remote costs
// 4x local there: one period spent remote after the move would cost 5% of
// the oracle's total by itself). Within 5% of the oracle at the default
// model and at --split-page-cost 0 alike since the embedder steps the
// migrator at the vCPU move and pages sampled only on the node the vCPUs
// all left follow them at once (docs/simulator.md).
[[maybe_unused]] constexpr const char* kSparseTopology = "power7-ibm-9179-8n-sparse";

bool known_gap(const std::string& scenario, const std::string& baseline) {
  for (const Gap& g : kKnownGaps)
    if (scenario == g.scenario && baseline == g.baseline) return true;
  return false;
}

class SimBar : public ::testing::TestWithParam<Case> {};

TEST_P(SimBar, NumaheapCheapestNearOracleNoBouncing) {
  const Case& k = GetParam();
#ifdef NUMAHEAP_SANITIZED
  // The sanitizers check memory safety, which the topology does not change:
  // every scenario on the builtin machine and on the sparse one (node ids
  // with gaps) is enough, and keeps the ASan stage's time (all 24 cases
  // took ~25 minutes of it).
  if (std::string(k.topology) != "builtin" && std::string(k.topology) != kSparseTopology)
    GTEST_SKIP() << "sanitizer build: builtin and the sparse machine only";
#endif
  Topology topo;
  if (std::string(k.topology) == "builtin") {
    topo = builtin_default_topology();
  } else {
    auto t = load_topology_sysfs(std::string(NUMAHEAP_TEST_DATA) + "/topologies/" + k.topology);
    ASSERT_TRUE(t.has_value()) << t.error().message;
    topo = std::move(*t);
  }
  SimConfig c;
  if (!std::getenv("NUMAHEAP_SIM_FULL")) c.guest_scale = kScale;
  auto w = make_scenario(k.scenario, topo, c);
  ASSERT_TRUE(w.has_value()) << w.error().message;
  auto rep = run(topo, **w, c, policy_names());
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  const PolicyResult *nh = nullptr, *oracle = nullptr;
  for (const auto& p : rep->policies) {
    if (p.name == "numaheap") nh = &p;
    if (p.name == "oracle") oracle = &p;
  }
  ASSERT_TRUE(nh && oracle);
  std::string line = std::string(k.scenario) + " on " + k.topology + ":";
  for (const auto& p : rep->policies) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " %s %.4f (moved %llu, bounced %llu)", p.name.c_str(), p.access_cost_mean,
                  static_cast<unsigned long long>(p.pages_migrated), static_cast<unsigned long long>(p.pages_bounced));
    line += buf;
    RecordProperty(p.name + "_cost", std::to_string(p.access_cost_mean));
  }
  std::printf("%s\n", line.c_str());

  if (!kAssertBar && !std::getenv("NUMAHEAP_SIM_FULL")) return;  // see kScale
  // Cheapest of the real policies (ties allowed).
  for (const auto& p : rep->policies) {
    if (p.name == "numaheap" || p.name == "oracle") continue;
    const bool wins = nh->access_cost_mean <= p.access_cost_mean + 1e-12;
    if (known_gap(k.scenario, p.name)) {
      if (!wins) std::printf("  known gap: numaheap %.4f > %s %.4f\n", nh->access_cost_mean, p.name.c_str(), p.access_cost_mean);
      continue;
    }
    EXPECT_TRUE(wins) << "numaheap " << nh->access_cost_mean << " > " << p.name << " " << p.access_cost_mean;
  }
  if (std::string(k.scenario) == "vcpu-move") {
    EXPECT_LE(nh->access_cost_mean, 1.05 * oracle->access_cost_mean);
    // And without the split-page cost (the model parameter that favours
    // keeping blocks whole): the policy alone must hold the bar.
    SimConfig c0 = c;
    c0.split_page_cost = 0;
    auto w0 = make_scenario(k.scenario, topo, c0);
    ASSERT_TRUE(w0.has_value()) << w0.error().message;
    auto rep0 = run(topo, **w0, c0, {"numaheap", "oracle"});
    ASSERT_TRUE(rep0.has_value()) << rep0.error().message;
    const PolicyResult &nh0 = rep0->policies[0], &oracle0 = rep0->policies[1];
    std::printf("  split-page cost 0: numaheap %.4f oracle %.4f\n", nh0.access_cost_mean, oracle0.access_cost_mean);
    EXPECT_LE(nh0.access_cost_mean, 1.05 * oracle0.access_cost_mean) << "at --split-page-cost 0";
  }
  const PolicyResult& naive = rep->policies[1];
  ASSERT_EQ(naive.name, "naive");
  EXPECT_LE(static_cast<double>(nh->pages_bounced),
            static_cast<double>(oracle->pages_bounced) + 0.01 * static_cast<double>(naive.pages_migrated));
  // The scenario has something to fix: first touch alone is clearly worse.
  const PolicyResult& none = rep->policies.front();
  EXPECT_GT(none.access_cost_mean, 1.05 * oracle->access_cost_mean);
}

// A listed gap must still be open somewhere: once numaheap wins a scenario
// on every topology, its entry has to go.
TEST(SimBarGaps, ListedGapsAreStillOpen) {
  if (!kAssertBar && !std::getenv("NUMAHEAP_SIM_FULL")) GTEST_SKIP() << "the gaps are those of the quarter-size bar";
  for (const Gap& g : kKnownGaps) {
    bool open = false;
    for (const char* t : {"builtin", "amd-4s-opteron6276-8n", "power7-ibm-9179-8n-sparse", "arm-kunpeng920-4n",
                          "intel-2s-xeon-e5-2680", "ia64-hp-superdome-17n"}) {
      Topology topo;
      if (std::string(t) == "builtin") {
        topo = builtin_default_topology();
      } else {
        auto r = load_topology_sysfs(std::string(NUMAHEAP_TEST_DATA) + "/topologies/" + t);
        ASSERT_TRUE(r.has_value());
        topo = std::move(*r);
      }
      SimConfig c;
      if (!std::getenv("NUMAHEAP_SIM_FULL")) c.guest_scale = kScale;
      auto w = make_scenario(g.scenario, topo, c);
      ASSERT_TRUE(w.has_value());
      auto rep = run(topo, **w, c, {g.baseline, "numaheap"});
      ASSERT_TRUE(rep.has_value());
      if (rep->policies[1].access_cost_mean > rep->policies[0].access_cost_mean + 1e-12) open = true;
      if (open) break;
    }
    EXPECT_TRUE(open) << g.scenario << ": numaheap now beats " << g.baseline
                      << " everywhere -- remove the entry from kKnownGaps";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Machines, SimBar,
    ::testing::Values(Case{"builtin", "vcpu-move"}, Case{"builtin", "mixed"}, Case{"builtin", "phases"},
                      Case{"builtin", "overcommit"}, Case{"amd-4s-opteron6276-8n", "vcpu-move"},
                      Case{"amd-4s-opteron6276-8n", "mixed"}, Case{"amd-4s-opteron6276-8n", "phases"},
                      Case{"amd-4s-opteron6276-8n", "overcommit"}, Case{"power7-ibm-9179-8n-sparse", "vcpu-move"},
                      Case{"power7-ibm-9179-8n-sparse", "mixed"}, Case{"power7-ibm-9179-8n-sparse", "phases"},
                      Case{"power7-ibm-9179-8n-sparse", "overcommit"}, Case{"arm-kunpeng920-4n", "vcpu-move"},
                      Case{"arm-kunpeng920-4n", "mixed"}, Case{"arm-kunpeng920-4n", "phases"},
                      Case{"arm-kunpeng920-4n", "overcommit"}, Case{"intel-2s-xeon-e5-2680", "vcpu-move"},
                      Case{"intel-2s-xeon-e5-2680", "mixed"}, Case{"intel-2s-xeon-e5-2680", "phases"},
                      Case{"intel-2s-xeon-e5-2680", "overcommit"}, Case{"ia64-hp-superdome-17n", "vcpu-move"},
                      Case{"ia64-hp-superdome-17n", "mixed"}, Case{"ia64-hp-superdome-17n", "phases"},
                      Case{"ia64-hp-superdome-17n", "overcommit"}),
    [](const auto& param_info) {
      std::string n = std::string(param_info.param.topology) + "_" + param_info.param.scenario;
      for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

}  // namespace
}  // namespace numaheap::sim
