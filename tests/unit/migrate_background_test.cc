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

#include <cstdint>
#include <cstdio>

#include "numaheap/migrator.h"
#include "numaheap/numaheap_migrate.h"
#include "numaheap/topology.h"
#include "unit/guest_oom_hooks.h"

using namespace numaheap;

namespace {

// The process's address space now (VmSize), in bytes; 0 if unknown.
std::uint64_t address_space_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long pages = 0;
  const int got = std::fscanf(f, "%llu", &pages);
  std::fclose(f);
  return got == 1 ? pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// While it lives, no thread can be created: a new thread's default stack
// (pthread_create without attributes, as start() calls it) is 1 GiB, and
// the address space may grow by 64 MiB only, so mapping the stack fails
// and pthread_create returns EAGAIN. (A default bigger than any stack glibc
// keeps from an exited thread: none can be reused for it.) Restores the
// limit and the default stack size when it goes.
class NoThreads {
 public:
  NoThreads() {
    if (pthread_getattr_default_np(&saved_attr_) != 0) return;
    have_attr_ = true;
    if (getrlimit(RLIMIT_AS, &saved_limit_) != 0) return;
    pthread_attr_t big;
    if (pthread_getattr_default_np(&big) != 0) return;
    const bool set = pthread_attr_setstacksize(&big, std::size_t{1} << 30) == 0 &&
                     pthread_setattr_default_np(&big) == 0;
    pthread_attr_destroy(&big);
    if (!set) return;
    const std::uint64_t now = address_space_bytes();
    if (now == 0) return;
    rlimit lower = saved_limit_;
    lower.rlim_cur = now + (64u << 20);
    if (lower.rlim_cur >= saved_limit_.rlim_max) return;
    ok_ = setrlimit(RLIMIT_AS, &lower) == 0;
  }
  ~NoThreads() {
    if (ok_) (void)setrlimit(RLIMIT_AS, &saved_limit_);
    if (have_attr_) {
      (void)pthread_setattr_default_np(&saved_attr_);
      pthread_attr_destroy(&saved_attr_);
    }
  }
  NoThreads(const NoThreads&) = delete;
  NoThreads& operator=(const NoThreads&) = delete;
  bool ok() const { return ok_; }

 private:
  pthread_attr_t saved_attr_{};
  rlimit saved_limit_{};
  bool have_attr_ = false, ok_ = false;
};

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
