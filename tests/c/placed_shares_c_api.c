/* numaheap_guest_create_placed_shares from C11: a vNUMA guest whose vnode 0
 * is spread over two host nodes, created from the caller's pieces on a
 * frame-only heap; every populated frame is checked to be on its piece's
 * node. Each kind of bad piece list is refused with its code and leaves no
 * metadata allocated; out of memory through a failing metadata hook fails
 * cleanly at every step; a guest's own metadata hooks (spec.metadata) get
 * its metadata and all of it back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/platform_contract.h"
#define CHECK_STOPS 1 /* later steps use what earlier ones made */
#include "check.h"

#include "frame_rig.h"

/* Metadata hooks that count live blocks and fail once `budget` runs out
 * (budget < 0: never): the process default's, and a guest's own
 * (numaheap_guest_spec.metadata). */
typedef struct counter {
  long budget, live;
} counter;
static void* counted_alloc(void* ctx, size_t bytes, size_t align, uint32_t node) {
  counter* c = ctx;
  (void)node;
  if (c->budget == 0) return NULL;
  if (c->budget > 0) --c->budget;
  if (align < sizeof(void*)) align = sizeof(void*);
  void* p = aligned_alloc(align, (bytes + align - 1) / align * align);
  if (p) {
    memset(p, 0, bytes);
    ++c->live;
  }
  return p;
}
static void counted_release(void* ctx, void* p, size_t bytes) {
  counter* c = ctx;
  (void)bytes;
  if (p) --c->live;
  free(p);
}
static counter g_default = {-1, 0}, g_own = {-1, 0};
static const numaheap_metadata_hooks g_hooks = {&g_default, counted_alloc, counted_release};
static const numaheap_metadata_hooks g_own_hooks = {&g_own, counted_alloc, counted_release};

/* Nodes 0 and 1 with 32 MiB of frames each; node 2 has CPUs, no memory. */
static numaheap_topology* build_topology(void) {
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  if (!b) return NULL;
  uint32_t c0[] = {0}, c1[] = {1}, c2[] = {2};
  numaheap_topology* t = NULL;
  if (numaheap_topology_builder_add_node(b, 0, c0, 1, (uint64_t)FRAMES_PER_NODE * PAGE) ||
      numaheap_topology_builder_add_node(b, 1, c1, 1, (uint64_t)FRAMES_PER_NODE * PAGE) ||
      numaheap_topology_builder_add_node(b, 2, c2, 1, 0) ||
      numaheap_topology_builder_set_distance_row(b, 0, (const uint32_t[]){10, 21, 21}, 3) ||
      numaheap_topology_builder_set_distance_row(b, 1, (const uint32_t[]){21, 10, 21}, 3) ||
      numaheap_topology_builder_set_distance_row(b, 2, (const uint32_t[]){21, 21, 10}, 3) ||
      numaheap_topology_builder_add_frames(b, 0, BASE, FRAMES_PER_NODE) ||
      numaheap_topology_builder_add_frames(b, 1, BASE + FRAMES_PER_NODE, FRAMES_PER_NODE) ||
      numaheap_topology_builder_build(b, &t, NULL, 0))
    t = NULL;
  numaheap_topology_builder_free(b);
  return t;
}

/* The guest: vnode 0 (8 MiB, vCPU 0) interleaved over nodes 0 and 1,
 * vnode 1 (8 MiB, vCPU 1) on node 1. */
static uint32_t g_v0[] = {0}, g_v1[] = {1};
static numaheap_vnode_spec g_vn[2];
static numaheap_guest_spec g_spec;
static numaheap_nodemask g_vn0_nodes; /* {0, 1} */

