// Rehome consistency and broken-RAM evacuation (issue 12, items 11-12):
//  * a rehomed guest's layout and home follow it, so ballooning and claims
//    work with the rehome, and a cold-store pool can be told its new home;
//  * rehome keeps the destination watermark and the rate limit unless the
//    admin overrides them;
//  * a multi-node target is spread even by a mover that cannot say how much
//    room a node has (the kernel mover);
//  * a page on a frame pending offline leaves it before any policy move,
//    and the frame is retired, in host-memory and frame-only mode.
#include <gtest/gtest.h>

#include <unordered_map>

#include "unit/forwarding_mover.h"
#include "evacuate_scenarios.h"
#include "migrate_rig.h"
#include "numaheap/cold_store.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

MigratorConfig quiet() {
  MigratorConfig c;
  c.rate_limit_mb_s = 0;
  c.watermark_fraction = 0;
  c.decay_steps = 1000;
  return c;
}

struct Rig : MigrateRig {
  explicit Rig(MigratorConfig cfg = quiet(), std::uint64_t mb = 4, std::uint64_t frames = 4096)
      : MigrateRig(cfg, false, mb, frames) {}
  void add(Mover& mv, bool auto_balance = false) { MigrateRig::add(mv, auto_balance); }
  RehomeState run(std::uint64_t now = 0, int max_steps = 32) {
    for (int i = 0; i < max_steps; ++i) {
      (void)m->step_at(now);
      auto p = m->rehome_progress(id);
      if (p->state != RehomeState::running) return p->state;
    }
    return RehomeState::running;
  }
  std::uint64_t pages_on(NodeId n) const {
    std::uint64_t c = 0;
    for (Gfn g = 0; g < gm->ram_pages(); ++g) c += node(g) == n;
    return c;
  }
};

// A mover that knows nothing about node room, as the kernel mover: the
// frame-swap mover behind it does the work.
class NoRoomInfoMover final : public ForwardingMover {
 public:
  using ForwardingMover::ForwardingMover;
};

}  // namespace

