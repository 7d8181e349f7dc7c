/* numaheap: the migrator's C API (C11 and C++).
 *
 * Two kinds of guests:
 *  - frame-only (core, libnumaheap_core.a): a numaheap_guest whose pages
 *    the frame-swap mover moves between frames of the heap through hooks
 *    the hypervisor supplies (write-protect, flush, dirtied, unprotect,
 *    copy) -- numaheap_frame_mover_create, numaheap_migrator_add_frame_guest;
 *  - VMM mappings (host library only): guest RAM is a host mapping moved by
 *    the kernel (move_pages(2)) -- numaheap_migrator_add_mapping.
 * Then feed access samples and vCPU placement, run the migrator (explicit
 * steps from the hypervisor's timer, or a background thread in the host
 * library), bind vnodes, rehome a guest to other nodes, read stats. Error
 * codes are numaheap.h's NUMAHEAP_E_* (equal to numaheap::Errc).
 * Thread safety: as the C++ Migrator -- the record/set calls are lock-free
 * and callable from any thread; the rest serialise internally.
 */
#ifndef NUMAHEAP_NUMAHEAP_MIGRATE_H
#define NUMAHEAP_NUMAHEAP_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_migrator numaheap_migrator;

#define NUMAHEAP_ALL_VNODES 0xffffffffu

typedef struct numaheap_migrator_config {
  uint32_t period_ms;           /* background step period (> 0) */
  uint64_t scan_pages;          /* pages examined per guest per step */
  uint32_t decay_steps;         /* access history ages every N steps */
  double rate_limit_mb_s;       /* per destination node; 0 = unlimited */
  uint64_t watermark_pages;     /* destination keeps max(pages, min(fraction, max_pages)) free */
  double watermark_fraction;
  uint32_t max_guests;
  uint64_t rehome_pages_per_step;
  uint32_t backoff_max_steps;   /* cap of the per-node exponential backoff */
  uint32_t rehome_max_passes;   /* passes retrying busy / no_memory pages */
  /* Adaptive rate limit (MigratorConfig): the node's spare memory bandwidth
   * in MB/s now, negative = unknown; called from step with the migrator's
   * lock held (must not call the migrator). NULL: the fixed rate. A
   * destination may take max(rate_limit_mb_s, share * spare) per second. */
  double (*spare_bandwidth_mb_s)(void* ctx, uint32_t node);
  void* spare_bandwidth_ctx;
  double spare_bandwidth_share; /* 0..1 */
  double min_sample_share;      /* floor of the sampling advice, (0, 1] */
  int quick_moves;              /* nonzero: first sample ever / clean switch moves at once */
  uint64_t watermark_max_pages; /* cap of the fraction's share (watermark_pages still applies) */
  int keep_huge_pages;          /* nonzero: 2 MiB blocks move whole, split only when truly shared, coalesce */
} numaheap_migrator_config;

/* Outcomes, as move_pages(2) statuses (index into stats.outcomes). */
enum numaheap_move_outcome {
  NUMAHEAP_MOVED = 0,
  NUMAHEAP_MOVE_BUSY = 1,
  NUMAHEAP_MOVE_NO_MEMORY = 2,
  NUMAHEAP_MOVE_PINNED = 3,
  NUMAHEAP_MOVE_SHARED = 4,
  NUMAHEAP_MOVE_NOT_PRESENT = 5,
  NUMAHEAP_MOVE_INVALID_NODE = 6,
  NUMAHEAP_MOVE_OUTCOMES = 7
};

