// vCPU advice (Migrator::set_vcpu_advice / vcpu_advice): given when a
// vCPU's hot memory is big and all on another node with CPU room; not
// given when that memory is split, small, or the node has no room (the
// embedder's free CPUs or affinity, or the guest's own vCPUs fill it); bad
// input refused with nothing changed; and the advice never changes what
// the migrator moves by itself.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "migrate_rig.h"
#include "unit/guest_oom_hooks.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr CpuId kCpuNode0 = 0, kCpuNode0b = 1, kCpuNode1 = 2;

// A 16 MiB guest (4096 pages) all on node 0, four vCPU slots, none placed.
struct Rig : MigrateRig {
  explicit Rig(MigratorConfig cfg = MigratorConfig{}) : MigrateRig(cfg, false, 16, 8192) { add(*mover); }
  void touch(Gfn first, std::uint64_t pages, CpuId cpu) {
    for (Gfn g = first; g < first + pages; ++g) m->record_access(id, g, cpu);
  }
  std::vector<VcpuAdvice> advice() const {
    std::vector<VcpuAdvice> out(m->vcpu_advice({}));
    out.resize(m->vcpu_advice(out));
    return out;
  }
};

// The policy leaves pages with one sample alone (two-stage filter, no
// quick moves), so a step weighs the advice with the memory where it was.
MigratorConfig no_quick() {
  MigratorConfig c;
  c.quick_moves = false;
  return c;
}

VcpuAdviceConfig on() {
  VcpuAdviceConfig a;
  a.enabled = true;
  return a;
}

std::uint64_t now(int step) { return static_cast<std::uint64_t>(step) * 1000000000u; }

// A fresh guest whose vCPU 0 runs on node 1 and touched `pages` of its
// memory (all on node 0), stepped once with advice settings `c`: the advice.
std::vector<VcpuAdvice> one_step(const VcpuAdviceConfig& c, std::uint64_t pages = 2048) {
  Rig r(no_quick());
  EXPECT_TRUE(r.m->set_vcpu_advice(c).has_value());
  EXPECT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, pages, kCpuNode1);
  (void)r.m->step_at(now(1));
  return r.advice();
}

}  // namespace

TEST(VcpuAdvice, GivenWhenBigMemoryIsAllOnAnotherNode) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());  // vCPU 0 runs on node 1
  r.touch(0, 2048, kCpuNode1);                                       // 8 MiB of its memory, on node 0
  (void)r.m->step_at(now(1));
  const auto a = r.advice();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].guest, r.id);
  EXPECT_EQ(a[0].vcpu, 0u);
  EXPECT_EQ(a[0].from_node, 1u);
  EXPECT_EQ(a[0].to_node, 0u);
  EXPECT_EQ(a[0].group, 1u);
  EXPECT_EQ(a[0].pages, 2048u);
  EXPECT_EQ(a[0].pages_after, 0u);
  // 2048 x (4096 B at 8 GB/s + 3.7 us) of copies alone, against one vCPU move.
  EXPECT_GE(a[0].memory_cost_us, 2048 * (0.512 + 3.7) - 1);
  EXPECT_DOUBLE_EQ(a[0].vcpu_cost_us, 1000);
  EXPECT_DOUBLE_EQ(a[0].saving_us, a[0].memory_cost_us - a[0].vcpu_cost_us);
  VcpuAdvice one;
  auto has = r.m->vcpu_advice_for(r.id, 0, one);
  ASSERT_TRUE(has.has_value());
  EXPECT_TRUE(*has);
  EXPECT_EQ(one.to_node, 0u);
  has = r.m->vcpu_advice_for(r.id, 1, one);  // vCPU 1 is not placed: no advice for it
  ASSERT_TRUE(has.has_value());
  EXPECT_FALSE(*has);
  EXPECT_EQ(r.m->stats().advice_given, 1u);
}

// A guest's advice goes with it: a new guest given the same id is not
// advised on its behalf before the next step.
TEST(VcpuAdvice, ARemovedGuestsAdviceGoesWithIt) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, 2048, kCpuNode1);
  (void)r.m->step_at(now(1));
  ASSERT_EQ(r.advice().size(), 1u);
  const GuestId old = r.id;
  ASSERT_TRUE(r.m->remove_guest(old).has_value());
  EXPECT_EQ(r.advice().size(), 0u);
  r.add(*r.mover);
  ASSERT_EQ(r.id, old) << "the lowest free id is reused";
  VcpuAdvice a;
  auto has = r.m->vcpu_advice_for(r.id, 0, a);
  ASSERT_TRUE(has.has_value());
  EXPECT_FALSE(*has);
}

