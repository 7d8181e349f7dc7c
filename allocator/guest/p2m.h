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
#include <cstdint>
#include <memory>

#include "numaheap/guest_memory.h"

namespace numaheap {

class P2m {
 public:
  static constexpr unsigned kFlagBits = 6, kOrderBits = 5;
  static constexpr std::uint64_t kMaxMfn = (std::uint64_t{1} << (64 - kFlagBits - kOrderBits)) - 1;

  void init(std::uint64_t entries) {
    entries_ = entries;
    words_ = std::make_unique<std::atomic<std::uint64_t>[]>(entries);
    for (std::uint64_t i = 0; i < entries; ++i) words_[i].store(0, std::memory_order_relaxed);
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
  void set(std::uint64_t gfn, const P2mEntry& e) noexcept {
    words_[gfn].store(pack(e), std::memory_order_release);
  }
  bool cas(std::uint64_t gfn, const P2mEntry& expected, const P2mEntry& desired) noexcept {
    if (gfn >= entries_) return false;
    std::uint64_t want = pack(expected);
    return words_[gfn].compare_exchange_strong(want, pack(desired), std::memory_order_acq_rel,
                                               std::memory_order_acquire);
  }
  std::atomic<std::uint64_t>& word(std::uint64_t gfn) noexcept { return words_[gfn]; }

 private:
  std::uint64_t entries_ = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

}  // namespace numaheap
