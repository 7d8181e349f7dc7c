/* numaheap: guest memory through the C API (C11 and C++).
 *
 * A guest is created on a numaheap_heap: its spec is validated, it is placed,
 * then populated all-or-nothing with claims first. Two ways to place it:
 *  - core (libnumaheap_core.a): numaheap_guest_create_placed -- the caller
 *    names the host node of every vnode, or the bytes per node of a guest
 *    without vNUMA (a hypervisor's own placement, or numaheap_place's);
 *    numaheap_guest_create_placed_shares -- the bytes of every vnode per
 *    host node, for vnodes interleaved or spread over several nodes;
 *  - host library only: numaheap_guest_create places it (vnodes with
 *    NUMAHEAP_NO_NODE as pnode are placed automatically, as is a guest
 *    without vnodes); numaheap_place (numaheap_place.h) explains a choice.
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
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

typedef struct numaheap_guest numaheap_guest;

/* A range of guest RAM and the host node it belongs on. */
typedef struct numaheap_guest_range {
  uint64_t first, pages;
  uint32_t pnode, vnode;
} numaheap_guest_range;

/* How memory is tied to its nodes (libvirt's numatune modes). */
#define NUMAHEAP_MEM_DEFAULT 0    /* numaheap's default: bind */
#define NUMAHEAP_MEM_BIND 1       /* only these nodes (strict / restrictive) */
#define NUMAHEAP_MEM_PREFER 2     /* these first, others when full (preferred) */
#define NUMAHEAP_MEM_INTERLEAVE 3 /* page by page across them */

/* A vCPU's host-CPU affinity (libvirt vcpupin, xl cpus / cpus_soft). */
#define NUMAHEAP_ALL_VCPUS 0xffffffffu
typedef struct numaheap_vcpu_pin {
  uint32_t vcpu;                 /* NUMAHEAP_ALL_VCPUS: every vCPU without its own pin */
  const uint32_t* cpus;          /* host CPU ids */
  size_t cpu_count;
  const numaheap_nodemask* nodes; /* or the CPUs of these nodes (NULL: none) */
  int soft;                      /* 1: preferred, not enforced */
} numaheap_vcpu_pin;

/* Fields after distance_count are optional: zero means "not used". */
typedef struct numaheap_vnode_spec {
  uint64_t memory_bytes;
  uint32_t pnode;          /* host node, or NUMAHEAP_NO_NODE for "auto" */
  const uint32_t* vcpus;   /* vCPU indices on this vnode */
  size_t vcpu_count;
  /* Virtual SLIT row: distance to each vnode (NULL / 0: none given;
   * otherwise vnode_count entries, 10 on the diagonal). */
  const uint32_t* distances;
  size_t distance_count;
  int memory_mode;                /* NUMAHEAP_MEM_* */
  const numaheap_nodemask* nodes; /* host nodes of this vnode (NULL: pnode / placement) */
} numaheap_vnode_spec;

/* A device passed through to the guest (DMA buffers come from its node). */
typedef struct numaheap_device_spec {
  const char* name;   /* at most 63 bytes are kept */
  uint32_t host_node; /* NUMAHEAP_NO_NODE: unknown */
} numaheap_device_spec;

/* Fields after allow_striping are optional: zero means "not used". */
typedef struct numaheap_guest_spec {
  const char* name;
  uint64_t memory_bytes;  /* multiple of 4 KiB; the vnodes' sum if any */
  uint32_t vcpus;
  const numaheap_vnode_spec* vnodes; /* NULL / 0: no vNUMA */
  size_t vnode_count;
  int allow_striping;     /* populate may use other nodes (reported) */
  const numaheap_device_spec* devices;
  size_t device_count;
  const numaheap_nodemask* allowed_nodes; /* NULL: any node */
  int sharing;            /* opt in to page deduplication */
  int cold_store;         /* opt in to the cold-page store */
  const char* affinity_group;      /* NULL: none */
  const char* anti_affinity_group; /* NULL: none */
  int keep_contents_on_free;       /* 1: freed frames are not scrubbed by
                                      this guest (the heap still scrubs
                                      before another owner gets them) */
  uint64_t device_region_pages;    /* 0: default (64 MiB of gfn space) */
  int memory_mode;                 /* NUMAHEAP_MEM_*, over allowed_nodes */
  const numaheap_vcpu_pin* vcpu_pins;
  size_t vcpu_pin_count;
  /* Where the guest's metadata (the guest object, p2m, layout) comes from;
   * must outlive the guest. NULL: numaheap_default_metadata(). */
  const numaheap_metadata_hooks* metadata;
} numaheap_guest_spec;

/* Bytes of a guest on one host node. */
typedef struct numaheap_node_share {
  uint32_t node;
  uint64_t bytes;
} numaheap_node_share;

/* One piece of a vnode's memory on one host node (a vnode interleaved or
 * spread over several nodes has several). */