TEST(VcpuAdvice, GroupOfVcpusOnOneNodeIsAdvisedTogether) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 1, kCpuNode1 + 1).has_value());
  r.touch(0, 2048, kCpuNode1);
  VcpuAdviceConfig c = on();
  std::vector<VcpuAdvice> called;
  c.on_advice = [](void* ctx, const VcpuAdvice* a) {
    static_cast<std::vector<VcpuAdvice>*>(ctx)->push_back(*a);
    return 0;  // told, not followed
  };
  c.on_advice_ctx = &called;
  ASSERT_TRUE(r.m->set_vcpu_advice(c).has_value());
  (void)r.m->step_at(now(1));
  const auto a = r.advice();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].vcpu, 0u);
  EXPECT_EQ(a[1].vcpu, 1u);
  EXPECT_EQ(a[0].group, 2u);
  EXPECT_DOUBLE_EQ(a[0].vcpu_cost_us, 2000);  // two vCPUs move
  ASSERT_EQ(called.size(), 2u);               // the callback saw the same advice
  EXPECT_EQ(called[1].vcpu, 1u);
  EXPECT_EQ(r.m->stats().advice_given, 2u);
  EXPECT_EQ(r.m->stats().advice_held, 0u);
}

namespace {

// An embedder whose on_advice moves the vCPU back to node 0 when `follow`.
struct Embedder {
  Migrator* m = nullptr;
  GuestId id = 0;
  bool follow = false;
  int told = 0;
  static int hook(void* ctx, const VcpuAdvice* a) {
    auto* e = static_cast<Embedder*>(ctx);
    ++e->told;
    if (!e->follow) return 0;
    EXPECT_EQ(a->to_node, 0u);
    EXPECT_TRUE(e->m->set_vcpu_cpu(e->id, a->vcpu, kCpuNode0).has_value());  // lock-free input
    return 1;
  }
  void install(Rig& r) {
    VcpuAdviceConfig c = on();
    c.on_advice = &Embedder::hook;
    c.on_advice_ctx = this;
    ASSERT_TRUE(r.m->set_vcpu_advice(c).has_value());
  }
};

}  // namespace

// An embedder that follows the advice (on_advice returns nonzero and moves
// the vCPU) keeps the step from pulling the memory after the vCPU it is
// moving back; one that does not follow it sees the usual moves.
TEST(VcpuAdvice, FollowingItKeepsTheMemoryWhereTheVcpuGoes) {
  for (bool follow : {false, true}) {
    Rig r;  // defaults: a page's first sample from another node moves it at once
    Embedder e{r.m.get(), r.id, follow};
    e.install(r);
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
    r.touch(0, 2048, kCpuNode1);
    (void)r.m->step_at(now(1));
    EXPECT_EQ(e.told, 1);
    const MigratorStats st = r.m->stats();
    if (follow) {
      EXPECT_EQ(st.advice_held, 2048u);
      EXPECT_EQ(st.pages_moved, 0u);
      EXPECT_EQ(r.node(0), 0u);
      EXPECT_EQ(r.node(2047), 0u);
      // The vCPU is where its memory is now: its samples come from there.
      r.touch(0, 2048, kCpuNode0);
      (void)r.m->step_at(now(2));
      EXPECT_EQ(r.m->stats().pages_moved, 0u);
      EXPECT_TRUE(r.advice().empty());
    } else {
      EXPECT_EQ(st.advice_held, 0u);
      EXPECT_EQ(st.pages_moved, 2048u);
      EXPECT_EQ(r.node(0), 1u);
    }
  }
}

