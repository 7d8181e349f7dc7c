// AccessTracker: the packed per-page word and its decay.
#include "numaheap/access_tracker.h"

#include <algorithm>

#include "allocator/platform/bits.h"

namespace numaheap {

namespace {

constexpr std::uint64_t field(std::uint64_t w, unsigned shift, unsigned bits) noexcept {
  return (w >> shift) & ((std::uint64_t{1} << bits) - 1);
}
constexpr std::uint64_t put(std::uint64_t w, unsigned shift, unsigned bits, std::uint64_t v) noexcept {
  const std::uint64_t mask = ((std::uint64_t{1} << bits) - 1) << shift;
  return (w & ~mask) | ((v << shift) & mask);
}

using T = AccessTracker;
constexpr std::uint64_t kHitsMax = (std::uint64_t{1} << T::kHitsBits) - 1;
constexpr std::uint64_t kSwitchMax = (std::uint64_t{1} << T::kSwitchBits) - 1;

}  // namespace

bool PageHeat::shared() const noexcept {
  return switches > 0 || popcount64(seen | prev_seen) > 1;
}

Result<std::unique_ptr<AccessTracker>> AccessTracker::create(std::uint64_t pages, const MetadataHooks* hooks) {
  if (pages == 0) return Errc::invalid_argument;
  if (!hooks) hooks = default_metadata();
  std::unique_ptr<AccessTracker> t(new (hooks) AccessTracker());
  if (!t) return Errc::no_memory;
  t->pages_ = pages;
  if (!t->words_.allocate(hooks, pages)) return Errc::no_memory;
  for (std::uint64_t i = 0; i < pages; ++i) t->words_[i].store(kEmptyWord, std::memory_order_relaxed);
  const std::uint64_t chunks = (pages + kChunkPages - 1) >> kChunkShift;
  t->chunk_words_ = (chunks + 63) / 64;
  if (!t->chunks_.allocate(hooks, t->chunk_words_)) return Errc::no_memory;
  for (std::uint64_t i = 0; i < t->chunk_words_; ++i) t->chunks_[i].store(0, std::memory_order_relaxed);
  return t;
}

std::uint64_t AccessTracker::decayed(std::uint64_t w, std::uint32_t now) noexcept {
  const std::uint32_t then = static_cast<std::uint32_t>(field(w, kEpochShift, kEpochBits));
  const std::uint32_t age = (now - then) & kEpochMask;
  // A stamp "ahead" of now is a sampler that read the epoch just before the
  // step advanced it and found the word stamped since: its sample is late,
  // not 4095 epochs old. No word is ever older than kSweepEpochs + 1 (the
  // sweep), so the upper half of the range means ahead.
  if (age == 0 || age > kEpochMask / 2) return w;
  std::uint64_t seen = field(w, kSeenShift, 16), hits = field(w, kHitsShift, kHitsBits);
  const std::uint64_t sw = field(w, kSwitchShift, kSwitchBits);
  w = put(w, kSwitchShift, kSwitchBits, sw > age ? sw - age : 0);
  if (age == 1) {
    w = put(w, kPrevShift, 16, seen);
    w = put(w, kHitsShift, kHitsBits, hits / 2);
  } else {
    w = put(w, kPrevShift, 16, 0);
    w = put(w, kHitsShift, kHitsBits, 0);
    w = put(w, kStreakShift, kStreakBits, 0);  // the last field stays: the long memory
  }
  w = put(w, kSeenShift, 16, 0);
  return put(w, kEpochShift, kEpochBits, now & kEpochMask);
}

std::uint64_t AccessTracker::with_sample(std::uint64_t w, std::uint32_t now,
                                         std::uint32_t node_index) noexcept {
  w = decayed(w, now);
  const std::uint64_t last = field(w, kLastShift, kLastBits);
  std::uint64_t streak = field(w, kStreakShift, kStreakBits);
  if (last == node_index) {
    if (streak < 3) ++streak;
    w = put(w, kSteadyShift, 1, 1);  // two in a row from this node, however far apart
  } else {
    const std::uint64_t sw = field(w, kSwitchShift, kSwitchBits);
    // First sample ever, or a switch after a run of two or more from one
    // node -- either with no switch score left: quick (PageHeat::quick). A
    // page never sampled has a score only if it was moved (moved(): its
    // block went whole on its other pages' samples).
    const bool quick = sw == 0 && (last == PageHeat::kNoIndex || field(w, kSteadyShift, 1));
    w = put(w, kQuickShift, 1, quick ? 1 : 0);
    if (last != PageHeat::kNoIndex)
      w = put(w, kSwitchShift, kSwitchBits, std::min<std::uint64_t>(kSwitchMax, 2 * sw + 3));
    streak = 1;
    w = put(w, kSteadyShift, 1, 0);
    w = put(w, kLastShift, kLastBits, node_index);
  }
  w = put(w, kStreakShift, kStreakBits, streak);
  w |= std::uint64_t{1} << (kSeenShift + node_index % 16);
  const std::uint64_t hits = field(w, kHitsShift, kHitsBits);
  if (hits < kHitsMax) w = put(w, kHitsShift, kHitsBits, hits + 1);
  return w;
}

PageHeat AccessTracker::decode(std::uint64_t w) noexcept {
  PageHeat h;
  h.old_index = static_cast<std::uint32_t>(field(w, kLastShift, kLastBits));
  h.seen = static_cast<std::uint16_t>(field(w, kSeenShift, 16));
  h.prev_seen = static_cast<std::uint16_t>(field(w, kPrevShift, 16));
  // Recent (this or the previous epoch) while a node set holds its sample.
  h.last_index = (h.seen | h.prev_seen) ? h.old_index : PageHeat::kNoIndex;
  h.streak = static_cast<std::uint32_t>(field(w, kStreakShift, kStreakBits));
  h.hits = static_cast<std::uint32_t>(field(w, kHitsShift, kHitsBits));
  h.switches = static_cast<std::uint32_t>(field(w, kSwitchShift, kSwitchBits));
  h.steady = field(w, kSteadyShift, 1) != 0;
  h.quick = field(w, kQuickShift, 1) != 0;
  return h;
}

PageHeat AccessTracker::heat(Gfn gfn) const noexcept {
  if (gfn >= pages_) return {};
  // seq_cst: after a seq_cst take_sampled_chunks it sees every sample
  // whose mark found the bit still set (access_tracker.h, the top). A plain
  // load on x86.
  return decode(decayed(words_[gfn].load(std::memory_order_seq_cst), epoch()));
}

void AccessTracker::reset_streak(Gfn gfn) noexcept {
  if (gfn >= pages_) return;
  std::uint64_t old = words_[gfn].load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t next = put(decayed(old, epoch()), kStreakShift, kStreakBits, 0);
    if (words_[gfn].compare_exchange_weak(old, next, std::memory_order_relaxed)) return;
  }
}

}  // namespace numaheap

