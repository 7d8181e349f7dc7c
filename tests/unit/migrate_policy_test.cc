// Migrator policy: access tracking, two-stage filter, shared pages not
// bounced (ping-pong), pinned / dedup-shared never moved, vNUMA binding,
// watermark, rate limit, backoff, rehome progress and cancellation, stats,
// and the frame-swap mover's outcomes.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <thread>
#include <chrono>

#include "migrate/migrator_impl.h"
#include "migrate_rig.h"
#include "unit/heap_test_support.h"
#include "numaheap/access_tracker.h"
#include "numaheap/numaheap_migrate.h"
#include "unit/forwarding_mover.h"
#include "unit/guest_oom_hooks.h"

namespace numaheap {

// Tests only: places the sampled pass's round-robin start.
struct MigratorTestPeer {
  static void set_sampled_chunk(Migrator& m, std::uint64_t chunk) {
    for (auto& s : m.impl_->owned) s->sampled_chunk = chunk;
  }
};

}  // namespace numaheap

using namespace numaheap;
using namespace numaheap::test;

namespace {

struct Rig : MigrateRig {
  explicit Rig(MigratorConfig cfg = {}, bool vnuma_bound = false, std::uint64_t mb = 2, std::uint64_t frames = 4096,
               unsigned nodes = 2)
      : MigrateRig(cfg, vnuma_bound, mb, frames, nodes) {
    add(*mover);
  }
  void touch(Gfn gfn, CpuId cpu, int times = 1) {
    for (int i = 0; i < times; ++i) m->record_access(id, gfn, cpu);
  }
};

MigratorConfig fast() {
  MigratorConfig c;
  c.rate_limit_mb_s = 0;
  c.watermark_fraction = 0;
  c.decay_steps = 1000;  // no decay unless a test wants it
  c.quick_moves = false;  // the two-stage filter for every page (quick moves have their own tests)
  c.keep_huge_pages = false;  // page-granular moves (huge pages kept whole have their own tests)
  return c;
}

constexpr CpuId kCpuNode0 = 0, kCpuNode1 = 2, kCpuNode2 = 4;  // node 2: a Rig of three nodes

// Another owner (99) takes node 1's frames until `left` are free; the
// caller frees them (owner 99, order 0).
std::vector<Mfn> fill_node1(MigrateRig& r, std::uint64_t left) {
  std::vector<Mfn> hog;
  for (;;) {
    auto s = r.h.pa->stats(1);
    if (s->free + s->cached <= left) break;
    auto a = r.h.pa->alloc(req(0, 1, AllocFlags::exact_node, 99));
    EXPECT_TRUE(a.has_value());
    if (!a) break;
    hog.push_back(a->mfn);
  }
  return hog;
}

}  // namespace

TEST(AccessTracker, TwoStageFilterAndDecay) {
  auto t = AccessTracker::create(4);
  ASSERT_TRUE(t.has_value());
  AccessTracker& a = **t;
  EXPECT_FALSE(a.heat(0).sampled());
  a.record(0, 3);
  EXPECT_EQ(a.heat(0).streak, 1u);
  a.record(0, 3);
  EXPECT_EQ(a.heat(0).streak, 2u);
  EXPECT_FALSE(a.heat(0).shared());
  a.record(0, 1);
  EXPECT_EQ(a.heat(0).last_index, 1u);
  EXPECT_EQ(a.heat(0).streak, 1u);
  EXPECT_TRUE(a.heat(0).shared());
  a.advance_epoch();  // one epoch later: still remembered as shared
  EXPECT_TRUE(a.heat(0).shared());
  a.advance_epoch();  // two: samples forgotten, including the streak...
  EXPECT_FALSE(a.heat(0).sampled());
  EXPECT_EQ(a.heat(0).streak, 0u);
  EXPECT_EQ(a.heat(0).old_index, 1u);  // ...but not the long memory
  EXPECT_EQ(a.heat(0).switches, 1u);  // ...but the ping-pong memory lasts three
  EXPECT_TRUE(a.heat(0).shared());
  a.advance_epoch();
  EXPECT_FALSE(a.heat(0).shared());
  a.record(99, 1);  // out of range: ignored
  a.record(1, 5000);
  EXPECT_FALSE(a.heat(1).sampled());
  for (int i = 0; i < 1000; ++i) a.record(2, 0);
  EXPECT_EQ(a.heat(2).hits, 3u);
  EXPECT_TRUE(a.heat(2).steady);
  EXPECT_EQ(a.heat(2).streak, 3u);
  // A hot private page is not shared, however many samples it gets (the
  // hit counter once overflowed into the switch score).
  EXPECT_FALSE(a.heat(2).shared());
  EXPECT_EQ(a.heat(2).switches, 0u);
}

TEST(AccessTracker, PingPongMemoryGrowsWithEverySwitch) {
  auto t = AccessTracker::create(2);
  ASSERT_TRUE(t.has_value());
  AccessTracker& a = **t;
  // One switch (a vCPU moved): shared for three epochs only.
  a.record(0, 0);
  a.record(0, 1);
  EXPECT_EQ(a.heat(0).switches, 3u);
  // A page that alternates every epoch: the memory grows to 15 epochs.
  for (int e = 0; e < 6; ++e) {
    a.record(1, static_cast<std::uint32_t>(e % 2));
    a.advance_epoch();
  }
  EXPECT_EQ(a.heat(1).switches, 14u);  // 15, then one epoch faded
  for (int e = 0; e < 10; ++e) {
    a.record(1, 1);  // the same node every epoch from now on
    a.advance_epoch();
  }
  EXPECT_TRUE(a.heat(1).shared());
  for (int e = 0; e < 5; ++e) {
    a.record(1, 1);
    a.advance_epoch();
  }
  EXPECT_FALSE(a.heat(1).shared());
}

TEST(MigratePolicy, PageMovesOnlyAfterTwoConsecutiveSamplesFromOneNode) {
  Rig r(fast());
  r.touch(5, kCpuNode1);
  r.m->step_at(1);
  EXPECT_EQ(r.node(5), 0u);  // one sample is not enough
  r.touch(6, kCpuNode1);
  r.touch(6, kCpuNode0);
  r.touch(6, kCpuNode1);
  r.m->step_at(2);
  EXPECT_EQ(r.node(6), 0u);  // not consecutive (and shared)
  r.touch(5, kCpuNode1);
  r.m->step_at(3);
  EXPECT_EQ(r.node(5), 1u);
  EXPECT_EQ(r.node(4), 0u);  // its neighbours stay (the 2 MiB block was split)
  EXPECT_EQ(r.gm->lookup(4).order, 0);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 1u);
  ASSERT_EQ(s.moves.size(), 1u);
  EXPECT_EQ(s.moves[0].from, 0u);
  EXPECT_EQ(s.moves[0].to, 1u);
  EXPECT_EQ(s.moves[0].bytes, kFrameSize);
  EXPECT_EQ(s.outcomes[static_cast<int>(MoveOutcome::moved)], 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
  EXPECT_TRUE(r.gm->check_invariants().has_value());
}

// Per-guest counters: two guests in one migrator, only one of them moved.
// Each guest's pages_moved is its own frames that changed node (the
// VMM's sampler asks "did my pages move", not "did anybody's"), the two
// add up to the migrator's, a removed guest's id has none.
TEST(MigratePolicy, GuestStatsCountEachGuestsOwnMoves) {
  Rig r(fast());
  std::unique_ptr<GuestMemory> gm2 = make_guest(r.h, 2, false, 0, 8);
  ASSERT_TRUE(gm2);
  GuestModel model2(*gm2, 4);
  auto mv2 = FrameSwapMover::create(*gm2, model2.hooks());
  ASSERT_TRUE(mv2.has_value());
  auto id2 = r.m->add_guest(*mv2, migrate_options_for(*gm2, false));
  ASSERT_TRUE(id2.has_value());
  ASSERT_NE(*id2, r.id);
  auto fresh = r.m->guest_stats(*id2);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->pages_moved, 0u);
  EXPECT_EQ(fresh->local_access_ratio, -1);

  // Guest 1: 10 pages sampled twice from node 1 (they move); guest 2: the
  // same pages sampled from node 0, where they are (they stay).
  for (Gfn g = 0; g < 10; ++g) {
    r.touch(g, kCpuNode1, 2);
    r.m->record_access(*id2, g, kCpuNode0);
    r.m->record_access(*id2, g, kCpuNode0);
  }
  r.m->step_at(1);
  const MigratorStats all = r.m->stats();
  const MigrateGuestStats a = *r.m->guest_stats(r.id), b = *r.m->guest_stats(*id2);
  EXPECT_EQ(all.pages_moved, 10u);
  EXPECT_EQ(a.pages_moved, 10u);
  EXPECT_EQ(a.bytes_moved, 10u * kFrameSize);
  EXPECT_EQ(b.pages_moved, 0u);
  EXPECT_EQ(a.pages_scanned + b.pages_scanned, all.pages_scanned);
  EXPECT_EQ(a.pages_scanned, r.mover->page_count());
  EXPECT_DOUBLE_EQ(a.local_access_ratio, 0.0);  // sampled from node 1 while on node 0
  EXPECT_DOUBLE_EQ(b.local_access_ratio, 1.0);
  for (Gfn g = 0; g < 10; ++g) EXPECT_EQ(r.node(g), 1u);

  // A rehome of guest 2 is guest 2's: 512 pages of a 2 MiB guest to node 1.
  NodeMask to1;
  to1.set(1);
  ASSERT_TRUE(r.m->rehome(*id2, to1).has_value());
  for (std::uint64_t t = 2; t < 20 && r.m->rehome_progress(*id2)->state == RehomeState::running; ++t)
    r.m->step_at(t * 1'000'000'000);
  ASSERT_EQ(r.m->rehome_progress(*id2)->state, RehomeState::done);
  EXPECT_EQ(r.m->guest_stats(r.id)->pages_moved, 10u);
  constexpr std::uint64_t kRam = (std::uint64_t{2} << 20) >> kFrameShift;  // its RAM; the rest are holes
  EXPECT_EQ(r.m->guest_stats(*id2)->pages_moved, kRam);
  EXPECT_EQ(r.m->stats().pages_moved, 10u + kRam);
  EXPECT_TRUE(r.m->check_invariants().has_value());

  // Unknown and removed ids are refused.
  EXPECT_EQ(r.m->guest_stats(40).error(), Errc::invalid_argument);  // never added
  EXPECT_EQ(r.m->guest_stats(~GuestId{0}).error(), Errc::invalid_argument);
  ASSERT_TRUE(r.m->remove_guest(*id2).has_value());
  EXPECT_EQ(r.m->guest_stats(*id2).error(), Errc::invalid_argument);
  EXPECT_EQ(r.m->guest_stats(r.id)->pages_moved, 10u);
}