static void reset_spec(void) {
  memset(g_vn, 0, sizeof g_vn);
  memset(&g_vn0_nodes, 0, sizeof g_vn0_nodes);
  g_vn0_nodes.bits[0] = 3;
  g_vn[0].memory_bytes = 8u * MIB;
  g_vn[0].pnode = NUMAHEAP_NO_NODE;
  g_vn[0].vcpus = g_v0;
  g_vn[0].vcpu_count = 1;
  g_vn[0].memory_mode = NUMAHEAP_MEM_INTERLEAVE;
  g_vn[0].nodes = &g_vn0_nodes;
  g_vn[1].memory_bytes = 8u * MIB;
  g_vn[1].pnode = 1;
  g_vn[1].vcpus = g_v1;
  g_vn[1].vcpu_count = 1;
  memset(&g_spec, 0, sizeof g_spec);
  g_spec.name = "spread";
  g_spec.memory_bytes = 16u * MIB;
  g_spec.vcpus = 2;
  g_spec.vnodes = g_vn;
  g_spec.vnode_count = 2;
}

/* vnode 0: 2 MiB on node 0 then 6 MiB on node 1; vnode 1: 8 MiB on node 1. */
static const numaheap_vnode_share g_good[3] = {{0, 0, 2u * MIB}, {0, 1, 6u * MIB}, {1, 1, 8u * MIB}};

/* A bad call: its code, no handle, a reason, and no metadata left behind. */
static void expect_refused(numaheap_heap* h, const numaheap_vnode_share* pieces, size_t n, int want,
                           const char* what) {
  char err[256] = "";
  numaheap_guest* g = NULL;
  const long live = g_default.live;
  const int rc = numaheap_guest_create_placed_shares(h, &g_spec, 20, pieces, n, &g, err, sizeof err);
  if (rc != want) fprintf(stderr, "%s: got %d (%s), want %d\n", what, rc, err, want);
  CHECK(rc == want);
  CHECK(g == NULL);
  CHECK(err[0] != '\0');
  CHECK(g_default.live == live);
}

static void test_bad_input(numaheap_heap* h) {
  numaheap_vnode_share p[4];
  char err[128];
  numaheap_guest* g = NULL;
  reset_spec();
  CHECK(numaheap_guest_create_placed_shares(NULL, &g_spec, 20, g_good, 3, &g, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_create_placed_shares(h, NULL, 20, g_good, 3, &g, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_create_placed_shares(h, &g_spec, 20, g_good, 3, NULL, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  expect_refused(h, NULL, 3, NUMAHEAP_E_INVALID_ARGUMENT, "null pieces");
  expect_refused(h, g_good, 0, NUMAHEAP_E_INVALID_ARGUMENT, "no pieces");

  memcpy(p, g_good, sizeof g_good);
  p[1].bytes = 4u * MIB; /* vnode 0 short by 2 MiB */
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "pieces short of the vnode");
  p[1].bytes = 8u * MIB; /* 2 MiB over */
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "pieces over the vnode");
  memcpy(p, g_good, sizeof g_good);
  p[0].bytes += 1, p[1].bytes -= 1; /* sums right, not whole frames */
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "a piece not a multiple of 4 KiB");
  memcpy(p, g_good, sizeof g_good);
  p[3] = p[2];
  p[2] = (numaheap_vnode_share){0, 0, 0}; /* a zero piece */
  expect_refused(h, p, 4, NUMAHEAP_E_INVALID_ARGUMENT, "a zero piece");

  memcpy(p, g_good, sizeof g_good);
  p[0].node = 7; /* does not exist */
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_NODE, "an unknown node");
  p[0].node = 2; /* no memory */
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_NODE, "a node without memory");

  /* Overlap: vnode 0 twice on node 1. */
  p[0] = (numaheap_vnode_share){0, 1, 2u * MIB};
  p[1] = (numaheap_vnode_share){0, 1, 6u * MIB};
  p[2] = g_good[2];
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "two pieces of a vnode on one node");

  /* Order and coverage. */
  p[0] = g_good[2], p[1] = g_good[0], p[2] = g_good[1];
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "vnode 1 first");
  p[0] = g_good[0], p[1] = g_good[2], p[2] = g_good[1];
  expect_refused(h, p, 3, NUMAHEAP_E_INVALID_ARGUMENT, "vnode 0's pieces apart");
  expect_refused(h, g_good, 2, NUMAHEAP_E_INVALID_ARGUMENT, "vnode 1 without a piece");
  memcpy(p, g_good, sizeof g_good);
  p[3] = (numaheap_vnode_share){2, 0, 4096};
  expect_refused(h, p, 4, NUMAHEAP_E_INVALID_ARGUMENT, "a third vnode");

  /* Against the spec: a pnode holding nothing, a piece outside the nodeset
   * or the allowed nodes, a guest without vNUMA. */
  g_vn[1].pnode = 0;
  expect_refused(h, g_good, 3, NUMAHEAP_E_INVALID_ARGUMENT, "vnode 1's pnode holds none of it");
  reset_spec();
  g_vn0_nodes.bits[0] = 2; /* vnode 0 bound to node 1 only */
  expect_refused(h, g_good, 3, NUMAHEAP_E_INVALID_ARGUMENT, "a piece outside the vnode's nodes");
  reset_spec();
  numaheap_nodemask only1;
  memset(&only1, 0, sizeof only1);
  only1.bits[0] = 2;
  g_spec.allowed_nodes = &only1;
  g_vn[0].nodes = NULL;
  expect_refused(h, g_good, 3, NUMAHEAP_E_INVALID_ARGUMENT, "a piece outside the allowed nodes");
  reset_spec();
  g_vn[0].vcpus = NULL; /* a bad spec is refused as the spec's fault */
  expect_refused(h, g_good, 3, NUMAHEAP_E_INVALID_ARGUMENT, "a NULL list with a count");
  reset_spec();
  g_spec.vnodes = NULL;
  g_spec.vnode_count = 0;
  numaheap_vnode_share whole = {0, 0, 16u * MIB};
  expect_refused(h, &whole, 1, NUMAHEAP_E_INVALID_ARGUMENT, "a guest without vNUMA");
  reset_spec();
}

