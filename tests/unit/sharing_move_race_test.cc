// Sharing racing a frame-swap move (issue 12 gap): merging a 4 KiB page of
// a 2 MiB extent splits the extent first (GuestMemory::split_to_pages),
// which must say busy while a mover holds the block (its entries marked
// `migrating`), and the merge must then fail cleanly -- no frame leaked, no
// p2m entry half-changed, the move unharmed -- and succeed on a later scan.
// The other order too: a mover that marks the page after the split but
// before the merge's p2m swap makes the merge give up.
//
// Deterministic: the mover runs on a second thread and is held, through
// hand-shakes, inside its write_protect hook (after it marked the block);
// the sharing manager's own write_protect hook is where that thread is
// started and awaited. No sleeps.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "migrate_test_model.h"
#include "numaheap/sharing.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr OwnerId kShareOwner = 9000;

// A one-shot gate: open() once, wait() any number of times.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool is_open = false;
  void open() {
    std::lock_guard<std::mutex> l(mu);
    is_open = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return is_open; });
  }
};

std::unique_ptr<GuestMemory> sharing_guest(TwoNodeHost& h, const char* name, OwnerId owner, std::uint64_t mb) {
  GuestSpec g;
  g.name = name;
  g.memory_bytes = mb << 20;
  g.vcpus = 1;
  g.sharing = true;
  Placement p;
  p.nodes.set(0);
  p.memory = {{0, mb << 20}};
  p.vcpu_nodes = {0};
  auto gm = GuestMemory::create(*h.pa, g, p, owner, GuestOptions{});
  EXPECT_TRUE(gm.has_value()) << (gm ? "" : gm.error().message);
  if (!gm) return nullptr;
  EXPECT_TRUE((*gm)->populate().has_value());
  return std::move(*gm);
}

std::uint64_t* words(GuestMemory& g, Gfn gfn) {
  return static_cast<std::uint64_t*>(g.allocator().frame_address(g.lookup(gfn).mfn));
}
void fill(GuestMemory& g, Gfn gfn, std::uint64_t tag) {
  std::uint64_t* w = words(g, gfn);
  for (std::size_t i = 0; i < kFrameSize / 8; ++i) w[i] = tag * 1000003 + i;
}
bool holds(GuestMemory& g, Gfn gfn, std::uint64_t tag) {
  const std::uint64_t* w = words(g, gfn);
  for (std::size_t i = 0; i < kFrameSize / 8; ++i)
    if (w[i] != tag * 1000003 + i) return false;
  return true;
}

struct Rig {
  TwoNodeHost h{4096};
  std::unique_ptr<GuestMemory> big, small;
  std::unique_ptr<SharingManager> sm;
  // What the sharing manager's write_protect hook does (once).
  std::function<void()> on_sharing_protect;
  explicit Rig() {
    big = sharing_guest(h, "big", 1, 2);  // one 2 MiB extent
    small = sharing_guest(h, "small", 2, 2);
    EXPECT_EQ(big->lookup(0).order, 9u);
    EXPECT_TRUE(small->split_to_pages(0).has_value());
    SharingConfig c;
    c.owner = kShareOwner;
    c.hooks.ctx = this;
    c.hooks.write_protect = [](void* ctx, const GuestMemory&, Gfn) {
      auto* r = static_cast<Rig*>(ctx);
      if (r->on_sharing_protect) std::exchange(r->on_sharing_protect, nullptr)();
      return true;
    };
    auto s = SharingManager::create(*h.pa, c);
    EXPECT_TRUE(s.has_value());
    sm = std::move(*s);
    EXPECT_TRUE(sm->add_guest(*big).has_value());
    EXPECT_TRUE(sm->add_guest(*small).has_value());
    for (Gfn k = 0; k < big->ram_pages(); ++k) fill(*big, k, 5000 + k);
    for (Gfn k = 0; k < small->ram_pages(); ++k) fill(*small, k, 90000 + k);
    fill(*small, 0, 5000 + 300);  // small:0 equals big:300
  }
  void expect_consistent() {
    EXPECT_TRUE(big->check_invariants().has_value());
    EXPECT_TRUE(small->check_invariants().has_value());
    EXPECT_TRUE(big->check_frames().has_value());
    EXPECT_TRUE(small->check_frames().has_value());
    EXPECT_TRUE(h.pa->check_frames().has_value());
    EXPECT_TRUE(sm->check_invariants().has_value());
    for (Gfn k = 0; k < big->ram_pages(); ++k) {
      const P2mEntry e = big->lookup(k);
      ASSERT_TRUE(e.present()) << k;
      EXPECT_FALSE(e.flags & P2mFlags::migrating) << k;
      ASSERT_TRUE(holds(*big, k, 5000 + k)) << k;
    }
    ASSERT_TRUE(holds(*small, 0, 5000 + 300));
  }
  void tear_down() {
    ASSERT_TRUE(sm->remove_guest(*big).has_value());
    ASSERT_TRUE(sm->remove_guest(*small).has_value());
    sm.reset();
    ASSERT_TRUE(big->destroy().has_value());
    ASSERT_TRUE(small->destroy().has_value());
    EXPECT_EQ(h.used(), 0u);
  }
};

}  // namespace

