// Topology of the live host through libnuma.
//
// Walks libnuma's configured node set (numa_nodes_ptr: every node the
// kernel lists, memoryless ones included) bit by bit up to numa_max_node(),
// so sparse ids are never assumed to be 0..n-1. Per node: CPUs from
// numa_node_to_cpus (none when libnuma cannot read them, as numactl shows
// it), size/free from numa_node_size64 (-1 → unknown), and numa_distance
// (0 → not given). libnuma's own numa_error/numa_warn are left alone: a
// library must not override them for its host program.
#include <numa.h>

#include <string>
#include <vector>

#include "numaheap/topology_io.h"

namespace numaheap {

Result<Topology, Error> load_topology_libnuma() {
  if (numa_available() < 0)
    return Error{Errc::unsupported, "libnuma: NUMA is not available on this host "
                                    "(numa_available() < 0)"};
  const int max_node = numa_max_node();
  if (max_node < 0 || numa_nodes_ptr == nullptr)
    return Error{Errc::unsupported, "libnuma: no configured NUMA nodes"};
  if (max_node >= static_cast<int>(kMaxNodes))
    return Error{Errc::unsupported, "libnuma: highest node id " + std::to_string(max_node) +
                                        " is above the supported maximum " +
                                        std::to_string(kMaxNodes - 1)};

  std::vector<NodeId> ids;
  for (int n = 0; n <= max_node; ++n)
    if (numa_bitmask_isbitset(numa_nodes_ptr, static_cast<unsigned>(n)))
      ids.push_back(static_cast<NodeId>(n));
  if (ids.empty()) return Error{Errc::unsupported, "libnuma: no configured NUMA nodes"};

  struct bitmask* cpumask = numa_allocate_cpumask();
  if (cpumask == nullptr) return Error{Errc::no_memory, "libnuma: cannot allocate a cpumask"};

  TopologyBuilder builder("libnuma");
  for (NodeId id : ids) {
    const int node = static_cast<int>(id);
    std::vector<CpuId> cpus;
    numa_bitmask_clearall(cpumask);
    if (numa_node_to_cpus(node, cpumask) >= 0) {
      for (unsigned long c = 0; c < cpumask->size; ++c) {
        if (!numa_bitmask_isbitset(cpumask, static_cast<unsigned>(c))) continue;
        if (c >= kMaxCpus) {
          numa_free_cpumask(cpumask);
          return Error{Errc::unsupported, "libnuma: node " + std::to_string(id) + ": cpu " +
                                              std::to_string(c) +
                                              " is above the supported maximum " +
                                              std::to_string(kMaxCpus - 1)};
        }
        cpus.push_back(static_cast<CpuId>(c));
      }
    }
    long long free_bytes = -1;
    const long long size_bytes = numa_node_size64(node, &free_bytes);
    const std::uint64_t size =
        size_bytes < 0 ? kUnknownBytes : static_cast<std::uint64_t>(size_bytes);
    std::uint64_t free = free_bytes < 0 ? kUnknownBytes : static_cast<std::uint64_t>(free_bytes);
    // Sizes are read one after the other from a live system: never let the
    // free figure exceed the total because of a race.
    if (size != kUnknownBytes && free != kUnknownBytes && free > size) free = size;
    builder.add_node(id, std::move(cpus), size, free);
  }
  numa_free_cpumask(cpumask);

  for (NodeId from : ids)
    for (NodeId to : ids) {
      const int d = numa_distance(static_cast<int>(from), static_cast<int>(to));
      if (d > 0) builder.set_distance(from, to, static_cast<std::uint32_t>(d));
    }
  return builder.build();
}

}  // namespace numaheap
