// How long the time-bounded stress tests run: 1 s by default (CI),
// NUMAHEAP_STRESS_SECONDS=N for longer runs locally.
#pragma once

#include <cstdlib>

namespace numaheap::test {

inline double stress_seconds() {
  const char* s = std::getenv("NUMAHEAP_STRESS_SECONDS");
  return s && std::atof(s) > 0 ? std::atof(s) : 1.0;
}

}  // namespace numaheap::test
