/* numaheap: what the shared library exports.
 *
 * libnumaheap.so is built with -fvisibility=hidden: only what a public
 * header declares between NUMAHEAP_PUBLIC_BEGIN and NUMAHEAP_PUBLIC_END
 * (every header in include/numaheap/ wraps its declarations so) is
 * exported; the allocator's internals (NodeHeap, the frame table, the
 * migrator's tracking) stay inside the library. In the static libraries
 * and the freestanding core the markers change nothing.
 */
#ifndef NUMAHEAP_EXPORT_H
#define NUMAHEAP_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define NUMAHEAP_PUBLIC_BEGIN _Pragma("GCC visibility push(default)")
#define NUMAHEAP_PUBLIC_END _Pragma("GCC visibility pop")
/* A declaration inside a public header that is not part of the API (the
 * pimpl structs): nested classes would otherwise take their enclosing
 * class's visibility. */
#define NUMAHEAP_INTERNAL __attribute__((visibility("hidden")))
#else
#define NUMAHEAP_PUBLIC_BEGIN
#define NUMAHEAP_PUBLIC_END
#define NUMAHEAP_INTERNAL
#endif

#endif /* NUMAHEAP_EXPORT_H */
