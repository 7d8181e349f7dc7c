/* numaheap: the C API (C11 and C++).
 *
 * Opaque handles, integer error codes, no exceptions across the boundary.
 * Every function returns NUMAHEAP_OK (0) or a NUMAHEAP_E_* code, whose
 * numbers equal numaheap::Errc's; functions that can explain a failure in
 * words take an optional (err, err_len) buffer (NUL-terminated, truncated).
 * Thread safety: as the C++ PageAllocator -- every allocator call may run
 * concurrently; topology handles are immutable once built; a builder is
 * used by one thread at a time.
 */
#ifndef NUMAHEAP_NUMAHEAP_H
#define NUMAHEAP_NUMAHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/platform_contract.h"
#include "numaheap/version.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

enum numaheap_error {
  NUMAHEAP_OK = 0,
  NUMAHEAP_E_NO_MEMORY = 1,
  NUMAHEAP_E_INVALID_NODE = 2,
  NUMAHEAP_E_INVALID_ORDER = 3,
  NUMAHEAP_E_INVALID_FRAME = 4,
  NUMAHEAP_E_DOUBLE_FREE = 5,
  NUMAHEAP_E_NOT_OWNER = 6,
  NUMAHEAP_E_CLAIM_EXCEEDED = 7,
  NUMAHEAP_E_BUSY = 8,
  NUMAHEAP_E_PINNED = 9,
  NUMAHEAP_E_SHARED = 10,
  NUMAHEAP_E_INVALID_ARGUMENT = 11,
  NUMAHEAP_E_PARSE_ERROR = 12,
  NUMAHEAP_E_IO_ERROR = 13,
  NUMAHEAP_E_NOT_PRESENT = 14,
  NUMAHEAP_E_UNSUPPORTED = 15
};

#define NUMAHEAP_NO_NODE 0xffffffffu        /* "calling CPU's node" / "global" */
#define NUMAHEAP_INVALID_MFN UINT64_MAX
#define NUMAHEAP_MAX_ORDER 18u
#define NUMAHEAP_MAX_OWNER 0xfffffffdu
#define NUMAHEAP_MAX_NODES 1024u

/* Allocation flags. */
#define NUMAHEAP_ALLOC_EXACT_NODE 0x1u /* that node or NUMAHEAP_E_NO_MEMORY */
#define NUMAHEAP_ALLOC_NO_SCRUB 0x2u   /* skip scrubbing the owner's own bytes */
#define NUMAHEAP_ALLOC_USE_CLAIM 0x4u  /* consume the owner's claim first */

enum numaheap_memory_mode { NUMAHEAP_FRAME_ONLY = 0, NUMAHEAP_HOST_MEMORY = 1 };

typedef struct numaheap_topology numaheap_topology;
typedef struct numaheap_topology_builder numaheap_topology_builder;
typedef struct numaheap_heap numaheap_heap;

/* A set of node ids 0..1023. */
typedef struct numaheap_nodemask {
  uint64_t bits[NUMAHEAP_MAX_NODES / 64];
} numaheap_nodemask;

static inline void numaheap_nodemask_set(numaheap_nodemask* m, uint32_t node) {
  if (node < NUMAHEAP_MAX_NODES) m->bits[node / 64] |= UINT64_C(1) << (node % 64);
}

/* The library's version as "major.minor.patch" (the headers' is
 * NUMAHEAP_VERSION_STRING in numaheap/version.h): a program linked with the
 * shared library can check it runs with the one it was built for. */
const char* numaheap_version(void);

/* ---- Topology ---- */
const char* numaheap_strerror(int error);

numaheap_topology_builder* numaheap_topology_builder_new(void);
void numaheap_topology_builder_free(numaheap_topology_builder* b);
int numaheap_topology_builder_add_node(numaheap_topology_builder* b, uint32_t node,
                                       const uint32_t* cpus, size_t cpu_count,
                                       uint64_t memory_bytes);
int numaheap_topology_builder_set_distance(numaheap_topology_builder* b, uint32_t from,
                                           uint32_t to, uint32_t distance);