static void test_spread_guest(numaheap_heap* h) {
  char err[256] = "";
  numaheap_guest* g = NULL;
  reset_spec();
  CHECK(numaheap_guest_create_placed_shares(h, &g_spec, 20, g_good, 3, &g, err, sizeof err) == NUMAHEAP_OK);
  /* Layout: vnode 0's pieces in the order given, then vnode 1. */
  numaheap_guest_range r[4];
  CHECK(numaheap_guest_layout(g, r, 4) == 3);
  CHECK(r[0].first == 0 && r[0].pages == 512 && r[0].pnode == 0 && r[0].vnode == 0);
  CHECK(r[1].first == 512 && r[1].pages == 1536 && r[1].pnode == 1 && r[1].vnode == 0);
  CHECK(r[2].first == 2048 && r[2].pages == 2048 && r[2].pnode == 1 && r[2].vnode == 1);
  /* vnode 0's home is the node holding most of it. */
  uint32_t nodes[2] = {9, 9};
  CHECK(numaheap_guest_nodes(g, nodes, 2) == 2 && nodes[0] == 1 && nodes[1] == 1);
  numaheap_nodemask home;
  CHECK(numaheap_guest_home_nodes(g, &home) == NUMAHEAP_OK && home.bits[0] == 3);

  numaheap_node_share per_node[4], striped[4];
  numaheap_populate_report rep;
  memset(&rep, 0, sizeof rep);
  rep.per_node = per_node;
  rep.per_node_cap = 4;
  rep.striped = striped;
  rep.striped_cap = 4;
  CHECK(numaheap_guest_populate_report(g, &rep, err, sizeof err) == NUMAHEAP_OK);
  CHECK(rep.pages == 4096 && rep.striped_count == 0);
  /* Every frame on its piece's node. */
  uint64_t on_node[2] = {0, 0};
  for (uint64_t gfn = 0; gfn < 4096; ++gfn) {
    uint64_t mfn = 0;
    uint32_t flags = 0;
    CHECK(numaheap_guest_lookup(g, gfn, &mfn, &flags) == NUMAHEAP_OK);
    const uint32_t want = gfn < 512 ? 0 : 1;
    const uint32_t got = numaheap_node_of(h, mfn);
    if (got != want) fprintf(stderr, "gfn %llu on node %u, want %u\n", (unsigned long long)gfn, got, want);
    CHECK(got == want);
    CHECK(numaheap_guest_home_node_of(g, gfn) == want);
    ++on_node[got];
  }
  CHECK(on_node[0] == 512 && on_node[1] == 3584);
  numaheap_node_share now[4];
  CHECK(numaheap_guest_pages_per_node(g, now, 4) == 2);
  CHECK(now[0].node == 0 && now[0].bytes == 2u * MIB && now[1].node == 1 && now[1].bytes == 14u * MIB);
  CHECK(numaheap_guest_check(g, 1) == NUMAHEAP_OK);
  CHECK(numaheap_guest_destroy(g) == NUMAHEAP_OK);

  /* A vnode's pnode, when given, is its home even with the smaller piece. */
  g_vn[0].pnode = 0;
  g = NULL;
  CHECK(numaheap_guest_create_placed_shares(h, &g_spec, 21, g_good, 3, &g, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_guest_nodes(g, nodes, 2) == 2 && nodes[0] == 0 && nodes[1] == 1);
  CHECK(numaheap_guest_destroy(g) == NUMAHEAP_OK);

  /* The guest's metadata from its own hooks, all of it given back. */
  g_spec.metadata = &g_own_hooks;
  g = NULL;
  CHECK(numaheap_guest_create_placed_shares(h, &g_spec, 23, g_good, 3, &g, err, sizeof err) == NUMAHEAP_OK);
  CHECK(g_own.live > 0);
  CHECK(numaheap_guest_populate(g, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_guest_destroy(g) == NUMAHEAP_OK);
  CHECK(g_own.live == 0);
  reset_spec();
}

/* Every metadata allocation the call makes may fail: it then returns
 * NUMAHEAP_E_NO_MEMORY with nothing left allocated, until the budget
 * suffices. */
static void test_out_of_memory(numaheap_heap* h) {
  reset_spec();
  int created = 0;
  for (long budget = 0; budget < 256 && !created; ++budget) {
    char err[256] = "";
    numaheap_guest* g = NULL;
    const long live = g_default.live;
    g_default.budget = budget;
    const int rc = numaheap_guest_create_placed_shares(h, &g_spec, 22, g_good, 3, &g, err, sizeof err);
    g_default.budget = -1;
    if (rc == NUMAHEAP_OK) {
      created = 1;
      CHECK(budget > 0);
      CHECK(numaheap_guest_populate(g, err, sizeof err) == NUMAHEAP_OK);
      CHECK(numaheap_guest_check(g, 1) == NUMAHEAP_OK);
      CHECK(numaheap_guest_destroy(g) == NUMAHEAP_OK);
      CHECK(g_default.live == live);
    } else {
      if (rc != NUMAHEAP_E_NO_MEMORY) fprintf(stderr, "budget %ld: %d (%s)\n", budget, rc, err);
      CHECK(rc == NUMAHEAP_E_NO_MEMORY && g == NULL && g_default.live == live);
    }
  }
  CHECK(created);
}

int main(void) {
  numaheap_topology* t = build_topology();
  numaheap_heap* h = rig_heap(t);
  /* Guests' metadata (spec copy, handle, p2m) from the counting hooks. */
  numaheap_set_default_metadata(&g_hooks);
  test_bad_input(h);
  test_spread_guest(h);
  test_out_of_memory(h);
  numaheap_set_default_metadata(NULL);
  CHECK(numaheap_check(h, 1) == NUMAHEAP_OK);
  numaheap_destroy(h);
  numaheap_topology_free(t);
  free(g_mem);
  return check_report();
}
