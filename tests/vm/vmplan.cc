// numaheap-vmplan: turns a topology (numactl -H text) into qemu arguments
// for a guest that mirrors it, and into the topology that guest's kernel
// will report, so the in-guest test can compare against it.
//
//   numaheap-vmplan --topology FILE --expected OUT [--cpus-per-node N]
//                   [--max-node-mb M] [--min-node-mb M]
//
// stdout: qemu arguments, one per line. OUT: expected guest topology as
// numactl -H text. stderr: how host nodes map to guest nodes.
//
// What qemu 7.2 + Linux do, measured here:
//  - qemu wants node ids < 128 and no gaps ("numa: Node ID missing"): gaps
//    are filled with empty nodes (no CPUs, no memory), which the guest never
//    sees; qemu also wants a distance for every pair, fillers included.
//  - Linux numbers guest nodes densely in the order the ACPI SRAT mentions
//    them: CPU entries first (by CPU index), then memory-only nodes. We hand
//    out CPU indices in node-id order, so guest ids are: CPU nodes in id
//    order, then CPU-less memory nodes in id order. A sparse host topology
//    (0,1,4,5) therefore appears as 0,1,2,3 in the guest, with the same
//    distances between corresponding nodes.
//  - Nodes with neither CPUs nor memory cannot be shown to a guest.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: numaheap-vmplan --topology FILE --expected OUT [--cpus-per-node N] "
               "[--max-node-mb M] [--min-node-mb M]\n");
  return 2;
}

