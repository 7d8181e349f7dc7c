// NodeMask: set algebra, iteration and Linux list syntax. Core file:
// freestanding (no allocation, no library calls).
#include "numaheap/node_mask.h"

#include <bit>

namespace numaheap {

NodeMask NodeMask::all() noexcept {
  NodeMask m;
  for (auto& w : m.words_) w = ~std::uint64_t{0};
  return m;
}

NodeMask NodeMask::single(NodeId id) noexcept {
  NodeMask m;
  m.set(id);
  return m;
}

bool NodeMask::set(NodeId id) noexcept {
  if (id >= kMaxNodes) return false;
  words_[id / 64] |= std::uint64_t{1} << (id % 64);
  return true;
}

void NodeMask::reset(NodeId id) noexcept {
  if (id < kMaxNodes) words_[id / 64] &= ~(std::uint64_t{1} << (id % 64));
}

std::size_t NodeMask::count() const noexcept {
  std::size_t n = 0;
  // Bit-parallel count: std::popcount becomes a libgcc call without -mpopcnt.
  for (std::uint64_t w : words_) {
    w = w - ((w >> 1) & 0x5555555555555555ull);
    w = (w & 0x3333333333333333ull) + ((w >> 2) & 0x3333333333333333ull);
    w = (w + (w >> 4)) & 0x0f0f0f0f0f0f0f0full;
    n += static_cast<std::size_t>((w * 0x0101010101010101ull) >> 56);
  }
  return n;
}

bool NodeMask::empty() const noexcept {
  for (auto w : words_)
    if (w) return false;
  return true;
}

NodeId NodeMask::next(NodeId from) const noexcept {
  if (from >= kMaxNodes) return kNoNode;
  std::size_t wi = from / 64;
  std::uint64_t w = words_[wi] & (~std::uint64_t{0} << (from % 64));
  while (true) {
    if (w) return static_cast<NodeId>(wi * 64 + static_cast<unsigned>(std::countr_zero(w)));
    if (++wi == kWords) return kNoNode;
    w = words_[wi];
  }
}

NodeId NodeMask::last() const noexcept {
  for (std::size_t wi = kWords; wi-- > 0;)
    if (words_[wi])
      return static_cast<NodeId>(wi * 64 + 63 - static_cast<unsigned>(std::countl_zero(words_[wi])));
  return kNoNode;
}

#define NUMAHEAP_MASK_OP(op, expr)                                  \
  NodeMask NodeMask::operator op(const NodeMask& o) const noexcept { \
    NodeMask r;                                                      \
    for (std::size_t i = 0; i < kWords; ++i) {                       \
      const std::uint64_t a = words_[i], b = o.words_[i];            \
      r.words_[i] = (expr);                                          \
    }                                                                \
    return r;                                                        \
  }
NUMAHEAP_MASK_OP(|, a | b)
NUMAHEAP_MASK_OP(&, a & b)
NUMAHEAP_MASK_OP(-, a & ~b)
NUMAHEAP_MASK_OP(^, a ^ b)
#undef NUMAHEAP_MASK_OP

NodeMask NodeMask::operator~() const noexcept {
  NodeMask r;
  for (std::size_t i = 0; i < kWords; ++i) r.words_[i] = ~words_[i];
  return r;
}

namespace {

// Writes `v` in decimal at out[at..] as far as `size` allows; returns the
// number of digits (written or not).
std::size_t put_uint(char* out, std::size_t size, std::size_t at, std::uint32_t v) noexcept {
  char tmp[10];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  for (std::size_t i = 0; i < n; ++i)
    if (at + i < size) out[at + i] = tmp[n - 1 - i];
  return n;
}

}  // namespace

std::size_t NodeMask::format(char* buf, std::size_t size) const noexcept {
  // Leave room for the NUL: write into [0, size - 1).
  const std::size_t room = size ? size - 1 : 0;
  std::size_t len = 0;
  NodeId id = first();
  while (id != kNoNode) {
    NodeId end = id;
    while (end + 1 < kMaxNodes && test(end + 1)) ++end;
    if (len) {
      if (len < room) buf[len] = ',';
      ++len;
    }
    len += put_uint(buf, room, len, id);
    if (end > id) {
      if (len < room) buf[len] = '-';
      ++len;
      len += put_uint(buf, room, len, end);
    }
    id = end + 1 < kMaxNodes ? next(end + 1) : kNoNode;
  }
  if (size) buf[len < room ? len : room] = '\0';
  return len;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Error list_error(std::string_view text, std::size_t pos, const char* what) {
  Error e;
  e.code = Errc::parse_error;
  e.message.assign(std::string_view("node list \"", 11));
  // Keep messages readable even for huge or binary input.
  std::string_view shown(text.data(), text.size() < 64 ? text.size() : 64);  // no substr: it can throw
  for (char c : shown) e.message += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > shown.size()) e.message.append(std::string_view("...", 3));
  detail::error_append(e.message, "\" at offset ");
  e.message.append_uint(pos);
  detail::error_append(e.message, ": ");
  detail::error_append(e.message, what);
  return e;
}

}  // namespace

Result<NodeMask, Error> NodeMask::parse(std::string_view text) {
  std::size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  NodeMask m;
  std::size_t pos = b;
  if (pos == e) return m;
  auto read_number = [&](NodeId& out) -> Result<void, Error> {
    std::size_t end_digits = pos;
    std::uint32_t v = 0;
    while (end_digits < e && text[end_digits] >= '0' && text[end_digits] <= '9') {
      if (v < kMaxNodes) v = v * 10 + static_cast<std::uint32_t>(text[end_digits] - '0');
      ++end_digits;
    }
    if (end_digits == pos) return list_error(text, pos, "expected a node id");
    if (v >= kMaxNodes) return list_error(text, pos, "node id out of range 0..1023");
    out = static_cast<NodeId>(v);
    pos = end_digits;
    return {};
  };
  while (true) {
    NodeId lo = 0, hi = 0;
    if (auto r = read_number(lo); !r) return r.error();
    hi = lo;
    if (pos < e && text[pos] == '-') {
      ++pos;
      if (auto r = read_number(hi); !r) return r.error();
      if (hi < lo) return list_error(text, pos, "range end below its start");
    }
    for (NodeId id = lo; id <= hi; ++id) m.set(id);
    if (pos == e) break;
    if (text[pos] != ',') return list_error(text, pos, "expected ',' or '-'");
    ++pos;
  }
  return m;
}

}  // namespace numaheap