typedef struct numaheap_migrator_stats {
  uint64_t steps, pages_scanned, pages_moved, bytes_moved;
  uint64_t outcomes[NUMAHEAP_MOVE_OUTCOMES];
  uint64_t skipped_pinned, skipped_shared, skipped_shared_access;
  uint64_t skipped_rate_limit, skipped_watermark, skipped_backoff;
  uint64_t ns_stepping, ns_moving;
  double local_access_ratio; /* -1 before any sample */
  uint64_t pages_evacuated;  /* frames moved off frames pending offline */
  uint64_t pages_followed;   /* moved on their first sample after their node lost its last vCPU */
  uint64_t tracking_bytes;   /* per-guest tracking memory held, removed guests in grace included */
  uint64_t retired_guests;   /* removed guests whose memory awaits its grace period */
  uint64_t flushes;          /* flush hook calls (frame swap) */
  uint64_t pages_quick;      /* moved on a quick first sample (first ever, or a clean switch) */
  uint64_t blocks_moved_whole; /* 2 MiB blocks the policy moved as one block */
  uint64_t blocks_split;       /* huge blocks split by a policy page move */
  uint64_t blocks_coalesced;   /* 2 MiB ranges of 4 KiB pages collapsed into one block */
  uint64_t advice_given;     /* vCPU advice records given (one per vCPU per step it stands) */
  uint64_t advice_held;      /* pages left in place as the embedder followed the advice */
  uint64_t pages_scanned_sampled; /* of pages_scanned: looked at because sampled lately */
} numaheap_migrator_stats;

/* One guest's share of the stats (Migrator::guest_stats), since it was added. */
typedef struct numaheap_migrate_guest_stats {
  uint64_t pages_scanned;
  uint64_t pages_moved, bytes_moved; /* its frames that changed node: policy, rehome, evacuation, coalescing */
  uint64_t pages_followed, pages_quick, pages_evacuated;
  double local_access_ratio; /* its samples' share from their page's node, last step with any; -1 before */
  uint32_t vcpus;            /* its vCPU slots, as added */
} numaheap_migrate_guest_stats;

typedef struct numaheap_node_pair_moves {
  uint32_t from, to;
  uint64_t pages, bytes;
} numaheap_node_pair_moves;

enum numaheap_rehome_state {
  NUMAHEAP_REHOME_IDLE = 0,
  NUMAHEAP_REHOME_RUNNING = 1,
  NUMAHEAP_REHOME_DONE = 2,
  NUMAHEAP_REHOME_CANCELLED = 3,
  NUMAHEAP_REHOME_FAILED = 4
};

typedef struct numaheap_rehome_progress {
  int state; /* numaheap_rehome_state */
  uint64_t total, done, moved, skipped, failed;
  uint32_t pass;
} numaheap_rehome_progress;

/* "moved", "busy", ...; "unknown" out of range. */
const char* numaheap_move_outcome_name(int outcome);

/* ---- The frame-swap mover (frame-only guests) ---- */
typedef struct numaheap_frame_mover numaheap_frame_mover;

typedef struct numaheap_gfn_run {
  uint64_t first, pages;
} numaheap_gfn_run;

/* The hypervisor's page-table hooks, called from the migrating thread with
 * no numaheap lock held. */
typedef struct numaheap_frame_swap_hooks {
  void* ctx;
  /* Revoke write access to the runs (EPT / stage-2 W bit); takes effect
   * only once flush returned. Required. */
  void (*write_protect)(void* ctx, const numaheap_gfn_run* runs, size_t count);
  /* TLB / EPT shootdown: returns once no CPU can use a translation changed
   * before the call. Required. */
  void (*flush)(void* ctx);
  /* Optional dirty-log check: nonzero if the run was written after its
   * protection took effect by a writer it does not stop (a backend, DMA:
   * writes through the p2m). The page keeps its old frame (outcome busy).
   * Such writers must finish a write begun with an old translation before
   * the following flush returns, and wait while the entry is
   * NUMAHEAP_P2M_MIGRATING before translating afresh. */
  int (*dirtied)(void* ctx, numaheap_gfn_run run);
  /* Restore write access (to the new frame, or the old one on failure). */
  void (*unprotect)(void* ctx, const numaheap_gfn_run* runs, size_t count);
  /* Optional copy of `frames` contiguous frames (default: the heap's copy
   * hook, or memcpy in host-memory mode). */
  void (*copy)(void* ctx, uint64_t dst_mfn, uint64_t src_mfn, uint64_t frames);
} numaheap_frame_swap_hooks;

typedef struct numaheap_frame_swap_options {
  uint32_t batch; /* blocks per flush pair, 1..64; 0: 64 */
  /* TESTS ONLY: copies before write-protect + flush (loses racing writes);
   * for negative tests that must catch it. */
  int unsafe_copy_before_protect;
} numaheap_frame_swap_options;

