// The migrator's background thread under concurrent start() and stop()
// (host library, migrate/host/background.cc; contract in migrator.h):
// running() is true exactly while a thread exists, and every stop()
// returns only once the thread it found has exited.
//
//  * StartDuringAStopStartsANewThread: the thread's step is held inside a
//    mover while one stop() joins it; a start() from another thread waits
//    for that join and then starts a new thread: running() is true after
//    both returned, and the new thread steps.
//  * SecondStopWaitsForTheThreadToExit: the same held step; a second stop()
//    does not return before the thread has exited.
//  * StartStopAndRequestStepRace: threads calling start, stop,
//    request_step and running on one migrator at random (TSan in CI); at
//    the end one stop() leaves no thread.
//
// The tests watch the migrator's control state (Impl::stopping,
// Impl::control_waiters) to know that a stop() is joining and that a call
// waits for it; waits on them are bounded (a failure hangs no test).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "migrate/migrator_impl.h"
#include "unit/gate_mover.h"
#include "unit/stress_seconds.h"

namespace numaheap {

struct MigratorTestPeer {
  static Migrator::Impl& impl(Migrator& m) { return *m.impl_; }
};

}  // namespace numaheap

using namespace numaheap;
using namespace std::chrono_literals;

using test::GateMover;

namespace {

// Polls `done` until it holds or `bound` passed (a bound on a failure, not
// a synchronisation: what is watched happens without it).
template <class F>
bool eventually(F&& done, std::chrono::seconds bound = 60s) {
  for (const auto until = std::chrono::steady_clock::now() + bound; !done();) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

// A migrator whose background thread's first step is held inside the
// mover: its guest's pages are bound to node 1, so the first step moves
// them. Steps come only on request afterwards (a period of an hour).
struct HeldStep {
  Topology topo =
      std::move(TopologyBuilder("bg").add_node(0, {0, 1}, 64ull << 20).add_node(1, {2, 3}, 64ull << 20).build())
          .value();
  std::unique_ptr<Migrator> mig;
  GateMover mover;

  HeldStep() {
    MigratorConfig cfg;
    cfg.period_ms = 3600 * 1000;
    cfg.rate_limit_mb_s = 0;
    auto m = Migrator::create(topo, cfg);
    EXPECT_TRUE(m.has_value());
    mig = std::move(*m);
    MigrateGuestOptions o;
    o.vnuma_bound = true;
    EXPECT_TRUE(o.layout.push_back({0, GateMover::kPages, 1, 0})  /* pnode 1 */);
    EXPECT_TRUE(mig->add_guest(mover, o).has_value());
  }
  Migrator::Impl& impl() { return MigratorTestPeer::impl(*mig); }
  // start(), then the first step is inside the mover; then a stop() on
  // `stopper`, joining the held thread. False (and nothing left running)
  // if that state was not reached.
  bool start_and_stop_held(std::thread& stopper) {
    if (!mig->start()) return false;
    if (!mover.wait_entered()) {
      ADD_FAILURE() << "the background thread's step never moved";
      mover.open();
      mig->stop();
      return false;
    }
    stopper = std::thread([this] { mig->stop(); });
    if (!eventually([&] { return impl().stopping.load(); })) {
      ADD_FAILURE() << "stop() never began joining the thread";
      mover.open();
      stopper.join();
      return false;
    }
    return true;
  }
};

}  // namespace

TEST(MigrateBackgroundStress, StartDuringAStopStartsANewThread) {
  HeldStep h;
  Migrator& m = *h.mig;
  std::thread stopper;
  ASSERT_TRUE(h.start_and_stop_held(stopper));
  std::atomic<bool> started{false};
  Status st = Errc::invalid_argument;
  std::thread starter([&] {
    st = m.start();
    started.store(true);
  });
  // Either start() returned at once (wrong while the thread is being
  // joined) or it waits for the join.
  EXPECT_TRUE(eventually([&] { return started.load() || h.impl().control_waiters.load() == 1; }));
  EXPECT_FALSE(started.load()) << "start() returned while a stop() was still joining the old thread";
  h.mover.open();
  stopper.join();
  starter.join();
  ASSERT_TRUE(st.has_value()) << "start() after the stop: " << static_cast<int>(st.error());
  EXPECT_TRUE(m.running()) << "start() succeeded, but running() is false";
  // A thread really steps: the old one stepped once, the new one at once.
  m.request_step();
  EXPECT_TRUE(eventually([&] { return m.stats().steps >= 2; })) << "no thread steps after start()";
  m.stop();
  EXPECT_FALSE(m.running());
  EXPECT_FALSE(h.impl().stopping.load());
}

TEST(MigrateBackgroundStress, SecondStopWaitsForTheThreadToExit) {
  HeldStep h;
  Migrator& m = *h.mig;
  std::thread stopper;
  ASSERT_TRUE(h.start_and_stop_held(stopper));
  std::atomic<bool> stopped{false};
  bool running_after = true;
  std::thread second([&] {
    m.stop();
    running_after = m.running();
    stopped.store(true);
  });
  EXPECT_TRUE(eventually([&] { return stopped.load() || h.impl().control_waiters.load() == 1; }));
  EXPECT_FALSE(stopped.load()) << "a second stop() returned while the thread was still inside its step";
  h.mover.open();
  stopper.join();
  second.join();
  EXPECT_FALSE(running_after) << "running() after the second stop() returned";
  EXPECT_FALSE(m.running());
  EXPECT_EQ(h.impl().control_waiters.load(), 0u);
  // Both were stops of the one thread: it can start again.
  ASSERT_TRUE(m.start().has_value());
  EXPECT_TRUE(m.running());
  m.stop();
  EXPECT_FALSE(m.running());
}

TEST(MigrateBackgroundStress, StartStopAndRequestStepRace) {
  const Topology topo =
      std::move(TopologyBuilder("bg").add_node(0, {0, 1}, 64ull << 20).add_node(1, {2, 3}, 64ull << 20).build())
          .value();
  MigratorConfig cfg;
  cfg.period_ms = 1;
  auto mig = Migrator::create(topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> starts{0}, stops{0}, bad{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
      while (!done.load(std::memory_order_relaxed)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        switch (x % 4) {
          case 0: {
            const Status st = m.start();
            if (st) {
              starts.fetch_add(1);
            } else if (st.error() != Errc::busy) {
              bad.fetch_add(1);  // busy is the only refusal with threads to spare
            }
            break;
          }
          case 1:
            m.stop();
            stops.fetch_add(1);
            break;
          case 2:
            m.request_step();
            break;
          default:
            (void)m.running();
        }
      }
    });
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(test::stress_seconds());
  while (std::chrono::steady_clock::now() < end) std::this_thread::yield();
  done.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(starts.load(), 0u);
  EXPECT_GT(stops.load(), 0u);
  m.stop();
  EXPECT_FALSE(m.running());
  EXPECT_EQ(MigratorTestPeer::impl(m).background, nullptr) << "a stopped migrator keeps a thread";
}
