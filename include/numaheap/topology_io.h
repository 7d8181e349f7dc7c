// numaheap: where a Topology comes from and how it is shown.
//
// Loaders never crash and never print: on bad input they return an Error
// whose message says the source, the line (or file) and what is wrong, e.g.
//   "ticket.txt:7: node 3 size: expected '<n> MB' or '<not available>', got 'lots'".
#pragma once

#include <string>
#include <string_view>

#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// 1. The live host, through libnuma. Walks the configured node set (sparse
//    ids, memoryless nodes included), never 0..numa_max_node().
Result<Topology, Error> load_topology_libnuma();

// 2. A sysfs tree. `root` is either a directory holding
//    sys/devices/system/node (a snapshot, or "/" for the host) or the node
//    directory itself. Copes with what real kernels leave there: no
//    online/has_* files, cpumap without cpulist, cpumap of any width, stray
//    NUL bytes, empty files, missing distance or MemFree. CPUs come from
//    cpumap, as numactl takes them; cpulist is used only without a cpumap.
Result<Topology, Error> load_topology_sysfs(std::string_view root);

// 3. The text `numactl -H` prints (what admins paste into tickets).
Result<Topology, Error> parse_numactl_text(std::string_view text,
                                           std::string_view source_name = "numactl");
Result<Topology, Error> load_topology_numactl_file(std::string_view path);

// The built-in default: the seed 4-node machine (16 CPUs, SLIT 10/21/31),
// used for demos and tests when the host itself has a single node.
Topology builtin_default_topology();
std::string_view builtin_default_numactl_text();

// Renders exactly what numactl 2.0.16's `numactl -H` prints for the same
// machine (sizes in MB rounded down, "<not available>" for unknown sizes,
// "No distance information available." when no distance was given).
std::string render_numactl(const Topology& topo);

// Reads a whole file (helper shared by the loaders and tools). Error
// message names the path and errno text.
Result<std::string, Error> read_text_file(std::string_view path);

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
