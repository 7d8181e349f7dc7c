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

// Serialises start() and stop() of all migrators (they are rare); guards
// Impl::background and Impl::stop_background.
std::mutex g_control;

void stop_thread(Migrator::Impl& m) {
  Background* bg;
  {
    std::lock_guard<std::mutex> c(g_control);
    bg = static_cast<Background*>(m.background);
    m.background = nullptr;
    m.stop_background = nullptr;
  }
  if (!bg) return;
  {
    std::lock_guard<std::mutex> g(bg->lock);
    bg->stop_requested = true;
  }
  bg->wake.notify_all();
  pthread_join(bg->thread, nullptr);
  delete bg;
  m.running.store(false, std::memory_order_release);
}

}  // namespace
}  // namespace host

Status Migrator::start() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> c(host::g_control);
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
  // takes it before deleting one).
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
