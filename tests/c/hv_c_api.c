/* The C API a hypervisor core uses, from C11, frame-only: topology queries,
 * heap additions, explicitly placed guests, p2m, device buffers, the
 * frame-swap mover with per-page outcomes, the migrator on frame-only
 * guests, sharing, the cold store -- each with bad input -- and out of
 * memory through a failing metadata hook. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_cold.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/numaheap_migrate.h"
#include "numaheap/numaheap_sharing.h"
#include "numaheap/platform_contract.h"
#define CHECK_STOPS 1 /* later steps use what earlier ones made */
#include "check.h"

#include "frame_rig.h"

/* Page-table hooks of a guest nobody runs: they only count. */
static int g_protects, g_flushes, g_unprotects;
static void wp(void* ctx, const numaheap_gfn_run* r, size_t n) { (void)ctx, (void)r, g_protects += (int)n; }
static void fl(void* ctx) { (void)ctx, ++g_flushes; }
static void unwp(void* ctx, const numaheap_gfn_run* r, size_t n) { (void)ctx, (void)r, g_unprotects += (int)n; }

static uint64_t g_reclaim_calls;
static uint64_t reclaim(void* ctx, uint32_t node, uint64_t pages) {
  (void)ctx, (void)node, (void)pages;
  ++g_reclaim_calls;
  return 0;
}

/* A metadata hook that fails after `budget` allocations. */
static long g_budget;
static void* limited_alloc(void* ctx, size_t bytes, size_t align, uint32_t node) {
  (void)ctx, (void)node;
  if (g_budget-- <= 0) return NULL;
  if (align < sizeof(void*)) align = sizeof(void*);
  void* p = aligned_alloc(align, (bytes + align - 1) / align * align);
  if (p) memset(p, 0, bytes);
  return p;
}
static void limited_release(void* ctx, void* p, size_t bytes) { (void)ctx, (void)bytes, free(p); }

static numaheap_topology* build_topology(void) {
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  if (!b) return NULL;
  uint32_t c0[] = {0, 1}, c1[] = {2, 3};
  int rc = numaheap_topology_builder_add_node(b, 0, c0, 2, (uint64_t)FRAMES_PER_NODE * PAGE);
  if (rc) {
    numaheap_topology_builder_free(b);
    return NULL;
  }
  numaheap_topology* t = NULL;
  if (numaheap_topology_builder_add_node_ex(b, 1, c1, 2, (uint64_t)FRAMES_PER_NODE * PAGE, UINT64_MAX) ||
      numaheap_topology_builder_set_distance_row(b, 0, (const uint32_t[]){10, 21}, 2) ||
      numaheap_topology_builder_set_distance_row(b, 1, (const uint32_t[]){21, 10}, 2) ||
      numaheap_topology_builder_add_frames(b, 0, BASE, FRAMES_PER_NODE) ||
      numaheap_topology_builder_add_frames(b, 1, BASE + FRAMES_PER_NODE, FRAMES_PER_NODE) ||
      numaheap_topology_builder_build(b, &t, NULL, 0))
    t = NULL;
  numaheap_topology_builder_free(b);
  return t;
}

static void test_out_of_memory(void) {
  /* Every allocation through the default hooks may fail: each call fails
   * cleanly until the budget suffices. */
  numaheap_metadata_hooks hooks = {NULL, limited_alloc, limited_release};
  numaheap_set_default_metadata(&hooks);
  int built = 0;
  for (long budget = 0; budget < 4096 && !built; ++budget) {
    g_budget = budget;
    numaheap_topology* t = build_topology();
    if (t) {
      built = 1;
      numaheap_topology_free(t);
    }
  }
  g_budget = 0;
  CHECK(numaheap_topology_builder_new() == NULL);
  numaheap_set_default_metadata(NULL);
  CHECK(built);
}

