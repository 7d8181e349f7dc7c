// The built-in default topology: the seed 4-node machine.
//
// This is what `numactl -H` printed on the 4-node libvirt guest quoted in the
// vNUMA distances work (tests/data/topologies/seed-4node-libvirt/numactl-H.txt,
// kept byte for byte): 16 CPUs, about 2 GB per node, SLIT 10/21/31. Demos and
// tests use it when the host itself has a single node. The blanks at the end
// of the distance lines are part of numactl's output: keep them.
#include <cassert>

#include "numaheap/topology_io.h"

namespace numaheap {
namespace {

constexpr std::string_view kSeed4NodeLibvirt = R"(available: 4 nodes (0-3)
node 0 cpus: 0 1 2 3
node 0 size: 2007 MB
node 0 free: 1931 MB
node 1 cpus: 4 5 6 7
node 1 size: 1951 MB
node 1 free: 1902 MB
node 2 cpus: 8 9 10 11
node 2 size: 1998 MB
node 2 free: 1910 MB
node 3 cpus: 12 13 14 15
node 3 size: 2015 MB
node 3 free: 1907 MB
node distances:
node   0   1   2   3 
  0:  10  21  31  21 
  1:  21  10  21  31 
  2:  31  21  10  21 
  3:  21  31  21  10 
)";

}  // namespace

std::string_view builtin_default_numactl_text() { return kSeed4NodeLibvirt; }

Topology builtin_default_topology() {
  static const Topology topo = [] {
    auto r = parse_numactl_text(kSeed4NodeLibvirt, "builtin:seed-4node-libvirt");
    assert(r.has_value() && "the built-in numactl text must parse");
    return r.has_value() ? std::move(r).value() : Topology();
  }();
  return topo;
}

}  // namespace numaheap
