/* The C API, compiled as C11: topology from a builder and from numactl text,
 * create/destroy, alloc/free with flags, errors, claims, offline, stats. */
#include <stdio.h>
#include <string.h>

#include "numaheap/numaheap.h"
#include "check.h"


static const char kNumactl[] =
    "available: 2 nodes (0-1)\n"
    "node 0 cpus: 0 1\n"
    "node 0 size: 64 MB\n"
    "node 0 free: 60 MB\n"
    "node 1 cpus: 2 3\n"
    "node 1 size: 64 MB\n"
    "node 1 free: 60 MB\n"
    "node distances:\n"
    "node   0   1 \n"
    "  0:  10  20 \n"
    "  1:  20  10 \n";

static void test_builder(void) {
  char err[256];
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  CHECK(b != NULL);
  CHECK(numaheap_topology_builder_add_node(b, 0, cpus0, 2, 8u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 5, cpus1, 2, 8u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 9, NULL, 0, 0) == NUMAHEAP_OK); /* memoryless */
  CHECK(numaheap_topology_builder_set_distance(b, 0, 5, 21) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_set_distance(b, 5, 0, 21) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_frames(b, 7, 1, 1) == NUMAHEAP_E_INVALID_NODE);
  numaheap_topology* t = NULL;
  CHECK(numaheap_topology_builder_build(b, &t, err, sizeof err) == NUMAHEAP_OK);
  numaheap_topology_builder_free(b);
  CHECK(numaheap_topology_node_count(t) == 3);
  CHECK(numaheap_topology_node_id(t, 1) == 5);

  numaheap_heap* h = NULL;
  CHECK(numaheap_create(t, NULL, &h, err, sizeof err) == NUMAHEAP_OK);
  numaheap_topology_free(t);

  numaheap_alloc_request r = {0, 5, NUMAHEAP_ALLOC_EXACT_NODE, 1, NULL};
  uint64_t mfn = 0;
  uint32_t node = 0;
  CHECK(numaheap_alloc(h, &r, &mfn, &node) == NUMAHEAP_OK);
  CHECK(node == 5);
  CHECK(numaheap_free(h, mfn, 0, 2) == NUMAHEAP_E_NOT_OWNER);
  CHECK(numaheap_free(h, mfn, 1, 1) == NUMAHEAP_E_INVALID_ORDER);
  CHECK(numaheap_free(h, mfn, 0, 1) == NUMAHEAP_OK);
  CHECK(numaheap_free(h, mfn, 0, 1) == NUMAHEAP_E_DOUBLE_FREE);
  CHECK(numaheap_free(h, 0, 0, 1) == NUMAHEAP_E_INVALID_FRAME);

  /* Exclusion: any node but 0 and 5 leaves nothing. */
  numaheap_nodemask ex;
  memset(&ex, 0, sizeof ex);
  numaheap_nodemask_set(&ex, 0);
  numaheap_nodemask_set(&ex, 5);
  numaheap_alloc_request rx = {0, 0, 0, 1, &ex};
  CHECK(numaheap_alloc(h, &rx, &mfn, NULL) == NUMAHEAP_E_NO_MEMORY);
  numaheap_alloc_request bad = {19, 0, 0, 1, NULL};
  CHECK(numaheap_alloc(h, &bad, &mfn, NULL) == NUMAHEAP_E_INVALID_ORDER);
  bad.order = 0;
  bad.node = 3;
  CHECK(numaheap_alloc(h, &bad, &mfn, NULL) == NUMAHEAP_E_INVALID_NODE);
  /* Memoryless node 9 falls back. */
  numaheap_alloc_request r9 = {2, 9, 0, 1, NULL};
  CHECK(numaheap_alloc(h, &r9, &mfn, &node) == NUMAHEAP_OK);
  CHECK(node == 0 || node == 5);
  /* What the frame table says about the block (consistency checks). */
  uint32_t order = 99, owner = 99;
  CHECK(numaheap_allocated_block(h, mfn, &order, &owner) == NUMAHEAP_OK);
  CHECK(order == 2 && owner == 1);
  CHECK(numaheap_frames_owned_by(h, 1) == 4);
  CHECK(numaheap_allocated_block(h, mfn + 1, NULL, NULL) == NUMAHEAP_E_INVALID_FRAME); /* a tail */
  CHECK(numaheap_free(h, mfn, 2, 1) == NUMAHEAP_OK);
  CHECK(numaheap_allocated_block(h, mfn, &order, &owner) == NUMAHEAP_E_INVALID_FRAME); /* free */

  /* Claims: 2048 frames per node. */
  CHECK(numaheap_claim(h, 7, 2049, 0) == NUMAHEAP_E_CLAIM_EXCEEDED);
  CHECK(numaheap_claim(h, 7, 2000, 0) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 2000);
  CHECK(numaheap_claim(h, 8, 100, 0) == NUMAHEAP_E_CLAIM_EXCEEDED);
  numaheap_alloc_request rc = {3, 0, NUMAHEAP_ALLOC_EXACT_NODE | NUMAHEAP_ALLOC_USE_CLAIM, 7, NULL};
  CHECK(numaheap_alloc(h, &rc, &mfn, NULL) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 1992);
  /* A claim scope: the held 1992 are neither consumed nor dropped. */
  CHECK(numaheap_set_claims_aside(h, 7) == NUMAHEAP_OK);
  CHECK(numaheap_set_claims_aside(h, 7) == NUMAHEAP_E_BUSY);
  CHECK(numaheap_claim(h, 7, 8, 0) == NUMAHEAP_OK);
  uint64_t scoped;
  numaheap_alloc_request rs = {2, 0, NUMAHEAP_ALLOC_EXACT_NODE | NUMAHEAP_ALLOC_USE_CLAIM, 7, NULL};
  CHECK(numaheap_alloc(h, &rs, &scoped, NULL) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 1992 + 4);
  CHECK(numaheap_restore_claims(h, 7) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 1992);
  CHECK(numaheap_free(h, scoped, 2, 7) == NUMAHEAP_OK);
  CHECK(numaheap_set_claims_aside(h, 0xffffffffu) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_release_owner(h, 7) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 0);

  /* Offline: in use -> pending; freed -> retired. */
  int pending = -1;
  const uint64_t events = numaheap_offline_events(h);
  CHECK(numaheap_offline_pending(h, mfn, 3) == 0);
  CHECK(numaheap_offline(h, mfn + 1, &pending) == NUMAHEAP_OK);
  CHECK(pending == 1);
  CHECK(numaheap_offline_events(h) == events + 1);
  CHECK(numaheap_offline_pending(h, mfn, 3) == 1);
  CHECK(numaheap_offline_pending(h, mfn, 2) == 0);
  CHECK(numaheap_free(h, mfn, 3, 7) == NUMAHEAP_OK);
  CHECK(numaheap_offline_pending(h, mfn, 3) == 0);
  CHECK(numaheap_offline_events(h) == events + 1);
  numaheap_node_stats st;
  CHECK(numaheap_stats(h, 0, &st) == NUMAHEAP_OK);
  CHECK(st.offlined == 1);
  CHECK(st.managed == 2048);
  CHECK(st.free + st.cached + st.used + st.offlined == st.managed);
  CHECK(numaheap_stats(h, 4, &st) == NUMAHEAP_E_INVALID_NODE);
  (void)numaheap_scrub_some(h, 0, 64);
  numaheap_drain_all(h);
  CHECK(numaheap_check(h, 1) == NUMAHEAP_OK);
  CHECK(numaheap_frame_address(h, mfn) == NULL); /* frame-only */
  numaheap_destroy(h);
}