/* The guest must outlive the mover; the mover must outlive its use by a
 * migrator (numaheap_migrator_remove_guest first). */
int numaheap_frame_mover_create(numaheap_guest* g, const numaheap_frame_swap_hooks* hooks,
                                const numaheap_frame_swap_options* options /* NULL: defaults */,
                                numaheap_frame_mover** out);
void numaheap_frame_mover_destroy(numaheap_frame_mover* mv);

/* Where pages are now. */
typedef struct numaheap_page_state {
  uint32_t node;  /* NUMAHEAP_NO_NODE: not present */
  uint32_t flags; /* NUMAHEAP_P2M_* */
  uint32_t order; /* order of the block holding the page */
  int retiring;   /* on a frame pending offline */
} numaheap_page_state;
int numaheap_frame_mover_query(numaheap_frame_mover* mv, uint64_t first_gfn, size_t count,
                               numaheap_page_state* out);
/* Moves pages to `target`, one outcome (numaheap_move_outcome) per gfn, as
 * move_pages(2) gives a status per page. whole_blocks: move huge blocks
 * whole (else a huge block is split and only the page moves).
 * *frames_moved (may be NULL): 4 KiB frames that changed node. */
int numaheap_frame_mover_move(numaheap_frame_mover* mv, const uint64_t* gfns, size_t count,
                              uint32_t target, int whole_blocks, uint8_t* outcomes,
                              uint64_t* frames_moved);
/* Collapses the 2^order (1..9) 4 KiB pages at the aligned `head_gfn` into
 * one new block on `target` (FrameSwapMover::coalesce); *outcome (may be
 * NULL): a numaheap_move_outcome; *frames_moved (may be NULL): frames that
 * changed node. */
int numaheap_frame_mover_coalesce(numaheap_frame_mover* mv, uint64_t head_gfn, uint32_t order, uint32_t target,
                                  uint8_t* outcome, uint64_t* frames_moved);
/* Moves pages off frames pending offline (as move, ignoring limits). */
int numaheap_frame_mover_evacuate(numaheap_frame_mover* mv, const uint64_t* gfns, size_t count,
                                  uint32_t target, uint8_t* outcomes, uint64_t* frames_moved);

void numaheap_migrator_config_init(numaheap_migrator_config* c);
/* The topology must outlive the migrator. NUMAHEAP_E_INVALID_ARGUMENT for a
 * NaN, infinite or out-of-range rate_limit_mb_s (0..2^30) or
 * watermark_fraction (0..1), or a zero period_ms. */
int numaheap_migrator_create(const numaheap_topology* t, const numaheap_migrator_config* c /* NULL: defaults */,
                             numaheap_migrator** out);
void numaheap_migrator_destroy(numaheap_migrator* m); /* stops the thread */

/* Host library only: guest RAM at [base, base + pages * 4096), guest
 * frame g at base + g * 4096, moved by the kernel. allowed: nodes pages may
 * move to (NULL: every memory node). The mover made for it is the
 * handle's: numaheap_migrator_remove_guest frees it (the mapping stays
 * the caller's; unmap it after the removal). */
int numaheap_migrator_add_mapping(numaheap_migrator* m, void* base, uint64_t pages, uint32_t vcpus,
                                  const numaheap_nodemask* allowed, uint32_t* guest_id);

typedef struct numaheap_migrate_guest_options {
  uint32_t vcpus;                   /* vCPU slots for set_vcpu_cpu / record_vcpu_access */
  const numaheap_nodemask* allowed; /* nodes pages may move to (NULL: every memory node) */
  int vnuma_bound;                  /* pages follow their vnode's pnode, not accesses */
  int manual_only;                  /* only bindings and rehome move pages */
  int whole_blocks;                 /* policy moves huge blocks whole */
} numaheap_migrate_guest_options;
/* Core: a frame-only guest moved by `mv` (its layout comes from the guest).
 * options may be NULL (vcpus from the guest's spec, every node).
 * NUMAHEAP_E_INVALID_NODE: `allowed` holds a node without memory, or a
 * vnuma_bound guest has a vnode on a node outside `allowed`. */
