// The migrator's background thread (host library, migrate/host/background.cc)
// when the system refuses a thread (pids.max or RLIMIT_NPROC reached, no
// address space for a stack): start() reports no_memory and changes
// nothing -- running() stays false, nothing leaks, the control lock is let
// go (request_step and stop return) -- and once threads can be made again
// start/stop work. The library is built without exceptions, so a thread
// constructor that throws would abort the process instead.
//
// The checks run in a forked child: the refusal is made by lowering the
// child's RLIMIT_AS, which the rest of the test process must not see, and
// a start() that aborts shows up as the child's signal.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <future>

#include "numaheap/migrator.h"
#include "numaheap/numaheap_migrate.h"
#include "numaheap/topology.h"
#include "unit/guest_oom_hooks.h"
#include "unit/no_threads.h"

using namespace numaheap;
using numaheap::test::NoThreads;

namespace {

// The child's checks; 0 when all pass, else the number of the first that
// failed (the parent names it).
int refused_thread_checks() {
  auto topo = TopologyBuilder("bg").add_node(0, {0, 1}, 64ull << 20).add_node(1, {2, 3}, 64ull << 20).build();
  if (!topo) return 90;
  test::OomHooks hooks;  // counts the migrator's metadata: a failed start keeps none
  MigratorConfig cfg;
  cfg.period_ms = 3600 * 1000;  // only requested steps, once running
  cfg.metadata = hooks.hooks();
  auto mig = Migrator::create(*topo, cfg);
  if (!mig) return 91;
  Migrator& m = **mig;
  const long live = hooks.live();
  {
    NoThreads no_threads;
    if (!no_threads.ok()) return 92;
    Status st = m.start();
    if (st) return 1;                            // a thread was made after all?
    if (st.error() != Errc::no_memory) return 2;
    if (m.running()) return 3;
    if (hooks.live() != live) return 4;          // its state leaked
    m.request_step();                            // returns: the control lock is free
    m.stop();                                    // nothing to stop
    if (m.running()) return 5;
    st = m.start();                              // refused again, the same way
    if (st || st.error() != Errc::no_memory || m.running()) return 6;
    // The C API reports it as NUMAHEAP_E_NO_MEMORY.
    numaheap_topology_builder* b = numaheap_topology_builder_new();
    const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
    numaheap_topology* t = nullptr;
    if (!b || numaheap_topology_builder_add_node(b, 0, cpus0, 2, 64u << 20) != NUMAHEAP_OK ||
        numaheap_topology_builder_add_node(b, 1, cpus1, 2, 64u << 20) != NUMAHEAP_OK ||
        numaheap_topology_builder_build(b, &t, nullptr, 0) != NUMAHEAP_OK)
      return 93;
    numaheap_topology_builder_free(b);
    numaheap_migrator* cm = nullptr;
    if (numaheap_migrator_create(t, nullptr, &cm) != NUMAHEAP_OK) return 94;
    if (numaheap_migrator_start(cm) != NUMAHEAP_E_NO_MEMORY) return 7;
    if (numaheap_migrator_running(cm)) return 8;
    numaheap_migrator_request_step(cm);
    numaheap_migrator_stop(cm);
    numaheap_migrator_destroy(cm);
    numaheap_topology_free(t);
  }
  // Threads can be made again: start, step on request, stop.
  if (!m.start()) return 10;
  if (!m.running()) return 11;
  if (const Status again = m.start(); again || again.error() != Errc::busy) return 15;
  m.request_step();
  m.stop();
  if (m.running()) return 12;
  if (!m.start()) return 13;  // and again after a stop
  m.stop();
  if (m.running() || hooks.live() != live) return 14;
  return 0;
}

}  // namespace

TEST(MigrateBackground, StartReportsNoMemoryWhenNoThreadCanBeMade) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  // noexcept: an exception out of start() ends the child as it ends a C
  // caller (std::terminate), not in the child's copy of gtest.
  if (pid == 0) _exit([]() noexcept { return refused_thread_checks(); }());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const bool killed = WIFSIGNALED(status);
  ASSERT_FALSE(killed) << "the child died of signal " << WTERMSIG(status)
                       << " (start() aborted when the thread could not be made)";
  const bool exited = WIFEXITED(status);
  ASSERT_TRUE(exited);
  const int code = WEXITSTATUS(status);
  if (code == 92) GTEST_SKIP() << "cannot lower RLIMIT_AS or the default stack size here";
  EXPECT_EQ(code, 0) << "check " << code << " of refused_thread_checks() failed";
}

namespace {

// A mover whose query (every step scans) calls stop() from the migrator's
// own thread, once -- which the contract forbids -- then says so.
class SelfStopMover final : public Mover {
 public:
  Migrator* mig = nullptr;
  std::promise<bool> stopped_inside;  // running() right after that stop()
  std::uint64_t page_count() const noexcept override { return 64; }
  Status query(Gfn first, std::span<PageState> out) noexcept override {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = first + i < 64 ? PageState{0, 1, 0} : PageState{};
    if (!done_.exchange(true)) {
      mig->stop();
      stopped_inside.set_value(mig->running());
    }
    return {};
  }
  Result<MoveTotals> move(std::span<const Gfn>, NodeId, MoveGranularity, std::span<MoveOutcome> out) noexcept override {
    for (auto& o : out) o = MoveOutcome::busy;
    return MoveTotals{};
  }

 private:
  std::atomic<bool> done_{false};
};

}  // namespace

// stop() from the background thread itself does nothing (it cannot join
// itself; before, it freed the thread's state while the thread ran on).
TEST(MigrateBackground, StopFromTheThreadItselfDoesNothing) {
  auto topo = TopologyBuilder("bg").add_node(0, {0, 1}, 64ull << 20).add_node(1, {2, 3}, 64ull << 20).build();
  ASSERT_TRUE(topo.has_value());
  MigratorConfig cfg;
  cfg.period_ms = 3600 * 1000;  // the first step at once, then only requested ones
  auto mig = Migrator::create(*topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  SelfStopMover mv;
  mv.mig = &m;
  std::future<bool> inside = mv.stopped_inside.get_future();
  ASSERT_TRUE(m.add_guest(mv).has_value());
  ASSERT_TRUE(m.start().has_value());
  EXPECT_TRUE(inside.get()) << "a stop() from the thread itself stopped it";
  EXPECT_TRUE(m.running());
  m.request_step();  // the thread still serves requests
  m.stop();          // and a real stop() joins it
  EXPECT_FALSE(m.running());
}
