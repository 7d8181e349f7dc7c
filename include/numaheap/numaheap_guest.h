/* numaheap: guest memory through the C API (C11 and C++).
 *
 * A guest is created on a numaheap_heap: its spec is validated, it is placed
 * (vnodes with NUMAHEAP_NO_NODE as pnode are placed automatically, as is a
 * guest without vnodes), then populated all-or-nothing with claims first.
 * Error codes are numaheap.h's NUMAHEAP_E_*; functions that can fail for
 * reasons worth explaining take an `err` buffer (may be NULL).
 * Thread safety: lookups are lock-free; the other calls on one guest
 * serialise internally; different guests are independent.
 */
#ifndef NUMAHEAP_NUMAHEAP_GUEST_H
#define NUMAHEAP_NUMAHEAP_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "numaheap/numaheap.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_guest numaheap_guest;

typedef struct numaheap_vnode_spec {
  uint64_t memory_bytes;
  uint32_t pnode;          /* host node, or NUMAHEAP_NO_NODE for "auto" */
  const uint32_t* vcpus;   /* vCPU indices on this vnode */
  size_t vcpu_count;
} numaheap_vnode_spec;

typedef struct numaheap_guest_spec {
  const char* name;
  uint64_t memory_bytes;  /* multiple of 4 KiB; the vnodes' sum if any */
  uint32_t vcpus;
  const numaheap_vnode_spec* vnodes; /* NULL / 0: no vNUMA */
  size_t vnode_count;
  int allow_striping;     /* populate may use other nodes (reported) */
} numaheap_guest_spec;

#define NUMAHEAP_P2M_PRESENT 0x1u
#define NUMAHEAP_P2M_PINNED 0x2u
#define NUMAHEAP_P2M_SHARED 0x4u
#define NUMAHEAP_P2M_MIGRATING 0x8u
#define NUMAHEAP_P2M_DEVICE 0x10u

/* Validates and places the guest; nothing is allocated yet. */
int numaheap_guest_create(numaheap_heap* h, const numaheap_guest_spec* spec, uint32_t owner,
                          numaheap_guest** out, char* err, size_t err_len);
/* Claims, then fills every vnode on its node (1 GiB / 2 MiB / 4 KiB). */
int numaheap_guest_populate(numaheap_guest* g, char* err, size_t err_len);
/* Gives pages back (*done: how many); takes them back on the home nodes. */
int numaheap_guest_balloon_down(numaheap_guest* g, uint64_t pages, uint64_t* done);
int numaheap_guest_balloon_up(numaheap_guest* g, uint64_t pages);
/* The p2m entry of a guest frame (flags: NUMAHEAP_P2M_*). */
int numaheap_guest_lookup(const numaheap_guest* g, uint64_t gfn, uint64_t* mfn, uint32_t* flags);
uint64_t numaheap_guest_ram_pages(const numaheap_guest* g);
uint64_t numaheap_guest_present_pages(const numaheap_guest* g);
/* Host node of each vnode after placement (count = vnodes, or the nodes of
 * a guest without vNUMA); returns how many were written. */
size_t numaheap_guest_nodes(const numaheap_guest* g, uint32_t* nodes, size_t max);
/* A range of guest RAM and the host node it belongs on. */
typedef struct numaheap_guest_range {
  uint64_t first, pages;
  uint32_t pnode, vnode;
} numaheap_guest_range;
/* The guest's RAM now belongs on these ranges' nodes (after a rehome):
 * balloon_up and its claims use them. Ranges cover RAM in order, each in
 * one vnode. NUMAHEAP_E_INVALID_ARGUMENT / _INVALID_NODE change nothing. */
int numaheap_guest_relayout(numaheap_guest* g, const numaheap_guest_range* ranges, size_t count);
/* Host node a guest frame belongs on (UINT32_MAX outside RAM). */
uint32_t numaheap_guest_home_node_of(const numaheap_guest* g, uint64_t gfn);
/* How many relayouts the guest has had (0 after create): cold-store pools
 * made from the guest follow its home when this changes. 0 for NULL. */
uint64_t numaheap_guest_layout_generation(const numaheap_guest* g);
/* Frees and scrubs everything, releases claims, frees the handle (kept only
 * on NUMAHEAP_E_BUSY: pages still shared). NUMAHEAP_E_INVALID_FRAME: the
 * allocator refused a block the p2m listed; the rest was released. */
int numaheap_guest_destroy(numaheap_guest* g);
/* Consistency: the p2m agrees with the allocator's frame table (each block
 * the p2m names is allocated, of that order, to this guest), counters match,
 * no frame was lost. full != 0 also walks the frame table for blocks of the
 * guest the p2m does not name (slow; exact only while nothing moves). */
int numaheap_guest_check(const numaheap_guest* g, int full);
/* Frames the p2m referenced that the allocator refused to free (a bug). */
uint64_t numaheap_guest_lost_frames(const numaheap_guest* g);

#ifdef __cplusplus
}
#endif

#endif /* NUMAHEAP_NUMAHEAP_GUEST_H */
