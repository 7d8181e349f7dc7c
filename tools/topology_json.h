// JSON form of a Topology, for admins, scripts and cluster schedulers
// (docs/schedulers.md maps each field to OpenStack Nova and Kubernetes):
//   {"nodes":[{"id":0,"cpus":[0,1],"memory_mb":2007,"free_mb":1931,
//              "hugepages":[{"size_kb":2048,"total":512,"free":500}]}, ...],
//    "distances":[[10,21],[21,10]]}
// Keys are printed in that order. "nodes" is sorted by node id, and row r,
// column c of "distances" is the distance from the r-th to the c-th node of
// "nodes" (so with sparse ids 0,1,4,5 row 2 is node 4). Sizes are MB rounded
// down, as numactl computes them; an unknown size is null, and a source
// without distances gives "distances": null. "hugepages" lists the node's
// huge page pools (sysfs hugepages-<size>kB: nr_hugepages, free_hugepages),
// ascending by size; it is null when the source cannot say (numactl text,
// the built-in machine) and [] when the node has no pool.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap::tools {

// One huge page pool of a node.
struct HugePagePool {
  std::uint64_t size_kb = 0;
  std::uint64_t total = 0;  // nr_hugepages
  std::uint64_t free = 0;   // free_hugepages
  bool operator==(const HugePagePool&) const = default;
};
// Pools per node id; a node missing from the map: unknown.
using HugePageMap = std::map<NodeId, std::vector<HugePagePool>>;

// Reads DIR/sys/devices/system/node/node<id>/hugepages/hugepages-<n>kB/
// (or, when DIR is the node directory itself, DIR/node<id>/...) for every
// node of `topo`. A node without a hugepages directory gets no pools (old
// kernels, CPU-only nodes); unreadable counters are skipped. Never fails.
HugePageMap read_hugepages_sysfs(const Topology& topo, std::string_view root);

nlohmann::ordered_json topology_to_json(const Topology& topo,
                                        const HugePageMap* hugepages = nullptr);
std::string render_topology_json(const Topology& topo, int indent = -1,
                                 const HugePageMap* hugepages = nullptr);

// Parses the form above back into a Topology (sizes become MB * 2^20);
// `hugepages`, when given, gets the pools of the nodes that list them.
// Every structural problem is an Error naming the JSON path.
Result<Topology, Error> parse_topology_json(std::string_view text,
                                            std::string_view source_name = "json",
                                            HugePageMap* hugepages = nullptr);

// A topology from a path an admin gives: a directory is a sysfs tree, a
// file starting with '{' the JSON form, anything else numactl -H text.
// `hugepages`, when given, gets what the source says about huge pages.
Result<Topology, Error> load_topology_path(std::string_view path,
                                           HugePageMap* hugepages = nullptr);

// The topology a command works on, from its --topology value:
//   "builtin"  the seed 4-node machine (demos, tests);
//   ""         the live host: libnuma, else the sysfs tree under
//              `sysfs_root` ("/" for the host itself), never the seed machine;
//   otherwise  a path (load_topology_path).
// A non-empty `sysfs_root` with an empty spec reads that tree only.
// `said` gets a short description of the source, for stderr.
Result<Topology, Error> resolve_topology(const std::string& spec, const std::string& sysfs_root,
                                         std::string* said = nullptr,
                                         HugePageMap* hugepages = nullptr);

}  // namespace numaheap::tools
