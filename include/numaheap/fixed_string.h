// numaheap::FixedString<N>: text the core keeps or reports (names, error
// messages) without the C++ runtime: at most N - 1 bytes inline, always
// NUL-terminated. Longer text is cut at N - 1 bytes and truncated() says so.
// Converts from and to std::string_view, so host code can build it from a
// std::string and read it as one.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

template <std::size_t N>
class FixedString {
  static_assert(N >= 2 && N <= 65536);

 public:
  static constexpr std::size_t npos = std::string_view::npos;

  constexpr FixedString() noexcept = default;
  FixedString(const char* s) noexcept {
    std::size_t n = 0;
    if (s) while (n < N && s[n]) ++n;  // bounded: no strlen (the core has none)
    assign(std::string_view(s, n));
  }
  // From anything that converts to std::string_view (std::string included).
  template <class S>
    requires(std::is_convertible_v<const S&, std::string_view> &&
             !std::is_convertible_v<const S&, const char*>)
  FixedString(const S& s) noexcept {
    assign(std::string_view(s));
  }

  void assign(std::string_view s) noexcept {
    size_ = 0;
    truncated_ = false;
    append(s);
  }
  FixedString& append(std::string_view s) noexcept {
    std::size_t n = s.size();
    if (n > N - 1 - size_) {
      n = N - 1 - size_;
      truncated_ = true;
    }
    for (std::size_t i = 0; i < n; ++i) buf_[size_ + i] = s[i];
    size_ += n;
    buf_[size_] = '\0';
    return *this;
  }
  FixedString& append(char c) noexcept { return append(std::string_view(&c, 1)); }
  // Decimal, no allocation.
  FixedString& append_uint(std::uint64_t v) noexcept {
    char tmp[20];
    std::size_t n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    char out[20];
    for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
    return append(std::string_view(out, n));
  }
  FixedString& append_int(std::int64_t v) noexcept {
    if (v < 0) {
      append('-');
      return append_uint(~static_cast<std::uint64_t>(v) + 1);
    }
    return append_uint(static_cast<std::uint64_t>(v));
  }
  FixedString& operator+=(std::string_view s) noexcept { return append(s); }
  FixedString& operator+=(const char* s) noexcept { return append(FixedString(s).view()); }
  FixedString& operator+=(char c) noexcept { return append(c); }

  const char* c_str() const noexcept { return buf_; }
  const char* data() const noexcept { return buf_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t length() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  bool truncated() const noexcept { return truncated_; }
  static constexpr std::size_t capacity() noexcept { return N - 1; }
  void clear() noexcept { assign({}); }
  const char* begin() const noexcept { return buf_; }
  const char* end() const noexcept { return buf_ + size_; }
  char operator[](std::size_t i) const noexcept { return buf_[i]; }

  std::string_view view() const noexcept { return {buf_, size_}; }
  operator std::string_view() const noexcept { return view(); }
  std::size_t find(std::string_view s, std::size_t pos = 0) const noexcept { return view().find(s, pos); }
  std::size_t find(char c, std::size_t pos = 0) const noexcept { return view().find(c, pos); }
  std::size_t rfind(std::string_view s, std::size_t pos = npos) const noexcept { return view().rfind(s, pos); }
  std::string_view substr(std::size_t pos, std::size_t n = npos) const noexcept {
    return pos <= size_ ? view().substr(pos, n) : std::string_view();
  }
  bool starts_with(std::string_view s) const noexcept { return view().starts_with(s); }

  friend bool operator==(const FixedString& a, const FixedString& b) noexcept { return a.view() == b.view(); }
  friend bool operator==(const FixedString& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const FixedString& a, const char* b) noexcept { return a == FixedString(b); }
  friend auto operator<=>(const FixedString& a, const FixedString& b) noexcept { return a.view() <=> b.view(); }

  // Host-side conveniences (members of a template: the core, which never
  // calls them, never instantiates them).
  std::string str() const { return std::string(buf_, size_); }
  operator std::string() const { return str(); }
  friend std::string operator+(std::string_view a, const FixedString& b) {
    std::string r(a);
    r += b.view();
    return r;
  }
  friend std::string operator+(const FixedString& a, std::string_view b) {
    std::string r(a.view());
    r += b;
    return r;
  }
  // A plain std::ostream overload, not a template over the stream: a
  // template is ambiguous with gtest's Message::operator<<(const T&) (clang
  // 16 says so), while this one is what that template forwards to.
  friend std::ostream& operator<<(std::ostream& os, const FixedString& s) {
    return os << s.view();
  }

 private:
  char buf_[N] = {};
  std::uint32_t size_ = 0;
  bool truncated_ = false;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
