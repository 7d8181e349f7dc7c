// numaheap: NodeId and NodeMask, a fixed-size set of NUMA node ids.
//
// Node ids are sparse on real machines (0,1,4,5,8,9,12,13 on POWER; 0,8,
// 250..255 on others), so every walk over nodes goes through a mask, never
// 0..max. A NodeMask covers ids 0..1023 (Linux's MAX_NUMNODES upper bound),
// is 128 bytes, never allocates, and iterates set bits with count-trailing-
// zeros so a sparse mask costs one step per word plus one per member.
//
// Freestanding: everything here but to_string() (a host convenience, inline
// over format()) is core code and never allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "numaheap/result.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

using NodeId = std::uint32_t;
inline constexpr NodeId kMaxNodes = 1024;          // ids are 0..kMaxNodes-1
inline constexpr NodeId kNoNode = 0xffffffffu;     // "no node" / "any node"

class NodeMask {
 public:
  static constexpr std::size_t kWords = kMaxNodes / 64;

  constexpr NodeMask() = default;
  static NodeMask all() noexcept;            // every id 0..1023
  static NodeMask single(NodeId id) noexcept;  // {id}, or empty if id invalid

  // Parse Linux list syntax: "0-3,8,250-255". Whitespace around the whole
  // string and a trailing newline are accepted (sysfs files end in one);
  // an empty string is the empty set. Errors name the offending position.
  static Result<NodeMask, Error> parse(std::string_view text);

  // Linux list syntax, ranges for runs of two or more ("0-1,4-5"); empty
  // set prints as "". format() writes at most `size` bytes, always NUL-
  // terminated when size > 0, and returns the length the whole text needs
  // (as snprintf does): a result >= size means it was cut. 2600 bytes hold
  // any mask. append_to() adds the text to a FixedString (cut if full).
  std::size_t format(char* buf, std::size_t size) const noexcept;
  template <std::size_t N>
  void append_to(FixedString<N>& out) const noexcept {
    char buf[N];
    const std::size_t n = format(buf, N);
    out.append(std::string_view(buf, n < N ? n : N - 1));
  }
  // Host only (allocates): the same text as a std::string.
  std::string to_string() const {
    std::string s(format(nullptr, 0), '\0');
    format(s.data(), s.size() + 1);
    return s;
  }

  // Membership. Ids >= kMaxNodes are never members: set() returns false.
  bool set(NodeId id) noexcept;
  void reset(NodeId id) noexcept;
  bool test(NodeId id) const noexcept {
    return id < kMaxNodes && ((words_[id / 64] >> (id % 64)) & 1u);
  }
  void clear() noexcept { words_ = {}; }

  std::size_t count() const noexcept;
  bool empty() const noexcept;
  NodeId first() const noexcept { return next(0); }
  // Smallest member >= from, or kNoNode.
  NodeId next(NodeId from) const noexcept;
  NodeId last() const noexcept;  // largest member, or kNoNode

  // Set algebra. Complement is relative to 0..1023.
  NodeMask operator|(const NodeMask& o) const noexcept;
  NodeMask operator&(const NodeMask& o) const noexcept;
  NodeMask operator-(const NodeMask& o) const noexcept;  // difference
  NodeMask operator^(const NodeMask& o) const noexcept;
  NodeMask operator~() const noexcept;
  NodeMask& operator|=(const NodeMask& o) noexcept { return *this = *this | o; }
  NodeMask& operator&=(const NodeMask& o) noexcept { return *this = *this & o; }
  NodeMask& operator-=(const NodeMask& o) noexcept { return *this = *this - o; }
  bool operator==(const NodeMask& o) const noexcept { return words_ == o.words_; }
  bool operator!=(const NodeMask& o) const noexcept { return !(*this == o); }
  bool intersects(const NodeMask& o) const noexcept { return !(*this & o).empty(); }
  bool contains(const NodeMask& o) const noexcept { return (o - *this).empty(); }

  const std::array<std::uint64_t, kWords>& words() const noexcept { return words_; }

  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = NodeId;
    using difference_type = std::ptrdiff_t;
    using pointer = const NodeId*;
    using reference = NodeId;
    Iterator() = default;
    Iterator(const NodeMask* m, NodeId at) : mask_(m), at_(at) {}
    NodeId operator*() const noexcept { return at_; }
    Iterator& operator++() noexcept {
      at_ = at_ + 1 >= kMaxNodes ? kNoNode : mask_->next(at_ + 1);
      return *this;
    }
    Iterator operator++(int) noexcept {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& o) const noexcept { return at_ == o.at_; }
    bool operator!=(const Iterator& o) const noexcept { return at_ != o.at_; }

   private:
    const NodeMask* mask_ = nullptr;
    NodeId at_ = kNoNode;
  };
  Iterator begin() const noexcept { return Iterator(this, first()); }
  Iterator end() const noexcept { return Iterator(this, kNoNode); }

 private:
  std::array<std::uint64_t, kWords> words_{};
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