/* Adds a frame range to a node (all ranges of all nodes, or none, given). */
int numaheap_topology_builder_add_frames(numaheap_topology_builder* b, uint32_t node,
                                         uint64_t first_mfn, uint64_t count);
int numaheap_topology_builder_build(const numaheap_topology_builder* b, numaheap_topology** out,
                                    char* err, size_t err_len);

/* As numaheap_topology_builder_add_node, with the node's free memory
 * (UINT64_MAX: unknown). */
int numaheap_topology_builder_add_node_ex(numaheap_topology_builder* b, uint32_t node,
                                          const uint32_t* cpus, size_t cpu_count,
                                          uint64_t memory_bytes, uint64_t free_bytes);
/* A whole SLIT row: distance from `from` to the i-th node added (in the
 * order of add_node calls). */
int numaheap_topology_builder_set_distance_row(numaheap_topology_builder* b, uint32_t from,
                                               const uint32_t* row, size_t count);

/* Host library only (libnumaheap.a, not libnumaheap_core.a): loaders. */
/* From the text `numactl -H` prints. */
int numaheap_topology_parse_numactl(const char* text, size_t len, numaheap_topology** out,
                                    char* err, size_t err_len);
/* The built-in 4-node default machine. */
int numaheap_topology_builtin(numaheap_topology** out);
/* This machine (libnuma), or a sysfs tree rooted at `root` (e.g.
 * "/sys/devices/system/node" copied elsewhere). */
int numaheap_topology_load_libnuma(numaheap_topology** out, char* err, size_t err_len);
int numaheap_topology_load_sysfs(const char* root, numaheap_topology** out, char* err,
                                 size_t err_len);
/* Renders what `numactl -H` would print; returns the length (the text is
 * cut to fit `cap` bytes, NUL-terminated), 0 on bad arguments. */
size_t numaheap_topology_render_numactl(const numaheap_topology* t, char* out, size_t cap);

void numaheap_topology_free(numaheap_topology* t);

/* ---- Topology queries (immutable handle: any thread) ---- */
size_t numaheap_topology_node_count(const numaheap_topology* t);
/* NUMAHEAP_NO_NODE for an index out of range. */
uint32_t numaheap_topology_node_id(const numaheap_topology* t, size_t index);
int numaheap_topology_has_node(const numaheap_topology* t, uint32_t node);
/* Effective distance (missing: 10 local / 20 remote); 0 for unknown nodes. */
uint32_t numaheap_topology_distance(const numaheap_topology* t, uint32_t from, uint32_t to);
/* As given to the builder or loader; 0 when not given. */
uint32_t numaheap_topology_raw_distance(const numaheap_topology* t, uint32_t from, uint32_t to);
/* The node's CPUs (ascending): writes up to `max`, returns how many the node
 * has (0 for an unknown node). */
size_t numaheap_topology_node_cpus(const numaheap_topology* t, uint32_t node, uint32_t* cpus,
                                   size_t max);
/* NUMAHEAP_NO_NODE for a CPU no node lists. */
uint32_t numaheap_topology_node_of_cpu(const numaheap_topology* t, uint32_t cpu);
/* Highest listed CPU id + 1 (0: none). */
uint32_t numaheap_topology_max_cpu(const numaheap_topology* t);
/* Memory nodes by distance from `node` (itself first when it has memory),
 * ties spread: writes up to `max`, returns how many there are. */
size_t numaheap_topology_fallback_order(const numaheap_topology* t, uint32_t node, uint32_t* out,
                                        size_t max);
/* Bytes of memory (total and free; UINT64_MAX: unknown). Either pointer may
 * be NULL. NUMAHEAP_E_INVALID_NODE for an unknown node. */
int numaheap_topology_node_memory(const numaheap_topology* t, uint32_t node, uint64_t* total,
                                  uint64_t* free_bytes);
typedef struct numaheap_frame_range {
  uint64_t first_mfn, count;
} numaheap_frame_range;
/* The node's frame ranges: writes up to `max`, returns how many. */
size_t numaheap_topology_node_frames(const numaheap_topology* t, uint32_t node,
                                     numaheap_frame_range* out, size_t max);
