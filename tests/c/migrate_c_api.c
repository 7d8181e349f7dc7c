/* The migrator's C API, compiled as C11: create, register a guest RAM
 * mapping (kernel moves), inputs, steps, rehome with progress, stats,
 * background start/stop, errors. The test host may have one node: moves go
 * to node 0 (present), a move toward the topology's node 1 that the kernel
 * lacks is reported, not fatal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numaheap/numaheap_migrate.h"
#include "check.h"
#include "two_node_topology.h"


enum { kPages = 32 };

int main(void) {
  numaheap_topology* t = two_node_topology();
  if (!t) return 1;

  numaheap_migrator_config cfg;
  numaheap_migrator_config_init(&cfg);
  CHECK(cfg.period_ms > 0 && cfg.max_guests > 0);
  cfg.period_ms = 1;
  cfg.rate_limit_mb_s = 0;
  numaheap_migrator* m = NULL;
  CHECK(numaheap_migrator_create(NULL, &cfg, &m) == NUMAHEAP_E_INVALID_ARGUMENT);
  /* Non-finite or out-of-range rates and fractions are refused. */
  const double bad_rates[] = {NAN, INFINITY, -INFINITY, -1.0, 1e300};
  for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; ++i) {
    numaheap_migrator_config b = cfg;
    b.rate_limit_mb_s = bad_rates[i];
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
  }
  {
    numaheap_migrator_config b = cfg;
    b.period_ms = 0; /* would spin the thread, and stop the core's clock */
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
  }
  const double bad_fractions[] = {NAN, INFINITY, -INFINITY, -0.5, 1.5};
  for (size_t i = 0; i < sizeof bad_fractions / sizeof bad_fractions[0]; ++i) {
    numaheap_migrator_config b = cfg;
    b.watermark_fraction = bad_fractions[i];
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
  }
  for (size_t i = 0; i < sizeof bad_fractions / sizeof bad_fractions[0]; ++i) {
    numaheap_migrator_config b = cfg;
    b.spare_bandwidth_share = bad_fractions[i];
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
    b = cfg;
    b.min_sample_share = bad_fractions[i];
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
  }
  {
    numaheap_migrator_config b = cfg;
    b.min_sample_share = 0; /* the advice needs a floor above zero */
    CHECK(numaheap_migrator_create(t, &b, &m) == NUMAHEAP_E_INVALID_ARGUMENT && m == NULL);
  }
  /* The defaults carry the C++ ones: quick moves on, the watermark capped. */
  CHECK(cfg.quick_moves == 1 && cfg.watermark_max_pages == 512);
  CHECK(cfg.keep_huge_pages == 1);
  cfg.scan_pages = kPages / 2; /* the cursor's window: half; the sampled pass sees the rest */
  CHECK(numaheap_migrator_create(t, &cfg, &m) == NUMAHEAP_OK);
  if (!m) return 1;

  unsigned char* ram = aligned_alloc(4096, kPages * 4096);
  CHECK(ram != NULL);
  if (!ram) return 1;
  for (size_t i = 0; i < kPages * 4096; ++i) ram[i] = (unsigned char)(i * 7);
  uint32_t id = 99;
  CHECK(numaheap_migrator_add_mapping(m, ram + 1, kPages, 2, NULL, &id) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_add_mapping(m, ram, kPages, 2, NULL, &id) == NUMAHEAP_OK);
  CHECK(id == 0);

  /* Inputs: vCPU 1 runs on CPU 0 (node 0), where the pages already are. */
  CHECK(numaheap_migrator_set_vcpu_cpu(m, id, 1, 0) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_set_vcpu_cpu(m, id, 5, 0) == NUMAHEAP_E_INVALID_ARGUMENT);
  {
    double share = 0;
    CHECK(numaheap_migrator_sample_share(m, id, &share) == NUMAHEAP_OK && share == 1.0);
    CHECK(numaheap_migrator_sample_share(m, id + 100, &share) == NUMAHEAP_E_INVALID_ARGUMENT);
    CHECK(numaheap_migrator_sample_share(m, id, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  }
  for (uint64_t g = 0; g < kPages; ++g) {
    numaheap_migrator_record_vcpu_access(m, id, g, 1);
    numaheap_migrator_record_access(m, id, g, 1);
  }
  uint64_t moved = 7;
  CHECK(numaheap_migrator_step(m, &moved) == NUMAHEAP_OK);
  CHECK(moved == 0); /* already local */
  numaheap_migrator_stats st;
  CHECK(numaheap_migrator_get_stats(m, &st) == NUMAHEAP_OK);
  CHECK(st.steps == 1);
  CHECK(st.pages_scanned == kPages && st.pages_scanned_sampled == kPages / 2);
  CHECK(st.local_access_ratio > 0.99);
  CHECK(st.tracking_bytes >= kPages * 8 && st.retired_guests == 0);
  {
    numaheap_migrate_guest_stats gs;
    CHECK(numaheap_migrator_guest_stats(m, id, &gs) == NUMAHEAP_OK);
    CHECK(gs.pages_scanned == kPages && gs.pages_moved == 0 && gs.local_access_ratio > 0.99);
    CHECK(gs.vcpus == 2); /* the vCPU slots it was added with */
    CHECK(numaheap_migrator_guest_stats(m, id + 1, &gs) == NUMAHEAP_E_INVALID_ARGUMENT);
    CHECK(numaheap_migrator_guest_stats(m, 1u << 30, &gs) == NUMAHEAP_E_INVALID_ARGUMENT);
    CHECK(numaheap_migrator_guest_stats(m, id, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
    CHECK(numaheap_migrator_guest_stats(NULL, id, &gs) == NUMAHEAP_E_INVALID_ARGUMENT);
  }

  /* Rehome to node 0: everything is there already; progress reaches total. */
  numaheap_nodemask only0;
  memset(&only0, 0, sizeof only0);
  numaheap_nodemask_set(&only0, 0);
  CHECK(numaheap_migrator_rehome(m, id, &only0, NUMAHEAP_ALL_VNODES) == NUMAHEAP_OK);
  numaheap_rehome_progress p;
  CHECK(numaheap_migrator_rehome_progress(m, id, &p) == NUMAHEAP_OK);
  CHECK(p.state == NUMAHEAP_REHOME_RUNNING && p.total == kPages);
  for (int i = 0; i < 10 && p.state == NUMAHEAP_REHOME_RUNNING; ++i) {
    CHECK(numaheap_migrator_step(m, NULL) == NUMAHEAP_OK);
    CHECK(numaheap_migrator_rehome_progress(m, id, &p) == NUMAHEAP_OK);
  }
  CHECK(p.state == NUMAHEAP_REHOME_DONE);
  CHECK(p.done == p.total);
  CHECK(numaheap_migrator_cancel_rehome(m, id) == NUMAHEAP_E_INVALID_ARGUMENT); /* not running */
  numaheap_nodemask none;
  memset(&none, 0, sizeof none);
  CHECK(numaheap_migrator_rehome(m, id, &none, NUMAHEAP_ALL_VNODES) == NUMAHEAP_E_INVALID_NODE);
  CHECK(numaheap_migrator_rehome_ex(m, id, &only0, NUMAHEAP_ALL_VNODES, 0x80) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_rehome_ex(m, id, &only0, NUMAHEAP_ALL_VNODES, NUMAHEAP_REHOME_OVERRIDE_LIMITS) ==
        NUMAHEAP_OK);
  for (int i = 0; i < 10 && p.state != NUMAHEAP_REHOME_DONE; ++i) {
    CHECK(numaheap_migrator_step(m, NULL) == NUMAHEAP_OK);
    CHECK(numaheap_migrator_rehome_progress(m, id, &p) == NUMAHEAP_OK);
  }
  {
    numaheap_migrator_stats ms;
    CHECK(numaheap_migrator_get_stats(m, &ms) == NUMAHEAP_OK);
    CHECK(ms.pages_evacuated == 0); /* the kernel mover has no offline events */
  }

  /* Background thread. */
  CHECK(numaheap_migrator_start(m) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_start(m) == NUMAHEAP_E_BUSY);
  numaheap_migrator_stop(m);
  numaheap_migrator_stop(m);
  CHECK(numaheap_migrator_node_pair_moves(m, NULL, 0) == 0);
  for (size_t i = 0; i < kPages * 4096; ++i)
    if (ram[i] != (unsigned char)(i * 7)) {
      CHECK(!"contents changed");
      break;
    }
  CHECK(numaheap_migrator_remove_guest(m, id) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_remove_guest(m, id) == NUMAHEAP_E_INVALID_ARGUMENT);
  /* No input raced the removal: its tracking memory is gone at once. */
  CHECK(numaheap_migrator_get_stats(m, &st) == NUMAHEAP_OK);
  CHECK(st.tracking_bytes == 0 && st.retired_guests == 0);
  numaheap_migrator_destroy(m);
  free(ram);
  numaheap_topology_free(t);
  return check_report();
}
