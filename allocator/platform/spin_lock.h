// SpinLock: the allocator's lock. Critical sections are short (list
// operations, counters), never scrub or copy, so spinning beats sleeping.
// In the host library a waiter yields after a while so an oversubscribed
// host still progresses; the freestanding core has no scheduler to yield
// to and only spins (a hypervisor's CPUs are not oversubscribed by its own
// threads).
#pragma once

#include <atomic>

#if NUMAHEAP_HOSTED
#include <sched.h>
#endif

namespace numaheap {

// One turn of a wait: the CPU's pause hint.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Gives the CPU away where there is someone to give it to.
inline void yield_cpu() noexcept {
#if NUMAHEAP_HOSTED
  sched_yield();
#else
  for (int i = 0; i < 64; ++i) cpu_relax();
#endif
}

class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) cpu_relax();
        else yield_cpu();
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }
  bool is_locked() const noexcept { return locked_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

// Lets other threads run for a while, longer as `round` grows: for a
// caller that let go of locks so that threads waiting on them can finish.
inline void backoff(unsigned round) noexcept {
  for (unsigned i = 0; i < 64u * (round + 1); ++i) cpu_relax();
  yield_cpu();
}

// Scoped holder (std::lock_guard without <mutex>).
class SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l) noexcept : lock_(l) { lock_.lock(); }
  ~SpinGuard() { lock_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace numaheap