uint64_t numaheap_topology_total_frames(const numaheap_topology* t);
/* NUMAHEAP_NO_NODE for a frame outside every node's ranges. */
uint32_t numaheap_topology_node_of_mfn(const numaheap_topology* t, uint64_t mfn);
/* Node sets: every node, nodes with memory, nodes with CPUs. */
int numaheap_topology_nodes(const numaheap_topology* t, numaheap_nodemask* all,
                            numaheap_nodemask* memory, numaheap_nodemask* cpus);
/* 1 when the SLIT (distance table) was given, else 0. */
int numaheap_topology_distances_given(const numaheap_topology* t);

/* ---- Allocator ---- */
typedef struct numaheap_hooks {
  void* ctx;
  void (*scrub)(void* ctx, uint64_t first_mfn, uint64_t count);
  void (*copy)(void* ctx, uint64_t dst_mfn, uint64_t src_mfn);
  uint32_t (*current_cpu)(void* ctx);
  /* One turn of a spin-wait, maybe with an allocator lock held; must not
     call into numaheap. NULL: the CPU's pause hint. */
  void (*relax)(void* ctx);
} numaheap_hooks;

typedef struct numaheap_config {
  int mode;               /* enum numaheap_memory_mode */
  int require_bind;       /* host memory: fail when mbind fails */
  int boot_memory_dirty;  /* contents at start-up unknown: scrub before use */
  numaheap_hooks hooks;
  uint32_t pcp_batch, pcp_high, pcp9_batch, pcp9_high, max_claims, cpus;
  /* Where the heap's metadata (frame table, caches) comes from; NULL: the
   * default hooks (platform_contract.h). Must outlive the heap. */
  const numaheap_metadata_hooks* metadata;
} numaheap_config;

/* Fills the defaults (frame-only, the C++ HeapConfig defaults). */
void numaheap_config_init(numaheap_config* c);

/* Errors as PageAllocator::create: NUMAHEAP_E_INVALID_ARGUMENT for a node's frame range
 * reaching frame 2^40 (a per-CPU cache entry holds 40 bits of frame number). */
int numaheap_create(const numaheap_topology* t, const numaheap_config* c /* NULL: defaults */,
                    numaheap_heap** out, char* err, size_t err_len);
void numaheap_destroy(numaheap_heap* h);

typedef struct numaheap_alloc_request {
  uint32_t order;
  uint32_t node;  /* NUMAHEAP_NO_NODE: the calling CPU's node */
  uint32_t flags; /* NUMAHEAP_ALLOC_* */
  uint32_t owner;
  const numaheap_nodemask* exclude; /* NULL: none */
} numaheap_alloc_request;

int numaheap_alloc(numaheap_heap* h, const numaheap_alloc_request* req, uint64_t* mfn,
                   uint32_t* node /* may be NULL */);
int numaheap_free(numaheap_heap* h, uint64_t mfn, uint32_t order, uint32_t owner);
/* `count` 4 KiB frames at once (req->order must be 0), each as
 * numaheap_alloc would hand it out, all or nothing; frames of a request
 * that may fall back come from the preferred node first. Up to a per-CPU
 * cache's worth (pcp_high) for the calling CPU's node comes from that
 * CPU's cache; larger requests are carved from the heap in ascending runs
 * (PageAllocator::alloc_bulk). */
int numaheap_alloc_bulk(numaheap_heap* h, const numaheap_alloc_request* req, uint64_t* mfns,
                        size_t count);
/* Frees `count` order-0 blocks of `owner`; every frame is checked first
 * and on any error none is freed. Up to a per-CPU cache's worth goes to
 * the calling CPU's caches when it fits there, else back to the heap. */
int numaheap_free_bulk(numaheap_heap* h, const uint64_t* mfns, size_t count, uint32_t owner);

/* Splits the allocated block at head `mfn` of `order` into 4 KiB blocks of
 * the same owner (free them one by one afterwards). */
int numaheap_split(numaheap_heap* h, uint64_t mfn, uint32_t order, uint32_t owner);

