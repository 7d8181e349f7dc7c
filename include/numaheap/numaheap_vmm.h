/* numaheap: guest RAM of a KVM-style VMM and its userfaultfd access sampler,
 * C API (C11 and C++). Host library (libnumaheap.a) only.
 *
 * A VMM registers its guest RAM mappings (host address, length,
 * guest-physical base, backing) and its vNUMA layout; numaheap binds every
 * vnode's range to its node(s), populates it and moves its pages with
 * move_pages(2) for the migrator (numaheap_migrator_add_vmm_ram). The
 * sampler turns userfaultfd faults on that RAM into access samples: minor
 * faults on memfd RAM (reads and writes), write-protect faults on anonymous
 * RAM (writes only), within a pages-per-second budget. Semantics, errors and
 * threading as the C++ GuestRam / UffdSampler (numaheap/vmm.h). Error codes
 * are numaheap.h's NUMAHEAP_E_*; functions taking err/err_len write a
 * message naming the offending range there.
 */
#ifndef NUMAHEAP_NUMAHEAP_VMM_H
#define NUMAHEAP_NUMAHEAP_VMM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_migrate.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

enum numaheap_ram_backing {
  NUMAHEAP_RAM_ANONYMOUS = 0,
  NUMAHEAP_RAM_MEMFD = 1,
  NUMAHEAP_RAM_HUGETLB = 2 /* 2 MiB pages; not sampled */
};

typedef struct numaheap_ram_region {
  void* host;          /* the VMM's mapping (4 KiB aligned; 2 MiB for hugetlb) */
  uint64_t bytes;      /* multiple of the page size */
  uint64_t guest_phys; /* guest-physical base, aligned as host */
  int backing;         /* numaheap_ram_backing */
  int shared;          /* also mapped elsewhere (memfd mapped twice): moves use MPOL_MF_MOVE_ALL */
} numaheap_ram_region;

typedef struct numaheap_vnode_ram {
  uint32_t vnode;
  uint64_t guest_phys, bytes;    /* inside registered regions, 4 KiB aligned */
  numaheap_nodemask nodes;       /* placed node(s): split in contiguous 2 MiB-granule parts */
} numaheap_vnode_ram;

typedef struct numaheap_vmm_ram_options {
  int no_bind;           /* nonzero: leave the memory policy alone */
  int no_populate;       /* nonzero: do not fault the pages in */
  int populate_by_touch; /* TESTS ONLY: as without MADV_POPULATE_WRITE */
  int no_move_helper;    /* nonzero: fork no move helper for shared memfd RAM */
  int trust_mappings;    /* nonzero: without a readable /proc/self/maps, take the mappings as right */
} numaheap_vmm_ram_options;

typedef struct numaheap_vmm_ram numaheap_vmm_ram;

typedef struct numaheap_vmm_ram_stats {
  uint64_t pages, populated_madvise, populated_touch, moves, pages_moved, moves_all;
  uint64_t moves_via_helper; /* shared memfd RAM moved through the move helper process */
  uint64_t moves_grouped;    /* move_each calls whose huge blocks moved together */
  uint64_t helper_refusals;  /* moves the helper could not map for: went from the VMM's mapping */
  uint32_t helper_last_errno; /* errno of the last such refusal (0: none) */
} numaheap_vmm_ram_stats;

/* The topology and the mappings must outlive the handle. options may be
 * NULL. Bad input: an error, nothing bound or populated -- also a region not
 * mapped read-write, or a NUMAHEAP_RAM_MEMFD region that is not MAP_SHARED
 * (dropping a private mapping's page-table entries would lose its data). */
int numaheap_vmm_ram_create(const numaheap_topology* t, const numaheap_ram_region* regions, size_t region_count,
                              const numaheap_vnode_ram* vnodes, size_t vnode_count,
                              const numaheap_vmm_ram_options* options, numaheap_vmm_ram** out, char* err,
                              size_t err_len);