// The vacated node: the guest's one vCPU leaves node 0, where its memory
// was sampled, for node 1. The first step after the move weighs the advice
// before the vacated-node rule moves anything, with no new sample needed:
// followed, nothing moves; not followed, the memory follows the vCPU.
TEST(VcpuAdvice, GivenAtAVcpuMoveBeforeTheMemoryFollows) {
  for (bool follow : {false, true}) {
    Rig r;
    Embedder e{r.m.get(), r.id, follow};
    e.install(r);
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode0).has_value());
    r.touch(0, 2048, kCpuNode0);
    (void)r.m->step_at(now(1));
    EXPECT_EQ(e.told, 0);  // all local
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
    (void)r.m->step_at(now(2));
    EXPECT_EQ(e.told, 1);
    const MigratorStats st = r.m->stats();
    if (follow) {
      EXPECT_EQ(st.pages_moved, 0u);
      EXPECT_EQ(r.node(2047), 0u);
    } else {
      EXPECT_EQ(st.pages_moved, 2048u);
      EXPECT_EQ(st.pages_followed, 2048u);
      EXPECT_EQ(r.node(2047), 1u);
      EXPECT_EQ(r.node(2048), 0u);  // never sampled
    }
  }
}

TEST(VcpuAdvice, NotGivenWhenTheMemoryIsSplit) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  // Half of the vCPU's hot memory already on its node: 50% < min_share.
  std::vector<Gfn> half;
  for (Gfn g = 1024; g < 2048; ++g) half.push_back(g);
  std::vector<MoveOutcome> out(half.size());
  ASSERT_TRUE(r.mover->move(half, 1, MoveGranularity::pages, out).has_value());
  ASSERT_EQ(r.node(1500), 1u);
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, 2048, kCpuNode1);
  (void)r.m->step_at(now(1));
  EXPECT_TRUE(r.advice().empty());
  EXPECT_EQ(r.m->stats().advice_given, 0u);
}

TEST(VcpuAdvice, NotGivenWhenTheMemoryIsSmall) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, 200, kCpuNode1);  // below min_pages (512)
  (void)r.m->step_at(now(1));
  EXPECT_TRUE(r.advice().empty());
  // Nor when the copies are cheaper than the vCPU move by the margin.
  VcpuAdviceConfig c = on();
  c.min_pages = 1;
  c.vcpu_move_us = 1e6;
  ASSERT_TRUE(r.m->set_vcpu_advice(c).has_value());
  r.touch(0, 200, kCpuNode1);
  (void)r.m->step_at(now(2));
  EXPECT_TRUE(r.advice().empty());
  EXPECT_EQ(r.m->stats().advice_given, 0u);
}

TEST(VcpuAdvice, NotGivenWithoutCpuRoom) {
  // The embedder says node 0 has no free CPU.
  VcpuAdviceConfig c = on();
  c.free_cpus = [](void*, NodeId node) -> std::int64_t { return node == 0 ? 0 : 2; };
  EXPECT_TRUE(one_step(c).empty());
  // The vCPU may not run on node 0 (its affinity).
  c = on();
  c.vcpu_allowed = [](void*, GuestId, std::uint32_t, NodeId node) { return node == 0 ? 0 : 1; };
  EXPECT_TRUE(one_step(c).empty());
  EXPECT_EQ(one_step(on()).size(), 1u);  // the same, with room
  // Without the embedder's word: node 0's two CPUs run two other vCPUs of
  // the guest (touching pages of their own, far from vCPU 0's).
  {
    Rig r(no_quick());
    ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 1, kCpuNode0).has_value());
    ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 2, kCpuNode0b).has_value());
    r.touch(0, 2048, kCpuNode1);
    r.touch(3000, 100, kCpuNode0);
    (void)r.m->step_at(now(1));
    EXPECT_TRUE(r.advice().empty());
    // The embedder knows better (a CPU of node 0 is free for it): advice.
    c = on();
    c.free_cpus = [](void*, NodeId node) -> std::int64_t { return node == 0 ? 1 : -1; };
    ASSERT_TRUE(r.m->set_vcpu_advice(c).has_value());
    r.touch(0, 2048, kCpuNode1);
    (void)r.m->step_at(now(2));
    EXPECT_EQ(r.advice().size(), 1u);
  }
}

