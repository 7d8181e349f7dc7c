// UffdSampler's handler thread: reads fault messages and resolves them,
// opens the budget's windows and bursts, adapts the budget to its load, and
// the advice thread that reads the migrator's sample share.
#include <fcntl.h>
#include <pthread.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "numaheap/vmm.h"
#include "vmm/host/follow_clock.h"
#include "vmm/host/host_mappings.h"
#include "vmm/host/uffd_sampler_impl.h"

#include "allocator/platform/fault_injection.h"

namespace numaheap {

using namespace uffd_host;

namespace {

// The calling thread's time waiting for a CPU on a run queue, ns (field 2
// of /proc/thread-self/schedstat); 0 where the kernel has no schedstats.
std::uint64_t own_run_delay_ns() {
  char buf[128];
  if (!read_small("/proc/thread-self/schedstat", buf, sizeof buf)) return 0;
  char* p = buf;
  (void)std::strtoull(p, &p, 10);  // time on the CPU
  return std::strtoull(p, nullptr, 10);
}

}  // namespace

void UffdSampler::Impl::stop_handler() {
  stopping.store(true, std::memory_order_release);  // run() loops until it sees this
  const std::uint64_t one = 1;
  (void)!::write(wake_fd, &one, sizeof one);
  pthread_join(thread, nullptr);
  std::uint64_t drained;
  (void)!::read(wake_fd, &drained, sizeof drained);
  unregister_all();
  drain();
  registered = false;
}

void UffdSampler::Impl::advise() {
  std::unique_lock<std::mutex> lk(advice_mu);
  while (!stopping.load(std::memory_order_acquire)) {
    lk.unlock();
    if (auto a = mig->sample_share(guest)) advice.store(std::clamp(*a, 0.0, 1.0), std::memory_order_relaxed);
    lk.lock();
    advice_cv.wait_for(lk, std::chrono::milliseconds(250),
                       [&] { return stopping.load(std::memory_order_acquire); });
  }
}

void UffdSampler::Impl::kick_migrator() {
  const std::uint64_t now = now_ns();
  if (!follow.following(now)) {
    kick_pending = false;
    return;
  }
  if (now - last_kick_ns < kKickGapNs) {
    kick_pending = true;
    return;
  }
  kick_pending = false;
  last_kick_ns = now;
  kicks.fetch_add(1, std::memory_order_relaxed);
  // This guest's moves only (lock-free: never waits for a running step).
  const auto own = mig->guest_stats(guest);
  if (own && follow.sample(now, own->pages_moved)) follow_extensions.fetch_add(1, std::memory_order_relaxed);
  mig->request_step();
}

void UffdSampler::Impl::resolve_minor(char* a, std::uint64_t len) {
  resolve_calls.fetch_add(1, std::memory_order_relaxed);
  uffdio_continue c{};
  c.range.start = reinterpret_cast<std::uintptr_t>(a);
  c.range.len = len;
  if (::ioctl(uffd, UFFDIO_CONTINUE, &c) == 0) return;
  if (errno == EEXIST) resolve_retries.fetch_add(1, std::memory_order_relaxed);
  continue_range(a, len);
  uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
  (void)::ioctl(uffd, UFFDIO_WAKE, &w);
}

void UffdSampler::Impl::handle(const uffd_msg* msgs, std::size_t n) {
  const std::uint64_t t0 = now_ns();
  struct Fault {
    std::size_t r;
    std::uint64_t page, pages;
    bool wp;
  };
  Fault f[kBatch];
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const uffd_msg& msg = msgs[i];
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    char* page = reinterpret_cast<char*>(msg.arg.pagefault.address & ~std::uint64_t{kFrameSize - 1});
    const bool wp = msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
    const auto gfn = ram->gfn_of(page);
    const int r = gfn ? ram->region_of_gfn(*gfn) : -1;
    if (r < 0 || !armed[static_cast<std::size_t>(r)]) {  // not ours to sample (cannot happen): just resolve
      faults_outside_windows.fetch_add(1, std::memory_order_relaxed);
      if (wp) unprotect_range(page, kFrameSize);
      else resolve_minor(page, kFrameSize);
      continue;
    }
    const auto ri = static_cast<std::size_t>(r);
    const std::uint64_t p = *gfn - (ram->regions_[ri].guest_phys >> kFrameShift);
    // A sample only where this fault clears the armed bit (before
    // resolving: see `armed`): a page zapped for another reason, or a
    // second thread's fault on a page (block) whose first fault took the
    // sample, or one a close mapped back meanwhile, is resolved only.
    bool in_window = false;
    if (armed_whole(ri, p)) {  // the whole block: one sample, the huge mapping kept
      const std::uint64_t head = p / kBlock * kBlock, span = std::min(kBlock, region_pages(ri) - head);
      for (std::uint64_t q = head; q < head + span; ++q) in_window |= disarm(ri, q);
      f[k++] = Fault{ri, head, span, wp};
    } else {
      in_window = disarm(ri, p);
      f[k++] = Fault{ri, p, 1, wp};
    }
    if (!in_window) {
      faults_outside_windows.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    (wp ? wp_samples : minor_samples).fetch_add(1, std::memory_order_relaxed);
    samples.fetch_add(1, std::memory_order_relaxed);
    record(*gfn, ri, p, static_cast<pid_t>(msg.arg.pagefault.feat.ptid));
  }
  std::sort(f, f + k, [](const Fault& a, const Fault& b) {
    return a.r != b.r ? a.r < b.r : a.page != b.page ? a.page < b.page : a.wp < b.wp;
  });
  for (std::size_t i = 0; i < k;) {
    std::size_t j = i + 1;
    std::uint64_t end = f[i].page + f[i].pages;
    // Two threads faulting on one page (block) give two messages: one resolve.
    while (j < k && f[j].r == f[i].r && f[j].wp == f[i].wp && f[j].page <= end) {
      end = std::max(end, f[j].page + f[j].pages);
      ++j;
    }
    char* a = page_addr(f[i].r, f[i].page);
    const std::uint64_t len = (end - f[i].page) << kFrameShift;
    if (f[i].wp) {
      resolve_calls.fetch_add(1, std::memory_order_relaxed);
      unprotect_range(a, len);
    } else {
      resolve_minor(a, len);
    }
    i = j;
  }
  ns_handling.fetch_add(now_ns() - t0, std::memory_order_relaxed);
}

void UffdSampler::Impl::drain(bool until_empty) {
  uffd_msg msgs[kBatch];
  for (;;) {
    const ssize_t n = ::read(uffd, msgs, sizeof msgs);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    handle(msgs, static_cast<std::size_t>(n) / sizeof(uffd_msg));
    if (!until_empty && static_cast<std::size_t>(n) < sizeof msgs) return;
  }
}

bool UffdSampler::Impl::serve_bursts() {
  if (moved_pending.load(std::memory_order_acquire) == 0) return true;
  std::lock_guard<std::mutex> g(window_mu);
  if (!accepting) return true;
  if (pauses.load(std::memory_order_acquire)) return false;
  const std::uint64_t moved = moved_pending.exchange(0, std::memory_order_acq_rel);
  if (moved && cfg.burst_pages) burst_locked(moved);
  if (moved) {
    follow_vcpus = moved;
    follow.burst(now_ns());
  }
  return true;
}

void UffdSampler::Impl::run() {
  constexpr std::uint64_t kMeasureNs = 100'000'000;
  constexpr double kMinFactor = 1.0 / 1024;
  double factor = 1;
  std::uint64_t measured_at = now_ns(), busy_at = ns_handling.load(std::memory_order_relaxed),
                delay_at = own_run_delay_ns(), samples_at = samples.load(std::memory_order_relaxed);
  auto rate = [&] {
    const double a = cfg.follow_advice ? advice.load(std::memory_order_relaxed) : 1.0;
    return static_cast<double>(cfg.pages_per_second) * a * factor;
  };
  auto period_of = [&] { return static_cast<std::uint64_t>(1e9 * cfg.window_pages / std::max(rate(), 1e-3)); };
  budget_now.store(cfg.pages_per_second, std::memory_order_relaxed);
  std::uint64_t deadline = now_ns() + (cfg.pages_per_second ? period_of() : 0);
  bool bursts_waiting = false;
  while (!stopping.load(std::memory_order_acquire)) {
    int timeout_ms = -1;
    if (cfg.pages_per_second) {
      const std::uint64_t now = now_ns();
      timeout_ms = now >= deadline ? 0 : static_cast<int>(std::min<std::uint64_t>((deadline - now + 999999) / 1000000, 1000));
    }
    if (bursts_waiting && (timeout_ms < 0 || timeout_ms > 5)) timeout_ms = 5;  // a move holds them back
    if (kick_pending) {  // wake when the gap ends
      const std::uint64_t now = now_ns(), due = last_kick_ns + kKickGapNs;
      const int gap_ms = now >= due ? 0 : static_cast<int>((due - now + 999999) / 1000000);
      if (timeout_ms < 0 || timeout_ms > gap_ms) timeout_ms = gap_ms;
    }
    pollfd fds[2] = {{uffd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeout_ms);
    if (ready > 0 && (fds[0].revents & POLLIN)) drain(false);
    if (ready > 0 && (fds[1].revents & POLLIN)) {
      std::uint64_t v;
      (void)!::read(wake_fd, &v, sizeof v);
    }
    bursts_waiting = !serve_bursts();
    if (kick_pending && now_ns() - last_kick_ns >= kKickGapNs) kick_migrator();
    if (!cfg.pages_per_second) continue;
    const std::uint64_t now = now_ns();
    if (now - measured_at >= kMeasureNs) {
      const std::uint64_t busy = ns_handling.load(std::memory_order_relaxed), delay = own_run_delay_ns(),
                          sampled = samples.load(std::memory_order_relaxed);
      const std::uint64_t waited = (busy - busy_at) + (sampled != samples_at && delay > delay_at ? delay - delay_at : 0);
      const double share = static_cast<double>(waited) / static_cast<double>(now - measured_at);
      if (share > cfg.max_handler_share) factor = std::max(kMinFactor, factor / 2);
      else if (share < cfg.max_handler_share / 2) factor = std::min(1.0, factor * 1.25);
      // Far over the cap, and no moved vCPU being followed: every page
      // still armed would stop a vCPU for about as long as the last
      // samples took (under emulation, milliseconds each -- 850 armed
      // pages of a shared set held 8 vCPUs for 10 s). Lowering the
      // budget only spaces the next windows; the open ones are closed.
      if (share > kShedFactor * cfg.max_handler_share && !follow.following(now) &&
          armed_pages.load(std::memory_order_relaxed) > 0)
        shed();
      share_now.store(share, std::memory_order_relaxed);
      measured_at = now;
      busy_at = busy;
      delay_at = delay;
      samples_at = sampled;
    }
    budget_now.store(rate(), std::memory_order_relaxed);
    if (now >= deadline) {
      {
        std::lock_guard<std::mutex> g(window_mu);
        if (pauses.load(std::memory_order_acquire) == 0 && accepting) open_next_locked();
      }
      deadline = now_ns() + period_of();
    } else {
      deadline = std::min(deadline, now + period_of());  // the budget grew: do not wait out the old period
    }
  }
  {
    std::lock_guard<std::mutex> g(window_mu);
    accepting = false;  // scan() from other threads may not reopen one
    close_all_locked();
  }
  drain();
}

}  // namespace numaheap