namespace numaheap {

void AccessTracker::advance_epoch() noexcept {
  const std::uint32_t now = (epoch_.fetch_add(1, std::memory_order_relaxed) + 1) & kEpochMask;
  const std::uint64_t slice = (pages_ + kSweepEpochs - 1) / kSweepEpochs;
  for (std::uint64_t n = 0; n < slice; ++n) {
    if (sweep_cursor_ >= pages_) sweep_cursor_ = 0;
    std::atomic<std::uint64_t>& w = words_[sweep_cursor_++];
    std::uint64_t old = w.load(std::memory_order_relaxed);
    // Only words at least two epochs old: from there on decay composes
    // exactly (a one-epoch-old word would lose its streak's timing).
    while (((now - static_cast<std::uint32_t>(field(old, kEpochShift, kEpochBits))) & kEpochMask) >= 2) {
      const std::uint64_t next = decayed(old, now);
      if (next == old || w.compare_exchange_weak(old, next, std::memory_order_relaxed)) break;
    }
  }
}

void AccessTracker::moved(Gfn gfn) noexcept {
  if (gfn >= pages_) return;
  std::uint64_t old = words_[gfn].load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t next = put(put(decayed(old, epoch()), kStreakShift, kStreakBits, 0), kQuickShift, 1, 0);
    if (field(next, kSwitchShift, kSwitchBits) < kMovedScore) next = put(next, kSwitchShift, kSwitchBits, kMovedScore);
    if (words_[gfn].compare_exchange_weak(old, next, std::memory_order_relaxed)) return;
  }
}

}  // namespace numaheap