/* Reserves `pages` for `owner` on `node` (NUMAHEAP_NO_NODE: anywhere, a
 * global claim), as Xen's outstanding claims but also per node. */
int numaheap_claim(numaheap_heap* h, uint32_t owner, uint64_t pages, uint32_t node);
int numaheap_release_owner(numaheap_heap* h, uint32_t owner);
/* Holds the owner's claims aside (reserved, not consumed) until
 * numaheap_restore_claims, which drops the claims made in between and
 * brings the held ones back (PageAllocator::set_claims_aside). */
int numaheap_set_claims_aside(numaheap_heap* h, uint32_t owner);
int numaheap_restore_claims(numaheap_heap* h, uint32_t owner);
uint64_t numaheap_claimed(const numaheap_heap* h, uint32_t owner);
/* The owner's claim on one node (NUMAHEAP_NO_NODE: its global claim). */
uint64_t numaheap_claimed_on(const numaheap_heap* h, uint32_t owner, uint32_t node);
/* Pages reserved by all global (node-less) claims. */
uint64_t numaheap_global_claimed(const numaheap_heap* h);

/* *pending = 0: retired now; 1: retired when its block is freed. */
int numaheap_offline(numaheap_heap* h, uint64_t mfn, int* pending);
/* Grows whenever a frame is marked pending offline (or retired at once). */
uint64_t numaheap_offline_events(const numaheap_heap* h);
/* 1 when the allocated block of `order` at head `mfn` holds a frame
 * pending offline, else 0. */
int numaheap_offline_pending(const numaheap_heap* h, uint64_t mfn, unsigned order);
uint64_t numaheap_scrub_some(numaheap_heap* h, uint32_t node, uint64_t budget);
void numaheap_drain_all(numaheap_heap* h);
/* Returns one node's per-CPU cached frames to its buddy heap. */
void numaheap_drain_node(numaheap_heap* h, uint32_t node);
/* Called when a node runs short: free up to `pages` frames on `node` (e.g.
 * drop ephemeral cold-store pages) and return how many were freed. Runs
 * without allocator locks held. fn NULL removes the hook. */
typedef uint64_t (*numaheap_reclaim_fn)(void* ctx, uint32_t node, uint64_t pages);
int numaheap_set_reclaim_hook(numaheap_heap* h, numaheap_reclaim_fn fn, void* ctx);

typedef struct numaheap_node_stats {
  uint32_t node;
  int32_t largest_free_order; /* -1: nothing free */
  uint64_t managed, free, cached, used, dirty, claimed, offlined, pending_offline;
  uint64_t free_blocks[NUMAHEAP_MAX_ORDER + 1];
  uint64_t dirty_blocks[NUMAHEAP_MAX_ORDER + 1];
} numaheap_node_stats;

int numaheap_stats(const numaheap_heap* h, uint32_t node, numaheap_node_stats* out);
/* Internal consistency; full != 0 also walks every frame descriptor. */
int numaheap_check(const numaheap_heap* h, int full);
/* The node a frame belongs to (NUMAHEAP_NO_NODE: not managed). */
uint32_t numaheap_node_of(const numaheap_heap* h, uint64_t mfn);
/* Metadata bytes per managed 4 KiB frame (frame table, per-node state). */
double numaheap_metadata_bytes_per_frame(const numaheap_heap* h);
/* 1 when per-CPU caches run lock-free (restartable sequences), else 0. */
int numaheap_lockless_cpu_caches(const numaheap_heap* h);
/* Host-memory mode: the frame's bytes; NULL otherwise. */
void* numaheap_frame_address(const numaheap_heap* h, uint64_t mfn);
/* The allocated block whose head is `mfn`: its order and owner (either
 * pointer may be NULL). NUMAHEAP_E_INVALID_FRAME when `mfn` is not the head
 * of an allocated block. */
int numaheap_allocated_block(const numaheap_heap* h, uint64_t mfn, uint32_t* order, uint32_t* owner);
/* 4 KiB frames allocated to `owner` (walks every block: slow). */
uint64_t numaheap_frames_owned_by(const numaheap_heap* h, uint32_t owner);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_H */