TEST(MigrateRehomeFollows, LayoutHomeBalloonAndClaimsFollowTheGuest) {
  Rig r;
  r.add(*r.mover);
  for (Gfn g = 0; g < r.gm->ram_pages(); ++g) ASSERT_TRUE(r.model->write(0, g, g + 100));
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  // The home changes at once: the guest's own bookkeeping follows the rehome.
  EXPECT_EQ(r.gm->home_nodes(), NodeMask::single(1));
  EXPECT_EQ(r.gm->home_node_of(0), 1u);
  for (const auto& range : r.gm->layout()) EXPECT_EQ(range.pnode, 1u);
  ASSERT_EQ(r.run(), RehomeState::done);
  EXPECT_EQ(r.pages_on(1), r.gm->ram_pages());
  // Balloon down and up: the pages come back on the new home, claimed there.
  ASSERT_EQ(*r.gm->balloon_down(64), 64u);
  ASSERT_EQ(*r.gm->balloon_up(64), 64u);
  EXPECT_EQ(r.pages_on(1), r.gm->ram_pages());
  EXPECT_EQ(r.h.pa->claimed_by(r.gm->owner()), 0u);
  for (Gfn g = 0; g < r.gm->ram_pages(); ++g)
    if (r.model->read(g) != 0 && r.model->read(g) != g + 100) ADD_FAILURE() << "gfn " << g;
  EXPECT_TRUE(r.gm->check_invariants().has_value());
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

TEST(MigrateRehomeFollows, RelayoutRefusesABadLayoutAndChangesNothing) {
  Rig r;
  const auto before = r.gm->layout();
  GuestRange half{0, r.gm->ram_pages() / 2, 1, 0};
  EXPECT_FALSE(r.gm->relayout(std::span<const GuestRange>(&half, 1)).has_value());  // does not cover RAM
  GuestRange bad_node{0, r.gm->ram_pages(), 7, 0};
  EXPECT_FALSE(r.gm->relayout(std::span<const GuestRange>(&bad_node, 1)).has_value());
  GuestRange other_vnode{0, r.gm->ram_pages(), 1, 3};
  EXPECT_FALSE(r.gm->relayout(std::span<const GuestRange>(&other_vnode, 1)).has_value());
  EXPECT_EQ(r.gm->home_nodes(), NodeMask::single(0));
  ASSERT_EQ(r.gm->layout().size(), before.size());
  EXPECT_EQ(r.gm->layout()[0].pnode, before[0].pnode);
}

// A pool made from a node mask follows nothing: the embedder's
// set_pool_home is what moves it (and is enough).
TEST(MigrateRehomeFollows, ColdStorePoolFollowsTheNewHome) {
  Rig r;
  r.add(*r.mover);
  auto cs = ColdStore::create(*r.h.pa, ColdStoreConfig{});
  ASSERT_TRUE(cs.has_value());
  ColdStore& cold = **cs;
  auto pers = cold.create_pool(r.gm->home_nodes(), PoolKind::persistent);
  auto eph = cold.create_pool(r.gm->home_nodes(), PoolKind::ephemeral);
  ASSERT_TRUE(pers.has_value() && eph.has_value());
  std::vector<unsigned char> page(kFrameSize);
  for (std::uint32_t i = 0; i < 8; ++i) {
    page[0] = static_cast<unsigned char>(i);
    ASSERT_EQ(*cold.put(*pers, 1, i, page.data()), 1u);
    ASSERT_EQ(*cold.put(*eph, 1, i, page.data()), 1u);
  }
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  ASSERT_EQ(r.run(), RehomeState::done);
  auto stuck = cold.set_pool_home(*pers, r.gm->home_nodes());
  ASSERT_TRUE(stuck.has_value());
  EXPECT_EQ(*stuck, 0u);
  ASSERT_TRUE(cold.set_pool_home(*eph, r.gm->home_nodes()).has_value());
  for (std::uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(cold.node_of(*pers, 1, i), 0u);
    EXPECT_EQ(cold.node_of(*eph, 1, i), 0u);
    std::vector<unsigned char> out(kFrameSize, 0xff);
    ASSERT_EQ(*cold.get(*pers, 1, i, out.data()), ColdGet::hit);
    EXPECT_EQ(out[0], i);
  }
  page[0] = 42;
  EXPECT_EQ(*cold.put(*pers, 2, 0, page.data()), 0u);  // new puts avoid the new home
  EXPECT_TRUE(cold.check_invariants().has_value());
  EXPECT_FALSE(cold.set_pool_home(*pers, r.h.topo.memory_nodes()).has_value());  // nowhere left
  EXPECT_EQ(cold.node_of(*pers, 2, 0), 0u);
}

// Pools made from the guest follow its rehome without the embedder: the
// first put after the home changed moves stored pages off the new home and
// places the new page outside it. The pool holds the guest's home record,
// not the guest: it outlives the guest's destruction.
TEST(MigrateRehomeFollows, ColdStorePoolMadeFromTheGuestFollowsWithoutTheEmbedder) {
  TwoNodeHost h(4096);
  GuestSpec spec;
  spec.name = "cold";
  spec.memory_bytes = 4u << 20;
  spec.vcpus = 1;
  spec.cold_store = true;
  Placement pl;
  pl.nodes.set(0);
  pl.memory = {{0, 4u << 20}};
  pl.vcpu_nodes = {0};
  auto made = GuestMemory::create(*h.pa, spec, pl, 7, GuestOptions{});
  ASSERT_TRUE(made.has_value());
  std::unique_ptr<GuestMemory> gm = std::move(*made);
  ASSERT_TRUE(gm->populate().has_value());
  EXPECT_EQ(gm->layout_generation(), 0u);
  GuestModel model(*gm, 1);
  auto mv = FrameSwapMover::create(*gm, model.hooks());
  ASSERT_TRUE(mv.has_value());
  auto mg = Migrator::create(h.topo, quiet());
  ASSERT_TRUE(mg.has_value());
  auto o = migrate_options_for(*gm, false);
  o.auto_balance = false;
  auto id = (*mg)->add_guest(*mv, o);
  ASSERT_TRUE(id.has_value());
  auto cs = ColdStore::create(*h.pa, ColdStoreConfig{});
  ASSERT_TRUE(cs.has_value());
  ColdStore& cold = **cs;
  auto pers = cold.create_pool(*gm, PoolKind::persistent);
  auto eph = cold.create_pool(*gm, PoolKind::ephemeral);
  ASSERT_TRUE(pers.has_value() && eph.has_value());
  std::vector<unsigned char> page(kFrameSize);
  for (std::uint32_t i = 0; i < 8; ++i) {
    page[0] = static_cast<unsigned char>(i);
    ASSERT_EQ(*cold.put(*pers, 1, i, page.data()), 1u);
    ASSERT_EQ(*cold.put(*eph, 1, i, page.data()), 1u);
  }
  ASSERT_TRUE((*mg)->rehome(*id, NodeMask::single(1)).has_value());
  EXPECT_EQ(gm->layout_generation(), 1u);
  for (int s = 0; s < 32 && (*mg)->rehome_progress(*id)->state == RehomeState::running; ++s)
    (void)(*mg)->step_at(0);
  ASSERT_EQ((*mg)->rehome_progress(*id)->state, RehomeState::done);
  // No set_pool_home: the next put of each pool follows the guest.
  page[0] = 42;
  EXPECT_EQ(*cold.put(*pers, 2, 0, page.data()), 0u);
  EXPECT_EQ(*cold.put(*eph, 2, 0, page.data()), 0u);
  for (std::uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(cold.node_of(*pers, 1, i), 0u) << i;
    EXPECT_EQ(cold.node_of(*eph, 1, i), 0u) << i;
    std::vector<unsigned char> out(kFrameSize, 0xff);
    ASSERT_EQ(*cold.get(*pers, 1, i, out.data()), ColdGet::hit);
    EXPECT_EQ(out[0], i);
  }
  EXPECT_TRUE(cold.check_invariants().has_value());
  // The guest goes; its pools stay usable (they hold the home record, not
  // the guest) and keep the last home.
  ASSERT_TRUE((*mg)->remove_guest(*id).has_value());
  mg->reset();
  gm.reset();
  page[0] = 43;
  EXPECT_EQ(*cold.put(*pers, 3, 0, page.data()), 0u);
  std::vector<unsigned char> out(kFrameSize, 0);
  ASSERT_EQ(*cold.get(*pers, 3, 0, out.data()), ColdGet::hit);
  EXPECT_EQ(out[0], 43);
  EXPECT_TRUE(cold.destroy_pool(*pers).has_value());
  EXPECT_TRUE(cold.destroy_pool(*eph).has_value());
  EXPECT_TRUE(cold.check_invariants().has_value());
}

TEST(MigrateRehomeLimits, RateLimitPacesARehomeUnlessOverridden) {
  MigratorConfig c = quiet();
  c.rate_limit_mb_s = 2;  // one 2 MiB block per second
  {
    Rig r(c);
    r.add(*r.mover);
    ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
    (void)r.m->step_at(1);
    (void)r.m->step_at(1);
    EXPECT_EQ(r.pages_on(1), 512u);  // the second block waits for tokens
    EXPECT_EQ(r.m->rehome_progress(r.id)->state, RehomeState::running);
    EXPECT_GT(r.m->stats().skipped_rate_limit, 0u);
    EXPECT_EQ(r.run(1'000'000'001), RehomeState::done);
    EXPECT_EQ(r.pages_on(1), 1024u);
    EXPECT_TRUE(r.m->check_invariants().has_value());
  }
  {
    Rig r(c);
    r.add(*r.mover);
    ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1), kAllVnodes, rehome_override_limits).has_value());
    (void)r.m->step_at(1);
    EXPECT_EQ(r.pages_on(1), 1024u);
  }
  Rig r(c);
  r.add(*r.mover);
  EXPECT_FALSE(r.m->rehome(r.id, NodeMask::single(1), kAllVnodes, 0x80).has_value());  // unknown flag
}

