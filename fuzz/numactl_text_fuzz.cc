// libFuzzer harness: parse_numactl_text on arbitrary bytes.
//
// Properties (a violation traps):
//  - a rejected input gets an Error located as "<source>:<line>: ...";
//  - an accepted input renders to text that parses again, renders to the
//    very same bytes, and describes the same machine (ids, CPUs, sizes,
//    distances as given).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "numaheap/topology_io.h"

namespace {

bool same_machine(const numaheap::Topology& a, const numaheap::Topology& b) {
  if (a.node_count() != b.node_count() || a.node_mask() != b.node_mask()) return false;
  if (a.distances_given() != b.distances_given()) return false;
  for (std::size_t i = 0; i < a.node_count(); ++i) {
    const auto& x = a.node_at(i);
    const auto& y = b.node_at(i);
    if (x.id != y.id || x.cpus != y.cpus || x.memory_bytes != y.memory_bytes ||
        x.free_bytes != y.free_bytes)
      return false;
    for (const auto& z : a.nodes())
      if (a.raw_distance(x.id, z.id) != b.raw_distance(y.id, z.id)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = numaheap::parse_numactl_text(text, "fuzz");
  if (!parsed) {
    const std::string& msg = parsed.error().message;
    if (msg.rfind("fuzz:", 0) != 0) __builtin_trap();
    std::size_t i = 5;
    while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') ++i;
    if (i == 5 || i >= msg.size() || msg[i] != ':') __builtin_trap();
    return 0;
  }
  const std::string once = numaheap::render_numactl(*parsed);
  auto again = numaheap::parse_numactl_text(once, "again");
  if (!again) __builtin_trap();
  if (numaheap::render_numactl(*again) != once) __builtin_trap();
  if (!same_machine(*parsed, *again)) __builtin_trap();
  return 0;
}