// The mover holds big's extent (marked, paused in its write_protect hook)
// when the merge of big:300 tries to split it: the split says busy, the
// merge fails and changes nothing; the move completes; a later scan merges.
TEST(SharingMoveRace, SplitUnderAMoveIsRefusedThenRetried) {
  Rig r;
  GuestModel model(*r.big, 1);
  FrameSwapHooks hk = model.hooks();
  struct Pause {
    FrameSwapHooks inner;
    Gate marked, go;
    bool once = false;
  } pause{hk, {}, {}, false};
  hk.ctx = &pause;
  hk.write_protect = [](void* c, const GfnRun* runs, std::size_t n) {
    auto* p = static_cast<Pause*>(c);
    p->inner.write_protect(p->inner.ctx, runs, n);
    if (!std::exchange(p->once, true)) {
      p->marked.open();  // the block is ours (migrating) from here
      p->go.wait();
    }
  };
  hk.flush = [](void* c) { auto* p = static_cast<Pause*>(c); p->inner.flush(p->inner.ctx); };
  hk.dirtied = [](void* c, GfnRun run) { auto* p = static_cast<Pause*>(c); return p->inner.dirtied(p->inner.ctx, run); };
  hk.unprotect = [](void* c, const GfnRun* runs, std::size_t n) {
    auto* p = static_cast<Pause*>(c);
    p->inner.unprotect(p->inner.ctx, runs, n);
  };
  hk.copy = [](void* c, Mfn d, Mfn s, std::uint64_t f) { auto* p = static_cast<Pause*>(c); p->inner.copy(p->inner.ctx, d, s, f); };
  auto mv = FrameSwapMover::create(*r.big, hk);
  ASSERT_TRUE(mv.has_value());

  ASSERT_EQ(*r.sm->scan(*r.small, 0, 1), 0u);  // small:0 becomes a candidate
  std::thread mover;
  Result<MoveTotals> moved = Errc::invalid_argument;
  MoveOutcome out = MoveOutcome::busy;
  r.on_sharing_protect = [&] {  // small:0 is being attached; big:300 is next
    mover = std::thread([&] {
      const Gfn head = 0;
      moved = mv->move(std::span<const Gfn>(&head, 1), 1, MoveGranularity::whole_blocks,
                       std::span<MoveOutcome>(&out, 1));
    });
    pause.marked.wait();
  };
  const Mfn old_head = r.big->lookup(0).mfn;
  auto merged = r.sm->scan(*r.big, 300, 1);
  ASSERT_TRUE(merged.has_value());
  EXPECT_EQ(*merged, 1u);  // small:0 only: big:300 is under the move
  ASSERT_TRUE(mover.joinable());
  EXPECT_EQ(r.big->lookup(300).order, 9u);  // not split
  EXPECT_EQ(r.big->lookup(300).mfn, old_head + 300);
  EXPECT_TRUE(r.big->lookup(300).flags & P2mFlags::migrating);
  EXPECT_EQ(r.sm->stats().merge_failures, 1u);
  pause.go.open();
  mover.join();
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(out, MoveOutcome::moved);
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