typedef struct numaheap_vnode_share {
  uint32_t vnode;
  uint32_t node;
  uint64_t bytes;
} numaheap_vnode_share;

#define NUMAHEAP_P2M_PRESENT 0x1u
#define NUMAHEAP_P2M_PINNED 0x2u
#define NUMAHEAP_P2M_SHARED 0x4u
#define NUMAHEAP_P2M_MIGRATING 0x8u
#define NUMAHEAP_P2M_DEVICE 0x10u

/* Core: validates the spec and lays the guest out where the caller says:
 * a vNUMA guest on its vnodes' pnodes (none may be NUMAHEAP_NO_NODE;
 * `shares` must be NULL), a guest without vNUMA on `shares` (bytes per
 * node, summing to memory_bytes). Nothing is allocated yet. */
int numaheap_guest_create_placed(numaheap_heap* h, const numaheap_guest_spec* spec, uint32_t owner,
                                 const numaheap_node_share* shares, size_t share_count,
                                 numaheap_guest** out, char* err, size_t err_len);
/* Core: a vNUMA guest laid out on the caller's pieces: each vnode's memory
 * per host node (numaheap_placement.vnode_memory has this shape). Pieces
 * come in vnode order (a vnode's pieces are laid out in the order given,
 * the first at the vnode's lowest gfn); every vnode has at least one; each
 * is a non-zero multiple of 4 KiB on a node with memory, at most one per
 * (vnode, node); a vnode's pieces sum to its memory_bytes; a vnode's pnode,
 * when not NUMAHEAP_NO_NODE, holds one of its pieces; pieces lie in the
 * vnode's `nodes` and the guest's allowed_nodes when those are given (not
 * checked under NUMAHEAP_MEM_PREFER). A vnode's home (numaheap_guest_nodes)
 * is its pnode, else the node holding most of it (the first such piece).
 * Bad input: NUMAHEAP_E_INVALID_ARGUMENT / _INVALID_NODE with the reason
 * in `err`, nothing allocated. Nothing is allocated from the heap yet. */
int numaheap_guest_create_placed_shares(numaheap_heap* h, const numaheap_guest_spec* spec,
                                        uint32_t owner, const numaheap_vnode_share* pieces,
                                        size_t piece_count, numaheap_guest** out, char* err,
                                        size_t err_len);
/* The placer's options (C++ PlacementOptions): memory kept free on every
 * node = max(watermark_bytes, watermark_fraction x the node's size).
 * numaheap_placement_options_init writes the defaults (64 MiB, 0.02); a
 * NULL options pointer means the defaults; a fraction outside [0, 1) is
 * refused (NUMAHEAP_E_INVALID_ARGUMENT). Host library only. */
typedef struct numaheap_placement_options {
  uint64_t watermark_bytes;
  double watermark_fraction;
} numaheap_placement_options;
void numaheap_placement_options_init(numaheap_placement_options* o);

/* Host library only: validates and places the guest (auto placement from
 * the heap's free memory); nothing is allocated yet. */
int numaheap_guest_create(numaheap_heap* h, const numaheap_guest_spec* spec, uint32_t owner,
                          numaheap_guest** out, char* err, size_t err_len);
/* The same with the placer's options (NULL: the defaults). */
int numaheap_guest_create_ex(numaheap_heap* h, const numaheap_guest_spec* spec, uint32_t owner,
                             const numaheap_placement_options* opts, numaheap_guest** out, char* err,
                             size_t err_len);
/* Host library only: the control domain (dom0): `total_bytes` spread over
 * every node with memory in proportion to its free memory, one vnode (and
 * one vCPU) per node, virtual distances mirroring the host's. */
int numaheap_control_domain_create(numaheap_heap* h, uint64_t total_bytes, uint32_t owner,
                                   const char* name, numaheap_guest** out, char* err,
                                   size_t err_len);
/* The same with the placer's options (NULL: the defaults): the watermarks
 * the layout stays above and the placement keeps. */
int numaheap_control_domain_create_ex(numaheap_heap* h, uint64_t total_bytes, uint32_t owner,
                                      const char* name, const numaheap_placement_options* opts,
                                      numaheap_guest** out, char* err, size_t err_len);

/* Claims, then fills every vnode on its node (1 GiB / 2 MiB / 4 KiB). */
int numaheap_guest_populate(numaheap_guest* g, char* err, size_t err_len);
/* What populate did. The caller points per_node / striped at arrays of
 * *_cap entries (may be NULL / 0); *_count get how many exist. */
typedef struct numaheap_populate_report {
  uint64_t pages, extents_1g, extents_2m, extents_4k;
  numaheap_node_share* per_node;
  size_t per_node_cap, per_node_count;
  numaheap_node_share* striped; /* bytes from another node than planned */
  size_t striped_cap, striped_count;
} numaheap_populate_report;
/* As numaheap_guest_populate, with the report (report may be NULL). */
int numaheap_guest_populate_report(numaheap_guest* g, numaheap_populate_report* report, char* err,
                                   size_t err_len);

