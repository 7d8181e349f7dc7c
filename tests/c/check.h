/* The C tests' CHECK. By default a failed check is printed and counted and
 * the test goes on, so one run reports every broken check; a test whose later
 * steps use what earlier ones made defines CHECK_STOPS before including this,
 * and the first failed check ends it. Each test ends with
 * `return check_report();`. */
#ifndef NUMAHEAP_TESTS_C_CHECK_H
#define NUMAHEAP_TESTS_C_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef CHECK_STOPS
#define CHECK_STOPS 0
#endif

static int check_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++check_failures;                                                        \
      if (CHECK_STOPS) exit(1);                                                \
    }                                                                          \
  } while (0)

/* The exit status: 0 when every check held. */
static inline int check_report(void) {
  if (check_failures) fprintf(stderr, "%d check(s) failed\n", check_failures);
  return check_failures != 0;
}

#endif