TEST(MigratePolicy, PingPongSharedPageMovesAtMostOnce) {
  Rig r(fast());
  // vCPUs on both nodes take turns on page 9, two samples each per round.
  for (int round = 0; round < 50; ++round) {
    const CpuId cpu = round % 2 ? kCpuNode0 : kCpuNode1;
    r.touch(9, cpu, 2);
    r.m->step_at(static_cast<std::uint64_t>(round) + 1);
  }
  EXPECT_LE(r.m->stats().pages_moved, 1u);
  EXPECT_GT(r.m->stats().skipped_shared_access, 0u);
  // With decay every step the same holds.
  MigratorConfig c = fast();
  c.decay_steps = 1;
  Rig d(c);
  for (int round = 0; round < 50; ++round) {
    d.touch(9, round % 2 ? kCpuNode0 : kCpuNode1, 2);
    d.m->step_at(static_cast<std::uint64_t>(round) + 1);
  }
  EXPECT_LE(d.m->stats().pages_moved, 1u);
}

TEST(MigratePolicy, PinnedAndDedupSharedPagesNeverMove) {
  Rig r(fast());
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  ASSERT_TRUE(r.gm->update_flags(1, P2mFlags::pinned, 0));
  ASSERT_TRUE(r.gm->update_flags(2, P2mFlags::shared, 0));
  const Mfn m1 = r.gm->lookup(1).mfn, m2 = r.gm->lookup(2).mfn;
  for (int i = 0; i < 5; ++i) {
    r.touch(1, kCpuNode1, 2);
    r.touch(2, kCpuNode1, 2);
    r.m->step_at(static_cast<std::uint64_t>(i) + 1);
  }
  EXPECT_EQ(r.gm->lookup(1).mfn, m1);
  EXPECT_EQ(r.gm->lookup(2).mfn, m2);
  EXPECT_GT(r.m->stats().skipped_pinned, 0u);
  EXPECT_GT(r.m->stats().skipped_shared, 0u);
  // The mover refuses them too, with the move_pages-like outcome.
  Gfn g[3] = {1, 2, 100000};
  MoveOutcome out[3];
  auto res = r.mover->move(g, 1, MoveGranularity::pages, out);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(out[0], MoveOutcome::pinned);
  EXPECT_EQ(out[1], MoveOutcome::shared);
  EXPECT_EQ(out[2], MoveOutcome::not_present);
  EXPECT_FALSE(r.mover->move(g, 7, MoveGranularity::pages, out).has_value());  // no node 7
  ASSERT_TRUE(r.gm->update_flags(2, 0, P2mFlags::shared));  // no sharing manager holds it
  EXPECT_TRUE(r.gm->destroy().has_value());
}

TEST(MigratePolicy, VnumaBoundPagesFollowTheirVnodeNotAccesses) {
  Rig r(fast(), true, 4);
  // vnode 0 = gfns 0..511 on node 0, vnode 1 = 512..1023 on node 1.
  r.touch(3, kCpuNode1, 3);
  r.m->step_at(1);
  EXPECT_EQ(r.node(3), 0u);  // accesses do not move a bound page
  ASSERT_TRUE(r.m->bind_vnode(r.id, 0, 1).has_value());
  for (int i = 0; i < 10; ++i) r.m->step_at(static_cast<std::uint64_t>(i) + 2);
  for (Gfn g = 0; g < 1024; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_FALSE(r.m->bind_vnode(r.id, 5, 1).has_value());
}

TEST(MigratePolicy, DestinationWatermarkRespected) {
  MigratorConfig c = fast();
  Rig r(c, false, 2, 1024);
  // Fill node 1 until only 8 frames are free; watermark 4 pages.
  const std::vector<Mfn> hog = fill_node1(r, 8);
  MigratorConfig wc = fast();
  wc.watermark_pages = 4;
  auto m = Migrator::create(r.h.topo, wc);
  ASSERT_TRUE(r.m->remove_guest(r.id).has_value());
  auto id = (*m)->add_guest(*r.mover, migrate_options_for(*r.gm, false));
  ASSERT_TRUE(id.has_value());
  for (Gfn g = 0; g < 64; ++g) (*m)->record_access(*id, g, kCpuNode1), (*m)->record_access(*id, g, kCpuNode1);
  (*m)->step_at(1);
  const MigratorStats s = (*m)->stats();
  EXPECT_EQ(s.pages_moved, 4u);  // 8 free - watermark 4
  EXPECT_GT(s.skipped_watermark, 0u);
  for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
}

TEST(MigratePolicy, RateLimitPerDestination) {
  MigratorConfig c = fast();
  c.rate_limit_mb_s = 0.25;  // 64 pages per second, burst one second
  Rig r(c);
  for (Gfn g = 0; g < 512; ++g) r.touch(g, kCpuNode1, 2);
  r.m->step_at(0);
  EXPECT_EQ(r.m->stats().pages_moved, 64u);
  r.m->step_at(500'000'000);  // half a second later: 32 more
  EXPECT_EQ(r.m->stats().pages_moved, 96u);
  EXPECT_GT(r.m->stats().skipped_rate_limit, 0u);
}

TEST(MigratePolicy, FailedMovesBackOff) {
  Rig r(fast(), false, 2, 1024);
  std::vector<Mfn> hog;  // node 1 full
  for (;;) {
    auto a = r.h.pa->alloc(req(0, 1, AllocFlags::exact_node, 99));
    if (!a) break;
    hog.push_back(a->mfn);
  }
  Gfn one[1] = {100};
  MoveOutcome o[1];
  ASSERT_TRUE(r.mover->move(one, 1, MoveGranularity::pages, o).has_value());
  EXPECT_EQ(o[0], MoveOutcome::no_memory);
  for (Gfn g = 0; g < 8; ++g) r.touch(g, kCpuNode1, 2);
  r.m->step_at(1);
  EXPECT_GT(r.m->stats().skipped_watermark, 0u);
  const std::uint64_t wm = r.m->stats().skipped_watermark;
  r.m->step_at(2);  // backed off: not even tried at once
  EXPECT_EQ(r.m->stats().skipped_watermark, wm);
  EXPECT_GT(r.m->stats().skipped_backoff, 0u);
  for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
  for (int i = 0; i < 10; ++i) r.m->step_at(static_cast<std::uint64_t>(i) + 3);
  for (Gfn g = 0; g < 8; ++g) EXPECT_EQ(r.node(g), 1u);
}

TEST(MigratePolicy, DirtiedPageKeepsItsFrameAndReportsBusy) {
  TwoNodeHost h(2048);
  auto gm = make_guest(h, 2, false, 0);
  FrameSwapHooks hk;
  hk.write_protect = [](void*, const GfnRun*, std::size_t) {};
  hk.flush = [](void*) {};
  hk.unprotect = [](void*, const GfnRun*, std::size_t) {};
  hk.dirtied = [](void*, GfnRun) { return true; };  // a write always races
  auto mv = FrameSwapMover::create(*gm, hk);
  ASSERT_TRUE(mv.has_value());
  const std::uint64_t used = h.used();
  const Mfn before = gm->lookup(0).mfn;
  Gfn g[1] = {0};
  MoveOutcome out[1];
  ASSERT_TRUE(mv->move(g, 1, MoveGranularity::whole_blocks, out).has_value());
  EXPECT_EQ(out[0], MoveOutcome::busy);
  EXPECT_EQ(gm->lookup(0).mfn, before);
  EXPECT_FALSE(gm->lookup(0).flags & P2mFlags::migrating);
  EXPECT_EQ(h.used(), used);
  hk.flush = nullptr;
  EXPECT_FALSE(FrameSwapMover::create(*gm, hk).has_value());  // flush hook is required
  hk.flush = [](void*) {};
  hk.unprotect = nullptr;  // required too, as in the C API: moved pages would stay protected
  auto no_unprotect = FrameSwapMover::create(*gm, hk);
  ASSERT_FALSE(no_unprotect.has_value());
  EXPECT_EQ(no_unprotect.error(), Errc::invalid_argument);
}

TEST(MigrateRehome, MovesWholeGuestWithProgressAndKeepsContents) {
  MigratorConfig c = fast();
  c.rehome_pages_per_step = 128;
  Rig r(c, false, 4);
  for (Gfn g = 0; g < 1024; ++g) ASSERT_TRUE(r.model->write(0, g, g * 3 + 1));
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  EXPECT_FALSE(r.m->rehome(r.id, NodeMask::single(1)).has_value());  // busy
  std::uint64_t last_done = 0;
  int steps = 0;
  for (; steps < 100; ++steps) {
    r.m->step_at(static_cast<std::uint64_t>(steps));
    auto p = r.m->rehome_progress(r.id);
    ASSERT_TRUE(p.has_value());
    EXPECT_GE(p->done, last_done);
    last_done = p->done;
    if (p->state != RehomeState::running) break;
  }
  auto p = r.m->rehome_progress(r.id);
  EXPECT_EQ(p->state, RehomeState::done);
  EXPECT_EQ(p->done, p->total);
  EXPECT_EQ(p->total, 1024u);
  EXPECT_EQ(p->moved, 1024u);
  EXPECT_GE(steps, 7);  // 128 pages a step
  for (Gfn g = 0; g < 1024; ++g) {
    ASSERT_EQ(r.node(g), 1u);
    ASSERT_EQ(r.model->read(g), g * 3 + 1);
  }
  EXPECT_EQ(r.gm->lookup(0).order, 9);  // whole 2 MiB blocks moved
  EXPECT_FALSE(r.m->rehome(r.id, NodeMask{}).has_value());
  EXPECT_FALSE(r.m->rehome(r.id, NodeMask::single(5)).has_value());
}

TEST(MigrateRehome, CancelStopsBetweenBatches) {
  MigratorConfig c = fast();
  c.rehome_pages_per_step = 512;
  Rig r(c, true, 8);  // two vnodes of 4 MiB
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1), 0).has_value());
  r.m->step_at(1);
  ASSERT_TRUE(r.m->cancel_rehome(r.id).has_value());
  r.m->step_at(2);
  auto p = r.m->rehome_progress(r.id);
  EXPECT_EQ(p->state, RehomeState::cancelled);
  EXPECT_EQ(p->done, 512u);
  EXPECT_EQ(p->total, 1024u);
  // A vnode-only rehome: vnode 1 is already on node 1; vnode 0 moves.
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1), 0).has_value());
  for (int i = 0; i < 10; ++i) r.m->step_at(static_cast<std::uint64_t>(i) + 3);
  EXPECT_EQ(r.m->rehome_progress(r.id)->state, RehomeState::done);
  for (Gfn g = 0; g < 2048; ++g) ASSERT_EQ(r.node(g), 1u);
  EXPECT_FALSE(r.m->rehome(r.id, NodeMask::single(0), 9).has_value());  // no vnode 9
}

