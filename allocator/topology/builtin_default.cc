// placeholder: filled by the topology I/O work
#include "numaheap/topology_io.h"
namespace numaheap {
std::string_view builtin_default_numactl_text() { return {}; }
Topology builtin_default_topology() { return {}; }
}