TEST(MigrateRehomeLimits, WatermarkStopsARehomeUnlessOverridden) {
  MigratorConfig c = quiet();
  c.watermark_pages = 4000;  // node 1 (4096 frames) has no room for a 2 MiB block above it
  c.rehome_max_passes = 2;
  {
    Rig r(c);
    r.add(*r.mover);
    ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
    EXPECT_EQ(r.run(), RehomeState::failed);
    // Later passes go page by page: what fits above the mark moves, no more.
    EXPECT_LE(r.pages_on(1), 96u);
    EXPECT_GE(r.h.pa->stats(1)->free + r.h.pa->stats(1)->cached, 4000u);
    EXPECT_GT(r.m->stats().skipped_watermark, 0u);
    EXPECT_GT(r.m->rehome_progress(r.id)->failed, 0u);
  }
  Rig r(c);
  r.add(*r.mover);
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1), kAllVnodes, rehome_override_limits).has_value());
  EXPECT_EQ(r.run(), RehomeState::done);
  EXPECT_EQ(r.pages_on(1), 1024u);
}

TEST(MigrateRehomeSpread, MultiNodeTargetIsSpreadWithoutRoomInformation) {
  Rig r;
  NoRoomInfoMover kernel_like(*r.mover);
  r.add(kernel_like);
  for (Gfn g = 0; g < r.gm->ram_pages(); ++g) ASSERT_TRUE(r.model->write(1, g, g * 3 + 1));
  NodeMask both = NodeMask::single(0);
  both.set(1);
  ASSERT_TRUE(r.m->rehome(r.id, both).has_value());
  ASSERT_EQ(r.run(), RehomeState::done);
  EXPECT_EQ(r.pages_on(0), 512u);
  EXPECT_EQ(r.pages_on(1), 512u);
  for (Gfn g = 0; g < r.gm->ram_pages(); ++g) EXPECT_EQ(r.model->read(g), g * 3 + 1);
}

