/* numaheap: guest placement through the C API (C11 and C++). Host library
 * only (libnumaheap.a): placement is the toolstack's job (as libxl's is for
 * Xen); a hypervisor core places with its own policy and calls
 * numaheap_guest_create_placed.
 *
 * numaheap_place chooses the host nodes of a new guest from free memory,
 * vCPU load, distances within the set and device locality (works beyond 16
 * nodes), and says why. The result feeds the core's create calls
 * (numaheap_guest.h): a vNUMA guest's vnode_memory pieces to
 * numaheap_guest_create_placed_shares (or its vnode_pnodes, when no vnode is
 * spread, as the vnodes' pnodes to numaheap_guest_create_placed), the memory
 * shares of a guest without vNUMA to numaheap_guest_create_placed.
 * numaheap_place_session_* place a list of guests in order, each seeing
 * what the earlier ones took, with the guests' affinity / anti-affinity
 * groups (numaheap_guest_spec.affinity_group) applied as hints.
 * numaheap_measure_utilization fills numaheap_node_usage.utilization from
 * /proc/stat.
 * Error codes are numaheap.h's NUMAHEAP_E_*.
 * Thread safety: every call is independent (the topology is immutable),
 * except that one session must not be used by two threads at once.
 */
#ifndef NUMAHEAP_NUMAHEAP_PLACE_H
#define NUMAHEAP_NUMAHEAP_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

/* The load on one node, in the topology's node order. */
typedef struct numaheap_node_usage {
  uint32_t node;
  uint64_t free_bytes;
  uint32_t vcpus;      /* vCPUs of guests already placed there */
  double utilization;  /* 0..1 CPU utilization, <0 unknown */
} numaheap_node_usage;

typedef struct numaheap_placement_hints {
  const numaheap_nodemask* affinity_nodes;      /* place near these (NULL: none) */
  const numaheap_nodemask* anti_affinity_nodes; /* keep away (NULL: none) */
} numaheap_placement_hints;

/* The caller points the arrays at *_cap entries (NULL / 0 allowed);
 * *_count get how many there are. */
typedef struct numaheap_placement {
  numaheap_nodemask nodes;
  numaheap_node_share* memory; /* per node of the set, ascending node id */
  size_t memory_cap, memory_count;
  uint32_t* vcpu_nodes;        /* host node of each vCPU */
  size_t vcpu_cap, vcpu_count;
  uint32_t* vnode_pnodes;      /* host node of each vnode (vNUMA guests) */
  size_t vnode_cap, vnode_count;
  double cost;                 /* lower is better */
  char reason[256];            /* why these nodes (truncated) */
  /* vNUMA guests: each vnode's memory per host node, in vnode order then
   * ascending node; a vnode interleaved over several nodes has several
   * (numaheap_vnode_share: numaheap_guest.h). */
  numaheap_vnode_share* vnode_memory;
  size_t vnode_memory_cap, vnode_memory_count;
} numaheap_placement;

/* Usage of an idle machine (free = each node's memory): writes up to max
 * entries, returns node_count. */
size_t numaheap_idle_usage(const numaheap_topology* t, numaheap_node_usage* out, size_t max);
/* Usage from a heap's free counters (free + cached - claimed). */
size_t numaheap_heap_usage(const numaheap_heap* h, numaheap_node_usage* out, size_t max);
/* usage: node_count entries in topology order (NULL: idle); hints may be
 * NULL. */
int numaheap_place(const numaheap_topology* t, const numaheap_guest_spec* spec,
                   const numaheap_node_usage* usage, size_t usage_count,
                   const numaheap_placement_hints* hints, numaheap_placement* out, char* err,
                   size_t err_len);
/* The cost of placing the guest on `set` (for comparisons). */
int numaheap_place_cost(const numaheap_topology* t, const numaheap_guest_spec* spec,
                        const numaheap_nodemask* set, const numaheap_node_usage* usage,
                        size_t usage_count, const numaheap_placement_hints* hints, double* cost);