TEST(MigrateInputs, VcpuMappingAndLocalRatio) {
  Rig r(fast());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 3, kCpuNode1).has_value());
  EXPECT_FALSE(r.m->set_vcpu_cpu(r.id, 4, 0).has_value());
  EXPECT_FALSE(r.m->set_vcpu_cpu(r.id, 0, 999).has_value());
  for (Gfn g = 0; g < 10; ++g) r.m->record_vcpu_access(r.id, g, 3), r.m->record_vcpu_access(r.id, g, 3);
  for (Gfn g = 10; g < 40; ++g) r.m->record_access(r.id, g, kCpuNode0);
  r.m->step_at(1);
  const MigratorStats s = r.m->stats();
  EXPECT_NEAR(s.local_access_ratio, 30.0 / 50.0, 1e-9);
  EXPECT_EQ(s.pages_moved, 10u);
  r.m->record_access(77, 0, 0);  // unknown guest: ignored
  ASSERT_TRUE(r.m->remove_guest(r.id).has_value());
  r.m->record_access(r.id, 0, 0);  // removed: ignored, no crash
  EXPECT_FALSE(r.m->remove_guest(r.id).has_value());
}

TEST(MigrateKernelMover, QueryAndMoveOnThisHost) {
  const std::size_t pages = 16;
  // A fresh mapping: heap memory may come back already faulted in from an
  // earlier test, and the "never touched" half must really be untouched.
  void* mem = mmap(nullptr, pages * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  std::memset(mem, 0x5a, pages * kFrameSize / 2);  // only the first half faulted in
  auto km = KernelMover::create(mem, pages);
  ASSERT_TRUE(km.has_value());
  PageState st[pages];
  Status q = km->query(0, st);
  if (!q && q.error() == Errc::unsupported) {
    munmap(mem, pages * kFrameSize);
    GTEST_SKIP() << "move_pages not permitted here";
  }
  ASSERT_TRUE(q.has_value());
  EXPECT_NE(st[0].node, kNoNode);
  EXPECT_EQ(st[pages - 1].node, kNoNode);  // never touched
  Gfn g[3] = {0, pages - 1, pages + 5};
  MoveOutcome out[3];
  auto r = km->move(g, st[0].node, MoveGranularity::pages, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::moved);
  EXPECT_EQ(out[1], MoveOutcome::not_present);
  EXPECT_EQ(out[2], MoveOutcome::not_present);
  EXPECT_EQ(r->frames_moved, 0u);  // already there
  auto bad = km->move(g, 1000, MoveGranularity::pages, out);
  EXPECT_FALSE(bad.has_value());
  EXPECT_FALSE(KernelMover::create(nullptr, 1).has_value());
  munmap(mem, pages * kFrameSize);
}

TEST(MigrateMover, RepeatedPagesAndBlockPagesShareOneMove) {
  TwoNodeHost h(4096);
  auto gm = make_guest(h, 4, false, 0);
  GuestModel model(*gm, 1);
  auto mv = FrameSwapMover::create(*gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  for (Gfn g = 0; g < 1024; ++g) ASSERT_TRUE(model.write(0, g, g + 11));
  ASSERT_TRUE(gm->split_to_pages(0).has_value());
  const std::uint64_t used = h.used();
  Gfn g[6] = {3, 3, 4, 600, 700, 512};  // a page twice; three pages of the second 2 MiB block
  MoveOutcome out[6];
  auto r = mv->move(g, 1, MoveGranularity::whole_blocks, out);
  ASSERT_TRUE(r.has_value());
  for (auto o : out) EXPECT_EQ(o, MoveOutcome::moved);
  EXPECT_EQ(r->frames_moved, 2u + 512u);
  EXPECT_EQ(r->flushes, 3u);  // one batch: protect, drain before the dirty-log check, remap
  EXPECT_EQ(h.used(), used);
  EXPECT_EQ(h.pa->node_of(gm->lookup(1000).mfn), 1u);
  EXPECT_EQ(h.pa->node_of(gm->lookup(5).mfn), 0u);
  for (Gfn k = 0; k < 1024; ++k) ASSERT_EQ(model.read(k), k + 11);
  EXPECT_TRUE(gm->check_invariants().has_value());
}

// Issue 15: vCPU moves are events. All vCPUs leave node 0: a page sampled
// only there before follows on its first sample from node 1 (no two-stage
// filter); while a vCPU stays on node 0 one sample is still not enough.
TEST(MigratePolicy, PagesFollowVcpusThatLeftTheirNodeOnFirstSample) {
  Rig r(fast());
  const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
  ASSERT_GE(vcpus, 2u);
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode0).has_value());
  r.touch(10, kCpuNode0);
  r.touch(11, kCpuNode0);
  r.m->step_at(1);
  // One vCPU moves: node 0 still runs the others -- one sample does not move a page.
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.m->step_at(2);
  r.touch(10, kCpuNode1);
  r.m->step_at(3);
  EXPECT_EQ(r.node(10), 0u);
  // All of them move: page 10's last sample already came from node 1, so
  // it follows at the next step; page 11, sampled only on node 0, goes to
  // node 1 at that step too, without waiting for a sample from there.
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode1).has_value());
  r.m->step_at(4);
  EXPECT_EQ(r.node(10), 1u);
  EXPECT_EQ(r.node(11), 1u);
  EXPECT_EQ(r.m->stats().pages_followed, 2u);
  r.touch(11, kCpuNode1);
  r.m->step_at(5);
  EXPECT_EQ(r.node(11), 1u);
  EXPECT_EQ(r.m->stats().pages_followed, 2u);
  EXPECT_EQ(r.node(12), 0u);  // never sampled: stays
  // A page already on node 1 is not followed back anywhere.
  r.touch(11, kCpuNode1);
  r.m->step_at(6);
  EXPECT_EQ(r.node(11), 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// Without vCPU placements (set_vcpu_cpu never called) nothing follows.
TEST(MigratePolicy, NoFollowWithoutVcpuPlacements) {
  Rig r(fast());
  r.touch(12, kCpuNode1);
  r.m->step_at(1);
  EXPECT_EQ(r.node(12), 0u);
  EXPECT_EQ(r.m->stats().pages_followed, 0u);
}

// ---- the vacated node: every vCPU of the guest left node 0 for node 1 ----

namespace {

void place_all(Rig& r, CpuId cpu) {
  const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, cpu).has_value());
}

}  // namespace

// Pages sampled only on node 0 -- also long ago (the tracker's long memory)
// -- go to node 1 at the first step after the vCPUs all left, with no
// sample from node 1; pages never sampled stay.
TEST(MigrateVacated, PagesSampledOnlyThereFollowAtOnce) {
  MigratorConfig c = fast();
  c.decay_steps = 1;
  Rig r(c);
  place_all(r, kCpuNode0);
  r.touch(20, kCpuNode0, 2);
  r.touch(21, kCpuNode0);
  for (std::uint64_t t = 1; t <= 4; ++t) r.m->step_at(t);  // the samples are old now
  r.touch(22, kCpuNode0);  // and a recent one
  r.m->step_at(5);
  EXPECT_EQ(r.m->stats().pages_moved, 0u);
  place_all(r, kCpuNode1);
  r.m->step_at(6);
  EXPECT_EQ(r.node(20), 1u);
  EXPECT_EQ(r.node(21), 1u);
  EXPECT_EQ(r.node(22), 1u);
  EXPECT_EQ(r.node(23), 0u);  // never sampled
  EXPECT_EQ(r.m->stats().pages_moved, 3u);
  EXPECT_EQ(r.m->stats().pages_followed, 3u);
  // Settled: later steps move nothing more.
  r.m->step_at(7);
  EXPECT_EQ(r.m->stats().pages_moved, 3u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// The move is queued within the rate limit: what does not fit goes at
// the next steps, still without samples from node 1.
TEST(MigrateVacated, RateLimitedPagesGoAtLaterSteps) {
  MigratorConfig c = fast();
  c.rate_limit_mb_s = 0.25;  // 64 pages per second, burst one second
  Rig r(c);
  place_all(r, kCpuNode0);
  for (Gfn g = 20; g < 220; ++g) r.touch(g, kCpuNode0);
  r.m->step_at(1);
  place_all(r, kCpuNode1);
  r.m->step_at(2);
  EXPECT_EQ(r.m->stats().pages_moved, 64u);
  EXPECT_GT(r.m->stats().skipped_rate_limit, 0u);
  for (std::uint64_t s = 3; s <= 6; ++s) r.m->step_at((s - 2) * 1'000'000'000u);
  EXPECT_EQ(r.m->stats().pages_moved, 200u);
  for (Gfn g = 20; g < 220; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.m->stats().pages_followed, 200u);
}

// A page sampled on node 0 and by a vCPU still on node 1 (shared) keeps
// the filter: it does not move at once.
TEST(MigrateVacated, PageSharedWithAVcpuElsewhereStays) {
  Rig r(fast());
  place_all(r, kCpuNode0);
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 3, kCpuNode1).has_value());  // vCPU 3 runs on node 1 all along
  r.touch(30, kCpuNode1);
  r.touch(30, kCpuNode0);  // last sample from node 0, shared with node 1
  r.touch(31, kCpuNode0);
  r.m->step_at(1);
  place_all(r, kCpuNode1);
  r.m->step_at(2);
  EXPECT_EQ(r.node(30), 0u);
  EXPECT_EQ(r.node(31), 1u);
  EXPECT_EQ(r.m->stats().pages_moved, 1u);
}

// A page whose sampling node changed lately (switch memory left: shared
// with another node, sparsely sampled) waits for samples, even when its
// recent samples came only from the vacated node.
TEST(MigrateVacated, PageWithSwitchMemoryWaits) {
  MigratorConfig c = fast();
  c.decay_steps = 1;
  Rig r(c);
  place_all(r, kCpuNode0);
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 3, kCpuNode1).has_value());
  r.touch(32, kCpuNode1);
  r.m->step_at(1);
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 3, kCpuNode0).has_value());
  r.touch(32, kCpuNode0);  // switched: memory of 3 epochs
  r.touch(33, kCpuNode0);
  r.m->step_at(2);
  place_all(r, kCpuNode1);
  r.m->step_at(3);  // page 32's node-1 sample is forgotten, its switch memory is not
  EXPECT_EQ(r.node(32), 0u);
  EXPECT_EQ(r.node(33), 1u);
}

