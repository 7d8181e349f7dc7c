/* The placement C API from C11: vNUMA one node per vnode, a session with
 * affinity groups, utilization from /proc/stat samples, and the control
 * domain from the heap's free memory above watermarks. */
#include <stdio.h>
#include <string.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/numaheap_place.h"
#define CHECK_STOPS 1 /* later steps use what earlier ones made */
#include "check.h"


/* 16 CPUs; cpus of node 2 (8-11) idle, the others busy, 100 ticks apart. */
static int write_stat(const char* path, int after) {
  FILE* f = fopen(path, "w");
  if (!f) return 0;
  fprintf(f, "cpu  0 0 0 0 0 0 0 0 0 0\n");
  for (int cpu = 0; cpu < 16; ++cpu) {
    int busy = after && (cpu < 8 || cpu >= 12) ? 100 : 0;
    int idle = after ? 100 - busy : 0;
    fprintf(f, "cpu%d %d 0 0 %d 0 0 0 0 0 0\n", cpu, 1000 + busy, 5000 + idle);
  }
  fprintf(f, "intr 1 2 3\nctxt 42\n");
  return fclose(f) == 0;
}

static numaheap_guest_spec plain(const char* name, const char* aff, const char* anti) {
  numaheap_guest_spec s;
  memset(&s, 0, sizeof s);
  s.name = name;
  s.memory_bytes = 256u << 20;
  s.vcpus = 1;
  s.affinity_group = aff;
  s.anti_affinity_group = anti;
  return s;
}