/* numaheap_place / numaheap_place_cost with the placer's options
 * (numaheap_placement_options, numaheap_guest.h; NULL: the defaults). */
int numaheap_place_ex(const numaheap_topology* t, const numaheap_guest_spec* spec,
                      const numaheap_node_usage* usage, size_t usage_count,
                      const numaheap_placement_hints* hints, const numaheap_placement_options* opts,
                      numaheap_placement* out, char* err, size_t err_len);
int numaheap_place_cost_ex(const numaheap_topology* t, const numaheap_guest_spec* spec,
                           const numaheap_nodemask* set, const numaheap_node_usage* usage,
                           size_t usage_count, const numaheap_placement_hints* hints,
                           const numaheap_placement_options* opts, double* cost);
/* Takes a placement's memory and vCPUs out of usage (node_count entries). */
int numaheap_place_commit(const numaheap_topology* t, const numaheap_placement* p,
                          numaheap_node_usage* usage, size_t usage_count);
/* Gives them back (the guest is gone): the inverse of numaheap_place_commit. */
int numaheap_place_release(const numaheap_topology* t, const numaheap_placement* p,
                           numaheap_node_usage* usage, size_t usage_count);

/* A placement session: guests placed in order, with their groups. usage:
 * node_count entries in topology order, or NULL for an idle host. NULL on
 * bad usage or out of memory. The session keeps its own reference to the
 * topology. */
typedef struct numaheap_place_session numaheap_place_session;
numaheap_place_session* numaheap_place_session_create(const numaheap_topology* t,
                                                      const numaheap_node_usage* usage,
                                                      size_t usage_count);
/* The same with the placer's options (NULL: the defaults); NULL also for
 * bad options. */
numaheap_place_session* numaheap_place_session_create_ex(const numaheap_topology* t,
                                                         const numaheap_node_usage* usage, size_t usage_count,
                                                         const numaheap_placement_options* opts);
void numaheap_place_session_destroy(numaheap_place_session* s);
/* Places the guest near its affinity group and away from its
 * anti-affinity group, then takes its memory and vCPUs out of the session's
 * usage. Fails with NUMAHEAP_E_NO_MEMORY when it does not fit (nothing
 * changes). */
int numaheap_place_session_place(numaheap_place_session* s, const numaheap_guest_spec* spec,
                                 numaheap_placement* out, char* err, size_t err_len);
/* The guest is gone: its memory and vCPUs come back and it leaves its
 * groups. `p` is what numaheap_place_session_place wrote (its arrays must
 * have held every entry). */
int numaheap_place_session_release(numaheap_place_session* s, const numaheap_guest_spec* spec,
                                   const numaheap_placement* p);
/* The session's usage now: writes up to max entries, returns node_count. */
size_t numaheap_place_session_usage(const numaheap_place_session* s, numaheap_node_usage* out,
                                    size_t max);
/* Sets the utilization of the session's nodes (node_count entries, <0
 * unknown), e.g. from numaheap_measure_utilization. */
int numaheap_place_session_set_utilization(numaheap_place_session* s, const double* utilization,
                                           size_t count);

/* Per-node CPU utilization from proc_root/proc/stat (NULL or "/": this
 * machine), sampled twice interval_ms apart, written into
 * usage[i].utilization (node_count entries; -1 for nodes without CPUs). */
int numaheap_measure_utilization(const numaheap_topology* t, const char* proc_root,
                                 uint32_t interval_ms, numaheap_node_usage* usage,
                                 size_t usage_count, char* err, size_t err_len);
/* The same from two recorded /proc/stat files (taken before and after). */
int numaheap_utilization_between(const numaheap_topology* t, const char* stat_before,
                                 const char* stat_after, numaheap_node_usage* usage,
                                 size_t usage_count, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_PLACE_H */
