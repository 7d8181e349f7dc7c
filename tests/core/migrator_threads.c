/* The freestanding core has no threads: a C embedder linking
 * libnumaheap_core.a alone (the C linker, no C++ runtime) finds
 * numaheap_migrator_start, _stop and _request_step (numaheap_migrate.h),
 * and start says NUMAHEAP_E_UNSUPPORTED, changing nothing; the migrator
 * runs from the embedder's own steps (step_at). */
#include <stdio.h>
#include <stdlib.h>

#include <numaheap/numaheap.h>
#include <numaheap/numaheap_migrate.h>
#include <numaheap/platform_contract.h>

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

int main(void) {
  const size_t region_bytes = 4u << 20;
  void* region = aligned_alloc(4096, region_bytes);
  numaheap_metadata_hooks meta;
  CHECK(region && numaheap_region_init(region, region_bytes, 0, &meta) == 0);
  numaheap_set_default_metadata(&meta);

  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  numaheap_topology* t = NULL;
  CHECK(b && numaheap_topology_builder_add_node(b, 0, cpus0, 2, 64u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 1, cpus1, 2, 64u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_build(b, &t, NULL, 0) == NUMAHEAP_OK);
  numaheap_topology_builder_free(b);

  numaheap_migrator* m = NULL;
  CHECK(numaheap_migrator_create(t, NULL, &m) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_start(NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_start(m) == NUMAHEAP_E_UNSUPPORTED);
  CHECK(numaheap_migrator_running(m) == 0);
  numaheap_migrator_request_step(m); /* nothing to wake */
  numaheap_migrator_request_step(NULL);
  numaheap_migrator_stop(m); /* nothing to stop */
  numaheap_migrator_stop(NULL);
  CHECK(numaheap_migrator_start(m) == NUMAHEAP_E_UNSUPPORTED);
  CHECK(numaheap_migrator_running(m) == 0);
  /* The embedder's timer steps it. */
  numaheap_step_report rep;
  CHECK(numaheap_migrator_step_at(m, 1000000000u, &rep) == NUMAHEAP_OK);
  numaheap_migrator_stats s;
  CHECK(numaheap_migrator_get_stats(m, &s) == NUMAHEAP_OK && s.steps == 1);
  CHECK(numaheap_migrator_check(m) == NUMAHEAP_OK);
  numaheap_migrator_destroy(m);
  numaheap_topology_free(t);
  const size_t used = numaheap_region_used(&meta);
  numaheap_set_default_metadata(NULL);
  free(region);
  CHECK(used == 0);
  printf("core migrator: start unsupported, stop and request_step do nothing: ok\n");
  return 0;
}
