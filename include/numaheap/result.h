// numaheap: error codes and a small Result<T> for a core built without
// exceptions (-fno-exceptions -fno-rtti). std::expected is not available with
// the toolchains we support (clang 14 + libstdc++ 12), so this is our own.
//
// Contract: a Result holds either a value or an error, never both. Reading
// value() of an error Result (or error() of a value) is a caller bug and is
// caught by an assertion in debug builds.
#pragma once

#include <cassert>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "numaheap/fixed_string.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// Every error a public entry point can return. Values are stable: the C API
// exposes them as NUMAHEAP_E_* with the same numbers.
enum class Errc : int {
  ok = 0,
  no_memory = 1,       // not enough free (or unclaimed) memory
  invalid_node = 2,    // node id unknown, out of range, or unusable for this
  invalid_order = 3,   // allocation order outside 0..max_order
  invalid_frame = 4,   // mfn not managed, not a block head, or misaligned
  double_free = 5,     // frame is already free
  not_owner = 6,       // caller does not own this frame / claim
  claim_exceeded = 7,  // a claim cannot be satisfied or would be exceeded
  busy = 8,            // resource in use; retry later or release first
  pinned = 9,          // page is pinned (device / DMA) and cannot move
  shared = 10,         // page is shared (dedup) and cannot move
  invalid_argument = 11,
  parse_error = 12,    // malformed input text (see the accompanying message)
  io_error = 13,       // a file could not be read
  not_present = 14,    // guest frame not populated
  unsupported = 15,    // not available on this platform / build
};

// Short stable name of an error code, e.g. "no_memory".
const char* errc_name(Errc e) noexcept;

// Text of an error message: inline, so the freestanding core can make one
// without allocating. Longer messages are cut (and say so with truncated()).
using ErrorText = FixedString<320>;

// An error with a human-readable explanation, for slow paths (loaders,
// parsers, configuration) where saying *what* is wrong matters more than a
// code. Hot paths use plain Errc.
struct Error {
  Errc code = Errc::invalid_argument;
  ErrorText message;  // e.g. "node3/distance:1: expected 4 numbers, got 3"
};

// Builds an Error from pieces without allocating: strings, integers and
// anything with append_to(ErrorText&) (NodeMask),
// e.g. make_error(Errc::invalid_node, "node ", id, " has no memory").
namespace detail {
inline void error_append(ErrorText& t, std::string_view s) noexcept { t.append(s); }
inline void error_append(ErrorText& t, const char* s) noexcept {
  // No strlen in the core. Bounded: nothing past the capacity could be kept,
  // and an unbounded loop is compiled back into a strlen call (GCC 12).
  std::size_t n = 0;
  while (n < ErrorText::capacity() && s[n]) ++n;
  t.append(std::string_view(s, n));
}
inline void error_append(ErrorText& t, char c) noexcept { t.append(c); }
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, char> && !std::is_same_v<I, bool>)
inline void error_append(ErrorText& t, I v) noexcept {
  if constexpr (std::is_signed_v<I>) t.append_int(v);
  else t.append_uint(v);
}
template <std::size_t N>
inline void error_append(ErrorText& t, const FixedString<N>& s) noexcept { t.append(s.view()); }
// Anything that can print itself into a FixedString (e.g. NodeMask).
template <class T>
  requires requires(const T& v, ErrorText& t) { v.append_to(t); }
inline void error_append(ErrorText& t, const T& v) noexcept { v.append_to(t); }
}  // namespace detail
template <class... Parts>
Error make_error(Errc code, const Parts&... parts) noexcept {
  Error e{code, {}};
  (detail::error_append(e.message, parts), ...);
  return e;
}

template <class T, class E = Errc>
class [[nodiscard]] Result {
 public:
  // Implicit from a value or from an error, so `return value;` and
  // `return Errc::no_memory;` both work.
  Result(const T& v) : has_value_(true) { ::new (&storage_.value) T(v); }
  Result(T&& v) : has_value_(true) { ::new (&storage_.value) T(std::move(v)); }
  Result(const E& e) : has_value_(false) { ::new (&storage_.error) E(e); }
  Result(E&& e) : has_value_(false) { ::new (&storage_.error) E(std::move(e)); }

  Result(const Result& o) : has_value_(o.has_value_) {
    if (has_value_) ::new (&storage_.value) T(o.storage_.value);
    else ::new (&storage_.error) E(o.storage_.error);
  }
  Result(Result&& o) noexcept : has_value_(o.has_value_) {
    if (has_value_) ::new (&storage_.value) T(std::move(o.storage_.value));
    else ::new (&storage_.error) E(std::move(o.storage_.error));
  }
  Result& operator=(Result o) noexcept {
    destroy();
    has_value_ = o.has_value_;
    if (has_value_) ::new (&storage_.value) T(std::move(o.storage_.value));
    else ::new (&storage_.error) E(std::move(o.storage_.error));
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  T& value() & { assert(has_value_); return storage_.value; }
  const T& value() const& { assert(has_value_); return storage_.value; }
  T&& value() && { assert(has_value_); return std::move(storage_.value); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { assert(!has_value_); return storage_.error; }
  E&& error() && { assert(!has_value_); return std::move(storage_.error); }

 private:
  void destroy() noexcept {
    if (has_value_) storage_.value.~T();
    else storage_.error.~E();
  }
  union Storage {
    Storage() {}
    ~Storage() {}
    T value;
    E error;
  } storage_;
  bool has_value_;
};

// Result of an operation that yields nothing but can fail.
template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(const E& e) : ok_(false), error_(e) {}
  Result(E&& e) : ok_(false), error_(std::move(e)) {}
  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const E& error() const& { assert(!ok_); return error_; }

 private:
  bool ok_ = true;
  E error_{};
};

using Status = Result<void, Errc>;

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
