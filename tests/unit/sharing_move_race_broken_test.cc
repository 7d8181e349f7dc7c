// Negative test: the split-under-a-move scenario of sharing_move_race_test,
// run against guest memory whose split ignores `migrating`
// (numaheap_faulty, see allocator/platform/fault_injection.h). The scenario
// must see the held extent split and the page merged on every run; if it
// did not, SharingMoveRace.SplitUnderAMoveIsRefusedThenRetried would prove
// nothing.
#include <gtest/gtest.h>

#include "allocator/platform/fault_injection.h"
#include "unit/sharing_move_scenarios.h"

namespace numaheap {
namespace {

TEST(sharing_move_race_broken, SplitIgnoringTheMoverIsCaught) {
  test::Rig r;
  test::GuestModel model(*r.big, 1);
  test::SplitRace s;
  {
    fault::Scope broken(fault::split_ignores_migrating);
    s = test::split_under_move(r, model);
  }
  EXPECT_TRUE(s.merged == 2u || s.order_during != 9u || !s.mfn_kept)
      << "the scenario missed a split of an extent the mover held";
}

TEST(sharing_move_race_broken, CorrectSplitPassesTheSameScenario) {
  // The faulty build with no fault on behaves as the real one.
  test::Rig r;
  test::GuestModel model(*r.big, 1);
  const test::SplitRace s = test::split_under_move(r, model);
  EXPECT_EQ(s.merged, 1u);
  EXPECT_EQ(s.order_during, 9u);
  EXPECT_TRUE(s.mfn_kept);
  EXPECT_EQ(s.outcome, MoveOutcome::moved);
}

}  // namespace
}  // namespace numaheap