TEST(MigrateRehomeSpread, SpreadFollowsRoomWhenTheMoverKnowsIt) {
  // Node 1 has room for one 2 MiB block only: placement's water-filling
  // caps its share, the rest stays on node 0.
  MigratorConfig c = quiet();
  c.watermark_pages = 4096 - 600;
  Rig r(c);
  r.add(*r.mover);
  NodeMask both = NodeMask::single(0);
  both.set(1);
  ASSERT_TRUE(r.m->rehome(r.id, both).has_value());
  ASSERT_EQ(r.run(), RehomeState::done);
  EXPECT_EQ(r.pages_on(1), 512u);
  EXPECT_EQ(r.pages_on(0), 512u);
  EXPECT_EQ(r.gm->home_nodes(), both);
}

// ---- broken RAM ----

// The scenario is shared with migrate_evacuate_broken_test, which runs it
// against a migrator that skips evacuation and must see the failure.
TEST(MigrateEvacuate, PendingOfflineFrameIsLeftFirstInHostMemoryMode) {
  const EvacuateResult r = pending_offline_in_host_memory();
  ASSERT_TRUE(r.set_up);
  EXPECT_TRUE(r.left_bad_frame);
  EXPECT_EQ(r.victim_node, 0u);  // stays on its node, on a fresh block
  EXPECT_EQ(r.pending_offline, 0u);
  EXPECT_EQ(r.offlined, 1u);
  EXPECT_EQ(r.pages_evacuated, 512u);  // its whole 2 MiB block
  EXPECT_EQ(r.guest_evacuated, 512u);  // and they are this guest's
  EXPECT_EQ(r.wrong_pages, 0u);
  EXPECT_EQ(r.evacuated_again, 0u);  // nothing left to do: a second step searches nothing
  EXPECT_TRUE(r.frames_ok);
  EXPECT_TRUE(r.guest_ok);
}

TEST(MigrateEvacuate, PendingOfflineFrameIsLeftInFrameOnlyMode) {
  TwoNodeHost h(4096, MemoryMode::frame_only);
  auto gm = make_guest(h, 4, false, 0);
  ASSERT_TRUE(gm);
  ASSERT_TRUE(gm->split_to_pages(3).has_value());  // a 4 KiB page too
  // Frame contents live in this map: the embedder copies them.
  struct Contents {
    std::unordered_map<Mfn, std::uint64_t> word;
  } mem;
  for (Gfn g = 0; g < gm->ram_pages(); ++g) mem.word[gm->lookup(g).mfn] = g + 7;
  FrameSwapHooks hk;
  hk.ctx = &mem;
  hk.write_protect = [](void*, const GfnRun*, std::size_t) {};
  hk.flush = [](void*) {};
  hk.unprotect = [](void*, const GfnRun*, std::size_t) {};
  hk.copy = [](void* c, Mfn dst, Mfn src, std::uint64_t frames) {
    auto& m = static_cast<Contents*>(c)->word;
    for (std::uint64_t k = 0; k < frames; ++k) m[dst + k] = m[src + k];
  };
  auto mv = FrameSwapMover::create(*gm, hk);
  ASSERT_TRUE(mv.has_value());
  auto mg = Migrator::create(h.topo, quiet());
  ASSERT_TRUE(mg.has_value());
  auto o = migrate_options_for(*gm, false);
  o.auto_balance = false;
  auto id = (*mg)->add_guest(*mv, o);
  ASSERT_TRUE(id.has_value());
  const Mfn bad_block = gm->lookup(900).mfn, bad_page = gm->lookup(3).mfn;
  ASSERT_EQ(*h.pa->offline(bad_block), OfflineState::pending);
  ASSERT_EQ(*h.pa->offline(bad_page), OfflineState::pending);
  (void)(*mg)->step_at(1);
  EXPECT_NE(gm->lookup(900).mfn, bad_block);
  EXPECT_NE(gm->lookup(3).mfn, bad_page);
  EXPECT_EQ(h.pa->stats(0)->pending_offline, 0u);
  EXPECT_EQ(h.pa->stats(0)->offlined, 2u);
  for (Gfn g = 0; g < gm->ram_pages(); ++g) EXPECT_EQ(mem.word[gm->lookup(g).mfn], g + 7) << g;
  EXPECT_TRUE(h.pa->check_frames().has_value());
}

