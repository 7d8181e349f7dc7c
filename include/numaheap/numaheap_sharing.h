/* numaheap: page sharing (deduplication) through the C API (C11 and C++).
 * Core (libnumaheap_core.a).
 *
 * Opt-in per guest (numaheap_guest_spec.sharing): scan hashes eligible
 * pages, confirms matches byte for byte, and maps duplicates read-only
 * (NUMAHEAP_P2M_SHARED) to one frame; a write to a shared page is the
 * hypervisor's write fault, handed to numaheap_sharing_write_fault, which
 * gives the writer a private copy on its node. The policy says which frames
 * may merge (KSM's merge_across_nodes=0 is NUMAHEAP_SHARE_SAME_NODE).
 * Remove a guest (numaheap_sharing_remove_guest) before destroying it.
 * Error codes are numaheap.h's NUMAHEAP_E_*. Errors change nothing.
 * Thread safety: every call may run concurrently (one internal lock).
 */
#ifndef NUMAHEAP_NUMAHEAP_SHARING_H
#define NUMAHEAP_NUMAHEAP_SHARING_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_sharing numaheap_sharing;

enum numaheap_sharing_kind {
  NUMAHEAP_SHARE_ACROSS_NODES = 0,
  NUMAHEAP_SHARE_SAME_NODE = 1,
  NUMAHEAP_SHARE_WITHIN_DISTANCE = 2 /* SLIT distance both ways <= max_distance */
};

typedef struct numaheap_sharing_policy {
  int kind;              /* numaheap_sharing_kind */
  uint32_t max_distance; /* WITHIN_DISTANCE: 1..255 */
} numaheap_sharing_policy;

/* The bytes of a frame (frame-only mode: required; host-memory mode: NULL
 * uses the heap's mapping). */
typedef unsigned char* (*numaheap_frame_address_fn)(void* ctx, uint64_t mfn);

typedef struct numaheap_sharing_config {
  uint32_t owner;                  /* owner of shared frames: no guest's id */
  numaheap_sharing_policy policy;
  void* access_ctx;
  numaheap_frame_address_fn address;
  /* Optional: make gfn read-only for the guest and flush TLBs before the
   * final comparison (nonzero: done; 0: refused, page skipped). Without it
   * the scanned range must not be written during scan (guest paused). */
  void* hooks_ctx;
  int (*write_protect)(void* ctx, numaheap_guest* g, uint64_t gfn);
  void (*write_unprotect)(void* ctx, numaheap_guest* g, uint64_t gfn);
  int zero_pages; /* merge all-zero pages into per-node zero frames */
} numaheap_sharing_config;

typedef struct numaheap_sharing_node_stats {
  uint32_t node;
  uint64_t frames, mappings, saved;
} numaheap_sharing_node_stats;

typedef struct numaheap_sharing_stats {
  uint64_t pages_shared, pages_sharing, pages_saved, zero_mappings, candidates;
  uint64_t pages_scanned, bytes_hashed, bytes_compared, merges, unshares;
  uint64_t refused_by_policy, merge_failures;
  /* Caller's array of per_node_cap entries (may be NULL / 0); per_node_count
   * gets how many nodes hold shared frames. */
  numaheap_sharing_node_stats* per_node;
  size_t per_node_cap, per_node_count;
} numaheap_sharing_stats;

/* Defaults: owner NUMAHEAP_MAX_OWNER, across nodes, zero pages on. */
void numaheap_sharing_config_init(numaheap_sharing_config* c);
int numaheap_sharing_create(numaheap_heap* h, const numaheap_sharing_config* c,
                            numaheap_sharing** out, char* err, size_t err_len);
/* Frees shared frames no guest maps. */
void numaheap_sharing_destroy(numaheap_sharing* s);

int numaheap_sharing_add_guest(numaheap_sharing* s, numaheap_guest* g, char* err, size_t err_len);
/* Gives the guest private copies of what it shares and forgets it. */
int numaheap_sharing_remove_guest(numaheap_sharing* s, numaheap_guest* g, char* err, size_t err_len);
/* Scans [first, first + count); *merged (may be NULL): pages merged. */
int numaheap_sharing_scan(numaheap_sharing* s, numaheap_guest* g, uint64_t first, uint64_t count,
                          uint64_t* merged);
/* A write fault on a shared page: private copy on writer_node
 * (NUMAHEAP_NO_NODE: anywhere). */
int numaheap_sharing_write_fault(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn,
                                 uint32_t writer_node);
int numaheap_sharing_write_fault_cpu(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn,
                                     uint32_t writer_cpu);
int numaheap_sharing_unshare(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn);
int numaheap_sharing_unmerge_all(numaheap_sharing* s, char* err, size_t err_len);
int numaheap_sharing_get_policy(const numaheap_sharing* s, numaheap_sharing_policy* out);
/* NUMAHEAP_E_BUSY while any page is merged (unmerge_all first). */
int numaheap_sharing_set_policy(numaheap_sharing* s, const numaheap_sharing_policy* p);
/* 1 when the policy lets frames of nodes a and b merge, else 0. */
int numaheap_sharing_policy_allows(const numaheap_topology* t, const numaheap_sharing_policy* p,
                                   uint32_t a, uint32_t b);
int numaheap_sharing_get_stats(const numaheap_sharing* s, numaheap_sharing_stats* out);
int numaheap_sharing_check(const numaheap_sharing* s);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_SHARING_H */