// vCPUs that come back before the step: nothing moves. vCPUs that come
// back while rate-limited pages wait: the rest never leaves node 0; the
// pages that went come back only on samples from node 0 (their vCPUs'
// memory, followed like any), each moved there and back at most.
TEST(MigrateVacated, VcpusThatReturnCancelTheMove) {
  MigratorConfig c = fast();
  c.rate_limit_mb_s = 0.25;
  Rig r(c);
  place_all(r, kCpuNode0);
  for (Gfn g = 20; g < 220; ++g) r.touch(g, kCpuNode0);
  r.m->step_at(1);
  place_all(r, kCpuNode1);
  place_all(r, kCpuNode0);  // back before any step
  r.m->step_at(2);
  EXPECT_EQ(r.m->stats().pages_moved, 0u);
  place_all(r, kCpuNode1);
  r.m->step_at(3);
  EXPECT_EQ(r.m->stats().pages_moved, 64u);
  place_all(r, kCpuNode0);
  for (std::uint64_t s = 4; s <= 6; ++s) r.m->step_at((s - 3) * 1'000'000'000u);
  EXPECT_EQ(r.m->stats().pages_moved, 64u);  // the queue was dropped, nothing came back unasked
  for (std::uint64_t s = 7; s <= 10; ++s) {
    for (Gfn g = 20; g < 220; ++g) r.touch(g, kCpuNode0);
    r.m->step_at((s - 3) * 1'000'000'000u);
  }
  for (Gfn g = 20; g < 220; ++g) ASSERT_EQ(r.node(g), 0u) << g;
  const MigratorStats st = r.m->stats();
  EXPECT_EQ(st.pages_moved, 128u);
  for (const auto& mv : st.moves) EXPECT_EQ(mv.pages, 64u) << mv.from << "->" << mv.to;
}

// Bad input to set_vcpu_cpu is refused and changes nothing: no node is
// vacated, nothing moves.
TEST(MigrateVacated, BadVcpuInputChangesNothing) {
  Rig r(fast());
  place_all(r, kCpuNode0);
  r.touch(20, kCpuNode0);
  r.m->step_at(1);
  const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
  for (std::uint32_t v = 0; v < vcpus; ++v)
    EXPECT_EQ(r.m->set_vcpu_cpu(r.id, v, kMaxCpus).error(), Errc::invalid_argument);
  EXPECT_EQ(r.m->set_vcpu_cpu(r.id, vcpus, kCpuNode1).error(), Errc::invalid_argument);
  EXPECT_EQ(r.m->set_vcpu_cpu(r.id + 1, 0, kCpuNode1).error(), Errc::invalid_argument);
  r.m->step_at(2);
  EXPECT_EQ(r.m->stats().pages_moved, 0u);
  EXPECT_EQ(r.node(20), 0u);
  r.touch(21, kCpuNode0);  // still attributed to node 0 through vCPU 0 ...
  r.m->record_vcpu_access(r.id, 21, 0);
  EXPECT_EQ(r.m->stats().pages_moved, 0u);
  place_all(r, kCpuNode1);  // ... and the real move still works
  r.m->step_at(3);
  EXPECT_EQ(r.node(20), 1u);
  EXPECT_EQ(r.node(21), 1u);
}

// A moved page cannot be moved back by the filter for kMovedScore epochs.
TEST(AccessTracker, MovedArmsTheSwitchMemory) {
  auto t = AccessTracker::create(4);
  ASSERT_TRUE(t.has_value());
  (*t)->record(1, 0);
  (*t)->record(1, 0);
  (*t)->moved(1);
  PageHeat h = (*t)->heat(1);
  EXPECT_EQ(h.streak, 0u);
  EXPECT_EQ(h.switches, AccessTracker::kMovedScore);
  EXPECT_TRUE(h.shared());
  for (std::uint32_t e = 0; e < AccessTracker::kMovedScore; ++e) (*t)->advance_epoch();
  EXPECT_EQ((*t)->heat(1).switches, 0u);
  (*t)->moved(99);  // out of range: ignored
}

// Sampling advice: everything at first, halving per quiet step to the
// floor, everything again after a vCPU changes node or pages are remote.
TEST(MigratePolicy, SampleShareBacksOffWhenSettledAndReturnsOnEvents) {
  MigratorConfig c = fast();
  c.decay_steps = 1;
  c.min_sample_share = 0.25;
  Rig r(c);
  // Two vCPUs on node 0: when one moves, node 0 is not vacated (its pages
  // wait for samples from the new node).
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode0).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 1, kCpuNode0).has_value());
  EXPECT_DOUBLE_EQ(*r.m->sample_share(r.id), 1.0);
  for (int step = 1; step <= 4; ++step) {
    for (Gfn g = 0; g < 64; ++g) r.touch(g, kCpuNode0);  // all local
    r.m->step_at(static_cast<std::uint64_t>(step));
  }
  EXPECT_DOUBLE_EQ(*r.m->sample_share(r.id), 0.25);  // 1 -> .5 -> .25, floor
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  EXPECT_DOUBLE_EQ(*r.m->sample_share(r.id), 1.0);  // at once, before any step
  r.m->step_at(5);
  EXPECT_DOUBLE_EQ(*r.m->sample_share(r.id), 1.0);  // and after the step that found the move
  for (Gfn g = 0; g < 64; ++g) r.touch(g, kCpuNode1);  // remote samples
  r.m->step_at(6);
  EXPECT_DOUBLE_EQ(*r.m->sample_share(r.id), 1.0);
  EXPECT_FALSE(r.m->sample_share(77).has_value());
  MigratorConfig bad = fast();
  bad.min_sample_share = 0;
  EXPECT_FALSE(Migrator::create(r.h.topo, bad).has_value());
  bad.min_sample_share = 1.5;
  EXPECT_FALSE(Migrator::create(r.h.topo, bad).has_value());
}

// The adaptive rate limit: the embedder's spare bandwidth lifts the fixed
// rate (never lowers it); an unknown answer (negative, NaN) keeps it.
namespace {
double spare_answer = 0;
double spare_hook(void*, NodeId) { return spare_answer; }
}  // namespace

