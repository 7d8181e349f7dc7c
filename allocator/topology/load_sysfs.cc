// placeholder: filled by the topology I/O work
#include "numaheap/topology_io.h"
namespace numaheap {
Result<Topology, Error> load_topology_sysfs(std::string_view) { return Error{Errc::unsupported, "sysfs loader not written yet"}; }
}
