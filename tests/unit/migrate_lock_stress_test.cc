// The migrator's two locks (migrate/migrator_impl.h): a step lets the data
// lock go across every mover call, so stats(), sample_share(),
// vcpu_advice(), vcpu_advice_for() and check_invariants() never wait out a
// move (a kernel move_pages of thousands of pages takes milliseconds),
// while add/remove/bind/rehome still wait for the whole step (step_lock).
//
//  * ReadersGetInWhileAMoveBlocks: a mover holds its move until the test
//    opens a gate; the readers must all return meanwhile, and a racing
//    remove_guest must not return before the step is done with the guest.
//    BrokenLockHeldAcrossMovesIsCaught: the same with the lock kept across
//    mover calls (the old behaviour, a test switch): the readers do not
//    get in while the move is held.
//  * ReadersAndInputsRaceStepsThatMove: steps moving a guest's pages back
//    and forth (vnode binding flipped every step, vCPU advice on) against
//    threads calling every reader and input, and a vCPU writing and
//    checking its pages. Under TSan in CI: any field the step touches
//    across a mover call without the lock shows up as a race.
//    ReadersAndInputsRaceStepsThatFollowVcpus: the same with the policy
//    moving pages after samples and vCPUs in a guest larger than its
//    window, so the sampled pass and the vacated walk of the tracker (run
//    without the data lock) race them too.
//
// Duration of the race: 1 s by default; NUMAHEAP_STRESS_SECONDS=N runs longer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "migrate/migrator_impl.h"
#include "migrate_rig.h"
#include "unit/gate_mover.h"
#include "unit/stress_seconds.h"

namespace numaheap {

struct MigratorTestPeer {
  static Migrator::Impl& impl(Migrator& m) { return *m.impl_; }
};

}  // namespace numaheap

using namespace numaheap;
using namespace std::chrono_literals;

namespace {

using test::GateMover;
using test::stress_seconds;

Topology two_nodes() {
  return std::move(TopologyBuilder("lock").add_node(0, {0, 1}, 64ull << 20).add_node(1, {2, 3}, 64ull << 20).build())
      .value();
}

// Whether every reader returned while the step's move was held in the
// mover, within `wait` (a bound on a failure, not a synchronisation: the
// readers are done long before it when they get in at all).
bool readers_get_in(bool broken, std::chrono::seconds wait) {
  const Topology topo = two_nodes();
  auto mig = Migrator::create(topo, {});
  EXPECT_TRUE(mig.has_value());
  Migrator& m = **mig;
  {
    Migrator::Impl& impl = MigratorTestPeer::impl(m);
    SpinGuard g(impl.step_lock);
    impl.hold_lock_across_movers_for_test = broken;
  }
  VcpuAdviceConfig advice;
  advice.enabled = true;
  EXPECT_TRUE(m.set_vcpu_advice(advice).has_value());
  GateMover mover;
  MigrateGuestOptions o;
  o.vnuma_bound = true;  // every page belongs on node 1: the first step moves them
  o.vcpus = 2;
  EXPECT_TRUE(o.layout.push_back({0, GateMover::kPages, 1, 0}));
  auto id = m.add_guest(mover, o);
  EXPECT_TRUE(id.has_value());
  EXPECT_TRUE(m.set_vcpu_cpu(*id, 0, 2).has_value());

  StepReport rep;
  std::thread stepper([&] { rep = m.step(); });
  if (!mover.wait_entered()) {  // no move came: the step never got there
    mover.open();
    stepper.join();
    return false;
  }
  auto readers = std::async(std::launch::async, [&] {
    const std::uint64_t seen = m.stats().pages_moved;
    EXPECT_TRUE(m.sample_share(*id).has_value());
    VcpuAdvice a[4];
    (void)m.vcpu_advice(a);
    EXPECT_TRUE(m.vcpu_advice_for(*id, 0, a[0]).has_value());
    EXPECT_TRUE(m.check_invariants().has_value());
    return seen;
  });
  const bool in = readers.wait_for(wait) == std::future_status::ready;
  if (in) {
    EXPECT_EQ(readers.get(), 0u) << "the held move is not counted yet";
  }
  // A removal racing the held move waits for the step: the slot and the
  // mover stay in use until the move returns.
  std::atomic<bool> removed{false};
  std::thread remover;
  if (in) {
    remover = std::thread([&] {
      EXPECT_TRUE(m.remove_guest(*id).has_value());
      removed.store(true);
    });
  }
  // Give a removal that does not wait (the defect) time to finish: 200 ms
  // of watching, a bound on detection, not a synchronisation.
  for (auto until = std::chrono::steady_clock::now() + 200ms; in && !removed.load() && std::chrono::steady_clock::now() < until;)
    std::this_thread::yield();
  EXPECT_FALSE(removed.load()) << "remove_guest returned while the step's move was inside the mover";
  mover.open();
  if (!in) readers.wait();
  stepper.join();
  if (remover.joinable()) remover.join();
  EXPECT_EQ(rep.moved, GateMover::kPages);
  EXPECT_EQ(m.stats().pages_moved, GateMover::kPages);
  if (!in) {
    EXPECT_TRUE(m.remove_guest(*id).has_value());
  }
  EXPECT_TRUE(m.check_invariants().has_value());
  return in;
}

}  // namespace

