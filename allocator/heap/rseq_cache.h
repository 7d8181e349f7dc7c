// Lock-free per-CPU cache push/pop with restartable sequences (rseq).
//
// The per-CPU caches are guarded by their spin lock. On x86-64 Linux with
// glibc's rseq registration, the hot path skips the lock: a push or pop is
// a short sequence that the kernel restarts (jumps to its abort handler) if
// the thread is preempted, migrated or signalled before the final store
// that commits it. The sequence also checks that the cache is not locked,
// so lock holders (refill, drain, statistics, checks) still exclude it:
// a holder running on another CPU than the cache's first forces any
// sequence in flight on that CPU to restart with membarrier(RSEQ), see
// PageAllocator::Impl::lock_cache.
//
// Disabled (available() false) under ThreadSanitizer, which cannot see the
// asm stores, and wherever rseq or membarrier(RSEQ) is missing; the locked
// path is then the only one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/heap/per_cpu_cache.h"

// Only in the host library: the freestanding core has no glibc to register
// rseq areas (NUMAHEAP_HOSTED=0).
#if NUMAHEAP_HOSTED && defined(__x86_64__) && defined(__linux__) && __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#if defined(__SANITIZE_THREAD__)
#define NUMAHEAP_RSEQ 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NUMAHEAP_RSEQ 0
#endif
#endif
#ifndef NUMAHEAP_RSEQ
#define NUMAHEAP_RSEQ 1
#endif
#else
#define NUMAHEAP_RSEQ 0
#endif

