// The userfaultfd sampler loses no data and leaves every page mapped and
// writable: writers with per-page sequence numbers in a memfd and an
// anonymous region while the sampler windows pages and the mover moves them
// (tests/unit/vmm_sampler_scenarios.h). ThreadSanitizer runs it in CI
// ("stress" in the name); NUMAHEAP_STRESS_SECONDS=N runs N times longer.
#include <gtest/gtest.h>

#include <cstdio>

#include "unit/vmm_sampler_scenarios.h"

namespace numaheap {
namespace {

// No lost or stale write, every page mapped and writable after stop().
void expect_nothing_lost(const test::SamplerStressResult& r) {
  EXPECT_EQ(r.lost, 0u) << "writes lost while sampling";
  EXPECT_EQ(r.bad_at_end, 0u) << "pages without their last write after stop()";
  EXPECT_EQ(r.unmapped_at_end, 0u) << "pages left unmapped by stop()";
  EXPECT_EQ(r.protected_at_end, 0u) << "pages left write-protected by stop()";
}

TEST(VmmSamplerStress, WritersLoseNothingWhileSampledAndMoved) {
  const test::SamplerStressResult r = test::run_sampler_stress();
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  std::printf("samples %llu (memfd %llu, anonymous %llu), %.0f ns each in the handler; windows %llu; moves %llu; "
              "writer passes %llu; resolves that found the page mapped %llu\n",
              static_cast<unsigned long long>(r.sampler.samples), static_cast<unsigned long long>(r.sampler.minor_samples),
              static_cast<unsigned long long>(r.sampler.wp_samples), r.sampler.ns_per_sample,
              static_cast<unsigned long long>(r.sampler.windows), static_cast<unsigned long long>(r.moves),
              static_cast<unsigned long long>(r.passes), static_cast<unsigned long long>(r.sampler.resolve_retries));
  expect_nothing_lost(r);
  EXPECT_GT(r.sampler.minor_samples, 0u) << "the memfd region was never sampled";
  EXPECT_GT(r.sampler.wp_samples, 0u) << "the anonymous region was never sampled";
  EXPECT_EQ(r.sampler.errors, 0u);
  EXPECT_GE(r.moves, 50u);
  EXPECT_GT(r.sampler.ns_per_sample, 0.0);
}

// Shared memfd RAM moves through GuestRam's helper process: its pages are
// zapped as windows while the helper maps them and move_pages moves them
// there, with writers on them all along.
TEST(VmmSamplerStress, WritersLoseNothingWhileMovedThroughTheHelper) {
  const test::SamplerStressResult r = test::run_sampler_stress(1000, 50, 100, test::StressBlocks::small, true);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  std::printf("through the helper: %llu of %llu moves, samples %llu (memfd %llu)\n",
              static_cast<unsigned long long>(r.helper_moves), static_cast<unsigned long long>(r.moves),
              static_cast<unsigned long long>(r.sampler.samples), static_cast<unsigned long long>(r.sampler.minor_samples));
  expect_nothing_lost(r);
  EXPECT_GT(r.helper_moves, 0u) << "no move went through the helper";
  EXPECT_GT(r.sampler.minor_samples, 0u);
  EXPECT_EQ(r.sampler.errors, 0u);
}

// Every block armed and resolved whole (a test probe calls each huge).
TEST(VmmSamplerStress, WritersLoseNothingWithBlocksArmedWhole) {
  const test::SamplerStressResult r = test::run_sampler_stress(1000, 50, 100, test::StressBlocks::forced);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  expect_nothing_lost(r);
  EXPECT_GT(r.sampler.minor_samples, 0u);
  EXPECT_GT(r.sampler.wp_samples, 0u);
  EXPECT_GT(r.sampler.blocks_windowed, 0u) << "no block was armed whole";
  EXPECT_EQ(r.sampler.errors, 0u);
}

// The anonymous region a real transparent huge page (skipped where the host
// gives none): sampled and resolved whole, it stays one huge page.
TEST(VmmSamplerStress, WritersLoseNothingOnATransparentHugePage) {
  const test::SamplerStressResult r = test::run_sampler_stress(1000, 50, 100, test::StressBlocks::thp);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  std::printf("THP: samples %llu (anonymous %llu), blocks windowed %llu, still huge at the end: %s\n",
              static_cast<unsigned long long>(r.sampler.samples), static_cast<unsigned long long>(r.sampler.wp_samples),
              static_cast<unsigned long long>(r.sampler.blocks_windowed), r.huge_at_end ? "yes" : "no");
  expect_nothing_lost(r);
  EXPECT_GT(r.sampler.wp_samples, 0u);
  EXPECT_GT(r.sampler.blocks_windowed, 0u) << "the huge page was never armed whole";
  EXPECT_EQ(r.sampler.errors, 0u);
}

}  // namespace
}  // namespace numaheap
