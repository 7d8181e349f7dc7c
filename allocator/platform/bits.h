// Bit tricks the core needs without libgcc helpers (std::popcount compiles
// to a call to __popcountdi2 unless the target has POPCNT).
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaheap {

constexpr unsigned popcount64(std::uint64_t x) noexcept {
#if defined(__POPCNT__)
  return static_cast<unsigned>(__builtin_popcountll(x));
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
#endif
}

// Length of a NUL-terminated string (the core has no strlen).
constexpr std::size_t cstr_length(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n]) ++n;
  return n;
}

}  // namespace numaheap
