/* A freestanding-style embedder in C11: metadata from one region it
 * reserves, frames it owns (frame_only with a scrub hook), a topology it
 * describes. Links libnumaheap_core.a only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <numaheap/numaheap.h>
#include <numaheap/platform_contract.h>

static unsigned long scrubbed;
static void scrub(void* ctx, uint64_t first, uint64_t count) {
  (void)ctx, (void)first;
  scrubbed += (unsigned long)count;
}

int main(int argc, char** argv) {
  /* --break-leak: a deliberately leaking embedder (the heap never destroyed);
   * the region check below must catch it (consumer.install runs it). */
  const int break_leak = argc > 1 && !strcmp(argv[1], "--break-leak");
  const size_t region_bytes = 8u << 20;
  void* region = aligned_alloc(4096, region_bytes);
  numaheap_metadata_hooks meta;
  if (!region || numaheap_region_init(region, region_bytes, 0, &meta) != 0) return 1;
  numaheap_set_default_metadata(&meta);

  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  char err[256];
  numaheap_topology* topo = NULL;
  if (!b || numaheap_topology_builder_add_node(b, 0, cpus0, 2, 64u << 20) != 0 ||
      numaheap_topology_builder_add_node(b, 1, cpus1, 2, 64u << 20) != 0 ||
      numaheap_topology_builder_set_distance(b, 0, 1, 21) != 0 ||
      numaheap_topology_builder_set_distance(b, 1, 0, 21) != 0 ||
      numaheap_topology_builder_build(b, &topo, err, sizeof err) != 0) {
    fprintf(stderr, "core consumer: topology: %s\n", err);
    return 1;
  }
  numaheap_topology_builder_free(b);

  numaheap_config cfg;
  numaheap_config_init(&cfg);
  cfg.hooks.scrub = scrub;
  cfg.boot_memory_dirty = 1;
  cfg.cpus = 4;
  cfg.metadata = &meta;
  numaheap_heap* heap = NULL;
  if (numaheap_create(topo, &cfg, &heap, err, sizeof err) != 0) {
    fprintf(stderr, "core consumer: heap: %s\n", err);
    return 1;
  }
  numaheap_alloc_request req = {0, 1, NUMAHEAP_ALLOC_EXACT_NODE, 7, NULL};
  uint64_t mfn = 0;
  uint32_t node = 9;
  int rc = numaheap_alloc(heap, &req, &mfn, &node);
  if (rc != 0 || node != 1 || scrubbed == 0 || numaheap_free(heap, mfn, 0, 7) != 0 ||
      numaheap_free(heap, mfn, 0, 7) == 0 /* a double free is refused */) {
    fprintf(stderr, "core consumer: alloc/free (%s)\n", numaheap_strerror(rc));
    return 1;
  }
  if (!break_leak) numaheap_destroy(heap);
  numaheap_topology_free(topo);
  /* Everything went back to the region (its allocator's own state stays). */
  const size_t used = numaheap_region_used(&meta);
  numaheap_set_default_metadata(NULL);
  free(region);
  printf("core consumer: region bytes in use after teardown: %zu: %s\n", used, used == 0 ? "ok" : "LEAKED");
  return used == 0 ? 0 : 1;
}
