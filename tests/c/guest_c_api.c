/* The guest C API from C11: create, populate per vnode, balloon, destroy. */
#include <stdio.h>
#include <string.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_guest.h"
#define CHECK_STOPS 1 /* later steps use what earlier ones made */
#include "check.h"


int main(void) {
  numaheap_topology* topo = NULL;
  numaheap_heap* heap = NULL;
  char err[256] = "";
  CHECK(numaheap_topology_builtin(&topo) == 0);
  CHECK(numaheap_create(topo, NULL, &heap, err, sizeof err) == 0);

  uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  numaheap_vnode_spec vnodes[2] = {{.memory_bytes = 64u << 20, .pnode = 2, .vcpus = cpus0, .vcpu_count = 2, .distances = NULL, .distance_count = 0},
      {.memory_bytes = 32u << 20, .pnode = NUMAHEAP_NO_NODE, .vcpus = cpus1, .vcpu_count = 2, .distances = NULL, .distance_count = 0}};
  numaheap_guest_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "c-guest";
  spec.memory_bytes = 96u << 20;
  spec.vcpus = 4;
  spec.vnodes = vnodes;
  spec.vnode_count = 2;
  numaheap_guest* g = NULL;
  CHECK(numaheap_guest_create(heap, &spec, 5, &g, err, sizeof err) == 0);
  CHECK(numaheap_guest_populate(g, err, sizeof err) == 0);
  CHECK(numaheap_guest_present_pages(g) == (96u << 20) / 4096);
  CHECK(numaheap_guest_check(g, 0) == NUMAHEAP_OK);
  CHECK(numaheap_guest_check(g, 1) == NUMAHEAP_OK);
  CHECK(numaheap_guest_lost_frames(g) == 0);
  uint32_t nodes[2];
  CHECK(numaheap_guest_nodes(g, nodes, 2) == 2 && nodes[0] == 2);

  uint64_t mfn = 0;
  uint32_t flags = 0;
  CHECK(numaheap_guest_lookup(g, 0, &mfn, &flags) == 0 && (flags & NUMAHEAP_P2M_PRESENT));
  uint64_t done = 0;
  CHECK(numaheap_guest_balloon_down(g, 10, &done) == 0 && done == 10);
  CHECK(numaheap_guest_balloon_up(g, 11) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_guest_balloon_up(g, 10) == 0);
  CHECK(numaheap_guest_populate(g, err, sizeof err) == NUMAHEAP_E_BUSY);

  /* Relayout (a rehome): vnode 0 now belongs with vnode 1. */
  CHECK(numaheap_guest_home_node_of(g, 0) == nodes[0]);
  numaheap_guest_range ranges[2] = {{0, (64u << 20) / 4096, nodes[1], 0}, {(64u << 20) / 4096, (32u << 20) / 4096, nodes[1], 1}};
  ranges[1].vnode = 0;
  CHECK(numaheap_guest_layout_generation(g) == 0);
  CHECK(numaheap_guest_relayout(g, ranges, 2) == NUMAHEAP_E_INVALID_ARGUMENT); /* vnodes stay */
  CHECK(numaheap_guest_layout_generation(g) == 0);
  ranges[1].vnode = 1;
  CHECK(numaheap_guest_relayout(g, ranges, 2) == NUMAHEAP_OK);
  CHECK(numaheap_guest_layout_generation(g) == 1);
  CHECK(numaheap_guest_layout_generation(NULL) == 0);
  CHECK(numaheap_guest_home_node_of(g, 0) == nodes[1]);
  CHECK(numaheap_guest_home_node_of(g, 1u << 30) == NUMAHEAP_NO_NODE);

  /* Bad specs are refused with a message and change nothing. */
  numaheap_guest* bad = NULL;
  spec.memory_bytes = 1000;
  CHECK(numaheap_guest_create(heap, &spec, 6, &bad, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(strstr(err, "c-guest") != NULL);
  CHECK(numaheap_guest_create(NULL, &spec, 6, &bad, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);

  CHECK(numaheap_guest_destroy(g) == 0);
  numaheap_node_stats st;
  CHECK(numaheap_stats(heap, 2, &st) == 0 && st.used == 0);
  CHECK(numaheap_check(heap, 1) == 0);
  numaheap_destroy(heap);
  numaheap_topology_free(topo);
  printf("guest C API ok\n");
  return 0;
}