/* Remove it from its migrator and destroy its sampler first. */
void numaheap_vmm_ram_destroy(numaheap_vmm_ram* r);
/* Guest frames covered (end of the highest region / 4096). */
uint64_t numaheap_vmm_ram_pages(const numaheap_vmm_ram* r);
/* Host address of guest frame gfn, NULL in a hole or past the last frame. */
void* numaheap_vmm_ram_host_address(const numaheap_vmm_ram* r, uint64_t gfn);
int numaheap_vmm_ram_gfn_of(const numaheap_vmm_ram* r, const void* host, uint64_t* gfn);
/* query, move and move_each take the handle's lock: callable from any
 * thread, also while r is registered with a migrator that steps (it makes
 * the same calls); one waits for the other. */
/* Where pages are, by the kernel's move_pages query (holes: not present).
 * [first_gfn, first_gfn + count) past the last frame: INVALID_ARGUMENT and
 * nothing written. */
int numaheap_vmm_ram_query(numaheap_vmm_ram* r, uint64_t first_gfn, size_t count, numaheap_page_state* out);
/* move_pages to target, one numaheap_move_outcome per gfn (frames past the
 * last: not present). Page by page (GuestRam::move with
 * MoveGranularity::pages); to move huge blocks whole, pass one request with
 * whole_blocks set to numaheap_vmm_ram_move_each. */
int numaheap_vmm_ram_move(numaheap_vmm_ram* r, const uint64_t* gfns, size_t count, uint32_t target,
                            uint8_t* outcomes, uint64_t* frames_moved);
/* One move of several for numaheap_vmm_ram_move_each. */
typedef struct numaheap_vmm_move_request {
  const uint64_t* gfns;
  size_t count;
  uint32_t target;
  int whole_blocks;       /* nonzero: each listed page's huge block moves whole */
  uint8_t* outcomes;      /* count numaheap_move_outcome */
  int result;             /* out: NUMAHEAP_OK or this request's error */
  uint64_t frames_moved;  /* out */
} numaheap_vmm_move_request;
/* Several moves in one call, each to its own target (GuestRam::move_each:
 * the huge blocks of all of them move with one move_pages call per 16).
 * Returns an error only for r or requests missing; each request's own
 * error (bad pointers, unknown node, refused) is in its result. */
int numaheap_vmm_ram_move_each(numaheap_vmm_ram* r, numaheap_vmm_move_request* requests, size_t count);
/* The kernel's free / total 4 KiB frames of node (the watermark's input). */
int numaheap_vmm_ram_node_frames(const numaheap_vmm_ram* r, uint32_t node, uint64_t* free_frames,
                                   uint64_t* total_frames);
/* Layout: fills up to cap (gfn first, pages, pnode, vnode) and returns how
 * many parts there are. Safe from any thread, also while a rehome
 * (numaheap_migrator_rehome) changes it: one consistent layout. */
typedef struct numaheap_ram_part {
  uint64_t first, pages;
  uint32_t pnode, vnode;
} numaheap_ram_part;
size_t numaheap_vmm_ram_layout(const numaheap_vmm_ram* r, numaheap_ram_part* out, size_t cap);
int numaheap_vmm_ram_get_stats(const numaheap_vmm_ram* r, numaheap_vmm_ram_stats* out);
/* Registers the RAM with the migrator (layout from the vnodes). options may
 * be NULL (no vCPUs, follow accesses); options->allowed as for mappings. */
int numaheap_migrator_add_vmm_ram(numaheap_migrator* m, numaheap_vmm_ram* r,
                                    const numaheap_migrate_guest_options* options, uint32_t* guest_id);

