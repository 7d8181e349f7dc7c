// The migrator's background thread (host library only): step() every
// period_ms until stop(), and at once after request_step(). The core has
// no threads; a hypervisor calls step() from its own timer.
#include "migrate/host/background.h"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>

#include "numaheap/metadata.h"

#include "migrate/migrator_impl.h"

namespace numaheap {

namespace host {

std::uint64_t clock_ns(void*) noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

namespace {

// Lives from start() to stop(), in the migrator's metadata. `lock` guards
// stop_requested and step_requested.
struct Background {
  NUMAHEAP_METADATA_NEW_DELETE
  Migrator* mig = nullptr;      // immutable: the migrator the thread steps
  std::uint32_t period_ms = 0;  // immutable: its config's period
  std::mutex lock;
  std::condition_variable wake;
  bool stop_requested = false;
  bool step_requested = false;  // request_step(): the next step need not wait out the period
  // Written by start() before the thread is published, read by the stop()
  // that joins it (g_control orders both).
  pthread_t thread{};
};

// The thread: step() every period_ms, or at once when asked, until stop().
void* run(void* arg) {
  auto* bg = static_cast<Background*>(arg);
  pthread_setname_np(pthread_self(), "numaheap-migr");  // for top(1) and /proc/PID/task/*/comm
  std::unique_lock<std::mutex> tl(bg->lock);
  while (!bg->stop_requested) {
    tl.unlock();
    (void)bg->mig->step();
    tl.lock();
    bg->wake.wait_for(tl, std::chrono::milliseconds(bg->period_ms),
                      [&] { return bg->stop_requested || bg->step_requested; });
    bg->step_requested = false;
  }
  return nullptr;
}

// Serialises start() and stop() of all migrators (they are rare) and
// request_step()'s use of a Background. Guards Impl::background and
// Impl::stop_background, and every store to Impl::running,
// Impl::stopping and Impl::control_waiters. Never held while a thread is
// joined (a step may take long).
std::mutex g_control;
// Notified, after its state is updated under g_control, when a stop() has
// joined its thread (Impl::stopping went false).
std::condition_variable g_stopped;

// While a stop() of `m` is joining its thread: waits (g_control held by
// `c`, let go while waiting) until that thread has exited.
void wait_for_stop(std::unique_lock<std::mutex>& c, Migrator::Impl& m) {
  if (!m.stopping.load(std::memory_order_relaxed)) return;
  m.control_waiters.fetch_add(1, std::memory_order_relaxed);
  g_stopped.wait(c, [&] { return !m.stopping.load(std::memory_order_relaxed); });
  m.control_waiters.fetch_sub(1, std::memory_order_relaxed);
}

// stop(): asks the thread to end and joins it. The Background stays
// published (m.background, m.stopping) during the join, so a start() in
// the meantime waits for the exit instead of starting a second thread, and
// a second stop() waits for it instead of returning early.
void stop_thread(Migrator::Impl& m) {
  std::unique_lock<std::mutex> c(g_control);
  // From the thread itself (a mover hook; the contract forbids it): it
  // cannot join itself, and freeing its state would pull it from under the
  // step it runs. Nothing happens.
  if (const auto* own = static_cast<Background*>(m.background); own && pthread_equal(own->thread, pthread_self()))
    return;
  if (m.stopping.load(std::memory_order_relaxed)) {  // another stop() joins it: return once it exited
    wait_for_stop(c, m);
    return;
  }
  auto* bg = static_cast<Background*>(m.background);
  if (!bg) return;
  m.stopping.store(true, std::memory_order_relaxed);
  c.unlock();  // request_step() and other migrators' start/stop go on during the join
  {
    std::lock_guard<std::mutex> g(bg->lock);
    bg->stop_requested = true;
  }
  bg->wake.notify_all();
  pthread_join(bg->thread, nullptr);
  c.lock();
  m.background = nullptr;
  m.running.store(false, std::memory_order_release);
  m.stopping.store(false, std::memory_order_relaxed);
  c.unlock();
  // Waiters may destroy the migrator as soon as they run: `m` is not
  // touched after the unlock (g_stopped and bg are not part of it; request_step
  // cannot reach bg any more).
  g_stopped.notify_all();
  delete bg;
}

}  // namespace
}  // namespace host

Status Migrator::start() {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> c(host::g_control);
  host::wait_for_stop(c, m);  // a stop() is joining the thread: start anew once it exited
  if (m.background) return Errc::busy;
  auto* bg = new (m.meta) host::Background();
  if (!bg) return Errc::no_memory;
  bg->mig = this;
  bg->period_ms = m.config.period_ms;
  // pthread_create, not std::thread: this library has no exceptions, and
  // std::thread reports a refused thread by throwing (std::terminate here).
  // EAGAIN (RLIMIT_NPROC, a cgroup's pids.max, no memory or address space
  // for the stack) is no_memory; nothing has changed then.
  if (pthread_create(&bg->thread, nullptr, host::run, bg) != 0) {
    delete bg;
    return Errc::no_memory;
  }
  m.background = bg;
  m.stop_background = [](Migrator& mig) { mig.stop(); };
  m.running.store(true, std::memory_order_release);
  return {};
}

void Migrator::stop() { host::stop_thread(*impl_); }

void Migrator::request_step() noexcept {
  // g_control keeps the Background alive while it is used here (stop()
  // unpublishes it under g_control before deleting it). During a stop()'s
  // join this only wakes a thread that is ending anyway.
  std::lock_guard<std::mutex> c(host::g_control);
  auto* bg = static_cast<host::Background*>(impl_->background);
  if (!bg) return;
  {
    std::lock_guard<std::mutex> g(bg->lock);
    bg->step_requested = true;
  }
  bg->wake.notify_all();
}

}  // namespace numaheap
