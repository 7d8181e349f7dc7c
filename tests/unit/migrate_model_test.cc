// Migrator policy + frame-swap mover against a plain reference model
// (rapidcheck state): after every command, frames are conserved (the
// allocator's used count equals the guest's present pages), no page is on
// two frames, every page holds the last value written to it, pinned and
// dedup-shared pages keep their frame, and a page moved by the access
// policy moved to the node of its last two consecutive samples.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <set>

#include "migrate_test_model.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr Gfn kHot = 24;  // accesses and writes go to gfns 0..23 (most collide)
constexpr CpuId kCpuOf[2] = {0, 2};

struct Model {};

struct Sut {
  TwoNodeHost h{2048};
  std::unique_ptr<GuestMemory> gm = make_guest(h, 4, false, 0);
  GuestModel model{*gm, 1};
  FrameSwapMover mover = *FrameSwapMover::create(*gm, model.hooks());
  std::unique_ptr<Migrator> m;
  GuestId id = 0;
  std::uint64_t used = 0;
  std::map<Gfn, std::uint64_t> value;      // last value written
  std::map<Gfn, Mfn> frozen;               // pinned / shared: frame at that time
  std::map<Gfn, std::pair<NodeId, int>> streak;  // last sampling node, consecutive count
  std::uint64_t step_ns = 0;
  Sut() {
    MigratorConfig c;
    c.rate_limit_mb_s = 0;
    c.watermark_fraction = 0;
    c.decay_steps = 1000;
    c.quick_moves = false;  // the model is the two-stage filter (quick moves: migrate_policy_test)
    c.keep_huge_pages = false;  // the model is page-granular (huge pages: migrate_policy_test)
    m = std::move(Migrator::create(h.topo, c).value());
    id = *m->add_guest(mover, migrate_options_for(*gm, false));
    used = h.used();
  }
  NodeId node(Gfn g) const { return h.pa->node_of(gm->lookup(g).mfn); }
};

void check_all(Sut& s) {
  RC_ASSERT(s.h.used() == s.used);
  RC_ASSERT(s.gm->present_pages() == s.gm->ram_pages());
  std::set<Mfn> seen;
  for (Gfn g = 0; g < s.gm->ram_pages(); ++g) {
    const P2mEntry e = s.gm->lookup(g);
    RC_ASSERT(e.present());
    RC_ASSERT(!(e.flags & P2mFlags::migrating));
    RC_ASSERT(seen.insert(e.mfn).second);  // no page on two frames, no frame twice
  }
  for (const auto& [g, v] : s.value) RC_ASSERT(s.model.read(g) == v);
  for (const auto& [g, mfn] : s.frozen) RC_ASSERT(s.gm->lookup(g).mfn == mfn);
  RC_ASSERT(s.gm->check_invariants().has_value());
  RC_ASSERT(s.m->check_invariants().has_value());
  RC_ASSERT(s.h.pa->check_invariants().has_value());
}

struct Access : rc::state::Command<Model, Sut> {
  Gfn gfn = *rc::gen::inRange<Gfn>(0, kHot);
  int node = *rc::gen::inRange(0, 2);
  int times = *rc::gen::inRange(1, 4);
  void run(const Model&, Sut& s) const override {
    for (int i = 0; i < times; ++i) s.m->record_access(s.id, gfn, kCpuOf[node]);
    auto& st = s.streak[gfn];
    if (st.first == static_cast<NodeId>(node)) st.second += times;
    else st = {static_cast<NodeId>(node), times};
  }
  void show(std::ostream& os) const override { os << "Access(" << gfn << ", node " << node << " x" << times << ")"; }
};

struct Write : rc::state::Command<Model, Sut> {
  Gfn gfn = *rc::gen::inRange<Gfn>(0, kHot);
  std::uint64_t v = *rc::gen::inRange<std::uint64_t>(1, 1u << 30);
  void run(const Model&, Sut& s) const override {
    RC_ASSERT(s.model.write(0, gfn, v));
    s.value[gfn] = v;
  }
  void show(std::ostream& os) const override { os << "Write(" << gfn << ", " << v << ")"; }
};

struct Freeze : rc::state::Command<Model, Sut> {
  Gfn gfn = *rc::gen::inRange<Gfn>(0, kHot);
  bool pin = *rc::gen::arbitrary<bool>();
  void run(const Model&, Sut& s) const override {
    RC_ASSERT(s.gm->update_flags(gfn, pin ? P2mFlags::pinned : P2mFlags::shared, 0));
    s.frozen[gfn] = s.gm->lookup(gfn).mfn;
  }
  void show(std::ostream& os) const override { os << (pin ? "Pin(" : "Share(") << gfn << ")"; }
};

