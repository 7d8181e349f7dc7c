// placeholder: filled by the topology I/O work
#include "numaheap/topology_io.h"
namespace numaheap {
Result<Topology, Error> parse_numactl_text(std::string_view, std::string_view) { return Error{Errc::unsupported, "numactl parser not written yet"}; }
Result<Topology, Error> load_topology_numactl_file(std::string_view) { return Error{Errc::unsupported, "numactl parser not written yet"}; }
}