TEST(MigratePolicy, RateLimitFollowsSpareBandwidth) {
  for (double answer : {-1.0, std::nan(""), 4.0, 0.0}) {
    spare_answer = answer;
    MigratorConfig c = fast();
    c.rate_limit_mb_s = 0.25;  // 64 pages a second
    c.spare_bandwidth_mb_s = spare_hook;
    c.spare_bandwidth_share = 0.5;  // 4 MB/s spare -> 2 MB/s = 512 pages
    Rig r(c);
    for (Gfn g = 0; g < 512; ++g) r.touch(g, kCpuNode1, 2);
    r.m->step_at(1'000'000'000);
    const std::uint64_t expect = answer == 4.0 ? 512u : 64u;
    EXPECT_EQ(r.m->stats().pages_moved, expect) << answer;
  }
  MigratorConfig bad = fast();
  bad.spare_bandwidth_share = std::nan("");
  TwoNodeHost h(1024);
  EXPECT_FALSE(Migrator::create(h.topo, bad).has_value());
}

// The per-node vCPU tables a guest with vCPUs gets come from the metadata
// hooks: running out at any allocation is a clean no_memory, nothing held.
TEST(MigrateOom, AddGuestWithVcpusFailsCleanlyAtEveryAllocation) {
  TwoNodeHost h(4096);
  auto gm = make_guest(h, 2, false, 0);
  GuestModel model(*gm, 4);
  auto mv = FrameSwapMover::create(*gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  auto mover = std::make_unique<FrameSwapMover>(*mv);
  OomHooks oom;
  MigratorConfig c = fast();
  c.metadata = oom.hooks();
  {
    auto m = Migrator::create(h.topo, c);
    ASSERT_TRUE(m.has_value());
    const MigrateGuestOptions o = migrate_options_for(*gm, false);
    ASSERT_GT(o.vcpus, 0u);
    bool added = false;
    for (long k = 0; k < 64 && !added; ++k) {
      oom.reset(k);
      auto id = (*m)->add_guest(*mover, o);
      if (!id) {
        EXPECT_EQ(id.error(), Errc::no_memory) << k;
        continue;
      }
      added = true;
      oom.reset();
      ASSERT_TRUE((*m)->set_vcpu_cpu(*id, 0, kCpuNode1).has_value());
      (*m)->step_at(1);
      EXPECT_DOUBLE_EQ(*(*m)->sample_share(*id), 1.0);
      ASSERT_TRUE((*m)->remove_guest(*id).has_value());
    }
    EXPECT_TRUE(added);
    oom.reset();
  }
  EXPECT_EQ(oom.live(), 0);
}

// The long memory and the quick mark: a page's first sample ever is quick;
// a switch after a run of two or more from one node, however long ago, is
// quick once the switch score has faded; a switch of a page that keeps
// switching, or after a single sample, is not.
TEST(AccessTracker, QuickMarksFirstSampleAndCleanSwitches) {
  auto t = AccessTracker::create(4);
  ASSERT_TRUE(t.has_value());
  AccessTracker& a = **t;
  a.record(0, 2);
  EXPECT_TRUE(a.heat(0).quick);  // first sample ever
  EXPECT_FALSE(a.heat(0).steady);
  a.record(0, 2);
  a.record(0, 2);
  for (int e = 0; e < 40; ++e) a.advance_epoch();  // long quiet: recent history gone
  EXPECT_FALSE(a.heat(0).sampled());
  EXPECT_EQ(a.heat(0).old_index, 2u);
  EXPECT_TRUE(a.heat(0).steady);
  a.record(0, 1);
  PageHeat h = a.heat(0);
  EXPECT_TRUE(h.quick);  // clean switch after an old run of three
  EXPECT_EQ(h.last_index, 1u);
  EXPECT_FALSE(h.steady);
  a.record(0, 2);  // and straight back: the switch score is up, not quick
  EXPECT_FALSE(a.heat(0).quick);
  // One sample then another node: no run, not quick.
  a.record(1, 0);
  for (int e = 0; e < 20; ++e) a.advance_epoch();
  a.record(1, 1);
  EXPECT_FALSE(a.heat(1).quick);
  // A moved page loses the mark.
  a.record(2, 3);
  ASSERT_TRUE(a.heat(2).quick);
  a.moved(2);
  EXPECT_FALSE(a.heat(2).quick);
  // A page never sampled whose block was just moved: its first sample is
  // not quick while the switch memory lasts (the block's other pages were
  // sampled; this one is not "first touched" there).
  a.moved(3);
  a.record(3, 1);
  EXPECT_FALSE(a.heat(3).quick);
  EXPECT_EQ(a.heat(3).last_index, 1u);
}

// Quick moves in the migrator: a first sample from another node moves a
// never-sampled page at once; a working set that changes node after a long
// quiet (its old samples forgotten) moves on its first sample from the new
// node; a page that alternates between nodes keeps the two-stage filter
// and does not bounce; with quick_moves off the filter holds for all.
TEST(MigratePolicy, QuickMovesFirstSampleAndCleanSwitchButNotAlternation) {
  MigratorConfig c = fast();
  c.decay_steps = 1;
  c.quick_moves = true;
  Rig r(c);
  std::uint64_t t = 0;
  r.touch(20, kCpuNode1);
  r.m->step_at(++t);
  EXPECT_EQ(r.node(20), 1u);  // first sample ever
  EXPECT_EQ(r.m->stats().pages_quick, 1u);
  // Page 21: a run on node 0 (where it lives), a long quiet, then node 1.
  r.touch(21, kCpuNode0);
  r.m->step_at(++t);
  r.touch(21, kCpuNode0);
  r.m->step_at(++t);
  for (int i = 0; i < 30; ++i) r.m->step_at(++t);
  EXPECT_EQ(r.node(21), 0u);
  r.touch(21, kCpuNode1);
  r.m->step_at(++t);
  EXPECT_EQ(r.node(21), 1u);
  EXPECT_EQ(r.m->stats().pages_quick, 2u);
  // Page 22 alternates every epoch: at most its first sample moves it.
  const std::uint64_t moved_before = r.m->stats().pages_moved;
  for (int i = 0; i < 40; ++i) {
    r.touch(22, i % 2 ? kCpuNode0 : kCpuNode1);
    r.m->step_at(++t);
  }
  EXPECT_LE(r.m->stats().pages_moved - moved_before, 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
  // quick_moves off: one sample never moves a page.
  Rig off(fast());
  off.touch(20, kCpuNode1);
  off.m->step_at(1);
  EXPECT_EQ(off.node(20), 0u);
  EXPECT_EQ(off.m->stats().pages_quick, 0u);
}

// The watermark is capped: a fraction of a big node may not keep more than
// watermark_max_pages idle (an overcommitted node then still takes hot
// pages up to the cap); without the cap the fraction holds.
TEST(MigratePolicy, WatermarkFractionIsCapped) {
  for (const std::uint64_t cap : {std::uint64_t{8}, std::uint64_t{1} << 20}) {
    Rig r(fast(), false, 2, 1024);
    const std::vector<Mfn> hog = fill_node1(r, 40);
    MigratorConfig wc = fast();
    wc.watermark_fraction = 0.5;  // 512 of 1024 frames: more than is free
    wc.watermark_max_pages = cap;
    auto m = Migrator::create(r.h.topo, wc);
    ASSERT_TRUE(m.has_value());
    ASSERT_TRUE(r.m->remove_guest(r.id).has_value());
    auto id = (*m)->add_guest(*r.mover, migrate_options_for(*r.gm, false));
    ASSERT_TRUE(id.has_value());
    for (Gfn g = 0; g < 64; ++g) (*m)->record_access(*id, g, kCpuNode1), (*m)->record_access(*id, g, kCpuNode1);
    (*m)->step_at(1);
    EXPECT_EQ((*m)->stats().pages_moved, cap == 8 ? 32u : 0u) << "cap " << cap;
    EXPECT_GT((*m)->stats().skipped_watermark, 0u);
    for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
  }
}

// ---- the tracker's epoch wrap ----

// Epochs are kept in 12 bits of the page's word: without the sweep a page
// left alone for exactly 4096 epochs read as sampled this very epoch.
TEST(AccessTracker, PageLeftAloneForAWholeEpochWrapIsOld) {
  for (const std::uint64_t pages : {std::uint64_t{1}, std::uint64_t{5000}}) {
    auto t = AccessTracker::create(pages);
    ASSERT_TRUE(t.has_value());
    AccessTracker& a = **t;
    a.record(0, 1);
    a.record(0, 1);
    ASSERT_EQ(a.heat(0).streak, 2u);
    a.record(pages - 1, 1);
    a.record(pages - 1, 0);  // a switch: ping-pong memory 3 (the same page when pages == 1)
    for (std::uint32_t e = 0; e < (1u << AccessTracker::kEpochBits); ++e) a.advance_epoch();
    for (const Gfn g : {Gfn{0}, Gfn{pages - 1}}) {
      const PageHeat h = a.heat(g);
      EXPECT_FALSE(h.sampled()) << pages << " pages, gfn " << g;
      EXPECT_EQ(h.streak, 0u);
      EXPECT_EQ(h.hits, 0u);
      EXPECT_EQ(h.switches, 0u);
      EXPECT_FALSE(h.shared());
    }
    EXPECT_EQ(a.heat(0).old_index, pages == 1 ? 0u : 1u);  // the long memory stays
    // Twice round, and one epoch past it: still old.
    for (std::uint32_t e = 0; e < (1u << AccessTracker::kEpochBits) + 1; ++e) a.advance_epoch();
    EXPECT_FALSE(a.heat(0).sampled());
    // And the sweep changes nothing recent: a fresh sample decays as before.
    a.record(0, 1);
    a.advance_epoch();
    EXPECT_TRUE(a.heat(0).sampled());
    a.advance_epoch();
    EXPECT_FALSE(a.heat(0).sampled());
  }
}

// The sweep composes with lazy decay: the ping-pong memory fades by one an
// epoch whether or not the sweep rewrote the word in between.
TEST(AccessTracker, SweepKeepsThePingPongMemoryFading) {
  auto t = AccessTracker::create(1);
  ASSERT_TRUE(t.has_value());
  AccessTracker& a = **t;
  for (int i = 0; i < 4; ++i) a.record(0, static_cast<std::uint32_t>(i % 2));  // 3, 9, 15
  ASSERT_EQ(a.heat(0).switches, 15u);
  for (std::uint32_t e = 1; e <= 15; ++e) {
    a.advance_epoch();  // one page: swept every epoch
    EXPECT_EQ(a.heat(0).switches, 15u - e) << e;
  }
}

// A sampler that read the epoch just before the step advanced it records
// into a word already stamped with the new epoch (by the step's moved(),
// another sampler, the sweep): a late sample, not one from 4095 epochs
// ahead that would wipe the page's switch memory and streak.
TEST(AccessTracker, ALateSamplerKeepsThePagesHistory) {
  using T = AccessTracker;
  std::uint64_t w = T::with_sample(T::kEmptyWord, 6, 0);
  w = T::with_sample(w, 6, 0);  // a run on node 0
  w = T::with_sample(w, 6, 1);  // a clean switch: score 3, streak 1
  ASSERT_EQ(T::decode(w).switches, 3u);
  const std::uint64_t late = T::with_sample(w, 5, 1);  // a sampler still at epoch 5
  EXPECT_EQ(T::decode(late).switches, 3u);
  EXPECT_EQ(T::decode(late).streak, 2u);
  EXPECT_EQ(T::decode(late).seen, T::decode(w).seen) << "node 1 was already seen this epoch";
  EXPECT_EQ(T::decayed(late, 6), late) << "still stamped with the newer epoch";
  EXPECT_EQ(T::decayed(w, 5), w) << "decay never runs backwards";
}

// ---- huge pages kept whole ----

namespace {

MigratorConfig huge() {
  MigratorConfig c = fast();
  c.keep_huge_pages = true;
  return c;
}

void write_all(Rig& r, Gfn n) {
  for (Gfn g = 0; g < n; ++g) ASSERT_TRUE(r.model->write(0, g, g * 7 + 3));
}
// The blocks moved whole and split so far; then the contents and invariants.
void check_blocks(Rig& r, std::uint64_t whole, std::uint64_t split, Gfn n = 1024);
void check_all(Rig& r, Gfn n) {
  for (Gfn g = 0; g < n; ++g) {
    ASSERT_EQ(r.model->read(g), g * 7 + 3) << g;
    ASSERT_TRUE(r.model->final_check(g)) << g;
  }
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  EXPECT_TRUE(r.m->check_invariants().has_value());
}
void check_blocks(Rig& r, std::uint64_t whole, std::uint64_t split, Gfn n) {
  EXPECT_EQ(r.m->stats().blocks_moved_whole, whole);
  EXPECT_EQ(r.m->stats().blocks_split, split);
  check_all(r, n);
}

}  // namespace

TEST(MigrateHugePages, BlockSampledFromOneNodeMovesWhole) {
  Rig r(huge(), false, 4);  // two 2 MiB blocks on node 0
  ASSERT_EQ(r.gm->lookup(0).order, 9);
  write_all(r, 1024);
  r.touch(5, kCpuNode1, 2);  // two in a row: the filter passes
  r.touch(300, kCpuNode1);
  r.m->step_at(1);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  for (Gfn g = 512; g < 1024; ++g) ASSERT_EQ(r.node(g), 0u) << g;
  EXPECT_EQ(r.gm->lookup(0).order, 9);  // still one block
  EXPECT_EQ(r.gm->lookup(511).order, 9);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.blocks_moved_whole, 1u);
  EXPECT_EQ(s.blocks_split, 0u);
  EXPECT_EQ(s.pages_moved, 512u);
  ASSERT_EQ(s.moves.size(), 1u);
  EXPECT_EQ(s.moves[0].pages, 512u);
  check_all(r, 1024);
  // Settled: nothing moves back or splits on later steps.
  r.m->step_at(2);
  EXPECT_EQ(r.m->stats().pages_moved, 512u);
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  // One sample from one node is not enough (two-stage filter).
  r.touch(600, kCpuNode1);
  r.m->step_at(3);
  EXPECT_EQ(r.node(600), 0u);
}

TEST(MigrateHugePages, StraySampleFromAnotherNodeDoesNotSplit) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  r.touch(5, kCpuNode1, 2);
  r.touch(7, kCpuNode1);
  r.touch(300, kCpuNode0);  // one sample: no real weight
  r.m->step_at(1);
  EXPECT_EQ(r.node(300), 1u);
  EXPECT_EQ(r.gm->lookup(300).order, 9);
  check_blocks(r, 1, 0);
}

// A block sampled only on the node its vCPUs all left follows them whole.
TEST(MigrateHugePages, VacatedBlockMovesWhole) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  place_all(r, kCpuNode0);
  r.touch(5, kCpuNode0);
  r.touch(600, kCpuNode0);
  // The second block was also sampled from node 1, the node every vCPU
  // went to: its only other sampler is the vacated node, so it follows
  // whole too (the block-follow rule of the host layer's huge blocks).
  r.touch(601, kCpuNode1);
  r.m->step_at(1);
  place_all(r, kCpuNode1);
  r.m->step_at(2);
  for (Gfn g = 0; g < 1024; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  EXPECT_EQ(r.gm->lookup(512).order, 9);
  EXPECT_EQ(r.m->stats().pages_followed, 1024u);
  check_blocks(r, 2, 0);
}

TEST(MigrateHugePages, TrulySharedBlockIsSplitAndOnlyItsPagesMove) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  r.touch(5, kCpuNode1, 2);  // real weight from node 1...
  r.touch(300, kCpuNode0, 2);  // ...and from node 0
  r.m->step_at(1);
  EXPECT_EQ(r.node(5), 1u);
  EXPECT_EQ(r.node(4), 0u);
  EXPECT_EQ(r.node(300), 0u);
  EXPECT_EQ(r.gm->lookup(4).order, 0);  // split
  EXPECT_EQ(r.gm->lookup(600).order, 9);  // the other block untouched
  EXPECT_EQ(r.m->stats().pages_moved, 1u);
  check_blocks(r, 0, 1);
}