static void test_numactl(void) {
  char err[256];
  numaheap_topology* t = NULL;
  CHECK(numaheap_topology_parse_numactl("garbage\n", 8, &t, err, sizeof err) != NUMAHEAP_OK);
  CHECK(strlen(err) > 0);
  CHECK(numaheap_topology_parse_numactl(kNumactl, sizeof kNumactl - 1, &t, err, sizeof err) ==
        NUMAHEAP_OK);
  numaheap_config c;
  numaheap_config_init(&c);
  c.mode = NUMAHEAP_HOST_MEMORY; /* node 1 does not exist here: */
  numaheap_heap* h = NULL;
  int rc = numaheap_create(t, &c, &h, err, sizeof err);
  if (rc == NUMAHEAP_OK) numaheap_destroy(h); /* a real 2-node host */
  else CHECK(strstr(err, "mbind") != NULL);
  c.mode = NUMAHEAP_FRAME_ONLY;
  CHECK(numaheap_create(t, &c, &h, err, sizeof err) == NUMAHEAP_OK);
  numaheap_alloc_request r = {9, 1, NUMAHEAP_ALLOC_EXACT_NODE, 3, NULL};
  uint64_t mfn;
  CHECK(numaheap_alloc(h, &r, &mfn, NULL) == NUMAHEAP_OK);
  CHECK(numaheap_free(h, mfn, 9, 3) == NUMAHEAP_OK);
  CHECK(numaheap_check(h, 0) == NUMAHEAP_OK);
  numaheap_destroy(h);
  numaheap_topology_free(t);

  numaheap_topology* b = NULL;
  CHECK(numaheap_topology_builtin(&b) == NUMAHEAP_OK);
  CHECK(numaheap_topology_node_count(b) == 4);
  numaheap_topology_free(b);
  CHECK(strcmp(numaheap_strerror(NUMAHEAP_E_DOUBLE_FREE), "double_free") == 0);
}

