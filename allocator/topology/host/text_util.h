// numaheap: small text helpers shared by the topology loaders (internal).
//
// Everything here works on std::string_view, never allocates except to
// build error text, and never reads past the view it is given.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace numaheap::detail {

// Space as sysfs and pasted text contain it: blanks, line ends, and the
// stray NUL bytes some kernels leave after the final newline.
inline bool is_blank_or_nul(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
         c == '\0';
}

inline bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

inline std::string_view trim(std::string_view s) noexcept {
  std::size_t b = 0, e = s.size();
  while (b < e && is_blank_or_nul(s[b])) ++b;
  while (e > b && is_blank_or_nul(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// The first line of `s` (up to, not including, the first '\n').
inline std::string_view first_line(std::string_view s) noexcept {
  std::size_t nl = s.find('\n');
  return nl == std::string_view::npos ? s : s.substr(0, nl);
}

// `s` quoted for an error message: printable ASCII kept, anything else as
// '?', long text cut, so a binary file cannot flood or corrupt a message.
inline std::string quoted(std::string_view s, std::size_t max_chars = 48) {
  std::string out = "'";
  std::size_t n = s.size() < max_chars ? s.size() : max_chars;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > n) out += "...";
  out += '\'';
  return out;
}

enum class NumberStatus { ok, not_a_number, too_large };

// A whole string of decimal digits (no sign, no blanks) into `out`.
inline NumberStatus parse_decimal(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty()) return NumberStatus::not_a_number;
  for (char c : s)
    if (!is_digit(c)) return NumberStatus::not_a_number;
  std::uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (r.ec == std::errc::result_out_of_range) return NumberStatus::too_large;
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return NumberStatus::not_a_number;
  out = v;
  return NumberStatus::ok;
}

// Splits on spaces and tabs; empty fields are dropped.
inline std::vector<std::string_view> split_blanks(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

}  // namespace numaheap::detail
