// placeholder: filled by the topology I/O work
#include "numaheap/topology_io.h"
namespace numaheap {
Result<Topology, Error> load_topology_libnuma() { return Error{Errc::unsupported, "libnuma loader not written yet"}; }
}
