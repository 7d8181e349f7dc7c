// prefetch_for_write: asks for a cache line with the intent to write it.
//
// Why: free_bulk takes each frame with a compare-and-swap of its
// descriptor, preceded by a plain load of it. When another CPU wrote the
// descriptor last (a frame freed on another CPU than the one that
// allocated it: a guest torn down elsewhere), that load fetches the line
// shared and the locked instruction must then fetch it again to own it,
// and being a full barrier it keeps the next frame's fetch from starting.
// Asking for ownership of a batch's lines first makes the fetches overlap.
// On a line this CPU already owns it costs one instruction. free() does
// not use it: there it cost every same-CPU pair 0.4 ns (docs/fast-path.md).
#pragma once

namespace numaheap {

inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  // PREFETCHW (0F 0D /1) whatever -march says: AMD has it since K8, Intel
  // reports it since Broadwell; earlier Intel cores are documented to take
  // 0F 0D as a hint that does nothing (not tested here: this host is
  // AMD). GCC's __builtin_prefetch(p, 1) gives PREFETCHT0, a shared fetch,
  // without -mprfchw.
  __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace numaheap
