// The C API's opaque handles and helpers, shared by the C API files of
// every layer (allocator/heap/c_api.cc, allocator/guest/c_api.cc, ... and
// their host/ counterparts). Internal.
//
// Core world: this header and the core C API files are compiled into the
// freestanding libnumaheap_core.a. Handles are classes with
// NUMAHEAP_METADATA_NEW_DELETE (memory from the default metadata hooks, a
// null result when there is none: every C entry point then returns
// NUMAHEAP_E_NO_MEMORY and changes nothing); lists are numaheap::Vector.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "numaheap/metadata.h"
#include "numaheap/numaheap.h"
#include "numaheap/page_allocator.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/vector.h"

struct numaheap_topology {
  NUMAHEAP_METADATA_NEW_DELETE
  numaheap::Topology topo;
};

// Immutable after numaheap_topology_builder_* calls from one thread.
struct numaheap_topology_builder {
  NUMAHEAP_METADATA_NEW_DELETE
  struct Node {
    std::uint32_t id = 0;
    numaheap::Vector<numaheap::CpuId> cpus;
    std::uint64_t bytes = 0;
    std::uint64_t free_bytes = numaheap::kUnknownBytes;
    numaheap::Vector<numaheap::FrameRange> frames;
  };
  struct Dist { std::uint32_t from, to, d; };
  numaheap::Vector<Node> nodes;
  numaheap::Vector<Dist> distances;
};

struct numaheap_heap {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::PageAllocator> pa;
};

namespace numaheap::capi {

inline int code(Errc e) noexcept { return static_cast<int>(e); }
inline int code(const Status& s) noexcept { return s ? NUMAHEAP_OK : code(s.error()); }

// Copies an error's text into the caller's buffer (NUL-terminated,
// truncated); returns its code.
inline void copy_text(std::string_view text, char* err, std::size_t err_len) noexcept {
  if (!err || !err_len) return;
  const std::size_t n = text.size() < err_len - 1 ? text.size() : err_len - 1;
  for (std::size_t i = 0; i < n; ++i) err[i] = text[i];
  err[n] = '\0';
}
inline int fail(const Error& e, char* err, std::size_t err_len) noexcept {
  copy_text(std::string_view(e.message.data(), e.message.size()), err, err_len);
  return code(e.code);
}
inline int fail(Errc c, const char* text, char* err, std::size_t err_len) noexcept {
  std::size_t n = 0;
  while (n < 4096 && text[n]) ++n;  // bounded: gcc would make an unbounded loop a strlen call
  copy_text(std::string_view(text, n), err, err_len);
  return code(c);
}

// Length of a NUL-terminated C string, at most `max` (no strlen: core).
inline std::string_view c_text(const char* s, std::size_t max = 4096) noexcept {
  if (!s) return {};
  std::size_t n = 0;
  while (n < max && s[n]) ++n;
  return std::string_view(s, n);
}

// push_back on std::vector (void) and numaheap::Vector (bool) alike, so the
// C API compiles against either while the C++ types move to the core's
// containers. False: out of memory.
template <class V, class T>
bool push(V& v, T&& x) noexcept {
  if constexpr (std::is_same_v<decltype(v.push_back(std::forward<T>(x))), bool>) {
    return v.push_back(std::forward<T>(x));
  } else {
    v.push_back(std::forward<T>(x));
    return true;
  }
}

inline NodeMask mask_of(const numaheap_nodemask* m) noexcept {
  NodeMask out;
  if (!m) return out;
  for (std::uint32_t w = 0; w < NUMAHEAP_MAX_NODES / 64; ++w)
    for (std::uint64_t bits = m->bits[w]; bits; bits &= bits - 1)
      out.set(w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits)));
  return out;
}

inline void mask_out(const NodeMask& m, numaheap_nodemask* out) noexcept {
  static_assert(sizeof(out->bits) == sizeof(m.words()));
  for (std::size_t w = 0; w < NUMAHEAP_MAX_NODES / 64; ++w) out->bits[w] = m.words()[w];
}

// Wraps a built topology in a handle (allocator/heap/c_api.cc).
int wrap_topology(Result<Topology, Error> r, numaheap_topology** out, char* err,
                  std::size_t err_len) noexcept;

}  // namespace numaheap::capi