bool parse_uint(const char* s, unsigned long lo, unsigned long hi, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(s, &end, 10);
  return errno == 0 && end && *end == '\0' && end != s && out >= lo && out <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  const char* topo_path = nullptr;
  const char* expected_path = nullptr;
  unsigned long cpus_per_node = 1, max_mb = 256, min_mb = 96;
  for (int i = 1; i < argc; ++i) {
    auto need = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "numaheap-vmplan: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--topology")) topo_path = need("--topology");
    else if (!std::strcmp(argv[i], "--expected")) expected_path = need("--expected");
    else if (!std::strcmp(argv[i], "--cpus-per-node")) {
      if (!parse_uint(need("--cpus-per-node"), 1, 8, cpus_per_node)) return usage();
    } else if (!std::strcmp(argv[i], "--max-node-mb")) {
      if (!parse_uint(need("--max-node-mb"), 64, 4096, max_mb)) return usage();
    } else if (!std::strcmp(argv[i], "--min-node-mb")) {
      if (!parse_uint(need("--min-node-mb"), 64, 4096, min_mb)) return usage();
    } else return usage();
  }
  if (!topo_path || !expected_path || min_mb > max_mb) return usage();

  auto loaded = load_topology_numactl_file(topo_path);
  if (!loaded) {
    std::fprintf(stderr, "numaheap-vmplan: %s\n", loaded.error().message.c_str());
    return 1;
  }
  const Topology& host = *loaded;
  NodeId max_id = host.node_mask().last();
  if (max_id >= 128) {
    std::fprintf(stderr, "numaheap-vmplan: node %u: qemu 7.2 accepts node ids below 128 only\n",
                 max_id);
    return 1;
  }

  // Guest order: CPU nodes by id, then memory-only nodes by id.
  std::vector<const NodeInfo*> order;
  for (const auto& n : host.nodes())
    if (n.has_cpus()) order.push_back(&n);
  for (const auto& n : host.nodes())
    if (!n.has_cpus() && n.has_memory()) order.push_back(&n);
  for (const auto& n : host.nodes())
    if (!n.has_cpus() && !n.has_memory())
      std::fprintf(stderr, "numaheap-vmplan: node %u has neither CPUs nor memory: not shown\n", n.id);

  std::uint64_t biggest = 1;
  for (const auto& n : host.nodes())
    if (n.has_memory()) biggest = std::max(biggest, n.memory_bytes);

  std::vector<std::string> args;
  std::vector<std::string> node_args;
  TopologyBuilder expected("vmplan");
  unsigned next_cpu = 0;
  unsigned long total_mb = 0;
  std::vector<NodeId> guest_of(kMaxNodes, kNoNode);
  for (std::size_t g = 0; g < order.size(); ++g) guest_of[order[g]->id] = static_cast<NodeId>(g);

  for (const auto& n : host.nodes()) {
    std::string spec = "node,nodeid=" + std::to_string(n.id);
    std::vector<CpuId> guest_cpus;
    if (n.has_cpus()) {
      unsigned count = static_cast<unsigned>(std::min<std::size_t>(n.cpus.size(), cpus_per_node));
      spec += ",cpus=" + std::to_string(next_cpu);
      if (count > 1) spec += "-" + std::to_string(next_cpu + count - 1);
      for (unsigned c = 0; c < count; ++c) guest_cpus.push_back(next_cpu + c);
      next_cpu += count;
    }
    std::uint64_t mb = 0;
    if (n.has_memory()) {
      mb = std::max<std::uint64_t>(min_mb, (n.memory_bytes * max_mb) / biggest);
      mb = std::min<std::uint64_t>(mb, max_mb);
      args.push_back("-object");
      args.push_back("memory-backend-ram,id=m" + std::to_string(n.id) + ",size=" +
                     std::to_string(mb) + "M");
      spec += ",memdev=m" + std::to_string(n.id);
      total_mb += mb;
    }
    node_args.push_back(spec);
    if (guest_of[n.id] != kNoNode)
      expected.add_node(guest_of[n.id], guest_cpus, mb << 20);
  }
  // Fill id gaps with empty nodes qemu insists on.
  std::vector<NodeId> all_ids;
  for (NodeId id = 0; id <= max_id; ++id) {
    all_ids.push_back(id);
    if (!host.has_node(id)) node_args.push_back("node,nodeid=" + std::to_string(id));
  }
  for (const auto& s : node_args) {
    args.push_back("-numa");
    args.push_back(s);
  }
  std::uint32_t far = 10;
  for (const auto& a : host.nodes())
    for (const auto& b : host.nodes()) far = std::max(far, host.distance(a.id, b.id));
  for (NodeId a : all_ids)
    for (NodeId b : all_ids) {
      if (a == b) continue;
      std::uint32_t d = host.has_node(a) && host.has_node(b) ? host.distance(a, b) : far;
      args.push_back("-numa");
      args.push_back("dist,src=" + std::to_string(a) + ",dst=" + std::to_string(b) +
                     ",val=" + std::to_string(d));
      if (guest_of[a] != kNoNode && guest_of[b] != kNoNode)
        expected.set_distance(guest_of[a], guest_of[b], d);
    }
  for (const auto* n : order) expected.set_distance(guest_of[n->id], guest_of[n->id], host.distance(n->id, n->id));
  if (next_cpu == 0) {
    std::fprintf(stderr, "numaheap-vmplan: the topology has no CPUs\n");
    return 1;
  }
  args.insert(args.begin(), {"-m", std::to_string(total_mb) + "M", "-smp",
                             std::to_string(next_cpu) + ",sockets=" + std::to_string(next_cpu)});

  auto guest = expected.build();
  if (!guest) {
    std::fprintf(stderr, "numaheap-vmplan: %s\n", guest.error().message.c_str());
    return 1;
  }
  std::FILE* out = std::fopen(expected_path, "w");
  if (!out) {
    std::fprintf(stderr, "numaheap-vmplan: %s: %s\n", expected_path, std::strerror(errno));
    return 1;
  }
  std::string text = render_numactl(*guest);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fclose(out);
  for (const auto* n : order)
    std::fprintf(stderr, "numaheap-vmplan: host node %u -> guest node %u\n", n->id, guest_of[n->id]);
  for (const auto& a : args) std::printf("%s\n", a.c_str());
  return 0;
}
