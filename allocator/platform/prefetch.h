// prefetch_for_write: asks for a cache line with the intent to write it.
//
// Why: free()'s compare-and-swap on a frame's descriptor is preceded by a
// plain load of it. When another CPU wrote the descriptor last (a frame
// freed on another CPU than the one that allocated it: a guest torn down
// elsewhere), that load fetches the line shared and the locked instruction
// must then fetch it again to own it: two trips to the other core. Asking
// for ownership first makes it one, and the request overlaps the work
// before the load. On a line this CPU already owns it costs one
// instruction.
#pragma once

namespace numaheap {

inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  // PREFETCHW (0F 0D /1) whatever -march says: AMD has it since K8, Intel
  // since Broadwell; earlier Intel cores execute it as a no-op. (GCC's
  // __builtin_prefetch(p, 1) gives PREFETCHT0, a shared fetch, without
  // -mprfchw.)
  __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace numaheap
