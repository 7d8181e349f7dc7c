/* numaheap: the migrator's C API (C11 and C++).
 *
 * For VMMs whose guest RAM is a host mapping: register the mapping, feed
 * access samples and vCPU placement, run the migrator (background thread
 * or explicit steps), rehome a guest to other nodes, read stats. Pages are
 * moved by the kernel (move_pages(2)). Error codes are numaheap.h's
 * NUMAHEAP_E_* (equal to numaheap::Errc).
 * Thread safety: as the C++ Migrator -- the record/set calls are lock-free
 * and callable from any thread; the rest serialise internally.
 */
#ifndef NUMAHEAP_NUMAHEAP_MIGRATE_H
#define NUMAHEAP_NUMAHEAP_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_migrator numaheap_migrator;

#define NUMAHEAP_ALL_VNODES 0xffffffffu

typedef struct numaheap_migrator_config {
  uint32_t period_ms;           /* background step period */
  uint64_t scan_pages;          /* pages examined per guest per step */
  uint32_t decay_steps;         /* access history ages every N steps */
  double rate_limit_mb_s;       /* per destination node; 0 = unlimited */
  uint64_t watermark_pages;     /* destination keeps max(pages, fraction) free */
  double watermark_fraction;
  uint32_t max_guests;
  uint64_t rehome_pages_per_step;
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
  uint64_t tracking_bytes;   /* per-guest tracking memory held, removed guests in grace included */
  uint64_t retired_guests;   /* removed guests whose memory awaits its grace period */
} numaheap_migrator_stats;

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

void numaheap_migrator_config_init(numaheap_migrator_config* c);
/* The topology must outlive the migrator. NUMAHEAP_E_INVALID_ARGUMENT for a
 * NaN, infinite or out-of-range rate_limit_mb_s (0..2^30) or
 * watermark_fraction (0..1). */
int numaheap_migrator_create(const numaheap_topology* t, const numaheap_migrator_config* c /* NULL: defaults */,
                             numaheap_migrator** out);
void numaheap_migrator_destroy(numaheap_migrator* m); /* stops the thread */

/* Guest RAM at [base, base + pages * 4096), guest frame g at base + g * 4096.
 * allowed: nodes pages may move to (NULL: every memory node). */
int numaheap_migrator_add_mapping(numaheap_migrator* m, void* base, uint64_t pages, uint32_t vcpus,
                                  const numaheap_nodemask* allowed, uint32_t* guest_id);
int numaheap_migrator_remove_guest(numaheap_migrator* m, uint32_t guest_id);

/* Inputs (lock-free). */
void numaheap_migrator_record_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t cpu);
void numaheap_migrator_record_vcpu_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t vcpu);
int numaheap_migrator_set_vcpu_cpu(numaheap_migrator* m, uint32_t guest_id, uint32_t vcpu, uint32_t cpu);

/* Running. */
int numaheap_migrator_start(numaheap_migrator* m);
void numaheap_migrator_stop(numaheap_migrator* m);
/* One deterministic step; *moved (optional) gets the frames moved. */
int numaheap_migrator_step(numaheap_migrator* m, uint64_t* moved);

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
size_t numaheap_migrator_node_pair_moves(const numaheap_migrator* m, numaheap_node_pair_moves* out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* NUMAHEAP_NUMAHEAP_MIGRATE_H */
