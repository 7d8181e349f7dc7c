// The move helper process: see move_helper.h.
#include "vmm/host/move_helper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "allocator/platform/fault_injection.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace numaheap::detail {
namespace {

// ---- raw system calls for the child ----
// After the child unmaps the VMM's private memory, nothing it runs may touch
// libc's or the dynamic linker's data (a lazily bound PLT entry, errno of a
// wrapper that failed, a sanitizer's shadow): it makes system calls itself.
#if defined(__x86_64__)
constexpr bool kRawSyscalls = true;
[[gnu::always_inline]] inline long raw(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                                       long f = 0) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
constexpr bool kRawSyscalls = true;
[[gnu::always_inline]] inline long raw(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                                       long f = 0) {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  register long x5 asm("x5") = f;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
constexpr bool kRawSyscalls = false;
[[gnu::always_inline]] inline long raw(long, long = 0, long = 0, long = 0, long = 0, long = 0, long = 0) {
  return -ENOSYS;
}
#endif

// ThreadSanitizer's runtime starts a thread of its own in a forked child
// (its fork handler), which runs on the runtime's data: under TSan the
// child keeps the VMM's private memory (the old helper; the tests of the
// dropped memory run in the other builds).
#if defined(__SANITIZE_THREAD__)
constexpr bool kDropPrivate = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kDropPrivate = false;
#else
constexpr bool kDropPrivate = true;
#endif
#else
constexpr bool kDropPrivate = true;
#endif

// The thread pointer: this thread's control block, with its TLS and rseq area.
inline const void* thread_pointer() {
#if defined(__x86_64__)
  const void* tp;
  asm("mov %%fs:0, %0" : "=r"(tp));  // the block's pointer to itself (the x86-64 TLS ABI)
  return tp;
#elif defined(__aarch64__)
  const void* tp;
  asm("mrs %0, tpidr_el0" : "=r"(tp));
  return tp;
#else
  return nullptr;
#endif
}

// The child. Unsanitized and uninstrumented: a sanitizer's shadow and
// runtime are among what it unmaps.
#if defined(__clang__)
#define NUMAHEAP_UNINSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined"), disable_sanitizer_instrumentation))
#else
#define NUMAHEAP_UNINSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined")))
#endif

// Unmaps every private writable mapping of this (child) process but the ones
// holding `sp` and `tp`, reading its own /proc/self/maps: what it finds is
// exactly what it has (a list made in the parent before the fork would miss
// what the parent's own allocations added since, e.g. heap growth). No
// allocation, no libc: a character at a time, up to kBatch ranges a pass,
// unmapped after the pass (the file is not read while it changes).
[[gnu::always_inline]] NUMAHEAP_UNINSTRUMENTED inline void drop_private(const void* sp, const void* tp) {
  constexpr std::size_t kBatch = 128;
  const auto spa = reinterpret_cast<std::uintptr_t>(sp), tpa = reinterpret_cast<std::uintptr_t>(tp);
  for (int pass = 0; pass < 64; ++pass) {
    std::uintptr_t lo[kBatch], hi[kBatch];
    std::size_t n = 0;
    bool more = false;
    const long fd = raw(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/maps"), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    // Per line: start hex, '-', end hex, ' ', four permission characters.
    int field = 0;  // 0 start, 1 end, 2 permissions, 3 the rest of the line
    std::uintptr_t start = 0, end = 0;
    char perms[4] = {};
    int pi = 0;
    char buf[4096];
    for (;;) {
      const long got = raw(SYS_read, fd, reinterpret_cast<long>(buf), sizeof buf);
      if (got == -EINTR) continue;
      if (got <= 0) break;
      for (long k = 0; k < got; ++k) {
        const char c = buf[k];
        if (c == '\n') {
          const bool drop = field == 3 && perms[1] == 'w' && perms[3] == 'p' && !(spa >= start && spa < end) &&
                            !(tpa >= start && tpa < end) && start < end;
          if (drop) {
            if (n < kBatch) {
              lo[n] = start;
              hi[n++] = end;
            } else {
              more = true;
            }
          }
          field = 0;
          start = end = 0;
          pi = 0;
          continue;
        }
        const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (field == 0) {
          if (c == '-') field = 1;
          else if (digit >= 0) start = start << 4 | static_cast<std::uintptr_t>(digit);
        } else if (field == 1) {
          if (c == ' ') field = 2;
          else if (digit >= 0) end = end << 4 | static_cast<std::uintptr_t>(digit);
        } else if (field == 2) {
          perms[pi++] = c;
          if (pi == 4) field = 3;
        }
      }
    }
    (void)raw(SYS_close, fd);
    std::size_t unmapped = 0;
    for (std::size_t i = 0; i < n; ++i)
      unmapped += raw(SYS_munmap, static_cast<long>(lo[i]), static_cast<long>(hi[i] - lo[i])) == 0;
    if (!more || unmapped == 0) return;
  }
}

[[noreturn, gnu::noinline]] NUMAHEAP_UNINSTRUMENTED void helper_main(int sock, pid_t parent, bool drop) {
  const std::uint64_t all = ~std::uint64_t{0};  // no handler of the VMM's runs here
  (void)raw(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, sizeof all);
  (void)raw(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);  // the forking thread's death: GuestRam::create's caller
  if (raw(SYS_getppid) != parent) (void)raw(SYS_exit_group, 0);
  // Every descriptor but the socket ([first, last]; the loop: before Linux 5.9).
  const unsigned s = static_cast<unsigned>(sock);
  if (s > 0 && raw(SYS_close_range, 0, s - 1, 0) != 0)
    for (unsigned fd = 0; fd < s; ++fd) (void)raw(SYS_close, fd);
  if (raw(SYS_close_range, s + 1, ~0u, 0) != 0)
    for (unsigned fd = s + 1; fd < 65536; ++fd) (void)raw(SYS_close, fd);
  // The VMM's private memory.
  if (drop) drop_private(__builtin_frame_address(0), thread_pointer());
  HelperRun req[kHelperRuns];
  for (;;) {
    const long n = raw(SYS_recvfrom, sock, reinterpret_cast<long>(req), sizeof req, 0, 0, 0);
    if (n == -EINTR) continue;
    if (n <= 0) (void)raw(SYS_exit_group, 0);
    unsigned char answer = 0;  // 0: every run mapped; else the first refusal's errno (kHelperAnswerMax at most)
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof req[0]; ++i) {
      const long rc = raw(SYS_madvise, static_cast<long>(req[i].addr), static_cast<long>(req[i].len), MADV_POPULATE_READ);
      if (rc != 0 && answer == 0) answer = static_cast<unsigned char>(-rc > 0 && -rc < kHelperAnswerMax ? -rc : kHelperAnswerMax);
    }
    while (raw(SYS_sendto, sock, reinterpret_cast<long>(&answer), 1, MSG_NOSIGNAL, 0, 0) == -EINTR) {
    }
  }
}

// ---- the parent's preparation ----

struct Vma {
  std::uintptr_t start, end;
  bool dont_fork;  // VmFlags "dc"
};

// /proc/self/smaps: every mapping and whether it is MADV_DONTFORK already;
// empty if it cannot be read. (smaps, not maps: VmFlags.)
std::vector<Vma> read_vmas() {
  std::string text;
  const int fd = ::open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::vector<Vma> vmas;
  std::string_view rest(text);
  while (!rest.empty()) {
    const std::size_t eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 1);
    if (line.starts_with("VmFlags:")) {
      if (!vmas.empty()) vmas.back().dont_fork = line.find(" dc") != std::string_view::npos;
      continue;
    }
    // A mapping's header: "start-end perms offset dev inode [path]"; other
    // lines start with a field name and a colon.
    std::uintptr_t start = 0, end = 0;
    const char* const e = line.data() + line.size();
    auto r1 = std::from_chars(line.data(), e, start, 16);
    if (r1.ec != std::errc{} || r1.ptr == e || *r1.ptr != '-') continue;
    auto r2 = std::from_chars(r1.ptr + 1, e, end, 16);
    if (r2.ec != std::errc{} || r2.ptr == e || *r2.ptr != ' ') continue;
    vmas.push_back(Vma{start, end, false});
  }
  return vmas;
}

}  // namespace

