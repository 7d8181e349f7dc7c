// P2m: a guest's gfn -> mfn table, one atomic 64-bit word per guest frame.
//
// Readers never lock: lookup() is one acquire load. Writers either hold
// the guest's lock (populate, balloon, destroy) or use compare-and-swap
// (the migrator), so a reader sees either the old or the new entry whole.
//
// Packing: bits 0..5 flags (P2mFlags), 6..10 block order, 11..63 mfn.
// An all-zero word is "not present".
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>

#include "numaheap/guest_memory.h"
#include "numaheap/metadata.h"

namespace numaheap {

class P2m {
 public:
  static constexpr unsigned kFlagBits = 6, kOrderBits = 5;
  static constexpr std::uint64_t kMaxMfn = (std::uint64_t{1} << (64 - kFlagBits - kOrderBits)) - 1;

  // False when the table cannot be allocated from `hooks` (nothing changes
  // then). The caller bounds `entries` (GuestMemory: kMaxGuestFrames).
  // `node`: where the table should live (a hint to the hooks).
  bool init(const MetadataHooks* hooks, std::uint64_t entries, std::uint32_t node) noexcept {
    MetadataArray<std::atomic<std::uint64_t>> w;
    if (!w.allocate(hooks, entries, node)) return false;  // every word reads 0: not present
    words_ = std::move(w);
    entries_ = entries;
    return true;
  }
  std::uint64_t size() const noexcept { return entries_; }

  static std::uint64_t pack(const P2mEntry& e) noexcept {
    if (!e.present()) return 0;
    return (e.mfn << (kFlagBits + kOrderBits)) | (std::uint64_t{e.order} << kFlagBits) |
           (e.flags & ((1u << kFlagBits) - 1));
  }
  static P2mEntry unpack(std::uint64_t w) noexcept {
    if (!(w & P2mFlags::present)) return {};
    P2mEntry e;
    e.flags = static_cast<std::uint8_t>(w & ((1u << kFlagBits) - 1));
    e.order = static_cast<std::uint8_t>((w >> kFlagBits) & ((1u << kOrderBits) - 1));
    e.mfn = w >> (kFlagBits + kOrderBits);
    return e;
  }

  P2mEntry get(std::uint64_t gfn) const noexcept {
    if (gfn >= entries_) return {};
    return unpack(words_[gfn].load(std::memory_order_acquire));
  }
  // Writers index only gfns below size() (checked in debug builds: a
  // size computed with a wrapped sum once let populate write past the end).
  void set(std::uint64_t gfn, const P2mEntry& e) noexcept {
    assert(gfn < entries_ && "p2m write out of range");
    words_[gfn].store(pack(e), std::memory_order_release);
  }
  bool cas(std::uint64_t gfn, const P2mEntry& expected, const P2mEntry& desired) noexcept {
    if (gfn >= entries_) return false;
    std::uint64_t want = pack(expected);
    return words_[gfn].compare_exchange_strong(want, pack(desired), std::memory_order_acq_rel,
                                               std::memory_order_acquire);
  }
  std::atomic<std::uint64_t>& word(std::uint64_t gfn) noexcept {
    assert(gfn < entries_ && "p2m access out of range");
    return words_[gfn];
  }

 private:
  std::uint64_t entries_ = 0;
  MetadataArray<std::atomic<std::uint64_t>> words_;  // entries_ words
};

}  // namespace numaheap