/* DMA memory for the spec's device `device` (index), from its node, pinned:
 * one block of `pages` (a power of two) mapped above the guest's RAM. */
typedef struct numaheap_device_buffer {
  uint64_t gfn, mfn, pages;
  uint32_t node;
} numaheap_device_buffer;
int numaheap_guest_alloc_device_buffer(numaheap_guest* g, size_t device, uint64_t pages,
                                       numaheap_device_buffer* out, char* err, size_t err_len);
int numaheap_guest_free_device_buffer(numaheap_guest* g, uint64_t gfn);

/* Where the guest's backend threads (and interrupts) should run: a node and
 * its CPUs (writes up to cpu_cap, *cpu_count gets how many), and why (reason
 * may be NULL). */
int numaheap_guest_backend_affinity(const numaheap_guest* g, uint32_t* node, uint32_t* cpus,
                                    size_t cpu_cap, size_t* cpu_count, char* reason,
                                    size_t reason_len);
/* Gives pages back (*done: how many); takes them back on the home nodes. */
int numaheap_guest_balloon_down(numaheap_guest* g, uint64_t pages, uint64_t* done);
int numaheap_guest_balloon_up(numaheap_guest* g, uint64_t pages);
/* The p2m entry of a guest frame (flags: NUMAHEAP_P2M_*). */
int numaheap_guest_lookup(const numaheap_guest* g, uint64_t gfn, uint64_t* mfn, uint32_t* flags);
/* The whole p2m entry: mfn of the 4 KiB frame, flags, order of its block. */
typedef struct numaheap_p2m_entry {
  uint64_t mfn;   /* NUMAHEAP_INVALID_MFN when not present */
  uint32_t flags; /* NUMAHEAP_P2M_* */
  uint32_t order; /* order of the block holding the page */
} numaheap_p2m_entry;
/* Entries are returned as stored (for a block: the entry of its head gfn
 * with the block's order); absent gfns give flags 0. */
int numaheap_guest_p2m_get(const numaheap_guest* g, uint64_t gfn, numaheap_p2m_entry* out);
/* Atomically replaces the entry at gfn with *desired if it equals
 * *expected: NUMAHEAP_OK, or NUMAHEAP_E_BUSY when it did not (nothing
 * changed; *expected is left as it was). For embedders that remap pages
 * themselves (their own mover): the allocator's frame ownership is theirs
 * to keep right. */
int numaheap_guest_p2m_compare_exchange(numaheap_guest* g, uint64_t gfn,
                                        const numaheap_p2m_entry* expected,
                                        const numaheap_p2m_entry* desired);
/* Sets then clears flag bits of a present entry (NUMAHEAP_E_NOT_PRESENT). */
int numaheap_guest_p2m_update_flags(numaheap_guest* g, uint64_t gfn, uint32_t set, uint32_t clear);
/* Splits the huge block holding gfn into 4 KiB entries (and blocks). */
int numaheap_guest_split_to_pages(numaheap_guest* g, uint64_t gfn);
/* One past the last gfn (RAM, then the device region). */
uint64_t numaheap_guest_gfn_limit(const numaheap_guest* g);
/* First gfn of the device region (device buffers live at and above it). */
uint64_t numaheap_guest_device_gfn_base(const numaheap_guest* g);
uint32_t numaheap_guest_owner(const numaheap_guest* g);
/* 1 once populated (and until destroyed), else 0. */
int numaheap_guest_populated(const numaheap_guest* g);
/* The RAM layout now (ranges in gfn order): writes up to max, returns how
 * many ranges there are. */
size_t numaheap_guest_layout(const numaheap_guest* g, numaheap_guest_range* out, size_t max);
/* The nodes the guest's RAM belongs on. */
int numaheap_guest_home_nodes(const numaheap_guest* g, numaheap_nodemask* out);
/* Where its present pages are now (bytes per node, ascending node): writes
 * up to max, returns how many nodes hold some. */
size_t numaheap_guest_pages_per_node(const numaheap_guest* g, numaheap_node_share* out, size_t max);
/* An embedder's own mover lost frames it could not give back: counted in
 * numaheap_guest_lost_frames. */
void numaheap_guest_note_lost_frames(numaheap_guest* g, uint64_t frames);
uint64_t numaheap_guest_ram_pages(const numaheap_guest* g);
uint64_t numaheap_guest_present_pages(const numaheap_guest* g);
/* Host node of each vnode after placement (count = vnodes, or the nodes of
 * a guest without vNUMA); returns how many were written. */
size_t numaheap_guest_nodes(const numaheap_guest* g, uint32_t* nodes, size_t max);
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

NUMAHEAP_PUBLIC_END

#endif /* NUMAHEAP_NUMAHEAP_GUEST_H */
