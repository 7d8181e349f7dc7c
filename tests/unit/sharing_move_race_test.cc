// Sharing racing a frame-swap move (issue 12 gap): merging a 4 KiB page of
// a 2 MiB extent splits the extent first (GuestMemory::split_to_pages),
// which must say busy while a mover holds the block (its entries marked
// `migrating`), and the merge must then fail cleanly -- no frame leaked, no
// p2m entry half-changed, the move unharmed -- and succeed on a later scan.
// The other order too: a mover that marks the page after the split but
// before the merge's p2m swap makes the merge give up.
// The first scenario is shared (tests/unit/sharing_move_scenarios.h) with
// sharing_move_race_broken_test, whose split ignores `migrating`.
#include <gtest/gtest.h>

#include "sharing_move_scenarios.h"

using namespace numaheap;
using namespace numaheap::test;

// The mover holds big's extent (marked, paused in its write_protect hook)
// when the merge of big:300 tries to split it: the split says busy, the
// merge fails and changes nothing; the move completes; a later scan merges.
TEST(SharingMoveRace, SplitUnderAMoveIsRefusedThenRetried) {
  Rig r;
  GuestModel model(*r.big, 1);
  const SplitRace s = split_under_move(r, model);
  EXPECT_EQ(s.merged, 1u);  // small:0 only: big:300 is under the move
  EXPECT_EQ(s.order_during, 9u);  // not split
  EXPECT_TRUE(s.mfn_kept);
  EXPECT_TRUE(s.migrating_during);
  EXPECT_EQ(s.merge_failures, 1u);
  ASSERT_TRUE(s.move_ok);
  EXPECT_EQ(s.outcome, MoveOutcome::moved);
  EXPECT_EQ(r.h.pa->node_of(r.big->lookup(300).mfn), 1u);
  EXPECT_EQ(model.violations(), 0u);
  r.expect_consistent();
  // Retried cleanly: the next scan merges big:300 into small:0's frame.
  EXPECT_EQ(*r.sm->scan(*r.big, 300, 1), 1u);
  EXPECT_EQ(r.big->lookup(300).mfn, r.small->lookup(0).mfn);
  EXPECT_EQ(r.big->lookup(0).order, 0u);
  r.expect_consistent();
  r.tear_down();
}

// The merge splits the extent first; a mover then marks big:300 (it moves
// the page) before the merge swaps the entry: the swap fails, the merge
// gives up, the move completes.
TEST(SharingMoveRace, MoveAfterTheSplitMakesTheMergeGiveUp) {
  Rig r;
  GuestModel model(*r.big, 1);
  auto mv = FrameSwapMover::create(*r.big, model.hooks());
  ASSERT_TRUE(mv.has_value());
  ASSERT_EQ(*r.sm->scan(*r.small, 0, 1), 0u);  // small:0 becomes a candidate
  Result<MoveTotals> moved = Errc::invalid_argument;
  MoveOutcome out = MoveOutcome::busy;
  // First scan of big:300: candidate small:0 is attached (hook runs), then
  // big:300's extent is split and the hook runs again for it: move it then.
  r.on_sharing_protect = [&] {
    r.on_sharing_protect = [&] {
      const Gfn g = 300;
      moved = mv->move(std::span<const Gfn>(&g, 1), 1, MoveGranularity::pages, std::span<MoveOutcome>(&out, 1));
    };
  };
  // The hook wrapper clears on_sharing_protect before calling it, so the
  // inner assignment above arms the second call.
  EXPECT_EQ(*r.sm->scan(*r.big, 300, 1), 1u);  // small:0 only
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(out, MoveOutcome::moved);
  EXPECT_EQ(r.big->lookup(300).order, 0u);  // the split stands
  EXPECT_EQ(r.h.pa->node_of(r.big->lookup(300).mfn), 1u);
  EXPECT_FALSE(r.big->lookup(300).flags & P2mFlags::shared);
  EXPECT_EQ(model.violations(), 0u);
  r.expect_consistent();
  EXPECT_EQ(*r.sm->scan(*r.big, 300, 1), 1u);  // retried: merges now
  EXPECT_EQ(r.big->lookup(300).mfn, r.small->lookup(0).mfn);
  r.expect_consistent();
  r.tear_down();
}