TEST(VcpuAdvice, DoesNotChangeWhatTheMigratorDoes) {
  MigratorConfig cfg;  // defaults: quick moves on, the rate limit
  Rig with(cfg), without(cfg);
  ASSERT_TRUE(with.m->set_vcpu_advice(on()).has_value());
  for (Rig* r : {&with, &without}) {
    ASSERT_TRUE(r->m->set_vcpu_cpu(r->id, 0, kCpuNode1).has_value());
    ASSERT_TRUE(r->m->set_vcpu_cpu(r->id, 1, kCpuNode0).has_value());
  }
  for (int step = 1; step <= 6; ++step) {
    for (Rig* r : {&with, &without}) {
      r->touch(0, 2048, kCpuNode1);
      r->touch(2048, 512, kCpuNode0);
      r->touch(2048, 256, kCpuNode1);  // shared with the vCPU on node 0
      (void)r->m->step_at(now(step));
    }
    if (step == 1) {
      EXPECT_FALSE(with.advice().empty());
    }
  }
  const MigratorStats a = with.m->stats(), b = without.m->stats();
  EXPECT_GT(a.advice_given, 0u);
  EXPECT_EQ(b.advice_given, 0u);
  EXPECT_GT(a.pages_moved, 0u);
  EXPECT_EQ(a.pages_moved, b.pages_moved);
  EXPECT_EQ(a.pages_scanned, b.pages_scanned);
  EXPECT_EQ(a.skipped_rate_limit, b.skipped_rate_limit);
  for (Gfn g = 0; g < 4096; ++g) ASSERT_EQ(with.node(g), without.node(g)) << "gfn " << g;
  EXPECT_TRUE(with.m->check_invariants().has_value());
}

TEST(VcpuAdvice, BadInputIsRefusedAndChangesNothing) {
  Rig r(no_quick());
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL, -1.0}) {
    VcpuAdviceConfig c = on();
    c.copy_gb_s = bad;
    EXPECT_EQ(r.m->set_vcpu_advice(c).error(), Errc::invalid_argument);
    c = on();
    c.page_overhead_us = bad;
    EXPECT_EQ(r.m->set_vcpu_advice(c).error(), Errc::invalid_argument);
    c = on();
    c.margin = bad;
    EXPECT_EQ(r.m->set_vcpu_advice(c).error(), Errc::invalid_argument);
    c = on();
    c.min_share = bad;
    EXPECT_EQ(r.m->set_vcpu_advice(c).error(), Errc::invalid_argument);
  }
  VcpuAdviceConfig off;  // would disable it, had a refused call changed anything
  off.enabled = false;
  off.margin = 0.5;
  EXPECT_EQ(r.m->set_vcpu_advice(off).error(), Errc::invalid_argument);
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, 2048, kCpuNode1);
  (void)r.m->step_at(now(1));
  EXPECT_EQ(r.advice().size(), 1u);  // still enabled, with the defaults

  VcpuAdvice keep;
  keep.vcpu = 77;
  EXPECT_EQ(r.m->vcpu_advice_for(r.id, 4, keep).error(), Errc::invalid_argument);  // 4 vCPU slots
  EXPECT_EQ(r.m->vcpu_advice_for(r.id + 1, 0, keep).error(), Errc::invalid_argument);
  EXPECT_EQ(keep.vcpu, 77u);
  // A short buffer gets what fits; the count says how many there are.
  EXPECT_EQ(r.m->vcpu_advice({}), 1u);
  ASSERT_TRUE(r.m->remove_guest(r.id).has_value());
  EXPECT_EQ(r.m->vcpu_advice_for(r.id, 0, keep).error(), Errc::invalid_argument);
}

TEST(VcpuAdvice, OutOfMemoryIsAnErrorNotACrash) {
  // The advisor, its scratch and its list come from the migrator's
  // metadata hooks: when they fail, set_vcpu_advice says no_memory, and a
  // step gives no advice -- and moves what it would have moved.
  OomHooks oom;
  MigratorConfig cfg = no_quick();
  cfg.metadata = oom.hooks();
  Rig r(cfg);
  oom.reset(0);  // every allocation fails from here
  EXPECT_EQ(r.m->set_vcpu_advice(on()).error(), Errc::no_memory);
  oom.reset();
  ASSERT_TRUE(r.m->set_vcpu_advice(on()).has_value());
  ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, 0, kCpuNode1).has_value());
  r.touch(0, 2048, kCpuNode1);
  oom.reset(0);
  (void)r.m->step_at(now(1));
  EXPECT_GT(oom.failures(), 0);
  EXPECT_TRUE(r.advice().empty());
  EXPECT_TRUE(r.m->check_invariants().has_value());
  oom.reset();
  r.touch(0, 2048, kCpuNode1);
  (void)r.m->step_at(now(2));
  EXPECT_EQ(r.advice().size(), 1u);
}
