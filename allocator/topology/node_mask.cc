// NodeMask: set algebra, iteration and Linux list syntax.
#include "numaheap/node_mask.h"

#include <bit>
#include <charconv>

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
  for (auto w : words_) n += static_cast<std::size_t>(std::popcount(w));
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

std::string NodeMask::to_string() const {
  std::string out;
  NodeId id = first();
  while (id != kNoNode) {
    NodeId end = id;
    while (end + 1 < kMaxNodes && test(end + 1)) ++end;
    if (!out.empty()) out += ',';
    out += std::to_string(id);
    if (end > id) {
      out += '-';
      out += std::to_string(end);
    }
    id = end + 1 < kMaxNodes ? next(end + 1) : kNoNode;
  }
  return out;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Error list_error(std::string_view text, std::size_t pos, std::string_view what) {
  Error e;
  e.code = Errc::parse_error;
  e.message = "node list \"";
  // Keep messages readable even for huge or binary input.
  std::string_view shown = text.substr(0, 64);
  for (char c : shown) e.message += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > shown.size()) e.message += "...";
  e.message += "\" at offset " + std::to_string(pos) + ": " + std::string(what);
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
    const char* first = text.data() + pos;
    const char* last = text.data() + e;
    unsigned long v = 0;
    auto r = std::from_chars(first, last, v, 10);
    if (r.ec == std::errc::result_out_of_range || (r.ec == std::errc() && v >= kMaxNodes))
      return list_error(text, pos, "node id out of range 0..1023");
    if (r.ec != std::errc() || r.ptr == first)
      return list_error(text, pos, "expected a node id");
    out = static_cast<NodeId>(v);
    pos = static_cast<std::size_t>(r.ptr - text.data());
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