// A block on a node all vCPUs left, sampled there lately and now from the
// node they went to (real weight from both): it follows whole -- the old
// node's samples are history, not sharing -- instead of being split (the
// kernel mover's THPs; issue 14).
TEST(MigrateHugePages, BlockOnAVacatedNodeFollowsWholeDespiteItsHistory) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
  ASSERT_GE(vcpus, 1u);
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode0).has_value());
  r.m->step_at(1);
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode1).has_value());
  r.touch(5, kCpuNode0, 2);  // real weight from the old node...
  r.touch(7, kCpuNode0);
  r.touch(300, kCpuNode1);  // ...and from the new one
  r.touch(301, kCpuNode1);
  r.m->step_at(2);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  for (Gfn g = 512; g < 1024; ++g) ASSERT_EQ(r.node(g), 0u) << g;  // never sampled
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.blocks_moved_whole, 1u);
  EXPECT_EQ(s.blocks_split, 0u);
  EXPECT_EQ(s.pages_followed, 512u);
  check_all(r, 1024);
}

// A block moved whole on a quick sample is not pulled back by the first
// samples of its other, never-sampled pages from the node it left: those
// pages were moved with it and carry its switch memory (kMovedScore), so
// they are not "first touched" anywhere. Before the fix a shared 2 MiB block
// in the VM's shared workload bounced on such samples (0-1-3-1-3-1-3-0).
TEST(MigrateHugePages, BlockMovedWholeIsNotPulledBackByFirstSamplesOfItsOtherPages) {
  MigratorConfig c = huge();
  c.quick_moves = true;
  c.decay_steps = 1;
  Rig r(c, false, 4);
  write_all(r, 1024);
  std::uint64_t t = 0;
  r.touch(5, kCpuNode1);  // the block's first sample ever: quick
  r.m->step_at(++t);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  ASSERT_EQ(r.m->stats().blocks_moved_whole, 1u);
  r.m->step_at(++t);  // page 5's sample forgotten: node 0 alone samples from here
  r.m->step_at(++t);
  for (Gfn g = 100; g < 103; ++g) {  // well inside the switch memory (kMovedScore)
    r.touch(g, kCpuNode0);
    r.m->step_at(++t);
  }
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  // And after it: the block's older history names node 0 (pages 100-102),
  // so another first sample from there is no reason to go back.
  for (std::uint32_t i = 0; i <= AccessTracker::kMovedScore; ++i) r.m->step_at(++t);
  r.touch(200, kCpuNode0);
  r.m->step_at(++t);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.m->stats().pages_moved, 512u);
  check_blocks(r, 1, 0);
}

// Long memory pooled over a block: a block whose pages were sampled from
// two nodes other than its own is shared for good, and a first sample of
// another page from one of them does not move it whole (nor split it);
// a block sampled before only from its own node (a user that changed
// node) still moves on its first sample from the new one.
TEST(MigrateHugePages, BlockUsedFromTwoOtherNodesIsNotQuickMovedToEither) {
  MigratorConfig c = huge();
  c.quick_moves = true;
  c.decay_steps = 1;
  Rig r(c, false, 4, 4096, 3);
  write_all(r, 1024);
  std::uint64_t t = 0;
  r.touch(10, kCpuNode1);  // block 0: used from nodes 1 and 2
  r.touch(11, kCpuNode2);
  r.touch(600, kCpuNode0);  // block 1: from its own node 0 only
  r.touch(601, kCpuNode0);
  r.m->step_at(++t);  // block 0: no owner; block 1: where it belongs. Both stay
  ASSERT_EQ(r.m->stats().pages_moved, 0u);
  r.m->step_at(++t);  // the samples forgotten, the long memory kept
  r.m->step_at(++t);
  r.touch(12, kCpuNode1);  // first samples of other pages, from node 1
  r.touch(602, kCpuNode1);
  r.m->step_at(++t);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 0u) << g;
  EXPECT_EQ(r.gm->lookup(12).order, 9);
  for (Gfn g = 512; g < 1024; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.m->stats().pages_quick, 512u);
  check_blocks(r, 1, 0);
}

TEST(MigrateHugePages, OffWholeBlocksAreSplitForGood) {
  Rig r(fast(), false, 4);  // keep_huge_pages off
  write_all(r, 1024);
  r.touch(5, kCpuNode1, 2);
  r.touch(300, kCpuNode1);
  r.m->step_at(1);
  EXPECT_EQ(r.node(5), 1u);
  EXPECT_EQ(r.node(4), 0u);
  EXPECT_EQ(r.gm->lookup(4).order, 0);
  check_blocks(r, 0, 1);
}

TEST(MigrateHugePages, SettledPagesAreCoalescedStragglersIncluded) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  // Block 0 split, a few pages elsewhere (stragglers), as a shared phase
  // leaves it.
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  const Gfn strays[] = {3, 100, 511};
  MoveOutcome out[3];
  ASSERT_TRUE(r.mover->move(strays, 1, MoveGranularity::pages, out).has_value());
  for (auto o : out) ASSERT_EQ(o, MoveOutcome::moved);
  // Not settled yet: samples from two nodes.
  r.touch(10, kCpuNode0, 2);
  r.touch(100, kCpuNode1);
  r.m->step_at(1);
  EXPECT_EQ(r.m->stats().blocks_coalesced, 0u);
  EXPECT_EQ(r.gm->lookup(0).order, 0);
  // Settled: only node 0 samples the range (two epochs on).
  MigratorConfig c = huge();
  c.decay_steps = 1;
  auto m2 = Migrator::create(r.h.topo, c);
  ASSERT_TRUE(m2.has_value());
  ASSERT_TRUE(r.m->remove_guest(r.id).has_value());
  auto id = (*m2)->add_guest(*r.mover, migrate_options_for(*r.gm, false));
  ASSERT_TRUE(id.has_value());
  (*m2)->record_access(*id, 10, kCpuNode0);
  (*m2)->record_access(*id, 10, kCpuNode0);
  (*m2)->step_at(1);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 0u) << g;
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  EXPECT_EQ(r.gm->lookup(511).order, 9);
  EXPECT_EQ(r.gm->lookup(0).mfn % 512, 0u);
  const MigratorStats s = (*m2)->stats();
  EXPECT_EQ(s.blocks_coalesced, 1u);
  EXPECT_EQ(s.pages_moved, 3u);  // the stragglers changed node; the rest was copied in place
  EXPECT_EQ((*m2)->guest_stats(*id)->pages_moved, 3u);  // coalescing counts as the guest's moves
  for (Gfn g = 0; g < 1024; ++g) {
    ASSERT_EQ(r.model->read(g), g * 7 + 3) << g;
    ASSERT_TRUE(r.model->final_check(g)) << g;
  }
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  EXPECT_TRUE(r.gm->check_frames().has_value());
  EXPECT_TRUE((*m2)->check_invariants().has_value());
  ASSERT_TRUE((*m2)->remove_guest(*id).has_value());
}

