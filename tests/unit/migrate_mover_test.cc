// Frame-swap mover safety at exact points of its protocol: a split racing
// a move, an entry changed under a move, a failed free of the old block,
// the p2m disagreeing with the frame table, and a dirty-log write landing
// between the dirty check and the swap. Each test acts at one chosen step
// through the model's hooks, so it is deterministic.
#include <gtest/gtest.h>

#include "migrate_test_model.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr OwnerId kOwner = 7;

struct Rig {
  TwoNodeHost h{4096};
  std::unique_ptr<GuestMemory> gm = make_guest(h, 4, false, 0, kOwner);  // two 2 MiB blocks on node 0
};

// Rewrites the entries of the block at `head` (as a buggy party would),
// keeping mfns and flags; returns false if an entry changed meanwhile.
bool set_order(GuestMemory& g, Gfn head, std::uint64_t span, std::uint8_t order) {
  for (Gfn k = head; k < head + span; ++k) {
    P2mEntry e = g.lookup(k);
    P2mEntry d = e;
    d.order = order;
    if (!g.compare_exchange(k, e, d)) return false;
  }
  return true;
}

}  // namespace

// Item: split and move of one extent exclude each other. A split asked
// while the mover holds the block is refused (busy); the move completes
// and nothing leaks.
TEST(MigrateMover, SplitDuringAMoveIsRefusedAndNothingLeaks) {
  Rig r;
  GuestModel model(*r.gm, 1);
  for (Gfn g = 0; g < 512; ++g) ASSERT_TRUE(model.write(0, g));
  Status split{};
  bool asked = false;
  model.on_copy = [&] {
    if (!asked) split = r.gm->split_to_pages(3), asked = true;
  };
  auto mv = FrameSwapMover::create(*r.gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  const std::uint64_t used = r.h.used();
  Gfn g[1] = {0};
  MoveOutcome out[1];
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::whole_blocks, out).has_value());
  ASSERT_TRUE(asked);
  EXPECT_FALSE(split.has_value());
  if (!split) {
    EXPECT_EQ(split.error(), Errc::busy);
  }
  EXPECT_EQ(out[0], MoveOutcome::moved);
  EXPECT_EQ(r.gm->lookup(3).order, 9u);
  EXPECT_EQ(r.h.pa->node_of(r.gm->lookup(3).mfn), 1u);
  EXPECT_EQ(r.h.used(), used);  // the old 2 MiB block went back
  EXPECT_EQ(r.gm->lost_frames(), 0u);
  EXPECT_TRUE(r.gm->check_frames().has_value());
  EXPECT_TRUE(r.h.pa->check_frames().has_value());
  for (Gfn k = 0; k < 512; ++k) ASSERT_TRUE(model.final_check(k)) << k;
  // Once the move is over the split goes through.
  EXPECT_TRUE(r.gm->split_to_pages(3).has_value());
  EXPECT_EQ(r.gm->lookup(3).order, 0u);
  EXPECT_TRUE(r.gm->check_invariants().has_value());
}

// Item: the mover aborts cleanly when an entry changed under it. Here a
// split that ignores `migrating` (what split_to_pages did) turns the block
// into 4 KiB pages mid-move: the move is undone (busy), the new block is
// freed, the p2m still matches the frame table.
TEST(MigrateMover, EntryChangedUnderTheMoveUndoesItAsBusy) {
  Rig r;
  GuestModel model(*r.gm, 1);
  for (Gfn g = 0; g < 512; ++g) ASSERT_TRUE(model.write(0, g));
  const Mfn old_head = r.gm->lookup(0).mfn;
  bool changed = false;
  model.on_copy = [&] {
    if (changed) return;
    changed = r.h.pa->split(old_head, 9, kOwner).has_value() && set_order(*r.gm, 0, 512, 0);
  };
  auto mv = FrameSwapMover::create(*r.gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  const std::uint64_t used = r.h.used();
  Gfn g[1] = {0};
  MoveOutcome out[1];
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::whole_blocks, out).has_value());
  ASSERT_TRUE(changed);
  EXPECT_EQ(out[0], MoveOutcome::busy);
  for (Gfn k = 0; k < 512; ++k) {
    const P2mEntry e = r.gm->lookup(k);
    ASSERT_EQ(e.mfn, old_head + k) << k;
    ASSERT_EQ(e.order, 0u) << k;
    ASSERT_FALSE(e.flags & P2mFlags::migrating) << k;
  }
  EXPECT_EQ(r.h.used(), used);  // the new block went back
  EXPECT_EQ(r.gm->lost_frames(), 0u);
  EXPECT_TRUE(r.gm->check_frames().has_value());
  EXPECT_TRUE(r.h.pa->check_frames().has_value());
  for (Gfn k = 0; k < 512; ++k) ASSERT_TRUE(model.final_check(k)) << k;
}