static void test_topology(const numaheap_topology* t) {
  CHECK(numaheap_topology_node_count(t) == 2);
  CHECK(numaheap_topology_node_id(t, 1) == 1 && numaheap_topology_node_id(t, 2) == NUMAHEAP_NO_NODE);
  CHECK(numaheap_topology_has_node(t, 1) && !numaheap_topology_has_node(t, 7));
  CHECK(numaheap_topology_distance(t, 0, 1) == 21 && numaheap_topology_distance(t, 1, 1) == 10);
  CHECK(numaheap_topology_distance(t, 0, 9) == 0 && numaheap_topology_raw_distance(t, 1, 0) == 21);
  CHECK(numaheap_topology_distances_given(t) == 1);
  uint32_t cpus[4];
  CHECK(numaheap_topology_node_cpus(t, 1, cpus, 4) == 2 && cpus[0] == 2 && cpus[1] == 3);
  CHECK(numaheap_topology_node_cpus(t, 1, NULL, 0) == 2);
  CHECK(numaheap_topology_node_cpus(t, 5, cpus, 4) == 0);
  CHECK(numaheap_topology_node_of_cpu(t, 3) == 1 && numaheap_topology_node_of_cpu(t, 99) == NUMAHEAP_NO_NODE);
  CHECK(numaheap_topology_max_cpu(t) == 4);
  uint32_t order[4];
  CHECK(numaheap_topology_fallback_order(t, 1, order, 4) == 2 && order[0] == 1 && order[1] == 0);
  uint64_t total = 0, free_bytes = 0;
  CHECK(numaheap_topology_node_memory(t, 0, &total, &free_bytes) == NUMAHEAP_OK);
  CHECK(total == (uint64_t)FRAMES_PER_NODE * PAGE && free_bytes == UINT64_MAX);
  CHECK(numaheap_topology_node_memory(t, 4, &total, NULL) == NUMAHEAP_E_INVALID_NODE);
  numaheap_frame_range fr[2];
  CHECK(numaheap_topology_node_frames(t, 1, fr, 2) == 1 && fr[0].first_mfn == BASE + FRAMES_PER_NODE);
  CHECK(numaheap_topology_total_frames(t) == 2u * FRAMES_PER_NODE);
  CHECK(numaheap_topology_node_of_mfn(t, BASE + FRAMES_PER_NODE + 5) == 1);
  CHECK(numaheap_topology_node_of_mfn(t, 1u << 30) == NUMAHEAP_NO_NODE);
  numaheap_nodemask all, mem, cpu;
  CHECK(numaheap_topology_nodes(t, &all, &mem, &cpu) == NUMAHEAP_OK && all.bits[0] == 3 && mem.bits[0] == 3);
  /* Bad input. */
  CHECK(numaheap_topology_node_count(NULL) == 0 && numaheap_topology_distance(NULL, 0, 0) == 0);
  CHECK(numaheap_topology_nodes(NULL, &all, NULL, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  CHECK(numaheap_topology_builder_add_node(b, 0, NULL, 1, 1u << 20) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_topology_builder_add_node(b, 0, NULL, 0, 1u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 0, NULL, 0, 1u << 20) == NUMAHEAP_E_INVALID_NODE);
  CHECK(numaheap_topology_builder_add_node(b, 5000, NULL, 0, 1u << 20) == NUMAHEAP_E_INVALID_NODE);
  CHECK(numaheap_topology_builder_add_frames(b, 0, 0, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_topology_builder_add_frames(b, 3, 0, 1) == NUMAHEAP_E_INVALID_NODE);
  CHECK(numaheap_topology_builder_set_distance_row(b, 0, (const uint32_t[]){10, 20}, 2) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_topology_builder_build(b, NULL, NULL, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_topology_builder_free(b);
}

static void test_heap(numaheap_heap* h) {
  numaheap_alloc_request req = {9, 0, NUMAHEAP_ALLOC_EXACT_NODE, 3, NULL};
  uint64_t mfn = 0;
  uint32_t node = 9;
  CHECK(numaheap_alloc(h, &req, &mfn, &node) == NUMAHEAP_OK && node == 0);
  CHECK(numaheap_node_of(h, mfn) == 0 && numaheap_node_of(h, 1u << 30) == NUMAHEAP_NO_NODE);
  CHECK(numaheap_split(h, mfn, 9, 4) == NUMAHEAP_E_NOT_OWNER); /* wrong owner: nothing changes */
  CHECK(numaheap_split(h, mfn, 9, 3) == NUMAHEAP_OK);
  for (uint64_t k = 0; k < 512; ++k) CHECK(numaheap_free(h, mfn + k, 0, 3) == NUMAHEAP_OK);
  CHECK(numaheap_claim(h, 7, 100, 1) == NUMAHEAP_OK);
  CHECK(numaheap_claimed_on(h, 7, 1) == 100 && numaheap_claimed_on(h, 7, 0) == 0);
  CHECK(numaheap_claim(h, 8, 10, NUMAHEAP_NO_NODE) == NUMAHEAP_OK);
  CHECK(numaheap_global_claimed(h) == 10);
  CHECK(numaheap_release_owner(h, 7) == NUMAHEAP_OK && numaheap_release_owner(h, 8) == NUMAHEAP_OK);
  CHECK(numaheap_claimed(h, 7) == 0 && numaheap_global_claimed(h) == 0);
  CHECK(numaheap_set_reclaim_hook(h, reclaim, NULL) == NUMAHEAP_OK);
  CHECK(numaheap_set_reclaim_hook(h, NULL, NULL) == NUMAHEAP_OK);
  numaheap_drain_node(h, 0);
  numaheap_drain_node(h, 77); /* unknown: ignored */
  CHECK(numaheap_metadata_bytes_per_frame(h) > 0 && numaheap_metadata_bytes_per_frame(NULL) == 0);
  CHECK(numaheap_check(h, 1) == NUMAHEAP_OK);
  /* Bad input. */
  CHECK(numaheap_split(NULL, 0, 0, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_set_reclaim_hook(NULL, reclaim, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_claimed_on(NULL, 1, 0) == 0);
}

int main(void) {
  test_out_of_memory();
  numaheap_topology* t = build_topology();
  CHECK(t);
  test_topology(t);

  numaheap_heap* h = rig_heap(t);
  char err[256] = "";
  test_heap(h);

  /* ---- Guests placed by the caller ---- */
  uint32_t v0[] = {0}, v1[] = {1};
  uint32_t d0[] = {10, 21}, d1[] = {21, 10};
  numaheap_vnode_spec vn[2] = {{.memory_bytes = 8u << 20, .pnode = 0, .vcpus = v0, .vcpu_count = 1, .distances = d0, .distance_count = 2},
                                 {.memory_bytes = 8u << 20, .pnode = 1, .vcpus = v1, .vcpu_count = 1, .distances = d1, .distance_count = 2}};
  numaheap_device_spec dev = {"nic", 1};
  numaheap_guest_spec a;
  memset(&a, 0, sizeof a);
  a.name = "a";
  a.memory_bytes = 16u << 20;
  a.vcpus = 2;
  a.vnodes = vn;
  a.vnode_count = 2;
  a.devices = &dev;
  a.device_count = 1;
  a.sharing = 1;
  a.affinity_group = "web";
  numaheap_guest* ga = NULL;
  numaheap_node_share bad_share = {0, 16u << 20};
  CHECK(numaheap_guest_create_placed(h, &a, 10, &bad_share, 1, &ga, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  vn[1].pnode = NUMAHEAP_NO_NODE;
  CHECK(numaheap_guest_create_placed(h, &a, 10, NULL, 0, &ga, err, sizeof err) == NUMAHEAP_E_INVALID_NODE);
  vn[1].pnode = 1;
  vn[0].distances = NULL; /* a NULL list with a count */
  CHECK(numaheap_guest_create_placed(h, &a, 10, NULL, 0, &ga, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  vn[0].distances = d0;
  CHECK(ga == NULL);
  CHECK(numaheap_guest_create_placed(h, &a, 10, NULL, 0, &ga, err, sizeof err) == NUMAHEAP_OK);
  numaheap_node_share per_node[4];
  numaheap_populate_report rep;
  memset(&rep, 0, sizeof rep);
  rep.per_node = per_node;
  rep.per_node_cap = 4;
  CHECK(numaheap_guest_populate_report(ga, &rep, err, sizeof err) == NUMAHEAP_OK);
  CHECK(rep.pages == 4096 && rep.per_node_count == 2 && rep.striped_count == 0);
  CHECK(numaheap_guest_populated(ga) == 1 && numaheap_guest_owner(ga) == 10);
  uint32_t nodes[2];
  CHECK(numaheap_guest_nodes(ga, nodes, 2) == 2 && nodes[0] == 0 && nodes[1] == 1);
  numaheap_guest_range ranges[4];
  CHECK(numaheap_guest_layout(ga, ranges, 4) == 2 && ranges[1].pnode == 1 && ranges[1].first == 2048);
  numaheap_nodemask home;
  CHECK(numaheap_guest_home_nodes(ga, &home) == NUMAHEAP_OK && home.bits[0] == 3);
  CHECK(numaheap_guest_pages_per_node(ga, per_node, 4) == 2 && per_node[1].bytes == (8u << 20));

  numaheap_device_buffer buf;
  CHECK(numaheap_guest_alloc_device_buffer(ga, 1, 4, &buf, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_alloc_device_buffer(ga, 0, 4, &buf, err, sizeof err) == NUMAHEAP_OK);
  CHECK(buf.node == 1 && buf.pages == 4 && buf.gfn >= numaheap_guest_device_gfn_base(ga));
  numaheap_p2m_entry e;
  CHECK(numaheap_guest_p2m_get(ga, buf.gfn, &e) == NUMAHEAP_OK);
  CHECK((e.flags & (NUMAHEAP_P2M_DEVICE | NUMAHEAP_P2M_PINNED)) == (NUMAHEAP_P2M_DEVICE | NUMAHEAP_P2M_PINNED));
  CHECK(numaheap_guest_free_device_buffer(ga, buf.gfn) == NUMAHEAP_OK);
  CHECK(numaheap_guest_free_device_buffer(ga, buf.gfn) == NUMAHEAP_E_INVALID_ARGUMENT);
  uint32_t bnode = 0, bcpus[4];
  size_t bcount = 0;
  char why[128];
  CHECK(numaheap_guest_backend_affinity(ga, &bnode, bcpus, 4, &bcount, why, sizeof why) == NUMAHEAP_OK);
  CHECK(bcount == 2 && why[0] != '\0');

  /* p2m: flags and compare-exchange. */
  CHECK(numaheap_guest_p2m_get(ga, 5, &e) == NUMAHEAP_OK && (e.flags & NUMAHEAP_P2M_PRESENT));
  CHECK(numaheap_guest_p2m_update_flags(ga, 5, NUMAHEAP_P2M_PRESENT, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_p2m_update_flags(ga, 5, 0x80, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_p2m_entry wrong = e;
  wrong.mfn ^= 1;
  CHECK(numaheap_guest_p2m_compare_exchange(ga, 5, &wrong, &e) == NUMAHEAP_E_BUSY);
  CHECK(numaheap_guest_p2m_compare_exchange(ga, numaheap_guest_gfn_limit(ga), &e, &e) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_p2m_compare_exchange(ga, 5, &e, &e) == NUMAHEAP_OK);
  CHECK(numaheap_guest_split_to_pages(ga, 5) == NUMAHEAP_OK);
  CHECK(numaheap_guest_check(ga, 1) == NUMAHEAP_OK);

  /* A guest without vNUMA, on node 0 by shares; sharing and cold store. */
  numaheap_guest_spec b;
  memset(&b, 0, sizeof b);
  b.name = "b";
  b.memory_bytes = 4u << 20;
  b.vcpus = 1;
  b.sharing = 1;
  b.cold_store = 1;
  numaheap_node_share sb = {0, 4u << 20};
  numaheap_guest* gb = NULL;
  CHECK(numaheap_guest_create_placed(h, &b, 11, NULL, 0, &gb, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_create_placed(h, &b, 11, &sb, 1, &gb, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_guest_populate(gb, err, sizeof err) == NUMAHEAP_OK);

  /* ---- Frame-swap mover: per-page outcomes, contents kept ---- */
  numaheap_frame_swap_hooks fh = {NULL, wp, fl, NULL, unwp, NULL};
  numaheap_frame_mover* mv = NULL;
  numaheap_frame_swap_hooks no_flush = fh;
  no_flush.flush = NULL;
  CHECK(numaheap_frame_mover_create(ga, &no_flush, NULL, &mv) == NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_frame_swap_options big = {65, 0};
  CHECK(numaheap_frame_mover_create(ga, &fh, &big, &mv) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_frame_mover_create(ga, &fh, NULL, &mv) == NUMAHEAP_OK);
  uint64_t m5 = 0;
  CHECK(numaheap_guest_lookup(ga, 5, &m5, NULL) == NUMAHEAP_OK);
  memset(frame(NULL, m5), 0x5a, PAGE);
  uint64_t gfns[2] = {5, 1u << 30};
  uint8_t outcomes[2];
  uint64_t moved = 0;
  CHECK(numaheap_frame_mover_move(mv, gfns, 2, 1, 0, NULL, &moved) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_frame_mover_move(mv, gfns, 2, 1, 0, outcomes, &moved) == NUMAHEAP_OK);
  CHECK(outcomes[0] == NUMAHEAP_MOVED && outcomes[1] == NUMAHEAP_MOVE_NOT_PRESENT && moved == 1);
  CHECK(strcmp(numaheap_move_outcome_name(outcomes[1]), "not_present") == 0);
  CHECK(g_protects > 0 && g_flushes >= 2 && g_unprotects > 0);
  CHECK(numaheap_guest_lookup(ga, 5, &m5, NULL) == NUMAHEAP_OK && m5 >= BASE + FRAMES_PER_NODE);
  CHECK(frame(NULL, m5)[0] == 0x5a && frame(NULL, m5)[PAGE - 1] == 0x5a);
  numaheap_page_state ps[2];
  CHECK(numaheap_frame_mover_query(mv, 5, 2, ps) == NUMAHEAP_OK && ps[0].node == 1 && ps[1].node == 0);
  /* Coalescing: the split block at gfn 0 into one 2 MiB block on node 0
   * again, page 5 (the straggler on node 1) brought along. */
  uint8_t co = 0xff;
  CHECK(numaheap_frame_mover_coalesce(mv, 1, 9, 0, &co, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_frame_mover_coalesce(NULL, 0, 9, 0, &co, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_frame_mover_coalesce(mv, 0, 9, 0, &co, &moved) == NUMAHEAP_OK && co == NUMAHEAP_MOVED && moved == 1);
  CHECK(numaheap_guest_lookup(ga, 5, &m5, NULL) == NUMAHEAP_OK && m5 < BASE + FRAMES_PER_NODE);
  CHECK(frame(NULL, m5)[0] == 0x5a && frame(NULL, m5)[PAGE - 1] == 0x5a);
  CHECK(numaheap_guest_check(ga, 1) == NUMAHEAP_OK);

  /* ---- Migrator over the frame-only guest ---- */
  numaheap_migrator* m = NULL;
  numaheap_migrator_config mc;
  numaheap_migrator_config_init(&mc);
  mc.rate_limit_mb_s = 0;
  CHECK(numaheap_migrator_create(t, &mc, &m) == NUMAHEAP_OK);
  uint32_t id = 0;
  CHECK(numaheap_migrator_add_frame_guest(m, NULL, NULL, &id) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_add_frame_guest(m, mv, NULL, &id) == NUMAHEAP_OK);
  numaheap_step_report sr;
  CHECK(numaheap_migrator_step_at(m, 1000000, &sr) == NUMAHEAP_OK);
  numaheap_nodemask to1;
  memset(&to1, 0, sizeof to1);
  numaheap_nodemask_set(&to1, 1);
  CHECK(numaheap_migrator_rehome_ex(m, id, &to1, NUMAHEAP_ALL_VNODES, 0x8) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_rehome_ex(m, id, &to1, NUMAHEAP_ALL_VNODES, NUMAHEAP_REHOME_OVERRIDE_LIMITS) == NUMAHEAP_OK);
  numaheap_rehome_progress pr;
  for (uint64_t now = 2; now < 200; ++now) {
    CHECK(numaheap_migrator_step_at(m, now * 1000000000ull, &sr) == NUMAHEAP_OK);
    CHECK(numaheap_migrator_rehome_progress(m, id, &pr) == NUMAHEAP_OK);
    if (pr.state != NUMAHEAP_REHOME_RUNNING) break;
  }
  CHECK(pr.state == NUMAHEAP_REHOME_DONE && pr.failed == 0);
  CHECK(numaheap_guest_pages_per_node(ga, per_node, 4) == 1 && per_node[0].node == 1);
  CHECK(numaheap_migrator_check(m) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_bind_vnode(m, id + 5, 0, 1) != NUMAHEAP_OK);
  numaheap_migrator_stats ms;
  CHECK(numaheap_migrator_get_stats(m, &ms) == NUMAHEAP_OK && ms.pages_moved >= 2047 && ms.flushes > 0);
  {
    /* The guest's own count: every frame the rehome moved is this guest's. */
    numaheap_migrate_guest_stats gs;
    CHECK(numaheap_migrator_guest_stats(m, id, &gs) == NUMAHEAP_OK);
    CHECK(gs.pages_moved == ms.pages_moved && gs.bytes_moved == ms.bytes_moved);
    CHECK(gs.pages_moved == pr.moved);
  }
  CHECK(numaheap_migrator_remove_guest(m, id) == NUMAHEAP_OK);
  numaheap_migrator_destroy(m);
  numaheap_frame_mover_destroy(mv);
  CHECK(numaheap_guest_check(ga, 1) == NUMAHEAP_OK && numaheap_guest_lost_frames(ga) == 0);

  /* ---- Sharing: same-node policy ---- */
  numaheap_sharing_config sc;
  numaheap_sharing_config_init(&sc);
  sc.policy.kind = NUMAHEAP_SHARE_SAME_NODE;
  sc.address = frame;
  numaheap_sharing* s = NULL;
  sc.policy.kind = 9;
  CHECK(numaheap_sharing_create(h, &sc, &s, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  sc.policy.kind = NUMAHEAP_SHARE_SAME_NODE;
  CHECK(numaheap_sharing_create(h, &sc, &s, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_sharing_add_guest(s, gb, err, sizeof err) == NUMAHEAP_OK);
  /* Two pages of b with equal non-zero bytes merge. */
  uint64_t mb0 = 0, mb1 = 0;
  CHECK(numaheap_guest_lookup(gb, 0, &mb0, NULL) == 0 && numaheap_guest_lookup(gb, 1, &mb1, NULL) == 0);
  memset(frame(NULL, mb0), 0x33, PAGE);
  memset(frame(NULL, mb1), 0x33, PAGE);
  CHECK(numaheap_guest_split_to_pages(gb, 0) == NUMAHEAP_OK);
  uint64_t merged = 0;
  CHECK(numaheap_sharing_scan(s, gb, 0, 2, &merged) == NUMAHEAP_OK && merged >= 1);
  uint32_t fl0 = 0;
  CHECK(numaheap_guest_lookup(gb, 1, &mb1, &fl0) == 0 && (fl0 & NUMAHEAP_P2M_SHARED));
  numaheap_sharing_policy any = {NUMAHEAP_SHARE_ACROSS_NODES, 0};
  CHECK(numaheap_sharing_set_policy(s, &any) == NUMAHEAP_E_BUSY);
  CHECK(numaheap_sharing_policy_allows(t, &sc.policy, 0, 1) == 0 && numaheap_sharing_policy_allows(t, &any, 0, 1) == 1);
  CHECK(numaheap_sharing_write_fault(s, gb, 1, 0) == NUMAHEAP_OK);
  CHECK(numaheap_guest_lookup(gb, 1, &mb1, &fl0) == 0 && !(fl0 & NUMAHEAP_P2M_SHARED));
  CHECK(frame(NULL, mb1)[7] == 0x33);
  numaheap_sharing_node_stats sn[2];
  numaheap_sharing_stats ss;
  memset(&ss, 0, sizeof ss);
  ss.per_node = sn;
  ss.per_node_cap = 2;
  CHECK(numaheap_sharing_get_stats(s, &ss) == NUMAHEAP_OK && ss.merges >= 1 && ss.unshares >= 1);
  ss.per_node = NULL;
  CHECK(numaheap_sharing_get_stats(s, &ss) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_sharing_unmerge_all(s, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_sharing_set_policy(s, &any) == NUMAHEAP_OK);
  CHECK(numaheap_sharing_check(s) == NUMAHEAP_OK);
  CHECK(numaheap_sharing_scan(NULL, gb, 0, 1, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_sharing_remove_guest(s, gb, err, sizeof err) == NUMAHEAP_OK);
  numaheap_sharing_destroy(s);

  /* ---- Cold store: pages of b kept off node 0 ---- */
  numaheap_cold_config cc;
  numaheap_cold_config_init(&cc);
  cc.address = frame;
  cc.watermark_pages = 0;
  cc.watermark_fraction = 0;
  numaheap_cold_store* cs = NULL;
  CHECK(numaheap_cold_store_create(h, &cc, &cs, err, sizeof err) == NUMAHEAP_OK);
  CHECK(numaheap_set_reclaim_hook(h, numaheap_cold_store_reclaim_hook, cs) == NUMAHEAP_OK);
  uint32_t pool = 0;
  CHECK(numaheap_cold_pool_create(cs, gb, 7, &pool, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_cold_pool_create(cs, ga, NUMAHEAP_POOL_EPHEMERAL, &pool, err, sizeof err) != NUMAHEAP_OK);
  CHECK(numaheap_cold_pool_create(cs, gb, NUMAHEAP_POOL_PERSISTENT, &pool, err, sizeof err) == NUMAHEAP_OK);
  unsigned char page[PAGE], back[PAGE];
  memset(page, 0x77, sizeof page);
  uint32_t where = 0;
  CHECK(numaheap_cold_put(cs, pool, 1, 2, NULL, &where) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_cold_put(cs, pool, 1, 2, page, &where) == NUMAHEAP_OK && where == 1);
  CHECK(numaheap_cold_node_of(cs, pool, 1, 2) == 1);
  int got = -1;
  CHECK(numaheap_cold_get(cs, pool, 1, 2, back, &got) == NUMAHEAP_OK && got == NUMAHEAP_COLD_HIT);
  CHECK(memcmp(page, back, PAGE) == 0);
  uint32_t po[2];
  CHECK(numaheap_cold_pool_node_order(cs, pool, po, 2) == 1 && po[0] == 1);
  numaheap_cold_node_stats cn[2];
  numaheap_cold_stats cst;
  memset(&cst, 0, sizeof cst);
  cst.per_node = cn;
  cst.per_node_cap = 2;
  CHECK(numaheap_cold_get_stats(cs, &cst) == NUMAHEAP_OK && cst.pages == 1 && cst.per_node_count == 2);
  CHECK(numaheap_cold_flush(cs, pool, 1, 2) == NUMAHEAP_OK);
  CHECK(numaheap_cold_get(cs, pool, 1, 2, back, &got) == NUMAHEAP_OK && got == NUMAHEAP_COLD_MISS);
  CHECK(numaheap_cold_get(cs, pool + 9, 1, 2, back, &got) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_cold_check(cs) == NUMAHEAP_OK);
  CHECK(numaheap_cold_pool_destroy(cs, pool) == NUMAHEAP_OK);
  CHECK(numaheap_set_reclaim_hook(h, NULL, NULL) == NUMAHEAP_OK);
  numaheap_cold_store_destroy(cs);

  /* ---- Tear down: nothing left anywhere ---- */
  CHECK(numaheap_guest_destroy(ga) == NUMAHEAP_OK);
  CHECK(numaheap_guest_destroy(gb) == NUMAHEAP_OK);
  numaheap_drain_all(h);
  CHECK(numaheap_frames_owned_by(h, 10) == 0 && numaheap_frames_owned_by(h, 11) == 0);
  CHECK(numaheap_check(h, 1) == NUMAHEAP_OK);
  numaheap_destroy(h);
  numaheap_topology_free(t);
  free(g_mem);
  puts("hv_c_api: ok");
  return 0;
}