TEST(MigrateEvacuate, FullNodeSendsThePageToTheNearestNodeWithRoom) {
  Rig r(quiet(), 4, 1024);  // node 0: 1024 frames, the guest holds 1024 of them
  r.add(*r.mover);
  const Mfn bad = r.gm->lookup(10).mfn;
  ASSERT_EQ(*r.h.pa->offline(bad), OfflineState::pending);
  (void)r.m->step_at(1);
  EXPECT_EQ(r.node(10), 1u);
  EXPECT_EQ(r.h.pa->stats(0)->pending_offline, 0u);
  EXPECT_EQ(r.h.pa->stats(0)->offlined, 1u);
}

// An evacuation that fails once (busy) is retried next step at the block,
// once: not once per page of each of the block's later 64-page chunks
// (each such retry copied the whole 2 MiB block again and counted it).
namespace {

class FlakyEvacuator final : public ForwardingMover {
 public:
  FlakyEvacuator(Mover& inner, int fail_first) : ForwardingMover(inner), fail_left_(fail_first) {}
  std::uint64_t offline_events() const noexcept override { return inner_.offline_events(); }
  bool node_frames(NodeId n, std::uint64_t& f, std::uint64_t& t) const noexcept override {
    return inner_.node_frames(n, f, t);
  }
  Result<MoveTotals> evacuate(std::span<const Gfn> gfns, NodeId target, std::span<MoveOutcome> out) noexcept override {
    ++calls;
    if (fail_left_ != 0) {
      if (fail_left_ > 0) --fail_left_;
      for (MoveOutcome& o : out) o = MoveOutcome::busy;
      return MoveTotals{};
    }
    return inner_.evacuate(gfns, target, out);
  }
  int calls = 0;

 private:
  int fail_left_;  // evacuations answered busy before the real ones; -1: all of them
};

}  // namespace

TEST(MigrateEvacuate, ABlockThatFailedOnceIsEvacuatedOnceNotOncePerChunk) {
  Rig r;
  FlakyEvacuator mv(*r.mover, 1);
  r.add(mv);
  ASSERT_EQ(*r.h.pa->offline(r.gm->lookup(10).mfn), OfflineState::pending);
  EXPECT_EQ(r.m->step_at(1).failed, 1u);
  EXPECT_EQ(mv.calls, 1) << "the busy answer: the block waits for the next step";
  EXPECT_EQ(r.m->stats().pages_evacuated, 0u);
  (void)r.m->step_at(2);
  EXPECT_EQ(mv.calls, 2) << "one retry";
  EXPECT_EQ(r.m->stats().pages_evacuated, 512u) << "the block's 512 pages, counted once";
  EXPECT_EQ(r.h.pa->stats(0)->offlined, 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

TEST(MigrateEvacuate, ABlockThatCannotLeaveCostsOneCallAStep) {
  Rig r;
  FlakyEvacuator mv(*r.mover, -1);
  r.add(mv);
  ASSERT_EQ(*r.h.pa->offline(r.gm->lookup(10).mfn), OfflineState::pending);
  for (std::uint64_t s = 1; s <= 3; ++s) {
    const int before = mv.calls;
    const StepReport rep = r.m->step_at(s);
    EXPECT_EQ(mv.calls - before, 1) << "step " << s;
    EXPECT_EQ(rep.failed, 1u) << "step " << s;
  }
  EXPECT_EQ(r.m->stats().pages_evacuated, 0u);
  EXPECT_EQ(r.h.pa->stats(0)->pending_offline, 1u) << "still waiting, retried every step";
}