// Item: a failed free inside the library is never ignored. Someone splits
// the old block in the frame table behind the p2m's back; the mover's free
// of it as one order-9 block fails, and that is counted on the guest and
// fails its invariant check.
TEST(MigrateMover, FailedFreeOfTheOldBlockIsCountedNotIgnored) {
  Rig r;
  GuestModel model(*r.gm, 1);
  const Mfn old_head = r.gm->lookup(0).mfn;
  bool split = false;
  model.on_copy = [&] {
    if (!split) split = r.h.pa->split(old_head, 9, kOwner).has_value();
  };
  auto mv = FrameSwapMover::create(*r.gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  Gfn g[1] = {0};
  MoveOutcome out[1];
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::whole_blocks, out).has_value());
  ASSERT_TRUE(split);
  EXPECT_EQ(r.gm->lost_frames(), 512u);
  EXPECT_FALSE(r.gm->check_invariants().has_value());
  for (Mfn f = old_head; f < old_head + 512; ++f) ASSERT_TRUE(r.h.pa->free(f, 0, kOwner).has_value());
}

// Item: check_invariants catches any disagreement between the p2m and the
// frame table -- here what the split/move race left behind: an unsplit
// 2 MiB block the p2m describes as 4 KiB pages, a page mapped to a frame
// another owner holds or to a free frame; and (check_frames) a block the
// guest owns that the p2m does not name.
TEST(MigrateMover, CheckInvariantsCatchesP2mFrameTableDisagreement) {
  Rig r;
  ASSERT_TRUE(r.gm->check_invariants().has_value());
  ASSERT_TRUE(set_order(*r.gm, 512, 512, 0));
  EXPECT_FALSE(r.gm->check_invariants().has_value());
  ASSERT_TRUE(set_order(*r.gm, 512, 512, 9));
  ASSERT_TRUE(r.gm->check_invariants().has_value());

  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  auto other = r.h.pa->alloc(AllocRequest{0, 0, 0, 99, {}});
  ASSERT_TRUE(other.has_value());
  const P2mEntry mine = r.gm->lookup(5);
  ASSERT_TRUE(r.gm->compare_exchange(5, mine, P2mEntry{other->mfn, mine.flags, 0}));
  EXPECT_FALSE(r.gm->check_invariants().has_value());  // owner 99's frame
  ASSERT_TRUE(r.gm->compare_exchange(5, r.gm->lookup(5), mine));
  EXPECT_TRUE(r.gm->check_invariants().has_value());

  // A frame the p2m still maps but the allocator has as free.
  ASSERT_TRUE(r.h.pa->free(mine.mfn, 0, kOwner).has_value());
  EXPECT_FALSE(r.gm->check_invariants().has_value());
  auto back = r.h.pa->alloc(AllocRequest{0, 0, AllocFlags::exact_node, kOwner, {}});
  ASSERT_TRUE(back.has_value());
  ASSERT_TRUE(r.gm->compare_exchange(5, mine, P2mEntry{back->mfn, mine.flags, 0}));
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  ASSERT_TRUE(r.h.pa->free(other->mfn, 0, 99).has_value());

  ASSERT_TRUE(r.gm->check_frames().has_value());
  auto leaked = r.h.pa->alloc(AllocRequest{9, 1, AllocFlags::exact_node, kOwner, {}});
  ASSERT_TRUE(leaked.has_value());
  EXPECT_TRUE(r.gm->check_invariants().has_value());  // the p2m side is fine...
  EXPECT_FALSE(r.gm->check_frames().has_value());     // ...but 2 MiB of the guest's are nowhere
  ASSERT_TRUE(r.h.pa->free(leaked->mfn, 9, kOwner).has_value());
  EXPECT_TRUE(r.gm->check_frames().has_value());

  r.gm->note_lost_frames(1);
  EXPECT_FALSE(r.gm->check_invariants().has_value());
}

// Item: a write the dirtied() hook should catch is not lost. A backend
// began a write before the move marked the page (it holds the old frame's
// translation) and completes it while the mover copies the next page of
// the batch: after the first page's copy, before any swap. Asking the
// dirty log right after each copy misses it; the page would be reported
// moved without the write.
TEST(MigrateMover, DirtyLogWriteBetweenCheckAndSwapIsNotLost) {
  Rig r;
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  GuestModelOptions mo;
  mo.vcpus = 1;
  mo.backends = 1;
  GuestModel model(*r.gm, mo);
  for (Gfn g = 0; g < 4; ++g) ASSERT_TRUE(model.write(0, g));
  auto w = model.begin_backend_write(0, 0);
  ASSERT_NE(w.mfn, kInvalidMfn);
  int copies = 0;
  bool written = false;
  model.on_copy = [&] {
    if (++copies == 2) written = model.finish_backend_write(w);
  };
  auto mv = FrameSwapMover::create(*r.gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  const std::uint64_t used = r.h.used();
  Gfn g[2] = {0, 1};
  MoveOutcome out[2];
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::pages, out).has_value());
  ASSERT_TRUE(written);
  EXPECT_EQ(out[0], MoveOutcome::busy);  // kept its old frame, with the write
  EXPECT_EQ(out[1], MoveOutcome::moved);
  EXPECT_GT(model.dirty_hits(), 0u);
  EXPECT_EQ(model.violations(), 0u);
  EXPECT_TRUE(model.read_check(0, 0));
  for (Gfn k = 0; k < 4; ++k) EXPECT_TRUE(model.final_check(k)) << k;
  EXPECT_EQ(model.acked(0), 2u);
  EXPECT_EQ(r.h.used(), used);
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  // Retried later, the page moves with its data.
  ASSERT_TRUE(mv->move(std::span<const Gfn>(g, 1), 1, MoveGranularity::pages, std::span<MoveOutcome>(out, 1)).has_value());
  EXPECT_EQ(out[0], MoveOutcome::moved);
  EXPECT_TRUE(model.final_check(0));
}

