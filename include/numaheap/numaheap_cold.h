/* numaheap: the cold-page store through the C API (C11 and C++). Core
 * (libnumaheap_core.a).
 *
 * tmem-like pools of whole 4 KiB pages kept on any node but the guest's own
 * (nearest allowed node with room first). Ephemeral pools are a cache the
 * heap may drop under pressure (install numaheap_cold_store_reclaim_hook
 * with numaheap_set_reclaim_hook); persistent pools keep pages until
 * flushed. Pages are addressed by (pool, object, index). A pool made from a
 * guest follows the guest's home after a rehome. Error codes are
 * numaheap.h's NUMAHEAP_E_*. Errors change nothing.
 * Thread safety: every call may run concurrently (one internal lock).
 */
#ifndef NUMAHEAP_NUMAHEAP_COLD_H
#define NUMAHEAP_NUMAHEAP_COLD_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/numaheap_sharing.h" /* numaheap_frame_address_fn */
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_cold_store numaheap_cold_store;

enum numaheap_pool_kind { NUMAHEAP_POOL_EPHEMERAL = 0, NUMAHEAP_POOL_PERSISTENT = 1 };
enum numaheap_cold_get { NUMAHEAP_COLD_HIT = 0, NUMAHEAP_COLD_MISS = 1, NUMAHEAP_COLD_DROPPED = 2 };

typedef struct numaheap_cold_config {
  uint32_t owner;            /* owner of cold frames: no guest's id */
  uint32_t max_pools;
  uint64_t max_entries;      /* pages and dropped markers indexed (preallocated) */
  uint64_t watermark_pages;  /* a node has room above max(pages, fraction * managed) */
  double watermark_fraction;
  uint32_t room_recheck;     /* re-read a node's free memory every N puts there */
  int scrub_on_free;         /* zero freed frames at once */
  void* access_ctx;          /* frame bytes (frame-only mode: required) */
  numaheap_frame_address_fn address;
} numaheap_cold_config;

typedef struct numaheap_cold_node_stats {
  uint32_t node;
  uint64_t ephemeral, persistent;
} numaheap_cold_node_stats;

typedef struct numaheap_cold_stats {
  uint64_t pools, pages, dropped_markers;
  uint64_t puts, put_failures, gets, hits, misses, dropped_gets, flushes, reclaimed;
  numaheap_cold_node_stats* per_node; /* caller's array (may be NULL / 0) */
  size_t per_node_cap, per_node_count;
} numaheap_cold_stats;

void numaheap_cold_config_init(numaheap_cold_config* c);
int numaheap_cold_store_create(numaheap_heap* h, const numaheap_cold_config* c,
                               numaheap_cold_store** out, char* err, size_t err_len);
/* Frees every stored page. Remove the reclaim hook first. */
void numaheap_cold_store_destroy(numaheap_cold_store* cs);

/* A pool for a guest that opted in (spec.cold_store), avoiding its home. */
int numaheap_cold_pool_create(numaheap_cold_store* cs, const numaheap_guest* g, int kind,
                              uint32_t* pool, char* err, size_t err_len);
/* A pool avoiding `home` (an embedder without a numaheap_guest). */
int numaheap_cold_pool_create_home(numaheap_cold_store* cs, const numaheap_nodemask* home, int kind,
                                   const char* name, uint32_t* pool, char* err, size_t err_len);
/* The pool now avoids `home`; *stayed (may be NULL): persistent pages still
 * on it. */
int numaheap_cold_pool_set_home(numaheap_cold_store* cs, uint32_t pool, const numaheap_nodemask* home,
                                uint64_t* stayed);
int numaheap_cold_pool_destroy(numaheap_cold_store* cs, uint32_t pool);
/* Stores 4096 bytes from page; *node (may be NULL): where they went. */
int numaheap_cold_put(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index,
                      const void* page, uint32_t* node);
/* Copies 4096 bytes to out on a hit; *result: numaheap_cold_get. */
int numaheap_cold_get(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index,
                      void* out, int* result);
int numaheap_cold_flush(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index);
int numaheap_cold_flush_object(numaheap_cold_store* cs, uint32_t pool, uint64_t object,
                               uint64_t* removed);
/* Drops up to `pages` ephemeral pages on `node`; returns how many. */
uint64_t numaheap_cold_reclaim(numaheap_cold_store* cs, uint32_t node, uint64_t pages);
/* A numaheap_reclaim_fn: ctx is the numaheap_cold_store*. */
uint64_t numaheap_cold_store_reclaim_hook(void* cold_store, uint32_t node, uint64_t pages);
/* Node of a stored page (NUMAHEAP_NO_NODE: none). */
uint32_t numaheap_cold_node_of(const numaheap_cold_store* cs, uint32_t pool, uint64_t object,
                               uint32_t index);
/* The nodes a pool tries, nearest first: writes up to max, returns how many. */
size_t numaheap_cold_pool_node_order(const numaheap_cold_store* cs, uint32_t pool, uint32_t* out,
                                     size_t max);
int numaheap_cold_get_stats(const numaheap_cold_store* cs, numaheap_cold_stats* out);
int numaheap_cold_check(const numaheap_cold_store* cs);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_COLD_H */
