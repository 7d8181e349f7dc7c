/* A C11 program built against the installed library through pkg-config. */
#include <stdio.h>
#include <string.h>

#include <numaheap/numaheap.h>

int main(void) {
  numaheap_topology* topo = NULL;
  numaheap_heap* heap = NULL;
  char err[256];
  /* The library it runs with is the one its headers describe. */
  if (strcmp(numaheap_version(), NUMAHEAP_VERSION_STRING) != 0) {
    fprintf(stderr, "c consumer: library %s, headers %s\n", numaheap_version(), NUMAHEAP_VERSION_STRING);
    return 1;
  }
  if (numaheap_topology_builtin(&topo) != 0) return 1;
  if (numaheap_create(topo, NULL, &heap, err, sizeof err) != 0) {
    fprintf(stderr, "c consumer: %s\n", err);
    return 1;
  }
  numaheap_alloc_request req = {0, 2, NUMAHEAP_ALLOC_EXACT_NODE, 1, NULL};
  uint64_t mfn = 0;
  uint32_t node = 0;
  int rc = numaheap_alloc(heap, &req, &mfn, &node);
  if (rc != 0 || node != 2 || numaheap_free(heap, mfn, 0, 1) != 0) {
    fprintf(stderr, "c consumer: alloc/free failed (%s)\n", numaheap_strerror(rc));
    return 1;
  }
  numaheap_destroy(heap);
  numaheap_topology_free(topo);
  printf("c consumer ok\n");
  return 0;
}
