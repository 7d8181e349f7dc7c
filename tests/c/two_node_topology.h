/* The migrator C tests' host: two nodes, CPUs {0,1} and {2,3}, 64 MiB
 * each. NULL (with a failed CHECK) if the builder refused it. Include
 * check.h first. */
#ifndef NUMAHEAP_TESTS_C_TWO_NODE_TOPOLOGY_H
#define NUMAHEAP_TESTS_C_TWO_NODE_TOPOLOGY_H

#include "numaheap/numaheap_migrate.h"

static inline numaheap_topology* two_node_topology(void) {
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  CHECK(numaheap_topology_builder_add_node(b, 0, cpus0, 2, 64u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 1, cpus1, 2, 64u << 20) == NUMAHEAP_OK);
  numaheap_topology* t = NULL;
  CHECK(numaheap_topology_builder_build(b, &t, NULL, 0) == NUMAHEAP_OK);
  numaheap_topology_builder_free(b);
  return t;
}

#endif