// Item: the mover's own host-memory copy (no copy hook, non-temporal
// stores) moves every byte, of a 2 MiB block and of a batch of scattered
// 4 KiB pages. Each 8-byte word holds its gfn and index, so a copy that
// skips, shifts or truncates anything is caught.
TEST(MigrateMover, DefaultHostCopyMovesEveryByte) {
  Rig r;
  PageAllocator& pa = *r.h.pa;
  auto word = [](Gfn g, std::size_t w) { return (g << 20) ^ (w * 0x9E3779B97F4A7C15ull) ^ 0x5A5A; };
  for (Gfn g = 0; g < 1024; ++g) {
    auto* p = static_cast<std::uint64_t*>(pa.frame_address(r.gm->lookup(g).mfn));
    ASSERT_NE(p, nullptr);
    for (std::size_t w = 0; w < kFrameSize / 8; ++w) p[w] = word(g, w);
  }
  FrameSwapHooks h;
  h.write_protect = [](void*, const GfnRun*, std::size_t) {};
  h.flush = [](void*) {};
  h.unprotect = [](void*, const GfnRun*, std::size_t) {};
  auto mv = FrameSwapMover::create(*r.gm, h);
  ASSERT_TRUE(mv.has_value());
  Gfn block[1] = {0};
  MoveOutcome one[1];
  ASSERT_TRUE(mv->move(block, 1, MoveGranularity::whole_blocks, one).has_value());
  EXPECT_EQ(one[0], MoveOutcome::moved);
  Gfn pages[64];
  MoveOutcome out[64];
  for (Gfn k = 0; k < 64; ++k) pages[k] = 512 + 3 * k;  // spread over the second block
  ASSERT_TRUE(mv->move(pages, 1, MoveGranularity::pages, out).has_value());
  for (Gfn k = 0; k < 64; ++k) EXPECT_EQ(out[k], MoveOutcome::moved) << k;
  for (Gfn g = 0; g < 1024; ++g) {
    const P2mEntry e = r.gm->lookup(g);
    const bool moved = g < 512 || ((g - 512) % 3 == 0 && g < 512 + 3 * 64);
    ASSERT_EQ(pa.node_of(e.mfn), moved ? 1u : 0u) << g;
    ASSERT_FALSE(e.flags & P2mFlags::migrating) << g;
    const auto* p = static_cast<const std::uint64_t*>(pa.frame_address(e.mfn));
    for (std::size_t w = 0; w < kFrameSize / 8; ++w) ASSERT_EQ(p[w], word(g, w)) << g << " word " << w;
  }
  EXPECT_EQ(r.gm->lost_frames(), 0u);
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  EXPECT_TRUE(pa.check_frames().has_value());
}

// Item: the 4 KiB frames of a batch go back in one free_bulk; when it is
// refused (all or nothing: here one old frame was freed behind the
// mover's back), they go back one by one and only the refused frame is
// counted as lost -- the seven others are freed, not leaked.
TEST(MigrateMover, RefusedBulkFreeFallsBackAndCountsOnlyTheRefusedFrame) {
  Rig r;
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  GuestModel model(*r.gm, 1);
  const Mfn stolen = r.gm->lookup(3).mfn;
  bool freed = false;
  model.on_copy = [&] {
    if (!freed) freed = r.h.pa->free(stolen, 0, kOwner).has_value();
  };
  auto mv = FrameSwapMover::create(*r.gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  const std::uint64_t used = r.h.used();
  Gfn g[8];
  MoveOutcome out[8];
  for (Gfn k = 0; k < 8; ++k) g[k] = k;
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::pages, out).has_value());
  ASSERT_TRUE(freed);
  for (Gfn k = 0; k < 8; ++k) {
    EXPECT_EQ(out[k], MoveOutcome::moved) << k;
    EXPECT_EQ(r.h.pa->node_of(r.gm->lookup(k).mfn), 1u) << k;
  }
  EXPECT_EQ(r.gm->lost_frames(), 1u);
  EXPECT_EQ(r.h.used(), used);  // 8 new frames in, 7 old ones freed by the mover + the stolen one
  EXPECT_TRUE(r.h.pa->check_frames().has_value());
}
