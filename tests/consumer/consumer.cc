// Uses the installed library: the built-in topology, a fallback order, and
// a round trip through the numactl text form.
#include <cstdio>
#include <cstring>

#include <numaheap/numaheap.h>

#include <numaheap/topology_io.h>

int main() {
  if (std::strcmp(numaheap_version(), NUMAHEAP_VERSION_STRING) != 0 || NUMAHEAP_VERSION_NUMBER < 100) {
    std::fprintf(stderr, "consumer: library %s, headers %s\n", numaheap_version(), NUMAHEAP_VERSION_STRING);
    return 1;
  }
  numaheap::Topology topo = numaheap::builtin_default_topology();
  if (topo.node_count() != 4) {
    std::fprintf(stderr, "consumer: expected 4 nodes, got %zu\n", topo.node_count());
    return 1;
  }
  auto again = numaheap::parse_numactl_text(numaheap::render_numactl(topo), "consumer");
  if (!again || numaheap::render_numactl(*again) != numaheap::render_numactl(topo)) {
    std::fprintf(stderr, "consumer: numactl round trip failed\n");
    return 1;
  }
  std::printf("consumer ok: %zu nodes, node 0 falls back to node %u\n", topo.node_count(),
              topo.fallback_order(0)[1]);
  return 0;
}
