// placeholder: filled by the topology I/O work
#include "numaheap/topology_io.h"
namespace numaheap {
std::string render_numactl(const Topology&) { return {}; }
}
