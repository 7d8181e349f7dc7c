// NoThreads: while one lives, this process can create no thread (for
// tests of what a library does when pthread_create refuses). Use it in a
// forked child: it lowers RLIMIT_AS, which the rest of a test process
// must not see.
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace numaheap::test {

// The process's address space now (VmSize), in bytes; 0 if unknown.
inline std::uint64_t address_space_bytes() {
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

}  // namespace numaheap::test