MoveHelperProcess spawn_move_helper(std::span<const HostRange> not_needed) noexcept {
  if (!kRawSyscalls) return {};
  int sv[2];  // SOCK_SEQPACKET: a request is one message; MSG_NOSIGNAL (no SIGPIPE if it died)
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return {};
  const bool broken = NUMAHEAP_FAULT(helper_keeps_private);
  // Guest RAM the child does not map is not copied into it at all (no page
  // tables copied, the VMM's pages not write-protected): MADV_DONTFORK for
  // the fork, then as it was. (Another thread of the VMM forking meanwhile
  // gets a child without that RAM, as QEMU's children always do.)
  const std::vector<Vma> vmas = broken ? std::vector<Vma>{} : read_vmas();
  std::vector<HostRange> undo;
  for (const HostRange& g : broken ? std::span<const HostRange>{} : not_needed) {
    const auto gs = reinterpret_cast<std::uintptr_t>(g.addr), ge = gs + g.bytes;
    if (vmas.empty()) {  // no /proc: set it, and leave it set (better than a copy of guest RAM)
      (void)::madvise(g.addr, g.bytes, MADV_DONTFORK);
      continue;
    }
    for (const Vma& v : vmas) {
      const std::uintptr_t s = std::max(gs, v.start), e = std::min(ge, v.end);
      if (s >= e || v.dont_fork) continue;
      if (::madvise(reinterpret_cast<void*>(s), e - s, MADV_DONTFORK) == 0)
        undo.push_back(HostRange{reinterpret_cast<void*>(s), e - s});
    }
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) helper_main(sv[1], parent, kDropPrivate && !broken);
  for (const HostRange& u : undo) (void)::madvise(u.addr, u.bytes, MADV_DOFORK);
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    return {};
  }
  return MoveHelperProcess{pid, sv[0]};
}

}  // namespace numaheap::detail
