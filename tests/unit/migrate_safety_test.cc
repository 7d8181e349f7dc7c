// Migrator safety (issue 12, items 7 and 10):
//  * create() refuses NaN, infinite and out-of-range rates and fractions
//    (they reached undefined float-to-integer casts and silently disabled
//    migration);
//  * a removed guest's tracking memory is freed after a grace period that
//    lock-free inputs respect: bounded under add/remove churn, never freed
//    while an input may still be using it. A deliberately broken variant
//    (grace period skipped) must be caught by the same check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "migrate/migrator_impl.h"
#include "numaheap/migrator.h"
#include "unit/stub_mover.h"

namespace numaheap {
// Reaches the migrator's internals (friend of Migrator), for the grace tests.
struct MigratorTestPeer {
  static Migrator::Impl& impl(Migrator& m) { return *m.impl_; }
};
}  // namespace numaheap

using namespace numaheap;

namespace {

Topology two_nodes() {
  return std::move(TopologyBuilder("migrate-safety")
                       .add_node(0, {0, 1}, 64ull << 20)
                       .add_node(1, {2, 3}, 64ull << 20)
                       .build())
      .value();
}

using test::StubMover;

constexpr std::uint64_t kGiBPages = (1ull << 30) >> kFrameShift;

}  // namespace

// ---- item 7 ----

TEST(MigrateSafety, CreateRefusesNonFiniteAndOutOfRangeRatesAndFractions) {
  const Topology topo = two_nodes();
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  for (double rate : {nan, inf, -inf, -1.0, 1e300, kMaxRateLimitMbS * 2}) {
    MigratorConfig c;
    c.rate_limit_mb_s = rate;
    auto m = Migrator::create(topo, c);
    ASSERT_FALSE(m.has_value()) << "rate " << rate << " accepted";
    EXPECT_EQ(m.error(), Errc::invalid_argument);
  }
  for (double fraction : {nan, inf, -inf, -0.01, 1.01}) {
    MigratorConfig c;
    c.watermark_fraction = fraction;
    auto m = Migrator::create(topo, c);
    ASSERT_FALSE(m.has_value()) << "fraction " << fraction << " accepted";
    EXPECT_EQ(m.error(), Errc::invalid_argument);
  }
  for (double rate : {0.0, 1e-3, 256.0, kMaxRateLimitMbS}) {
    MigratorConfig c;
    c.rate_limit_mb_s = rate;
    EXPECT_TRUE(Migrator::create(topo, c).has_value()) << rate;
  }
  for (double fraction : {0.0, 0.5, 1.0}) {
    MigratorConfig c;
    c.watermark_fraction = fraction;
    EXPECT_TRUE(Migrator::create(topo, c).has_value()) << fraction;
  }
}

// A zero period would make the background thread spin and, in the
// freestanding core (time = steps x period), stop the rate limit's clock.
TEST(MigrateSafety, CreateRefusesAZeroPeriod) {
  const Topology topo = two_nodes();
  MigratorConfig c;
  c.period_ms = 0;
  auto m = Migrator::create(topo, c);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error(), Errc::invalid_argument);
  c.period_ms = 1;
  EXPECT_TRUE(Migrator::create(topo, c).has_value());
}

// A vNUMA binding to a node the guest may not use could never be honoured:
// refused, not accepted and silently ignored.
TEST(MigrateSafety, AddGuestRefusesABindingOutsideAllowed) {
  const Topology topo = two_nodes();
  auto mig = Migrator::create(topo, {});
  ASSERT_TRUE(mig.has_value());
  StubMover mv(1024);
  MigrateGuestOptions o;
  o.vnuma_bound = true;
  o.allowed = NodeMask::single(0);
  ASSERT_TRUE(o.layout.push_back(GuestRange{0, 512, 0, 0}));
  ASSERT_TRUE(o.layout.push_back(GuestRange{512, 512, 1, 1}));
  auto id = (*mig)->add_guest(mv, o);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error(), Errc::invalid_node);
  o.allowed = NodeMask{};  // every memory node
  EXPECT_TRUE((*mig)->add_guest(mv, o).has_value());
}

namespace {

// Metadata hooks that fail on demand, and when they do, run `during` first
// (from inside the failing call).
struct FailingHooks {
  MetadataHooks h{};
  bool fail = false;
  void (*during)(void*) = nullptr;
  void* during_ctx = nullptr;
  FailingHooks() {
    h.ctx = this;
    h.alloc = [](void* c, std::size_t bytes, std::size_t align, std::uint32_t) -> void* {
      auto* self = static_cast<FailingHooks*>(c);
      if (self->fail) {
        self->fail = false;
        if (self->during) self->during(self->during_ctx);
        return nullptr;
      }
      if (align < alignof(std::max_align_t)) align = alignof(std::max_align_t);
      return std::aligned_alloc(align, (bytes + align - 1) / align * align);
    };
    h.release = [](void*, void* p, std::size_t) { std::free(p); };
  }
};

}  // namespace

