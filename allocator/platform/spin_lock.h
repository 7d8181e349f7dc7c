// SpinLock: the allocator's lock. Critical sections are short (list
// operations, counters), never scrub or copy, so spinning beats sleeping;
// after a while a waiter yields so an oversubscribed host still progresses.
#pragma once

#include <sched.h>

#include <atomic>

namespace numaheap {

class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          sched_yield();
        }
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
  for (unsigned i = 0; i < 64u * (round + 1); ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  sched_yield();
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
