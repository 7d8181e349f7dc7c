/* numaheap: the platform contract -- everything the hypervisor core needs
 * from the world around it, in one header (C and C++).
 *
 * The core (libnumaheap_core.a: topology, heap, guest memory, sharing, cold
 * store, the migrator's tracking, policy, step() and frame-swap mover) is
 * freestanding. It calls no C++ runtime (no operator new/delete, no
 * __cxa_*, no std::__throw_*), no malloc/free, no mmap, no pthread, and makes
 * no system call. The only symbols it references from outside itself are
 * listed in NUMAHEAP_CONTRACT_SYMBOLS below; everything else comes through
 * hooks the embedder supplies at run time:
 *   - metadata memory: numaheap_metadata_hooks (below), either the
 *     embedder's own allocator or one region handed over at start-up
 *     (numaheap_region_init), as snmalloc's fixed-region mode does;
 *   - frames: scrub, copy, current CPU and relax hooks (numaheap.h,
 *     numaheap_hooks; C++: PlatformHooks);
 *   - guest page tables: the frame-swap mover's write-protect, flush,
 *     dirtied and remap hooks (numaheap_migrate.h);
 *   - time and threads: the core has none; the embedder calls step().
 * Locks are the core's own spin locks; a long wait calls the relax hook.
 *
 * CI lists the core archive's undefined symbols (nm -u) and fails on any
 * name that is not in NUMAHEAP_CONTRACT_SYMBOLS (or the linker-made
 * NUMAHEAP_CONTRACT_LINKER_SYMBOLS). Release builds: debug builds' assert()
 * adds the C library's __assert_fail.
 */
#ifndef NUMAHEAP_PLATFORM_CONTRACT_H
#define NUMAHEAP_PLATFORM_CONTRACT_H

#include <stddef.h>
#include <stdint.h>
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

/* The only external symbols the core archive may reference: the C
 * library's memory functions (a hypervisor has its own; the compiler may
 * also emit calls to them for struct copies). Space-separated. */
#define NUMAHEAP_CONTRACT_SYMBOLS "memcpy memset memmove memcmp"
/* Made by the linker itself, not a library: position-independent code
 * names the GOT (the archive is built -fPIC so it can go into shared
 * objects too). */
#define NUMAHEAP_CONTRACT_LINKER_SYMBOLS "_GLOBAL_OFFSET_TABLE_"

/* Metadata memory (frame table, p2m, tracking, hash tables, handles).
 *  alloc: `bytes` aligned to `align` (a power of two, at most 4096), on
 *         host node `node` where the embedder can (node is a hint;
 *         NUMAHEAP_ANY_NODE means no preference). The memory must read as
 *         zero. Returns NULL when there is none: the core then fails the
 *         call with "no memory" and changes nothing; it never crashes.
 *  release: gives back what alloc returned, with the same `bytes`.
 * Both may be called from any CPU, concurrently, but never with a core
 * lock held on a hot path. */
#define NUMAHEAP_ANY_NODE 0xffffffffu
typedef struct numaheap_metadata_hooks {
  void* ctx;
  void* (*alloc)(void* ctx, size_t bytes, size_t align, uint32_t node);
  void (*release)(void* ctx, void* p, size_t bytes);
} numaheap_metadata_hooks;

/* The hooks used where no call names its own (topology builders, guest
 * specs, the C API's handles, and platforms created without hooks).
 * Freestanding core: none until the embedder sets them (allocations fail
 * with "no memory"). Host library: malloc, or mmap for large tables.
 * `hooks` must stay valid while anything allocated through it lives;
 * NULL restores the build's default. Not synchronised: set once, at start-up,
 * before any other call. */
void numaheap_set_default_metadata(const numaheap_metadata_hooks* hooks);
const numaheap_metadata_hooks* numaheap_default_metadata(void);

/* Fixed-region mode: all metadata carved from one region the embedder
 * reserved (for example at boot, before it has an allocator). The
 * region's first bytes hold the allocator's state. First fit over an
 * address-ordered free list with coalescing; thread safe (a spin lock).
 * `zeroed` says the region already reads as zero (fresh boot memory);
 * otherwise what it hands out is zeroed on allocation. Returns 0, or -1 when
 * the region is too small or misaligned (needs 4096-byte alignment and at
 * least 64 KiB). `out` then allocates from the region (node is ignored). */
int numaheap_region_init(void* base, size_t bytes, int zeroed, numaheap_metadata_hooks* out);
/* Bytes in use and the largest free block, for an embedder's statistics. */
size_t numaheap_region_used(const numaheap_metadata_hooks* region_hooks);
size_t numaheap_region_largest_free(const numaheap_metadata_hooks* region_hooks);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_PLATFORM_CONTRACT_H */