// A removal that fails for want of memory leaves the guest registered and
// usable all along: an input made meanwhile is not refused.
TEST(MigrateSafety, ARemovalThatRunsOutOfMemoryNeverHidesTheGuest) {
  const Topology topo = two_nodes();
  FailingHooks fh;
  MigratorConfig c;
  c.metadata = &fh.h;
  auto mig = Migrator::create(topo, c);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  StubMover mv(1024);
  MigrateGuestOptions o;
  o.vcpus = 2;
  auto id = m.add_guest(mv, o);
  ASSERT_TRUE(id.has_value());
  struct During {
    Migrator* m;
    GuestId id;
    Status seen = Errc::busy;
  } d{&m, *id};
  fh.during_ctx = &d;
  fh.during = [](void* ctx) {
    auto* x = static_cast<During*>(ctx);
    x->seen = x->m->set_vcpu_cpu(x->id, 0, 2);
  };
  fh.fail = true;
  auto r = m.remove_guest(*id);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::no_memory);
  EXPECT_TRUE(d.seen.has_value()) << "the guest was hidden during a removal that failed";
  EXPECT_TRUE(m.guest_stats(*id).has_value());
  EXPECT_TRUE(m.remove_guest(*id).has_value());
  EXPECT_TRUE(m.check_invariants().has_value());
}

// A layout that ran out of memory while it was built (migrate_options_for
// with a guest whose layout() failed) is refused, not taken as "no layout".
TEST(MigrateSafety, AddGuestRefusesALayoutThatRanOutOfMemory) {
  const Topology topo = two_nodes();
  auto mig = Migrator::create(topo, {});
  ASSERT_TRUE(mig.has_value());
  StubMover mv(1024);
  FailingHooks fh;
  MigrateGuestOptions o;
  o.vnuma_bound = true;
  o.layout = Vector<GuestRange>(&fh.h);
  fh.fail = true;
  ASSERT_FALSE(o.layout.push_back(GuestRange{0, 1024, 0, 1}));
  ASSERT_FALSE(o.layout.ok());
  auto id = (*mig)->add_guest(mv, o);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error(), Errc::no_memory);
}

// ---- item 10 ----

TEST(MigrateSafety, ChurnOfOneGiBGuestsKeepsTrackingMemoryBounded) {
  const Topology topo = two_nodes();
  auto mig = Migrator::create(topo, {});
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  StubMover resident(16);
  ASSERT_TRUE(m.add_guest(resident).has_value());  // stays: its bytes stay counted
  const std::uint64_t base = m.stats().tracking_bytes;
  ASSERT_GT(base, 0u);
  StubMover big(kGiBPages);
  MigrateGuestOptions opts;
  opts.vcpus = 4;
  std::uint64_t one = 0, peak = 0;
  for (int cycle = 0; cycle < 100; ++cycle) {
    auto id = m.add_guest(big, opts);
    ASSERT_TRUE(id.has_value());
    m.record_access(*id, cycle, 2);
    const std::uint64_t held = m.stats().tracking_bytes;
    if (cycle == 0) one = held - base;
    peak = std::max(peak, held);
    ASSERT_TRUE(m.remove_guest(*id).has_value());
    if (cycle % 10 == 0) (void)m.step();
  }
  EXPECT_GE(one, kGiBPages * sizeof(std::uint64_t));  // the access words of 1 GiB
  EXPECT_LE(peak, base + one);                         // never two generations at once
  const MigratorStats s = m.stats();
  EXPECT_EQ(s.tracking_bytes, base) << "removed guests' tracking memory is still held";
  EXPECT_EQ(s.retired_guests, 0u);
  EXPECT_TRUE(m.check_invariants().has_value());
}

namespace {

// Removes a guest while an input (simulated by holding its reader guard)
// may still use the slot; returns whether the slot's memory was released
// before that input finished -- a use-after-free in a real input.
bool freed_under_a_reader(bool broken) {
  const Topology topo = two_nodes();
  auto mig = Migrator::create(topo, {});
  EXPECT_TRUE(mig.has_value());
  Migrator& m = **mig;
  Migrator::Impl& impl = MigratorTestPeer::impl(m);
  {
    SpinGuard g(impl.lock);
    impl.skip_grace_for_test = broken;
  }
  StubMover mover(4096);
  auto id = m.add_guest(mover);
  EXPECT_TRUE(id.has_value());
  const std::uint64_t held = m.stats().tracking_bytes;
  bool freed_early = false;
  {
    const SlotReader input(impl, *id, 3);  // an input that has loaded the slot
    EXPECT_NE(input.get(), nullptr);
    EXPECT_TRUE(m.remove_guest(*id).has_value());
    (void)m.step();
    auto again = m.add_guest(mover);  // reuses the id: must not free the old slot either
    EXPECT_TRUE(again.has_value());
    EXPECT_TRUE(m.remove_guest(*again).has_value());
    freed_early = m.stats().tracking_bytes < held;
    if (!freed_early) {  // the newer guest under the same id waits too (counts are per id)
      EXPECT_EQ(m.stats().retired_guests, 2u);
    }
  }
  // The input is done: the next step reclaims everything.
  (void)m.step();
  EXPECT_EQ(m.stats().tracking_bytes, 0u);
  EXPECT_EQ(m.stats().retired_guests, 0u);
  EXPECT_TRUE(m.check_invariants().has_value());
  return freed_early;
}

}  // namespace

TEST(MigrateSafety, RemovedGuestMemoryOutlivesRacingInputs) { EXPECT_FALSE(freed_under_a_reader(false)); }

// Negative test: with the grace period skipped, the check above must fire.
TEST(MigrateSafety, BrokenGracePeriodIsCaught) { EXPECT_TRUE(freed_under_a_reader(true)); }