TEST(MigrateHugePages, TooManyStragglersOrPinnedPagesAreNotCoalesced) {
  Rig r(huge(), false, 4);
  write_all(r, 1024);
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  std::vector<Gfn> strays;
  for (Gfn g = 0; g < 40; ++g) strays.push_back(g * 12);
  std::vector<MoveOutcome> out(strays.size());
  ASSERT_TRUE(r.mover->move(strays, 1, MoveGranularity::pages, out).has_value());
  r.touch(1, kCpuNode0, 2);
  r.m->step_at(1);
  EXPECT_EQ(r.m->stats().blocks_coalesced, 0u);
  EXPECT_EQ(r.gm->lookup(1).order, 0);
  // The mover itself: bad arguments, entries that are not plain 4 KiB pages.
  MoveOutcome o = MoveOutcome::moved;
  EXPECT_EQ(r.mover->coalesce(1, 9, 0, o).error(), Errc::invalid_argument);  // misaligned
  EXPECT_EQ(r.mover->coalesce(0, 0, 0, o).error(), Errc::invalid_argument);
  EXPECT_EQ(r.mover->coalesce(0, 10, 0, o).error(), Errc::invalid_argument);
  EXPECT_EQ(r.mover->coalesce(0, 9, 7, o).error(), Errc::invalid_node);
  ASSERT_TRUE(r.mover->coalesce(512, 9, 0, o).has_value());  // still a block
  EXPECT_EQ(o, MoveOutcome::busy);
  ASSERT_TRUE(r.gm->update_flags(5, P2mFlags::pinned, 0));
  ASSERT_TRUE(r.mover->coalesce(0, 9, 0, o).has_value());
  EXPECT_EQ(o, MoveOutcome::pinned);
  for (Gfn g = 0; g < 512; ++g) ASSERT_FALSE(r.gm->lookup(g).flags & P2mFlags::migrating) << g;
  ASSERT_TRUE(r.gm->update_flags(5, 0, P2mFlags::pinned));
  // Now allowed (the mover does not count stragglers; the policy does).
  ASSERT_TRUE(r.mover->coalesce(0, 9, 0, o).has_value());
  EXPECT_EQ(o, MoveOutcome::moved);
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  check_all(r, 1024);
}

namespace {

// Counts the calls the migrator makes, moving through another mover.
class CountingMover final : public ForwardingMover {
 public:
  using ForwardingMover::ForwardingMover;
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                          std::span<MoveOutcome> out) noexcept override {
    ++moves;
    return inner_.move(gfns, target, granularity, out);
  }
  void move_each(std::span<MoveRequest> requests) noexcept override {
    ++move_each_calls;
    requests_seen += requests.size();
    for (MoveRequest& q : requests) q.result = inner_.move(q.gfns, q.target, q.granularity, q.out);
  }
  bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept override {
    return inner_.node_frames(node, free, managed);
  }
  int moves = 0, move_each_calls = 0;
  std::size_t requests_seen = 0;
};

}  // namespace

// Pages bound for different nodes in one step reach the mover in one call
// (Mover::move_each: a kernel mover pays its per-call cost once), each
// request booked as a move of its own.
TEST(MigratePolicy, MovesToSeveralNodesInOneStepAreOneMoverCall) {
  MigrateRig r(fast(), /*vnuma_bound=*/true, 2, 4096);  // vnuma: the second vnode starts on node 1
  CountingMover cm(*r.mover);
  auto id = r.m->add_guest(cm, migrate_options_for(*r.gm, false));  // but moved by accesses
  ASSERT_TRUE(id.has_value());
  const Gfn last = r.gm->ram_pages() - 1;
  ASSERT_EQ(r.node(3), 0u);
  ASSERT_EQ(r.node(last - 3), 1u);
  for (Gfn g = 0; g < 4; ++g) {
    r.m->record_access(*id, g, kCpuNode1), r.m->record_access(*id, g, kCpuNode1);
    r.m->record_access(*id, last - g, kCpuNode0), r.m->record_access(*id, last - g, kCpuNode0);
  }
  r.m->step_at(1);
  for (Gfn g = 0; g < 4; ++g) {
    EXPECT_EQ(r.node(g), 1u) << "gfn " << g;
    EXPECT_EQ(r.node(last - g), 0u) << "gfn " << last - g;
  }
  EXPECT_EQ(cm.move_each_calls, 1);
  EXPECT_EQ(cm.requests_seen, 2u) << "one request per destination";
  EXPECT_EQ(cm.moves, 0) << "no move outside move_each";
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 8u);
  EXPECT_EQ(s.outcomes[static_cast<int>(MoveOutcome::moved)], 8u);
  ASSERT_EQ(s.moves.size(), 2u);
  EXPECT_EQ(s.moves[0].pages + s.moves[1].pages, 8u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  EXPECT_TRUE(r.m->remove_guest(*id).has_value());
}

namespace {

// An embedder's mover that answers with an outcome outside the enum (a bug
// on its side) and moves nothing.
class NonsenseMover final : public ForwardingMover {
 public:
  using ForwardingMover::ForwardingMover;
  Result<MoveTotals> move(std::span<const Gfn>, NodeId, MoveGranularity, std::span<MoveOutcome> out) noexcept override {
    for (MoveOutcome& o : out) o = static_cast<MoveOutcome>(200);
    asked += out.size();
    return MoveTotals{};
  }
  std::uint64_t asked = 0;
};

}  // namespace