/* Bulk 4 KiB allocation and free: all or nothing, errors change nothing. */
static void test_bulk(void) {
  char err[256];
  numaheap_topology* t = NULL;
  CHECK(numaheap_topology_parse_numactl(kNumactl, sizeof kNumactl - 1, &t, err, sizeof err) ==
        NUMAHEAP_OK);
  numaheap_heap* h = NULL;
  CHECK(numaheap_create(t, NULL, &h, err, sizeof err) == NUMAHEAP_OK);
  numaheap_topology_free(t);
  static uint64_t mfns[16384 + 1];
  numaheap_node_stats st;
  /* 64 MB per node = 16384 frames: one more than node 1 has fails whole. */
  numaheap_alloc_request r = {0, 1, NUMAHEAP_ALLOC_EXACT_NODE, 4, NULL};
  CHECK(numaheap_alloc_bulk(h, &r, mfns, 16385) == NUMAHEAP_E_NO_MEMORY);
  CHECK(numaheap_stats(h, 1, &st) == NUMAHEAP_OK);
  CHECK(st.used == 0);
  CHECK(numaheap_alloc_bulk(h, &r, mfns, 16384) == NUMAHEAP_OK);
  CHECK(numaheap_stats(h, 1, &st) == NUMAHEAP_OK);
  CHECK(st.used == 16384);
  /* Frees: a foreign owner or a frame listed twice free nothing. */
  CHECK(numaheap_free_bulk(h, mfns, 100, 5) == NUMAHEAP_E_NOT_OWNER);
  mfns[16384] = mfns[7];
  CHECK(numaheap_free_bulk(h, mfns + 1, 16384, 4) == NUMAHEAP_E_DOUBLE_FREE);
  CHECK(numaheap_stats(h, 1, &st) == NUMAHEAP_OK);
  CHECK(st.used == 16384);
  CHECK(numaheap_free_bulk(h, mfns, 16384, 4) == NUMAHEAP_OK);
  CHECK(numaheap_free_bulk(h, mfns, 1, 4) == NUMAHEAP_E_DOUBLE_FREE);      /* a free head */
  CHECK(numaheap_free_bulk(h, mfns + 5, 1, 4) == NUMAHEAP_E_INVALID_FRAME); /* merged away */
  CHECK(numaheap_stats(h, 1, &st) == NUMAHEAP_OK);
  CHECK(st.used == 0 && st.largest_free_order == 14);
  /* Bad requests. */
  numaheap_alloc_request bad = {1, 1, 0, 4, NULL};
  CHECK(numaheap_alloc_bulk(h, &bad, mfns, 4) == NUMAHEAP_E_INVALID_ORDER);
  bad.order = 0;
  bad.node = 3;
  CHECK(numaheap_alloc_bulk(h, &bad, mfns, 4) == NUMAHEAP_E_INVALID_NODE);
  CHECK(numaheap_alloc_bulk(h, &r, NULL, 4) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_alloc_bulk(h, &r, NULL, 0) == NUMAHEAP_OK);
  CHECK(numaheap_free_bulk(h, NULL, 3, 4) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_free_bulk(NULL, mfns, 3, 4) == NUMAHEAP_E_INVALID_ARGUMENT);
  /* Falling back: node 0 first, then node 1. */
  numaheap_alloc_request fb = {0, 0, 0, 4, NULL};
  CHECK(numaheap_alloc_bulk(h, &fb, mfns, 16384 + 1) == NUMAHEAP_OK);
  CHECK(numaheap_stats(h, 1, &st) == NUMAHEAP_OK);
  CHECK(st.used == 1);
  CHECK(numaheap_free_bulk(h, mfns, 16384 + 1, 4) == NUMAHEAP_OK);
  CHECK(numaheap_check(h, 1) == NUMAHEAP_OK);
  numaheap_destroy(h);
}

int main(void) {
  test_builder();
  test_numactl();
  test_bulk();
  return check_report();
}