struct Step : rc::state::Command<Model, Sut> {
  void run(const Model&, Sut& s) const override {
    std::map<Gfn, NodeId> before;
    for (Gfn g = 0; g < kHot; ++g) before[g] = s.node(g);
    s.m->step_at(s.step_ns += 1000);
    for (Gfn g = 0; g < kHot; ++g) {
      if (s.node(g) == before[g]) continue;
      // Two-stage filter: the last two samples came from the new node.
      auto it = s.streak.find(g);
      RC_ASSERT(it != s.streak.end());
      RC_ASSERT(it->second.first == s.node(g));
      RC_ASSERT(it->second.second >= 2);
      RC_ASSERT(!s.frozen.count(g));
      s.streak.erase(it);  // the migrator forgets the streak after a move
    }
    check_all(s);
  }
  void show(std::ostream& os) const override { os << "Step"; }
};

struct Rehome : rc::state::Command<Model, Sut> {
  int node = *rc::gen::inRange(0, 2);
  void run(const Model&, Sut& s) const override {
    RC_ASSERT(s.m->rehome(s.id, NodeMask::single(static_cast<NodeId>(node))).has_value());
    for (int i = 0; i < 100 && s.m->rehome_progress(s.id)->state == RehomeState::running; ++i)
      s.m->step_at(s.step_ns += 1000);
    const RehomeProgress p = *s.m->rehome_progress(s.id);
    RC_ASSERT(p.state == RehomeState::done);
    RC_ASSERT(p.done == p.total);
    for (Gfn g = 0; g < s.gm->ram_pages(); ++g)
      if (!s.frozen.count(g)) RC_ASSERT(s.node(g) == static_cast<NodeId>(node));
    // Let the policy use both nodes again (a two-node rehome spreads the
    // guest over both, as placement would); forget streaks the rehomes broke.
    RC_ASSERT(s.m->rehome(s.id, NodeMask::single(0) | NodeMask::single(1)).has_value());
    for (int i = 0; i < 100 && s.m->rehome_progress(s.id)->state == RehomeState::running; ++i)
      s.m->step_at(s.step_ns += 1000);
    RC_ASSERT(s.m->rehome_progress(s.id)->state == RehomeState::done);
    s.streak.clear();
    for (Gfn g = 0; g < kHot; ++g)  // samples no longer count as consecutive
      for (int n = 0; n < 2; ++n) s.m->record_access(s.id, g, kCpuOf[n]);
    check_all(s);
  }
  void show(std::ostream& os) const override { os << "Rehome(node " << node << ")"; }
};

struct DirectMove : rc::state::Command<Model, Sut> {
  Gfn gfn = *rc::gen::inRange<Gfn>(0, 1024);
  int node = *rc::gen::inRange(0, 2);
  bool blocks = *rc::gen::arbitrary<bool>();
  void run(const Model&, Sut& s) const override {
    Gfn g[1] = {gfn};
    MoveOutcome out[1];
    const Mfn before = s.gm->lookup(gfn).mfn;
    auto r = s.mover.move(g, static_cast<NodeId>(node),
                          blocks ? MoveGranularity::whole_blocks : MoveGranularity::pages, out);
    RC_ASSERT(r.has_value());
    if (s.frozen.count(gfn)) {
      RC_ASSERT(out[0] == MoveOutcome::pinned || out[0] == MoveOutcome::shared);
    } else if (out[0] == MoveOutcome::moved) {
      RC_ASSERT(s.node(gfn) == static_cast<NodeId>(node));
    } else {
      RC_ASSERT(out[0] == MoveOutcome::busy || out[0] == MoveOutcome::no_memory);  // a frozen page in its block
      RC_ASSERT(s.gm->lookup(gfn).mfn == before);
    }
    // A move the migrator did not make leaves its access history alone: a
    // page moved away from the node its last samples came from may be
    // moved back by the next step (seed 12347355987190140217 found this
    // expectation missing: Access(13, node 1 x2), DirectMove(13, node 0), Step).
    check_all(s);
  }
  void show(std::ostream& os) const override {
    os << "DirectMove(" << gfn << ", node " << node << (blocks ? ", block)" : ")");
  }
};

}  // namespace

RC_GTEST_PROP(MigrateModel, PolicyAndMoverKeepFramesAndData, ()) {
  Model model;
  Sut sut;
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<Access, Access, Access, Write, Freeze, Step, Step, Rehome,
                                                     DirectMove>());
  // Our "shared" marks stand for dedup without a sharing manager: drop them
  // (destroy refuses shared pages, which the sharing manager must release).
  for (Gfn g = 0; g < kHot; ++g) (void)sut.gm->update_flags(g, 0, P2mFlags::shared);
  RC_ASSERT(sut.gm->destroy().has_value());
}
