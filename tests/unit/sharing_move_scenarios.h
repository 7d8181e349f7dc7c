// Sharing racing a frame-swap move: the rig and the split-under-a-move
// scenario shared by sharing_move_race_test (the real guest memory: the
// split is refused) and sharing_move_race_broken_test (a split that ignores
// `migrating`, numaheap_faulty: the same scenario must see it go through,
// or its passing proves nothing).
//
// Deterministic: the mover runs on a second thread and is held, through
// hand-shakes, inside its write_protect hook (after it marked the block);
// the sharing manager's own write_protect hook is where that thread is
// started and awaited. No sleeps.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "migrate_test_model.h"
#include "numaheap/sharing.h"

namespace numaheap::test {

inline constexpr OwnerId kShareOwner = 9000;


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

inline std::unique_ptr<GuestMemory> sharing_guest(TwoNodeHost& h, const char* name, OwnerId owner, std::uint64_t mb) {
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

inline std::uint64_t* words(GuestMemory& g, Gfn gfn) {
  return static_cast<std::uint64_t*>(g.allocator().frame_address(g.lookup(gfn).mfn));
}
inline void fill(GuestMemory& g, Gfn gfn, std::uint64_t tag) {
  std::uint64_t* w = words(g, gfn);
  for (std::size_t i = 0; i < kFrameSize / 8; ++i) w[i] = tag * 1000003 + i;
}
inline bool holds(GuestMemory& g, Gfn gfn, std::uint64_t tag) {
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


// What the merge saw while the mover held big's extent.
struct SplitRace {
  std::uint64_t merged = 0;          // pages the scan of big:300 merged
  unsigned order_during = 0;         // big:300's block order while the mover paused
  bool mfn_kept = false;             // big:300 still on its frame then
  bool migrating_during = false;     // and still marked by the mover
  std::uint64_t merge_failures = 0;  // the sharing manager's count then
  bool move_ok = false;              // the move call succeeded ...
  MoveOutcome outcome = MoveOutcome::busy;  // ... with this outcome
};

// small:0 is a candidate; the scan of big:300 (equal contents) attaches
// small:0 first, and in that attach's write_protect hook a mover starts
// moving big's whole extent to node 1 and is held after marking it; then
// the merge of big:300 must split the extent. Released after the scan.
inline SplitRace split_under_move(Rig& r, GuestModel& model) {
  SplitRace res;
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
  if (!mv) return res;
  if (auto s = r.sm->scan(*r.small, 0, 1); !s || *s != 0) return res;  // small:0 becomes a candidate
  std::thread mover;
  Result<MoveTotals> moved = Errc::invalid_argument;
  r.on_sharing_protect = [&] {  // small:0 is being attached; big:300 is next
    mover = std::thread([&] {
      const Gfn head = 0;
      moved = mv->move(std::span<const Gfn>(&head, 1), 1, MoveGranularity::whole_blocks,
                       std::span<MoveOutcome>(&res.outcome, 1));
    });
    pause.marked.wait();
  };
  const Mfn old_head = r.big->lookup(0).mfn;
  auto merged = r.sm->scan(*r.big, 300, 1);
  res.merged = merged ? *merged : 0;
  const P2mEntry e = r.big->lookup(300);
  res.order_during = e.order;
  res.mfn_kept = e.mfn == old_head + 300;
  res.migrating_during = (e.flags & P2mFlags::migrating) != 0;
  res.merge_failures = r.sm->stats().merge_failures;
  pause.go.open();  // also when the hook never ran: nothing waits then
  if (mover.joinable()) mover.join();
  res.move_ok = moved.has_value();
  return res;
}

}  // namespace numaheap::test