TEST(MigrateLockStress, ReadersGetInWhileAMoveBlocks) { EXPECT_TRUE(readers_get_in(false, 60s)); }

TEST(MigrateLockStress, BrokenLockHeldAcrossMovesIsCaught) { EXPECT_FALSE(readers_get_in(true, 1s)); }

// `bound`: the vnodes' binding flips every step (every step moves the
// whole guest); else the policy follows the samples and vCPUs, with a
// window of 64 pages, so the sampled pass and the vacated walk (which runs
// without the data lock) race the readers too.
static void race_steps(bool bound) {
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  cfg.scan_pages = bound ? 1u << 12 : 64;
  test::MigrateRig rig(cfg, bound, bound ? 8 : 32, bound ? 8192 : 16384);  // walks of 4096 pages
  rig.add(*rig.mover);
  Migrator& m = *rig.m;
  VcpuAdviceConfig advice;
  advice.enabled = true;
  advice.min_pages = 1;
  ASSERT_TRUE(m.set_vcpu_advice(advice).has_value());
  const std::uint64_t pages = rig.gm->ram_pages();
  const GuestId id = rig.id;

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0}, bad{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {  // readers
    VcpuAdvice a[8];
    while (!stop.load(std::memory_order_relaxed)) {
      const MigratorStats s = m.stats();
      std::uint64_t pairs = 0;
      for (const auto& p : s.moves) pairs += p.pages;
      if (pairs > s.pages_moved) bad.fetch_add(1);
      if (!m.sample_share(id) || !m.check_invariants()) bad.fetch_add(1);
      (void)m.vcpu_advice(a);
      if (!m.vcpu_advice_for(id, 1, a[0])) bad.fetch_add(1);
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  });
  threads.emplace_back([&] {  // inputs: vCPUs hop between the nodes, samples from both
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    while (!stop.load(std::memory_order_relaxed)) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const auto vcpu = static_cast<std::uint32_t>(x % 4);
      if (!bound) {  // the stepping loop moves the vCPUs; samples race on the first chunk
        m.record_access(id, (x >> 16) % 64, static_cast<CpuId>((x >> 24) % 4));
        continue;
      }
      (void)m.set_vcpu_cpu(id, vcpu, static_cast<CpuId>((x >> 8) % 4));
      m.record_vcpu_access(id, (x >> 16) % pages, vcpu);
      m.record_access(id, (x >> 32) % pages, static_cast<CpuId>((x >> 24) % 4));
    }
  });
  threads.emplace_back([&] {  // a vCPU writing and checking its pages while they move
    Gfn g = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      if (!rig.model->write(0, g) || !rig.model->read_check(0, g)) bad.fetch_add(1);
      g = (g + 97) % pages;
    }
  });

  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
  std::uint64_t steps = 0;
  NodeId to = 1;
  Gfn next = 64;
  while (std::chrono::steady_clock::now() < end || steps < 20) {
    if (bound) {
      ASSERT_TRUE(m.bind_vnode(id, 0, to).has_value());
      ASSERT_TRUE(m.bind_vnode(id, 1, to).has_value());
    } else {
      // All vCPUs on one node (CPUs 0-1: node 0, 2-3: node 1), 32 pages
      // sampled there; every third step they all go to the other node, and
      // the pages sampled only where they were follow them: the walk.
      const CpuId cpu = static_cast<CpuId>(2 * (steps / 3 % 2));
      for (std::uint32_t v = 0; v < 4; ++v) ASSERT_TRUE(m.set_vcpu_cpu(id, v, cpu + v % 2).has_value());
      for (int k = 0; k < 32; ++k, next = 64 + (next - 64 + 61) % (pages - 64)) m.record_access(id, next, cpu);
    }
    (void)m.step();
    to = to == 1 ? 0 : 1;
    ++steps;
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  if (bound) {
    EXPECT_GT(m.stats().pages_moved, pages) << "the pages went back and forth";
  } else {
    EXPECT_GT(m.stats().pages_scanned_sampled, 0u) << "the sampled pass never ran";
    EXPECT_GT(m.stats().pages_followed, 0u) << "no page followed a vacated node";
  }
  for (Gfn g = 0; g < pages; ++g) ASSERT_TRUE(rig.model->final_check(g)) << g;
  EXPECT_TRUE(m.check_invariants().has_value());
}

TEST(MigrateLockStress, ReadersAndInputsRaceStepsThatMove) { race_steps(true); }
TEST(MigrateLockStress, ReadersAndInputsRaceStepsThatFollowVcpus) { race_steps(false); }
