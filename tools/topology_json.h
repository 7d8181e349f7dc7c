// JSON form of a Topology, for admins and scripts:
//   {"nodes":[{"id":0,"cpus":[0,1],"memory_mb":2007,"free_mb":1931}, ...],
//    "distances":[[10,21],[21,10]]}
// Rows and columns of "distances" follow the order of "nodes". Sizes are MB
// rounded down, as numactl computes them; an unknown size is null, and a
// source without distances gives "distances": null.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap::tools {

nlohmann::json topology_to_json(const Topology& topo);
std::string render_topology_json(const Topology& topo, int indent = -1);

// Parses the form above back into a Topology (sizes become MB * 2^20).
// Every structural problem is an Error naming the JSON path.
Result<Topology, Error> parse_topology_json(std::string_view text,
                                            std::string_view source_name = "json");

}  // namespace numaheap::tools

namespace numaheap::tools {

// A topology from a path an admin gives: a directory is a sysfs tree, a
// file starting with '{' the JSON form, anything else numactl -H text.
Result<Topology, Error> load_topology_path(std::string_view path);

}  // namespace numaheap::tools
