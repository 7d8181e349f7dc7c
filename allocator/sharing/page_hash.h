// Page content hashing for dedup: XXH3-64 over one 4 KiB frame, plus a
// fast all-zero test. Header-only xxHash (XXH_INLINE_ALL), so the core needs
// no extra link dependency; its own warnings are silenced here only.
#pragma once

#include <cstdint>
#include <cstring>

#include "numaheap/topology.h"

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wold-style-cast"
#pragma clang diagnostic ignored "-Wcast-align"
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wshadow"
#pragma clang diagnostic ignored "-Wimplicit-fallthrough"
#pragma clang diagnostic ignored "-Wnull-dereference"
#pragma clang diagnostic ignored "-Wpedantic"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wnull-dereference"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace numaheap::sharing_detail {

inline std::uint64_t hash_page(const unsigned char* page) noexcept {
  return XXH3_64bits(page, kFrameSize);
}

// True when every byte of the frame is zero. Word-at-a-time with an early
// exit: most non-zero pages differ within the first cache line.
inline bool page_is_zero(const unsigned char* page) noexcept {
  std::uint64_t acc = 0;
  for (std::size_t off = 0; off < kFrameSize; off += 64) {
    std::uint64_t w[8];
    std::memcpy(w, page + off, sizeof w);
    for (std::uint64_t x : w) acc |= x;
    if (acc) return false;
  }
  return true;
}

inline bool pages_equal(const unsigned char* a, const unsigned char* b) noexcept {
  return std::memcmp(a, b, kFrameSize) == 0;
}

}  // namespace numaheap::sharing_detail