int numaheap_migrator_add_frame_guest(numaheap_migrator* m, numaheap_frame_mover* mv,
                                      const numaheap_migrate_guest_options* options,
                                      uint32_t* guest_id);
/* After it returns no step uses the guest (a running step is waited out):
 * its mover (a frame mover, a vmm_ram) may be destroyed; a mapping's
 * mover (add_mapping) is freed here. Errors, nothing changed:
 * NUMAHEAP_E_INVALID_ARGUMENT (no such guest), NUMAHEAP_E_NO_MEMORY (no
 * room to retire it: the guest and its mover stay). */
int numaheap_migrator_remove_guest(numaheap_migrator* m, uint32_t guest_id);
/* Pages of vnode `vnode` now belong on `pnode` (vnuma_bound guests). */
int numaheap_migrator_bind_vnode(numaheap_migrator* m, uint32_t guest_id, uint32_t vnode,
                                 uint32_t pnode);

/* Inputs (lock-free). */
void numaheap_migrator_record_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t cpu);
void numaheap_migrator_record_vcpu_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t vcpu);
/* Where a vCPU runs now. After moving vCPUs, step: the memory sampled only
 * on a node they all left goes to the node they went to (docs/migrator.md). */
int numaheap_migrator_set_vcpu_cpu(numaheap_migrator* m, uint32_t guest_id, uint32_t vcpu, uint32_t cpu);
/* Sampling advice (Migrator::sample_share): the share of the guest's pages
 * worth arming for samples next period, min_sample_share..1. */
int numaheap_migrator_sample_share(const numaheap_migrator* m, uint32_t guest_id, double* out);

/* Running. start/stop: a background thread (host library; the core
 * returns NUMAHEAP_E_UNSUPPORTED: drive step_at from your timer). Callable
 * from any threads at once (as Migrator::start/stop): a start during a
 * stop waits for the old thread to exit, then starts a new one.
 * start: NUMAHEAP_E_BUSY (a thread runs and no stop is ending it),
 * NUMAHEAP_E_NO_MEMORY (no memory, or the system refused a thread:
 * RLIMIT_NPROC, pids.max, no address space for its stack); nothing changed
 * on error. */
int numaheap_migrator_start(numaheap_migrator* m);
/* Returns once the thread has exited (also when another stop is joining it). */
void numaheap_migrator_stop(numaheap_migrator* m);
/* The background thread steps at once (Migrator::request_step). */
void numaheap_migrator_request_step(numaheap_migrator* m);
/* 1 while a thread exists: from a successful start until its stop returns. */
int numaheap_migrator_running(const numaheap_migrator* m);
/* One step at the host's monotonic time; *moved (optional) gets the frames
 * moved. */
int numaheap_migrator_step(numaheap_migrator* m, uint64_t* moved);
typedef struct numaheap_step_report {
  uint64_t scanned, moved, failed;
} numaheap_step_report;
/* One deterministic step at `now_ns` (the embedder's clock, nanoseconds,
 * never going back); report may be NULL. */
int numaheap_migrator_step_at(numaheap_migrator* m, uint64_t now_ns, numaheap_step_report* report);
/* Internal consistency of the tracking and bookkeeping. */
int numaheap_migrator_check(const numaheap_migrator* m);

/* Rehome (vnode: NUMAHEAP_ALL_VNODES for the whole guest). */
int numaheap_migrator_rehome(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                             uint32_t vnode);
/* As numaheap_migrator_rehome; flags: NUMAHEAP_REHOME_OVERRIDE_LIMITS moves
 * regardless of the destination watermark and the rate limit. */
#define NUMAHEAP_REHOME_OVERRIDE_LIMITS 1u
int numaheap_migrator_rehome_ex(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                                uint32_t vnode, uint32_t flags);
int numaheap_migrator_rehome_progress(const numaheap_migrator* m, uint32_t guest_id,
                                      numaheap_rehome_progress* out);
int numaheap_migrator_cancel_rehome(numaheap_migrator* m, uint32_t guest_id);

