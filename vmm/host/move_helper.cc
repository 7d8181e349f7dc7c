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

// What the child is handed (it may not allocate): the ranges to unmap, in
// a mapping of their own that it unmaps last.
struct DropList {
  HostRange* ranges = nullptr;
  std::size_t count = 0;
  void* mapping = nullptr;
  std::size_t mapping_bytes = 0;
};

// The child. Unsanitized and uninstrumented: a sanitizer's shadow and
// runtime are among what it unmaps.
#if defined(__clang__)
#define NUMAHEAP_UNINSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined"), disable_sanitizer_instrumentation))
#else
#define NUMAHEAP_UNINSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined")))
#endif
[[noreturn, gnu::noinline]] NUMAHEAP_UNINSTRUMENTED void helper_main(int sock, pid_t parent, DropList drop) {
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
  // The VMM's private memory and the guest RAM it does not need.
  for (std::size_t i = 0; i < drop.count; ++i)
    (void)raw(SYS_munmap, reinterpret_cast<long>(drop.ranges[i].addr), static_cast<long>(drop.ranges[i].bytes));
  if (drop.mapping) (void)raw(SYS_munmap, reinterpret_cast<long>(drop.mapping), static_cast<long>(drop.mapping_bytes));
  HelperRun req[kHelperRuns];
  for (;;) {
    const long n = raw(SYS_recvfrom, sock, reinterpret_cast<long>(req), sizeof req, 0, 0, 0);
    if (n == -EINTR) continue;
    if (n <= 0) (void)raw(SYS_exit_group, 0);
    char ok = 1;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof req[0]; ++i)
      if (raw(SYS_madvise, static_cast<long>(req[i].addr), static_cast<long>(req[i].len), MADV_POPULATE_READ) != 0)
        ok = 0;
    while (raw(SYS_sendto, sock, reinterpret_cast<long>(&ok), 1, MSG_NOSIGNAL, 0, 0) == -EINTR) {
    }
  }
}

// ---- the parent's preparation ----

struct Vma {
  std::uintptr_t start, end;
  bool private_writable;  // rw-p: heap, stacks, anonymous mmaps, programs' and libraries' data
  bool dont_fork;              // VmFlags "dc"
};

// /proc/self/smaps: every mapping with the two facts above; empty if it
// cannot be read. (smaps, not maps: VmFlags.)
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
    const char* p = line.data();
    const char* const e = line.data() + line.size();
    auto r1 = std::from_chars(p, e, start, 16);
    if (r1.ec != std::errc{} || r1.ptr == e || *r1.ptr != '-') continue;
    auto r2 = std::from_chars(r1.ptr + 1, e, end, 16);
    if (r2.ec != std::errc{} || e - r2.ptr < 6 || r2.ptr[0] != ' ') continue;
    const std::string_view perms(r2.ptr + 1, 4);
    vmas.push_back(Vma{start, end, perms[1] == 'w' && perms[3] == 'p', false});
  }
  return vmas;
}

bool contains(const Vma& v, const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return a >= v.start && a < v.end;
}

}  // namespace

MoveHelperProcess spawn_move_helper(std::span<const HostRange> not_needed) noexcept {
  if (!kRawSyscalls) return {};
  int sv[2];  // SOCK_SEQPACKET: a request is one message; MSG_NOSIGNAL (no SIGPIPE if it died)
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return {};
  const std::vector<Vma> vmas = read_vmas();
  // What the child unmaps: the guest RAM it does not need, and (unless a
  // test asks for the old child) every private writable mapping but the
  // ones holding this stack and this thread's block (its TLS, its rseq
  // area, which the kernel writes on every return to user space).
  std::vector<HostRange> drop(not_needed.begin(), not_needed.end());
  if (kDropPrivate && !NUMAHEAP_FAULT(helper_keeps_private)) {
    const void* const sp = __builtin_frame_address(0);
    const void* const tp = thread_pointer();
    for (const Vma& v : vmas)
      if (v.private_writable && !contains(v, sp) && !contains(v, tp))
        drop.push_back(HostRange{reinterpret_cast<void*>(v.start), v.end - v.start});
  }
  // The list in a mapping of its own, made after /proc was read: the child
  // reads it while unmapping the heap it was built in, then unmaps it.
  DropList list;
  list.mapping_bytes = std::max<std::size_t>(drop.size() * sizeof(HostRange), 1);
  list.mapping = ::mmap(nullptr, list.mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (list.mapping == MAP_FAILED) {
    ::close(sv[0]);
    ::close(sv[1]);
    return {};
  }
  list.ranges = static_cast<HostRange*>(list.mapping);
  list.count = drop.size();
  std::copy(drop.begin(), drop.end(), list.ranges);
  // Guest RAM the child does not map is not copied into it at all (no page
  // tables copied, the VMM's pages not write-protected): MADV_DONTFORK for
  // the fork, then as it was. (Another thread of the VMM forking meanwhile
  // gets a child without that RAM, as QEMU's children always do.)
  std::vector<HostRange> undo;
  for (const HostRange& g : NUMAHEAP_FAULT(helper_keeps_private) ? std::span<const HostRange>{} : not_needed) {
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
  if (pid == 0) helper_main(sv[1], parent, list);
  for (const HostRange& u : undo) (void)::madvise(u.addr, u.bytes, MADV_DOFORK);
  (void)::munmap(list.mapping, list.mapping_bytes);
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    return {};
  }
  return MoveHelperProcess{pid, sv[0]};
}

}  // namespace numaheap::detail
