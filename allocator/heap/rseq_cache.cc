// rseq availability and the cross-CPU fence (membarrier RSEQ).
#include "allocator/heap/rseq_cache.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace numaheap::rseq {

static_assert(sizeof(bool) == 1, "the sequences test the lock as a byte");

#if NUMAHEAP_RSEQ
std::ptrdiff_t area_offset = 0;
#endif

bool init() noexcept {
#if NUMAHEAP_RSEQ
  __atomic_store_n(&area_offset, __rseq_offset, __ATOMIC_RELAXED);
  // glibc registered rseq for this thread (and does for every new one).
  if (__rseq_size < 8 || static_cast<int>(area()->cpu_id) < 0) return false;
  const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)) return false;
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0;
#else
  return false;
#endif
}

void fence_cpu(std::uint32_t cpu) noexcept {
#if NUMAHEAP_RSEQ
  auto fence = [cpu]() {
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU,
                static_cast<int>(cpu)) == 0)
      return true;
    // Kernels without the targeted form: fence every CPU of the process.
    return syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0;
  };
  if (fence()) return;
  // A forked child starts unregistered: register and fence again. Without
  // a fence a sequence could commit under a lock holder, so a failure here
  // is fatal (it cannot happen once init() succeeded in this process).
  (void)syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0);
  if (!fence()) __builtin_trap();
#else
  (void)cpu;
#endif
}

}  // namespace numaheap::rseq