/* Stats; node_pair_moves fills up to cap entries and returns how many exist. */
int numaheap_migrator_get_stats(const numaheap_migrator* m, numaheap_migrator_stats* out);
/* One guest's counters, lock-free (never waits for a running step: may be
 * called from a fault handler). NUMAHEAP_E_INVALID_ARGUMENT: no such guest. */
int numaheap_migrator_guest_stats(const numaheap_migrator* m, uint32_t guest_id, numaheap_migrate_guest_stats* out);
size_t numaheap_migrator_node_pair_moves(const numaheap_migrator* m, numaheap_node_pair_moves* out, size_t cap);

/* ---- vCPU advice: move the vCPU instead of the memory (Migrator::set_vcpu_advice) ----
 * Per guest and node running vCPUs of it (the group), when moving the
 * group's vCPUs to the node holding most of their hot memory is cheaper
 * than moving the memory (docs/migrator.md, "vCPU advice"). Reported only:
 * the migrator's own moves do not change; scheduling is the embedder's. */
typedef struct numaheap_vcpu_advice {
  uint32_t guest, vcpu;
  uint32_t from_node, to_node; /* where the vCPU runs; where its group's hot memory is */
  uint32_t group;              /* the guest's vCPUs on from_node: move them together */
  uint64_t pages;              /* hot pages that would otherwise move to from_node */
  uint64_t pages_after;        /* hot pages not on to_node (would still move, to to_node) */
  double memory_cost_us, vcpu_cost_us, saving_us;
} numaheap_vcpu_advice;

typedef struct numaheap_vcpu_advice_config {
  int enabled;
  double copy_gb_s;          /* copy bandwidth of a move, 1e9 B/s (8) */
  double page_overhead_us;   /* fixed cost of one 4 KiB move (3.7) */
  double vcpu_move_us;       /* moving one vCPU to another node (1000) */
  double memory_bound_share; /* share of a vCPU's time waiting on memory, 0..1 (0.5) */
  double margin;             /* advise when memory cost >= margin x vCPU cost, >= 1 (2) */
  double min_share;          /* to_node's share of the group's hot pages, 0..1 (0.75) */
  uint64_t min_pages;        /* and at least this many pages (512) */
  /* CPU room (called from step with the migrator's lock held; must not call
   * the migrator). vcpu_allowed: nonzero if the vCPU may run on the node
   * (NULL: any node with CPUs). free_cpus: the node's CPUs free for more
   * vCPUs now, negative = unknown (NULL or unknown: its CPUs less the
   * guest's vCPUs there). */
  int (*vcpu_allowed)(void* ctx, uint32_t guest, uint32_t vcpu, uint32_t node);
  int64_t (*free_cpus)(void* ctx, uint32_t node);
  void* room_ctx;
  /* Called from step for each advice given (lock held: only the lock-free
   * inputs may be called). Return nonzero when following it (moving the
   * vCPU to to_node now): the step then leaves the group's hot pages where
   * they are. 0: nothing changes. */
  int (*on_advice)(void* ctx, const numaheap_vcpu_advice* advice);
  void* on_advice_ctx;
} numaheap_vcpu_advice_config;

void numaheap_vcpu_advice_config_init(numaheap_vcpu_advice_config* c); /* the defaults, disabled */
/* NUMAHEAP_E_INVALID_ARGUMENT for NaN, infinite or out-of-range numbers
 * (nothing changed). */
int numaheap_migrator_set_vcpu_advice(numaheap_migrator* m, const numaheap_vcpu_advice_config* c);
/* The last step's advice, all guests: fills up to cap entries, *count (may
 * be NULL) gets how many there are. out may be NULL only when cap is 0. */
int numaheap_migrator_vcpu_advice(const numaheap_migrator* m, numaheap_vcpu_advice* out, size_t cap,
                                  size_t* count);
/* The last step's advice for one vCPU: *has = 1 and *out filled, or *has =
 * 0. NUMAHEAP_E_INVALID_ARGUMENT: unknown guest or vCPU. */
int numaheap_migrator_vcpu_advice_for(const numaheap_migrator* m, uint32_t guest_id, uint32_t vcpu,
                                      numaheap_vcpu_advice* out, int* has);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_MIGRATE_H */
