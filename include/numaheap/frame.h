// numaheap: machine frames, orders and owners -- the vocabulary shared by the
// platform layer and the page allocator.
//
// Frames are 4 KiB (kFrameShift in topology.h). A block of order k is 2^k
// frames whose first mfn is a multiple of 2^k; orders run 0..kMaxOrder
// (order 18 = 1 GiB). An owner is whoever holds a block (a domain, a VM, a
// pool): a 32-bit id chosen by the embedder. Two ids are reserved.
#pragma once

#include <cstdint>

#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

using Mfn = std::uint64_t;  // machine frame number
using Gfn = std::uint64_t;  // guest frame number
using OwnerId = std::uint32_t;

inline constexpr Mfn kInvalidMfn = ~Mfn{0};
inline constexpr unsigned kMaxOrder = 18;  // 2^18 frames = 1 GiB
inline constexpr unsigned kOrderCount = kMaxOrder + 1;
// Reserved owner ids: never valid in a request.
inline constexpr OwnerId kNoOwner = 0xffffffffu;     // "nobody" (clean memory)
inline constexpr OwnerId kMixedOwner = 0xfffffffeu;  // "several / unknown" (dirty)
inline constexpr OwnerId kMaxOwner = 0xfffffffdu;    // largest id a caller may use

inline constexpr std::uint64_t frames_of_order(unsigned order) noexcept {
  return std::uint64_t{1} << order;
}

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
