// render_numactl: the text numactl 2.0.16 prints for `numactl -H`.
//
// Layout (every line ends in "\n"):
//   available: <count> nodes (<id list in range syntax>)
//   node <id> cpus: <cpu> <cpu> ...        (no trailing blank; none for
//   node <id> size: <MB> MB                 CPU-less nodes)
//   node <id> free: <MB> MB | <not available>
//   ...
//   node distances:
//   node <"% 3d " per id>
//   <"% 3d: " id><"% 3d " per distance>  (0 where not given)
// or, when the last node gives no distance to the first,
//   No distance information available.
#include <string>

#include "numaheap/topology_io.h"

namespace numaheap {
namespace {

// printf("% 3d", v): a blank where the sign would go, right-aligned in 3.
void append_padded(std::string& out, std::uint32_t v) {
  std::string digits = " " + std::to_string(v);
  if (digits.size() < 3) out.append(3 - digits.size(), ' ');
  out += digits;
}

void append_memory(std::string& out, std::uint64_t bytes) {
  if (bytes == kUnknownBytes) {
    out += "<not available>";
  } else {
    out += std::to_string(bytes >> 20);
    out += " MB";
  }
}

}  // namespace

std::string render_numactl(const Topology& topo) {
  std::string out;
  const NodeMask all = topo.node_mask();
  out += "available: " + std::to_string(topo.node_count()) + " nodes (" + all.to_string() +
         ")\n";
  for (const NodeInfo& node : topo.nodes()) {
    const std::string prefix = "node " + std::to_string(node.id);
    out += prefix + " cpus:";
    for (CpuId c : node.cpus) {
      out += ' ';
      out += std::to_string(c);
    }
    out += '\n';
    out += prefix + " size: ";
    append_memory(out, node.memory_bytes);
    out += '\n';
    out += prefix + " free: ";
    append_memory(out, node.free_bytes);
    out += '\n';
  }
  if (topo.node_count() == 0) return out;

  // numactl asks for the distance from the highest node to the first one
  // and gives up on the whole table when that one is missing.
  if (topo.raw_distance(all.last(), all.first()) == 0) {
    out += "No distance information available.\n";
    return out;
  }
  out += "node distances:\n";
  out += "node ";
  for (const NodeInfo& node : topo.nodes()) {
    append_padded(out, node.id);
    out += ' ';
  }
  out += '\n';
  for (const NodeInfo& from : topo.nodes()) {
    append_padded(out, from.id);
    out += ": ";
    for (const NodeInfo& to : topo.nodes()) {
      append_padded(out, topo.raw_distance(from.id, to.id));
      out += ' ';
    }
    out += '\n';
  }
  return out;
}

}  // namespace numaheap