/* ---- the sampler ---- */
enum numaheap_sample_cpu_source {
  NUMAHEAP_SAMPLE_THREAD_CPU = 0,  /* CPU of the faulting thread (/proc/self/task/TID/stat) */
  NUMAHEAP_SAMPLE_VCPU_THREADS = 1 /* registered / "CPU n/KVM" threads give vCPU samples */
};
typedef struct numaheap_sampler_config {
  uint32_t pages_per_second; /* budget (default 4096); 0: windows only on scan */
  uint32_t window_pages;     /* default 256 */
  int cpu_source;            /* numaheap_sample_cpu_source */
  double max_handler_share;  /* adaptive budget: the handler's busy + run-queue wait share of a CPU to stay under, (0, 1]; default 0.05 */
  int follow_advice;         /* 1 (default): scale the budget by the migrator's sample share */
  uint32_t burst_pages;      /* vcpu_moved: pages windowed at once, at most (default 65536) */
} numaheap_sampler_config;
typedef struct numaheap_sampler_stats {
  uint64_t samples, minor_samples, wp_samples, windows, pages_windowed, ns_handling;
  double ns_per_sample;
  uint64_t resolve_retries, errors;
  uint64_t pages_armed; /* unmapped / write-protected now, awaiting their first access */
  uint64_t resolve_calls, bursts, pages_burst;
  double budget_pages_per_second, handler_share;
  uint64_t blocks_windowed; /* huge 2 MiB blocks armed whole (one sample each) */
  uint64_t steps_requested; /* early migrator steps asked for by moved vCPUs' samples */
  uint64_t arm_calls;       /* zaps / protection changes that armed windows (one per run of adjacent pages) */
  uint64_t sheds, pages_shed; /* open windows closed because the handler was overloaded; their pages */
  uint64_t follow_extensions; /* moved vCPUs followed on for 2 s more: the migrator was still moving pages */
  uint64_t regions_locked;    /* memfd regions no longer windowed: mlocked (MADV_DONTNEED refused) */
  uint64_t faults_outside_windows; /* faults on pages no window armed: resolved, not samples */
  uint64_t vcpu_unknown_samples;   /* vcpu_threads: a vCPU id past the migrator's slots, recorded by CPU */
  uint64_t pages_locked;           /* memfd pages not windowed because mlocked (whole 2 MiB blocks) */
} numaheap_sampler_stats;
typedef struct numaheap_sampler numaheap_sampler;

void numaheap_sampler_config_init(numaheap_sampler_config* c);
/* r and m must outlive the sampler; guest_id is r's id in m (an id m does
 * not have: INVALID_ARGUMENT). */
int numaheap_sampler_create(numaheap_vmm_ram* r, numaheap_migrator* m, uint32_t guest_id,
                            const numaheap_sampler_config* c /* NULL: defaults */, numaheap_sampler** out,
                            char* err, size_t err_len);
void numaheap_sampler_destroy(numaheap_sampler* s); /* stops it */
int numaheap_sampler_set_vcpu_thread(numaheap_sampler* s, uint32_t vcpu, pid_t tid);
int numaheap_sampler_start(numaheap_sampler* s);
/* Returns with every page mapped and writable. */
void numaheap_sampler_stop(numaheap_sampler* s);
int numaheap_sampler_running(const numaheap_sampler* s);
int numaheap_sampler_scan(numaheap_sampler* s, uint64_t first_gfn, uint64_t pages);
/* vCPU vcpu now runs on another node (after numaheap_migrator_set_vcpu_cpu):
 * windows at once over the chunks it was sampled in lately (vmm.h). */
int numaheap_sampler_vcpu_moved(numaheap_sampler* s, uint32_t vcpu);
/* Maps back / unprotects every page still awaiting its first access. */
void numaheap_sampler_close_window(numaheap_sampler* s);
int numaheap_sampler_get_stats(const numaheap_sampler* s, numaheap_sampler_stats* out);
/* Samples taken from vCPU vcpu so far (0 for vcpu >= 1024). */
uint64_t numaheap_sampler_vcpu_samples(const numaheap_sampler* s, uint32_t vcpu);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_VMM_H */
