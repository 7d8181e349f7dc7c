// Guests for the placement tests (placement_vnuma_test.cc,
// placement_constraints_test.cc).
#pragma once

#include <cstdint>
#include <string>

#include "numaheap/guest_spec.h"

namespace numaheap::placement_test {

// `cells` vnodes of `mb_each` MiB and `vcpus_each` vCPUs (vnode v holds
// vCPUs v*vcpus_each...), no pnodes, no distances.
inline GuestSpec vnuma(std::string name, std::size_t cells, std::uint64_t mb_each, std::uint32_t vcpus_each) {
  GuestSpec g;
  g.name = std::move(name);
  g.memory_bytes = cells * mb_each * (1ull << 20);
  g.vcpus = static_cast<std::uint32_t>(cells) * vcpus_each;
  for (std::size_t v = 0; v < cells; ++v) {
    VNodeSpec vn;
    vn.memory_bytes = mb_each * (1ull << 20);
    for (std::uint32_t c = 0; c < vcpus_each; ++c)
      (void)vn.vcpus.push_back(static_cast<std::uint32_t>(v) * vcpus_each + c);
    g.vnodes.push_back(std::move(vn));
  }
  return g;
}

}  // namespace numaheap::placement_test
