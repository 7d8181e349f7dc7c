/* The vCPU advice's C API, compiled as C11: defaults, bad input refused
 * with nothing changed, the advice queries' argument checks, the
 * advice_given counter. Whether advice is given, and when not, is
 * tests/unit/vcpu_advice_test.cc's (the same core code). */
#include <math.h>
#include <stdint.h>

#include "numaheap/numaheap_migrate.h"
#include "check.h"
#include "two_node_topology.h"

int main(void) {
  numaheap_topology* t = two_node_topology();
  if (!t) return 1;
  numaheap_migrator* m = NULL;
  CHECK(numaheap_migrator_create(t, NULL, &m) == NUMAHEAP_OK);
  if (!m) return 1;

  /* The defaults are the C++ ones, disabled. */
  numaheap_vcpu_advice_config c;
  numaheap_vcpu_advice_config_init(&c);
  CHECK(c.enabled == 0 && c.copy_gb_s == 8 && c.page_overhead_us == 3.7 && c.vcpu_move_us == 1000);
  CHECK(c.margin == 2 && c.min_share == 0.75 && c.min_pages == 512 && c.memory_bound_share == 0.5);
  CHECK(!c.vcpu_allowed && !c.free_cpus && !c.on_advice);
  c.enabled = 1;
  CHECK(numaheap_migrator_set_vcpu_advice(m, &c) == NUMAHEAP_OK);

  /* Bad input: refused, nothing changed. */
  CHECK(numaheap_migrator_set_vcpu_advice(NULL, &c) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_set_vcpu_advice(m, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);
  const double bad[] = {NAN, INFINITY, -INFINITY, -1.0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    numaheap_vcpu_advice_config x = c;
    x.copy_gb_s = bad[i];
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
    x = c;
    x.vcpu_move_us = bad[i];
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
    x = c;
    x.min_share = bad[i];
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
  }
  {
    numaheap_vcpu_advice_config x = c;
    x.margin = 0.5; /* advice when the vCPU costs more than the memory: refused */
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
    x = c;
    x.copy_gb_s = 0;
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
    x = c;
    x.memory_bound_share = 1.5;
    CHECK(numaheap_migrator_set_vcpu_advice(m, &x) == NUMAHEAP_E_INVALID_ARGUMENT);
  }

  /* Queries: no guest, no advice; a NULL buffer only with cap 0. */
  size_t count = 99;
  numaheap_vcpu_advice a[2];
  CHECK(numaheap_migrator_vcpu_advice(m, NULL, 0, &count) == NUMAHEAP_OK && count == 0);
  CHECK(numaheap_migrator_vcpu_advice(m, a, 2, NULL) == NUMAHEAP_OK);
  CHECK(numaheap_migrator_vcpu_advice(m, NULL, 2, &count) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_vcpu_advice(NULL, a, 2, &count) == NUMAHEAP_E_INVALID_ARGUMENT);
  int has = 7;
  CHECK(numaheap_migrator_vcpu_advice_for(m, 0, 0, a, &has) == NUMAHEAP_E_INVALID_ARGUMENT && has == 7);
  CHECK(numaheap_migrator_vcpu_advice_for(m, 0, 0, NULL, &has) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(numaheap_migrator_vcpu_advice_for(m, 0, 0, a, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);

  CHECK(numaheap_migrator_step_at(m, 1000000000u, NULL) == NUMAHEAP_OK);
  numaheap_migrator_stats st;
  CHECK(numaheap_migrator_get_stats(m, &st) == NUMAHEAP_OK && st.advice_given == 0);

  numaheap_migrator_destroy(m);
  numaheap_topology_free(t);
  return check_report();
}
