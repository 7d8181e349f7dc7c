// Negative tests: the sampler stress scenario (vmm_sampler_scenarios.h)
// against deliberately broken samplers (numaheap_faulty, see
// allocator/platform/fault_injection.h). It must catch each every run; if it
// did not, VmmSamplerStress passing would prove nothing.
#include <gtest/gtest.h>

#include "allocator/platform/fault_injection.h"
#include "unit/vmm_sampler_scenarios.h"

namespace numaheap {
namespace {

// Runs the small scenario with the memfd region private, then shared (moved
// through GuestRam's helper process, windows left open across the move), and
// hands each result to `check`; false: the scenario cannot run here.
template <class Check>
bool for_private_and_shared_memfd(Check check) {
  for (bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "shared memfd, moved through the helper" : "private memfd");
    const test::SamplerStressResult r = test::run_sampler_stress(100, 5, 10, test::StressBlocks::small, shared);
    if (!r.set_up) return false;
    EXPECT_TRUE(!shared || r.helper_moves > 0) << "no move went through the helper";
    check(r);
  }
  return true;
}

TEST(vmm_sampler_broken, PunchedWindowLosesWritesAndIsCaught) {
  fault::Scope broken(fault::sampler_punches_window);
  if (!for_private_and_shared_memfd([](const test::SamplerStressResult& r) {
        EXPECT_GT(r.lost + r.bad_at_end, 0u) << "a sampler that drops memfd data was not caught";
      }))
    GTEST_SKIP() << "the sampler stress scenario cannot run here";
}

TEST(vmm_sampler_broken, UnclosedWindowIsCaughtAtStop) {
  fault::Scope broken(fault::sampler_skips_close);
  if (!for_private_and_shared_memfd([](const test::SamplerStressResult& r) {
        EXPECT_GT(r.unmapped_at_end + r.protected_at_end, 0u) << "a sampler that leaves windows open was not caught";
        EXPECT_EQ(r.lost, 0u);  // it loses nothing: only mapping is wrong
      }))
    GTEST_SKIP() << "the sampler stress scenario cannot run here";
}

TEST(vmm_sampler_broken, PunchedWholeBlockLosesWritesAndIsCaught) {
  fault::Scope broken(fault::sampler_punches_window);
  const test::SamplerStressResult r = test::run_sampler_stress(100, 5, 10, test::StressBlocks::forced);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  EXPECT_GT(r.lost + r.bad_at_end, 0u) << "a sampler that drops memfd data was not caught with blocks armed whole";
}

TEST(vmm_sampler_broken, UnclosedWholeBlockIsCaughtAtStop) {
  fault::Scope broken(fault::sampler_skips_close);
  const test::SamplerStressResult r = test::run_sampler_stress(100, 5, 10, test::StressBlocks::forced);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  EXPECT_GT(r.unmapped_at_end + r.protected_at_end, 0u) << "windows left open were not caught with blocks armed whole";
  EXPECT_EQ(r.lost, 0u);
}

TEST(vmm_sampler_broken, CorrectSamplerPassesTheSameScenario) {
  const test::SamplerStressResult r = test::run_sampler_stress(100, 5, 10);
  if (!r.set_up) GTEST_SKIP() << "cannot run here: " << r.skip;
  EXPECT_EQ(r.lost + r.bad_at_end + r.unmapped_at_end + r.protected_at_end, 0u);
}

}  // namespace
}  // namespace numaheap