int main(void) {
  numaheap_topology* topo = NULL;
  char err[256] = "";
  CHECK(numaheap_topology_builtin(&topo) == 0);
  numaheap_node_usage usage[4];
  CHECK(numaheap_idle_usage(topo, usage, 4) == 4);

  /* Four vnodes of 4 vCPUs and 500 MB: four distinct nodes. */
  uint32_t c0[] = {0, 1, 2, 3}, c1[] = {4, 5, 6, 7}, c2[] = {8, 9, 10, 11}, c3[] = {12, 13, 14, 15};
  numaheap_vnode_spec vn[4] = {{.memory_bytes = 500u << 20, .pnode = NUMAHEAP_NO_NODE, .vcpus = c0, .vcpu_count = 4},
                               {.memory_bytes = 500u << 20, .pnode = NUMAHEAP_NO_NODE, .vcpus = c1, .vcpu_count = 4},
                               {.memory_bytes = 500u << 20, .pnode = NUMAHEAP_NO_NODE, .vcpus = c2, .vcpu_count = 4},
                               {.memory_bytes = 500u << 20, .pnode = NUMAHEAP_NO_NODE, .vcpus = c3, .vcpu_count = 4}};
  numaheap_guest_spec four;
  memset(&four, 0, sizeof four);
  four.name = "four";
  four.memory_bytes = 2000ull << 20;
  four.vcpus = 16;
  four.vnodes = vn;
  four.vnode_count = 4;
  numaheap_node_share shares[4];
  uint32_t vcpu_nodes[16], pnodes[4];
  numaheap_placement p;
  memset(&p, 0, sizeof p);
  p.memory = shares;
  p.memory_cap = 4;
  p.vcpu_nodes = vcpu_nodes;
  p.vcpu_cap = 16;
  p.vnode_pnodes = pnodes;
  p.vnode_cap = 4;
  if (numaheap_place(topo, &four, usage, 4, NULL, &p, err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
  CHECK(err[0] == 0);
  CHECK(p.vnode_count == 4 && p.memory_count == 4);
  unsigned seen = 0;
  for (int v = 0; v < 4; ++v) seen |= 1u << pnodes[v];
  CHECK(seen == 0xfu);
  CHECK(strstr(p.reason, "warning") == NULL);

  /* Every vnode is one piece unless told otherwise. */
  numaheap_vnode_share pieces[8];
  p.vnode_memory = pieces;
  p.vnode_memory_cap = 8;
  CHECK(numaheap_place(topo, &four, usage, 4, NULL, &p, err, sizeof err) == 0);
  CHECK(p.vnode_memory_count == 4);
  for (uint32_t v = 0; v < 4; ++v)
    CHECK(pieces[v].vnode == v && pieces[v].node == pnodes[v] && pieces[v].bytes == (500u << 20));
  /* vnode 3 interleaved over nodes 0-1: two pieces of 250 MB. */
  numaheap_nodemask both;
  memset(&both, 0, sizeof both);
  numaheap_nodemask_set(&both, 0);
  numaheap_nodemask_set(&both, 1);
  vn[3].memory_mode = NUMAHEAP_MEM_INTERLEAVE;
  vn[3].nodes = &both;
  CHECK(numaheap_place(topo, &four, usage, 4, NULL, &p, err, sizeof err) == 0);
  CHECK(p.vnode_memory_count == 5);
  CHECK(pieces[3].vnode == 3 && pieces[3].node == 0 && pieces[3].bytes == (250u << 20));
  CHECK(pieces[4].vnode == 3 && pieces[4].node == 1 && pieces[4].bytes == (250u << 20));
  CHECK(strstr(p.reason, "vnode 3 -> nodes 0-1 (interleaved)") != NULL);
  /* Too small an array: the count says how many there are. */
  p.vnode_memory_cap = 2;
  CHECK(numaheap_place(topo, &four, usage, 4, NULL, &p, err, sizeof err) == 0);
  CHECK(p.vnode_memory_count == 5);
  p.vnode_memory = NULL;
  p.vnode_memory_cap = 0;
  vn[3].memory_mode = NUMAHEAP_MEM_DEFAULT;
  vn[3].nodes = NULL;
  CHECK(numaheap_place(topo, &four, usage, 4, NULL, &p, err, sizeof err) == 0);

  /* commit then release: usage comes back as it was. */
  numaheap_node_usage before[4];
  memcpy(before, usage, sizeof usage);
  CHECK(numaheap_place_commit(topo, &p, usage, 4) == 0);
  CHECK(usage[pnodes[0]].free_bytes == before[pnodes[0]].free_bytes - (500u << 20));
  CHECK(usage[pnodes[0]].vcpus == 4);
  CHECK(numaheap_place_release(topo, &p, usage, 4) == 0);
  for (int i = 0; i < 4; ++i) CHECK(usage[i].free_bytes == before[i].free_bytes && usage[i].vcpus == 0);
  CHECK(numaheap_place_release(topo, &p, usage, 3) == NUMAHEAP_E_INVALID_ARGUMENT);

  /* A session: "db" replicas apart, "web" guests together. */
  numaheap_place_session* s = numaheap_place_session_create(topo, NULL, 0);
  CHECK(s != NULL);
  CHECK(numaheap_place_session_create(topo, usage, 3) == NULL);
  unsigned db_nodes = 0;
  for (int i = 0; i < 4; ++i) {
    numaheap_guest_spec db = plain("db", NULL, "db");
    CHECK(numaheap_place_session_place(s, &db, &p, err, sizeof err) == 0);
    CHECK(p.memory_count == 1);
    db_nodes |= 1u << shares[0].node;
  }
  CHECK(db_nodes == 0xfu);
  numaheap_guest_spec web1 = plain("web1", "web", NULL), web2 = plain("web2", "web", NULL);
  CHECK(numaheap_place_session_place(s, &web1, &p, err, sizeof err) == 0);
  uint32_t web_node = shares[0].node;
  CHECK(numaheap_place_session_place(s, &web2, &p, err, sizeof err) == 0);
  CHECK(shares[0].node == web_node);
  CHECK(numaheap_place_session_release(s, &web2, &p) == 0);
  numaheap_node_usage su[4];
  CHECK(numaheap_place_session_usage(s, su, 4) == 4);
  CHECK(su[web_node].vcpus == 2); /* one db and web1 */
  double util[4] = {0.9, 0.9, 0.0, 0.9};
  CHECK(numaheap_place_session_set_utilization(s, util, 3) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_place_session_set_utilization(s, util, 4) == 0);
  numaheap_place_session_destroy(s);
  numaheap_place_session_destroy(NULL);

  /* Utilization from two recorded samples. */
  CHECK(write_stat("place_c_api_t0.stat", 0) && write_stat("place_c_api_t1.stat", 1));
  CHECK(numaheap_idle_usage(topo, usage, 4) == 4);
  CHECK(numaheap_utilization_between(topo, "place_c_api_t0.stat", "place_c_api_t1.stat", usage, 4, err,
                                     sizeof err) == 0);
  CHECK(usage[0].utilization == 1.0 && usage[2].utilization == 0.0);
  CHECK(numaheap_utilization_between(topo, "place_c_api_t0.stat", "missing.stat", usage, 4, err,
                                     sizeof err) == NUMAHEAP_E_IO_ERROR);
  CHECK(strstr(err, "missing.stat") != NULL);
  remove("place_c_api_t0.stat");
  remove("place_c_api_t1.stat");
  CHECK(numaheap_measure_utilization(topo, "/nonexistent-root", 0, usage, 4, err, sizeof err) ==
        NUMAHEAP_E_IO_ERROR);

  /* The control domain from the heap's free memory now: claim most of node
   * 0 and dom0 takes little there. */
  numaheap_heap* heap = NULL;
  CHECK(numaheap_create(topo, NULL, &heap, err, sizeof err) == 0);
  CHECK(numaheap_claim(heap, 9, (1500ull << 20) / 4096, 0) == 0);
  numaheap_guest* dom0 = NULL;
  CHECK(numaheap_control_domain_create(heap, 1024ull << 20, 1, "dom0", &dom0, err, sizeof err) == 0);
  CHECK(numaheap_guest_populate(dom0, err, sizeof err) == 0);
  numaheap_node_stats st;
  CHECK(numaheap_stats(heap, 0, &st) == 0);
  CHECK(st.used < (200u << 20) / 4096);
  CHECK(numaheap_guest_destroy(dom0) == 0);
  CHECK(numaheap_control_domain_create(heap, 7000ull << 20, 1, "dom0", &dom0, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(strstr(err, "watermarks") != NULL);

  /* The placer's options from C: defaults, a watermark that keeps 90% of
   * every node free (a 1000 MiB guest fits nowhere: ~800 MB above it in
   * all), and bad fractions refused with nothing changed. */
  numaheap_placement_options po;
  numaheap_placement_options_init(&po);
  CHECK(po.watermark_bytes == (64ull << 20) && po.watermark_fraction == 0.02);
  numaheap_guest_spec big = plain("big", NULL, NULL);
  big.memory_bytes = 1000ull << 20;
  numaheap_placement bp = p; /* the same arrays */
  CHECK(numaheap_place_ex(topo, &big, NULL, 0, NULL, &po, &bp, err, sizeof err) == 0);
  CHECK(numaheap_place_ex(topo, &big, NULL, 0, NULL, NULL, &bp, err, sizeof err) == 0);
  numaheap_placement_options high = po;
  high.watermark_fraction = 0.9;
  CHECK(numaheap_place_ex(topo, &big, NULL, 0, NULL, &high, &bp, err, sizeof err) == NUMAHEAP_E_NO_MEMORY);
  numaheap_placement_options bad = po;
  bad.watermark_fraction = 1.5;
  CHECK(numaheap_place_ex(topo, &big, NULL, 0, NULL, &bad, &bp, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(strstr(err, "watermark_fraction") != NULL);
  bad.watermark_fraction = -0.1;
  double cost = 0;
  numaheap_nodemask all;
  memset(&all, 0, sizeof all);
  all.bits[0] = 0xf;
  CHECK(numaheap_place_cost_ex(topo, &big, &all, NULL, 0, NULL, &bad, &cost) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_place_cost_ex(topo, &big, &all, NULL, 0, NULL, &po, &cost) == 0);
  CHECK(numaheap_place_session_create_ex(topo, NULL, 0, &bad) == NULL);
  numaheap_place_session* hs = numaheap_place_session_create_ex(topo, NULL, 0, &high);
  CHECK(hs != NULL);
  CHECK(numaheap_place_session_place(hs, &big, &bp, err, sizeof err) == NUMAHEAP_E_NO_MEMORY);
  numaheap_place_session_destroy(hs);
  numaheap_guest* g = NULL;
  CHECK(numaheap_guest_create_ex(heap, &big, 2, &bad, &g, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(g == NULL);
  CHECK(numaheap_guest_create_ex(heap, &big, 2, &high, &g, err, sizeof err) == NUMAHEAP_E_NO_MEMORY);
  CHECK(g == NULL);
  CHECK(numaheap_guest_create_ex(heap, &big, 2, &po, &g, err, sizeof err) == 0);
  CHECK(numaheap_guest_destroy(g) == 0);
  CHECK(numaheap_control_domain_create_ex(heap, 1024ull << 20, 1, "dom0", &high, &dom0, err, sizeof err) ==
        NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(strstr(err, "watermarks") != NULL);
  CHECK(numaheap_control_domain_create_ex(heap, 1024ull << 20, 1, "dom0", &po, &dom0, err, sizeof err) == 0);
  CHECK(numaheap_guest_destroy(dom0) == 0);
  numaheap_destroy(heap);
  numaheap_topology_free(topo);
  printf("place C API ok\n");
  return 0;
}
