// Small text helpers for the guest layer's error messages (core: no
// allocation). A node mask as "0,2-3" in a FixedString.
#pragma once

#include <cstddef>
#include <string_view>

#include "numaheap/fixed_string.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"

namespace numaheap::guest_detail {

// errc_name() as a view, for make_error. The length loop is bounded: GCC
// turns an unbounded "count to the NUL" loop into a strlen call, which the
// core may not make (check_symbols.sh).
inline std::string_view errc_text(Errc e) noexcept {
  const char* s = errc_name(e);
  std::size_t n = 0;
  while (n < 64 && s[n]) ++n;
  return {s, n};
}

using MaskText = FixedString<128>;

// Members of `m` as ranges ("0-3,8"); cut (truncated()) when long.
inline MaskText mask_text(const NodeMask& m) noexcept {
  MaskText t;
  NodeId run_first = kNoNode, prev = kNoNode;
  auto flush = [&] {
    if (run_first == kNoNode) return;
    if (!t.empty()) t.append(',');
    t.append_uint(run_first);
    if (prev != run_first) t.append('-').append_uint(prev);
  };
  for (NodeId n : m) {
    if (run_first != kNoNode && n == prev + 1) {
      prev = n;
      continue;
    }
    flush();
    run_first = prev = n;
  }
  flush();
  return t;
}

}  // namespace numaheap::guest_detail
