// libFuzzer harness: NodeMask::parse (Linux list syntax) on arbitrary bytes.
//
// Properties (a violation traps): whatever parses prints with to_string()
// into text that parses back to an equal mask and prints identically; the
// mask's count, first, last and iteration agree with test().
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "numaheap/node_mask.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using numaheap::NodeId;
  using numaheap::NodeMask;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = NodeMask::parse(text);
  if (!parsed) {
    if (parsed.error().message.empty()) __builtin_trap();
    return 0;
  }
  const NodeMask& m = *parsed;
  const std::string printed = m.to_string();
  auto again = NodeMask::parse(printed);
  if (!again) __builtin_trap();
  if (*again != m) __builtin_trap();
  if (again->to_string() != printed) __builtin_trap();

  std::size_t members = 0;
  NodeId prev = numaheap::kNoNode;
  for (NodeId id : m) {
    if (!m.test(id)) __builtin_trap();
    if (prev != numaheap::kNoNode && id <= prev) __builtin_trap();
    prev = id;
    ++members;
  }
  std::size_t tested = 0;
  for (NodeId id = 0; id < numaheap::kMaxNodes; ++id) tested += m.test(id) ? 1 : 0;
  if (members != m.count() || tested != members) __builtin_trap();
  if (m.empty() != (members == 0)) __builtin_trap();
  if (!m.empty() && (m.first() != *m.begin() || m.last() != prev)) __builtin_trap();
  if (m.empty() && (m.first() != numaheap::kNoNode || !printed.empty())) __builtin_trap();
  return 0;
}