// ... is counted as busy (the page is looked at again), inside the
// outcome table: not a write past MigratorStats::outcomes.
TEST(MigratePolicy, AnOutcomeOutsideTheEnumCountsAsBusy) {
  MigrateRig r(fast(), false, 2, 4096);
  NonsenseMover nm(*r.mover);
  auto id = r.m->add_guest(nm, migrate_options_for(*r.gm, false));
  ASSERT_TRUE(id.has_value());
  for (Gfn g = 0; g < 4; ++g) r.m->record_access(*id, g, kCpuNode1), r.m->record_access(*id, g, kCpuNode1);
  const StepReport rep = r.m->step_at(1);
  ASSERT_GT(nm.asked, 0u);
  const MigratorStats s = r.m->stats();
  std::uint64_t counted = 0;
  for (std::uint64_t c : s.outcomes) counted += c;
  EXPECT_EQ(counted, nm.asked);
  EXPECT_EQ(s.outcomes[static_cast<int>(MoveOutcome::busy)], nm.asked);
  EXPECT_EQ(rep.failed, nm.asked);
  EXPECT_EQ(s.pages_moved, 0u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// request_step(): the background thread steps at once instead of waiting
// out its period (an hour here), and without start() nothing happens.
TEST(MigrateBackground, RequestStepStepsWithoutWaitingOutThePeriod) {
  MigratorConfig c = fast();
  c.period_ms = 3'600'000;
  Rig r(c);
  r.m->request_step();  // not running: nothing
  EXPECT_EQ(r.m->stats().steps, 0u);
  auto wait_steps = [&](std::uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (r.m->stats().steps < n && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return r.m->stats().steps;
  };
  ASSERT_TRUE(r.m->start().has_value());
  ASSERT_GE(wait_steps(1), 1u) << "the first step runs at start";
  EXPECT_EQ(r.m->stats().steps, 1u) << "then the period (an hour)";
  r.touch(5, kCpuNode1, 2);
  r.m->request_step();
  EXPECT_GE(wait_steps(2), 2u) << "request_step did not wake the background thread";
  r.m->stop();
  EXPECT_EQ(r.node(5), 1u);
  numaheap_migrator_request_step(nullptr);  // C: no crash, nothing
}

// The sampled-chunk bitmap: a sample that changes a page's word marks its
// chunk of 64 pages; one that changes nothing (saturated) does not; take
// clears only the bits asked for, put_back restores them.
TEST(AccessTracker, SampledChunksAreMarkedTakenAndGivenBack) {
  auto t = AccessTracker::create(64 * 64 + 10);  // 65 chunks: two bitmap words
  ASSERT_TRUE(t.has_value());
  AccessTracker& a = **t;
  ASSERT_EQ(a.chunk_words(), 2u);
  EXPECT_EQ(a.take_sampled_chunks(0), 0u);
  a.record(3, 1);
  a.record(64 * 64 + 9, 0);  // the last page: chunk 64, bit 0 of word 1
  a.record(1000 * 1000, 0);  // out of range: ignored
  EXPECT_EQ(a.take_sampled_chunks(1), 1u);
  EXPECT_EQ(a.take_sampled_chunks(1), 0u) << "taking clears";
  EXPECT_EQ(a.take_sampled_chunks(0, ~std::uint64_t{1}), 0u) << "bit 0 is outside the mask";
  EXPECT_EQ(a.take_sampled_chunks(0), 1u) << "and was left there";
  for (int i = 0; i < 8; ++i) a.record(3, 1);  // saturates (streak 3, hits 3)
  EXPECT_EQ(a.take_sampled_chunks(0), 1u);
  a.record(3, 1);  // saturated: the word did not change, no mark
  EXPECT_EQ(a.take_sampled_chunks(0), 0u);
  a.advance_epoch();
  a.record(3, 1);  // a new epoch changes the word again
  a.record(64 * 5 + 1, 1);
  EXPECT_EQ(a.take_sampled_chunks(0), (std::uint64_t{1} << 5) | 1u);
  a.mark_sampled_chunks(0, 1u << 7);
  a.mark_sampled_chunks(9, 1u);  // out of range: ignored
  EXPECT_EQ(a.take_sampled_chunks(0), 1u << 7);
  EXPECT_EQ(a.take_sampled_chunks(2), 0u);
}

// A sampled page far from the scan cursor of a guest larger than
// scan_pages is looked at in the very next step, not when the cursor gets
// there; a page inside the cursor's window is looked at once.
TEST(MigrateScan, SampledPageFarFromTheCursorMovesAtTheNextStep) {
  MigratorConfig c = fast();
  c.scan_pages = 64;
  Rig r(c, false, 8);  // 2048 pages: the cursor needs 32 steps to get round
  r.touch(1500, kCpuNode1, 2);
  r.touch(10, kCpuNode1, 2);  // in this step's window [0, 64)
  r.m->step_at(1);
  EXPECT_EQ(r.node(1500), 1u);
  EXPECT_EQ(r.node(10), 1u);
  MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_scanned, 128u) << "the window and chunk [1472, 1536), page 10's chunk not twice";
  EXPECT_EQ(s.pages_scanned_sampled, 64u);
  EXPECT_EQ(s.pages_moved, 2u);
  // Nothing sampled since: the next step looks at its window only.
  r.m->step_at(2);
  s = r.m->stats();
  EXPECT_EQ(s.pages_scanned, 192u);
  EXPECT_EQ(s.pages_scanned_sampled, 64u);
  // Window of step 3: [128, 192); page 100's chunk [64, 128) lies outside.
  r.touch(100, kCpuNode1, 2);
  r.m->step_at(3);
  EXPECT_EQ(r.node(100), 1u);
  EXPECT_EQ(r.m->stats().pages_scanned_sampled, 128u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
  EXPECT_TRUE(r.gm->check_invariants().has_value());
}

// More sampled chunks than one step's budget: the rest wait for the next
// steps, round robin, and a chunk sampled again every step does not keep
// the others waiting.
TEST(MigrateScan, SampledChunksBeyondTheBudgetGoRoundRobin) {
  MigratorConfig c = fast();
  c.scan_pages = 64;  // one chunk per step
  Rig r(c, false, 8);
  const Gfn pages[] = {1030, 1100, 1200, 1300, 1400};  // five chunks, far from the cursor
  for (Gfn p : pages) r.touch(p, kCpuNode1, 2);
  for (std::uint64_t step = 1; step <= 5; ++step) {
    r.m->step_at(step);
    std::uint64_t moved = 0;
    for (Gfn p : pages) moved += r.node(p) == 1u;
    EXPECT_EQ(moved, step) << "step " << step;
    r.touch(1030, kCpuNode1);  // the first chunk, sampled again every step (the word changes: a new hit)
    r.touch(1031, kCpuNode0);
  }
  EXPECT_EQ(r.m->stats().pages_scanned_sampled, 5u * 64);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// Pages that follow vCPUs off a vacated node on their old samples alone
// (no new sample marks them) are found by a walk of the tracker after the
// move, not when the cursor gets there; a walk longer than one step's
// share (64 x scan_pages pages) goes on where it stopped.
TEST(MigrateScan, VacatedPagesFarFromTheCursorAreFoundByTheWalk) {
  MigratorConfig c = fast();
  c.decay_steps = 1;
  c.scan_pages = 16;  // a window of 16 pages, a walk of 1024 a step
  Rig r(c, false, 8);  // 2048 pages: the walk takes two steps
  place_all(r, kCpuNode0);
  r.touch(100, kCpuNode0);
  r.touch(1500, kCpuNode0);
  for (std::uint64_t t = 1; t <= 4; ++t) r.m->step_at(t);  // old samples now; windows [0, 64)
  EXPECT_EQ(r.m->stats().pages_moved, 0u);
  place_all(r, kCpuNode1);
  r.m->step_at(5);  // walks [0, 1024)
  EXPECT_EQ(r.node(100), 1u);
  EXPECT_EQ(r.node(1500), 0u);
  r.m->step_at(6);  // walks [1024, 2048)
  EXPECT_EQ(r.node(1500), 1u);
  EXPECT_EQ(r.node(101), 0u);  // never sampled
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_followed, 2u);
  EXPECT_EQ(s.pages_moved, 2u);
  // Settled: the walk is over, nothing more is marked or moved.
  const std::uint64_t looked = s.pages_scanned_sampled;
  r.m->step_at(7);
  EXPECT_EQ(r.m->stats().pages_scanned_sampled, looked);
  EXPECT_EQ(r.m->stats().pages_moved, 2u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// What the rate limit holds back is looked at again at the next step, not
// when the cursor gets there: 200 pages that follow their vCPUs on old
// samples, far from the cursor, at 32 pages a second.
TEST(MigrateScan, RateLimitedPagesAreLookedAtAgainAtTheNextStep) {
  MigratorConfig c = fast();
  c.rate_limit_mb_s = 0.125;  // 32 pages per second, burst one second
  c.scan_pages = 16;          // the cursor needs 75 steps to reach page 1200
  Rig r(c, false, 8);
  place_all(r, kCpuNode0);
  for (Gfn g = 1200; g < 1400; ++g) r.touch(g, kCpuNode0);
  r.m->step_at(1);
  place_all(r, kCpuNode1);
  for (std::uint64_t s = 1; s <= 20; ++s) r.m->step_at(s * 1'000'000'000u);
  EXPECT_GT(r.m->stats().skipped_rate_limit, 0u);
  for (Gfn g = 1200; g < 1400; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.m->stats().pages_followed, 200u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// Pages following their vCPUs on old samples that a full destination
// turned away are looked at again once its backoff is over, not when the
// cursor gets there (76 steps for page 1216 at 16 pages a step): the
// vacated walk runs again. 48 pages of one chunk, 20 free frames on node 1
// until the hog leaves.
TEST(MigrateScan, FollowingPagesTurnedAwayByAFullNodeAreRetriedAfterItsBackoff) {
  MigratorConfig c = fast();
  c.scan_pages = 16;  // a window of 16 pages, a walk of 1024 a step
  Rig r(c, false, 8);
  place_all(r, kCpuNode0);
  for (Gfn g = 1216; g < 1264; ++g) r.touch(g, kCpuNode0);
  r.m->step_at(1);
  std::vector<Mfn> hog = fill_node1(r, 20);
  place_all(r, kCpuNode1);
  r.m->step_at(2);  // walks [0, 1024)
  r.m->step_at(3);  // walks [1024, 2048): 20 fit, 28 are turned away, node 1 backed off
  std::uint64_t there = 0;
  for (Gfn g = 1216; g < 1264; ++g) there += r.node(g) == 1;
  EXPECT_EQ(there, 20u);
  EXPECT_EQ(r.m->stats().skipped_watermark, 28u);
  for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
  for (std::uint64_t t = 4; t <= 12; ++t) r.m->step_at(t);
  for (Gfn g = 1216; g < 1264; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.m->stats().pages_followed, 48u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// The same when the destination was already backed off (for another
// page) when the pages came to follow: they are turned away by the
// backoff, not by the watermark, and retried after it.
TEST(MigrateScan, FollowingPagesTurnedAwayByABackedOffNodeAreRetriedAfterIt) {
  MigratorConfig c = fast();
  c.scan_pages = 64;  // a window of 64 pages (page 1216: 19 steps away), a walk of 4096 a step
  Rig r(c, false, 8);
  place_all(r, kCpuNode0);
  for (Gfn g = 1216; g < 1236; ++g) r.touch(g, kCpuNode0);
  r.m->step_at(1);
  std::vector<Mfn> hog = fill_node1(r, 0);
  r.touch(500, kCpuNode1, 2);  // wants node 1, which is full: backed off for step 3
  r.m->step_at(2);
  EXPECT_GT(r.m->stats().skipped_watermark, 0u);
  place_all(r, kCpuNode1);
  r.m->step_at(3);  // the walk finds 1216-1235; node 1 is backed off
  EXPECT_GT(r.m->stats().skipped_backoff, 0u);
  EXPECT_EQ(r.node(1216), 0u);
  for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
  for (std::uint64_t t = 4; t <= 8; ++t) r.m->step_at(t);
  for (Gfn g = 1216; g < 1236; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

namespace {

// Says nothing about node room (the policy's watermark check is skipped),
// so a full node is found by the move itself (no_memory); and answers
// busy, moving nothing, for the first `busy_calls` move calls.
class RoomlessMover final : public ForwardingMover {
 public:
  using ForwardingMover::ForwardingMover;
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity g,
                          std::span<MoveOutcome> out) noexcept override {
    if (busy_calls > 0) {
      --busy_calls;
      for (MoveOutcome& o : out) o = MoveOutcome::busy;
      return MoveTotals{};
    }
    return inner_.move(gfns, target, g, out);
  }
  int busy_calls = 0;
};

}  // namespace

// The same when the move itself finds the node full (no_memory: a kernel
// whose free memory went between the query and the move), and when it
// answers busy (a page locked for a moment): retried after the backoff,
// and at the next step.
TEST(MigrateScan, FollowingPagesTheMoverRefusedAreRetried) {
  for (const bool busy : {false, true}) {
    MigratorConfig c = fast();
    c.scan_pages = 16;
    MigrateRig r(c, false, 8, 4096);
    RoomlessMover rm(*r.mover);
    auto id = r.m->add_guest(rm, migrate_options_for(*r.gm, false));
    ASSERT_TRUE(id.has_value());
    r.id = *id;
    const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
    auto place = [&](CpuId cpu) {
      for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, cpu).has_value());
    };
    place(kCpuNode0);
    for (Gfn g = 1216; g < 1264; ++g) r.m->record_access(r.id, g, kCpuNode0);
    r.m->step_at(1);
    std::vector<Mfn> hog;
    if (busy) rm.busy_calls = 1;
    else hog = fill_node1(r, 20);  // node 1 down to 20 free frames
    place(kCpuNode1);
    r.m->step_at(2);
    r.m->step_at(3);  // the walk finds 1216-1263: 20 fit and 28 no_memory, or all busy
    std::uint64_t there = 0;
    for (Gfn g = 1216; g < 1264; ++g) there += r.node(g) == 1;
    EXPECT_EQ(there, busy ? 0u : 20u) << (busy ? "busy" : "no_memory");
    for (Mfn f : hog) ASSERT_TRUE(r.h.pa->free(f, 0, 99).has_value());
    for (std::uint64_t t = 4; t <= 12; ++t) r.m->step_at(t);
    for (Gfn g = 1216; g < 1264; ++g) ASSERT_EQ(r.node(g), 1u) << g << (busy ? " busy" : " no_memory");
    EXPECT_TRUE(r.m->check_invariants().has_value());
  }
}

// The sampled pass's round robin starts mid-block (chunk 20 of block
// 1024-1535) and wraps to the block's chunks before the start after
// another block's: the block is judged again only after its move, so it is
// asked to move once, not twice in one batch.
TEST(MigrateScan, ABlockAcrossTheRoundRobinStartMovesOnce) {
  MigratorConfig c = fast();
  c.keep_huge_pages = true;
  c.scan_pages = 1024;  // window [0, 1024): blocks 0 and 1; the pass sees blocks 2 and 3
  Rig r(c, false, 8);
  ASSERT_EQ(r.gm->lookup(1024).order, 9);
  MigratorTestPeer::set_sampled_chunk(*r.m, 20);
  r.touch(1300, kCpuNode1, 2);  // chunk 20, block 2: from the start
  r.touch(1800, kCpuNode1, 2);  // chunk 28, block 3: then another block
  r.touch(1100, kCpuNode1, 2);  // chunk 17, block 2 again: after the wrap
  r.m->step_at(1);
  EXPECT_EQ(r.node(1024), 1u);
  EXPECT_EQ(r.node(1536), 1u);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.blocks_moved_whole, 2u);
  EXPECT_EQ(s.outcomes[static_cast<int>(MoveOutcome::moved)], 2u) << "a block asked to move twice";
  EXPECT_EQ(s.pages_moved, 1024u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
  EXPECT_TRUE(r.gm->check_invariants().has_value());
}
