// Negative test: the broken-RAM evacuation scenario of migrate_rehome_test,
// run against a migrator whose step skips evacuation (numaheap_faulty, see
// allocator/platform/fault_injection.h). The scenario must see the page
// left on its failing frame on every run; if it did not, the passing of
// MigrateEvacuate.PendingOfflineFrameIsLeftFirstInHostMemoryMode would
// prove nothing.
#include <gtest/gtest.h>

#include "allocator/platform/fault_injection.h"
#include "unit/evacuate_scenarios.h"

namespace numaheap {
namespace {

TEST(migrate_evacuate_broken, SkippedEvacuationIsCaught) {
  fault::Scope broken(fault::evacuation_skipped);
  const test::EvacuateResult r = test::pending_offline_in_host_memory();
  ASSERT_TRUE(r.set_up);
  EXPECT_FALSE(r.left_bad_frame) << "the scenario missed a page left on a failing frame";
  EXPECT_EQ(r.pending_offline, 1u);
  EXPECT_EQ(r.offlined, 0u);
}

TEST(migrate_evacuate_broken, CorrectMigratorPassesTheSameScenario) {
  // The faulty build with no fault on behaves as the real one.
  const test::EvacuateResult r = test::pending_offline_in_host_memory();
  ASSERT_TRUE(r.set_up);
  EXPECT_TRUE(r.left_bad_frame);
  EXPECT_EQ(r.offlined, 1u);
}

}  // namespace
}  // namespace numaheap