namespace numaheap::rseq {

// True when this process can use the fast path (registers membarrier RSEQ).
bool init() noexcept;
// Forces sequences running on `cpu` to restart (after locking its caches).
void fence_cpu(std::uint32_t cpu) noexcept;

#if NUMAHEAP_RSEQ

inline struct rseq* area() noexcept {
  return reinterpret_cast<struct rseq*>(static_cast<char*>(__builtin_thread_pointer()) +
                                        __rseq_offset);
}
// glibc's __rseq_offset (the area's offset from the thread pointer, the
// same for every thread), copied by init(). The fast paths address the area
// as %fs:area_offset: one load of this (hidden, RIP-relative) variable
// instead of glibc's GOT entry, __rseq_offset and the thread pointer --
// two dependent loads fewer before the CPU id (docs/fast-path.md). 0 until
// init(): %fs:4 is then a word of the thread control block, which the
// callers only compare with a fast_cpus of 0.
// Written (always the same value) and read with relaxed atomics: create()
// may run on one thread while others allocate.
extern std::ptrdiff_t area_offset;
inline std::ptrdiff_t offset() noexcept { return __atomic_load_n(&area_offset, __ATOMIC_RELAXED); }

// The CPU this thread runs on now (only meaningful while rseq is
// registered). `area` is offset(): a caller that also pushes or pops after
// an atomic read-modify-write passes the value it read before it, so that
// the sequence does not wait for a reload of area_offset.
inline std::uint32_t cpu(std::ptrdiff_t area) noexcept {
  std::uint32_t id;
  asm volatile("movl %%fs:%c[off](%[base]), %[id]"
               : [id] "=r"(id)
               : [base] "r"(area), [off] "i"(offsetof(struct rseq, cpu_id)));
  return id;
}
inline std::uint32_t cpu() noexcept { return cpu(offset()); }

// Pops the top entry of `c`, the cache of CPU `expect_cpu`, into `out`
// (`area`: offset()).
// False when the thread is not on that CPU, the cache is locked or empty,
// or the sequence was aborted: the caller then takes the locked path.
// `asm goto`: the failures jump straight to the caller's branch, so no flag
// or sentinel is materialised and tested (docs/fast-path.md).
inline bool pop(std::ptrdiff_t area, CpuCache* c, std::uint32_t expect_cpu, CacheEntry& out) noexcept {
  CacheEntry e;
  asm goto(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "33:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, (2f - 1f), 4f\n\t"
      ".popsection\n\t"
      "leaq 33b(%%rip), %%rax\n\t"
      "movq %%rax, %%fs:%c[cs_off](%[rs])\n\t"
      "1:\n\t"
      "cmpl %[cpu], %%fs:%c[cpu_off](%[rs])\n\t"
      "jnz %l[fail]\n\t"
      "cmpb $0, %c[lock_off](%[c])\n\t"
      "jnz %l[fail]\n\t"
      "movl %c[count_off](%[c]), %%eax\n\t"
      "testl %%eax, %%eax\n\t"
      "jz %l[fail]\n\t"
      "subl $1, %%eax\n\t"
      "movq %c[entries_off](%[c]), %%rdx\n\t"
      "movq (%%rdx, %%rax, 8), %[out]\n\t"
      "movl %%eax, %c[count_off](%[c])\n\t"  // commit
      "2:\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"
      ".long 0x53053053\n\t"  // glibc's RSEQ_SIG, the 4 bytes before the abort ip
      "4:\n\t"
      "jmp %l[fail]\n\t"
      ".popsection\n\t"
      : [out] "=&r"(e)
      : [rs] "r"(area), [c] "r"(c), [cpu] "r"(expect_cpu),
        [cs_off] "i"(offsetof(struct rseq, rseq_cs)), [cpu_off] "i"(offsetof(struct rseq, cpu_id)),
        [lock_off] "i"(offsetof(CpuCache, lock)), [count_off] "i"(offsetof(CpuCache, count)),
        [entries_off] "i"(offsetof(CpuCache, entries))
      : "rax", "rdx", "memory", "cc"
      : fail);
  out = e;
  return true;
fail:
  return false;
}

// Pushes entry `e` on `c` (CPU `expect_cpu`'s cache; `area`: offset()). False when not on
// that CPU, locked, full or aborted.
inline bool push(std::ptrdiff_t area, CpuCache* c, std::uint32_t expect_cpu, CacheEntry e) noexcept {
  asm goto(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "33:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, (2f - 1f), 4f\n\t"
      ".popsection\n\t"
      "leaq 33b(%%rip), %%rax\n\t"
      "movq %%rax, %%fs:%c[cs_off](%[rs])\n\t"
      "1:\n\t"
      "cmpl %[cpu], %%fs:%c[cpu_off](%[rs])\n\t"
      "jnz %l[fail]\n\t"
      "cmpb $0, %c[lock_off](%[c])\n\t"
      "jnz %l[fail]\n\t"
      "movl %c[count_off](%[c]), %%eax\n\t"
      "cmpl %c[high_off](%[c]), %%eax\n\t"
      "jae %l[fail]\n\t"
      "movq %c[entries_off](%[c]), %%rdx\n\t"
      "movq %[e], (%%rdx, %%rax, 8)\n\t"
      "addl $1, %%eax\n\t"
      "movl %%eax, %c[count_off](%[c])\n\t"  // commit
      "2:\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      "jmp %l[fail]\n\t"
      ".popsection\n\t"
      :
      : [rs] "r"(area), [c] "r"(c), [cpu] "r"(expect_cpu), [e] "r"(e),
        [cs_off] "i"(offsetof(struct rseq, rseq_cs)), [cpu_off] "i"(offsetof(struct rseq, cpu_id)),
        [lock_off] "i"(offsetof(CpuCache, lock)), [count_off] "i"(offsetof(CpuCache, count)),
        [high_off] "i"(offsetof(CpuCache, high)), [entries_off] "i"(offsetof(CpuCache, entries))
      : "rax", "rdx", "memory", "cc"
      : fail);
  return true;
fail:
  return false;
}

#else
inline std::ptrdiff_t offset() noexcept { return 0; }
inline std::uint32_t cpu(std::ptrdiff_t) noexcept { return 0; }
inline std::uint32_t cpu() noexcept { return 0; }
inline bool pop(std::ptrdiff_t, CpuCache*, std::uint32_t, CacheEntry&) noexcept { return false; }
inline bool push(std::ptrdiff_t, CpuCache*, std::uint32_t, CacheEntry) noexcept { return false; }
#endif

}  // namespace numaheap::rseq
