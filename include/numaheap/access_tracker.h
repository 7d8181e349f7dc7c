// numaheap: per-page access tracking for the migrator.
//
// Contract:
//  * record() is the hot path: lock-free, no allocation, a few ns. It is one
//    relaxed load and (only when the word changes) one CAS on the page's own
//    64-bit word; a sample that loses four CAS races in a row is dropped
//    (samples are hints, and a contended page is shared anyway).
//  * Samples carry a dense node index (Topology::index_of), not a node id.
//  * Time is counted in epochs that the migrator advances (advance_epoch);
//    a page's history decays lazily when it is next read or written: one
//    epoch later the current epoch's node set becomes the previous one, two
//    or more epochs later everything is forgotten (the two-stage filter must
//    see two *recent* samples) -- except a "switched node" score that
//    fades one per epoch, so a page whose sampling node keeps changing from
//    one epoch to the next still counts as shared (no ping-pong); and a
//    long memory that never decays: the node of the last sample, however
//    old, and whether it was a run of two or more, so that a page whose user
//    changed after a long quiet (sparse sampling) is told from a page that
//    was never sampled and from one that keeps switching (PageHeat::quick).
//  * Epochs are stored in 12 bits of the word, so an age is only known
//    modulo 4096. advance_epoch() therefore also sweeps a slice of the
//    words (pages / 1024 of them, a cursor wraps around): a word found two
//    or more epochs old is rewritten in its decayed form, stamped now.
//    Decay composes exactly from two epochs on, so this changes nothing a
//    reader sees -- except that no word is ever read more than ~1026
//    epochs after its stamp, and a page left alone for any multiple of
//    4096 epochs cannot look freshly sampled. The hot path is untouched.
//  * Which pages were sampled lately, for the policy to look at first: one
//    bit per chunk of 64 pages (kChunkPages), set by a sample that changed
//    its page's word and taken (cleared) by the migrator
//    (take_sampled_chunks). The hot path pays one relaxed load of the
//    chunk's bitmap word and, when the bit is clear, one fetch_or. No
//    sample that changed a word is missed by both: the word's CAS and the
//    bit's load are seq_cst, as are the take and the migrator's reads of
//    the words (heat()), so either the sample sees its bit cleared by the
//    take (and sets it again) or the migrator, reading words after its
//    take, sees the sample (a store-buffer pattern; x86 emits the same
//    instructions as relaxed; no fence, which ThreadSanitizer refuses).
//    The policy's cursor scan still visits every page.
//  * Node sets are kept as 16-bit bitmaps of (dense index mod 16): on hosts
//    with more than 16 nodes two nodes can alias, which can only make a page
//    look private when it is shared by aliased nodes -- never the reverse.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "numaheap/frame.h"
#include "numaheap/metadata.h"
#include "numaheap/result.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// What the tracker knows about one page, decoded.
struct PageHeat {
  std::uint32_t last_index = kNoIndex;  // dense node index of the last sample
  std::uint32_t streak = 0;             // consecutive samples from last_index (max 3)
  std::uint32_t hits = 0;               // samples this epoch (max 3, halves per epoch)
  // Kept across decay (the page's long memory): the node of the last sample
  // however old (kNoIndex: never sampled) and whether at least two
  // consecutive samples came from it (steady); and whether the last sample
  // was "quick": with no switch score left, the page's first sample ever or
  // a switch of node from a clean history (a run of at least two samples
  // from one node). A never-sampled page has a score only after moved().
  std::uint32_t old_index = kNoIndex;
  bool steady = false;
  bool quick = false;
  std::uint16_t seen = 0;               // node bitmap, this epoch
  std::uint16_t prev_seen = 0;          // node bitmap, previous epoch
  // Ping-pong memory: a sample from another node than the last sets it to
  // min(15, 2 * switches + 3); it fades by one per epoch. A page that keeps
  // changing node stays "shared" for up to 15 epochs after its last switch,
  // a page that changed node once (its vCPU moved) for 3.
  std::uint32_t switches = 0;
  static constexpr std::uint32_t kNoIndex = 1023;
  bool sampled() const noexcept { return last_index != kNoIndex; }
  // Touched from more than one node over the last two epochs, or the
  // sampling node changed within the last three (ping-pong memory).
  bool shared() const noexcept;
};

class AccessTracker {
 public:
  // One word per page; allocates once here. Errors: invalid_argument (0 pages).
  NUMAHEAP_METADATA_NEW_DELETE
  // `hooks`: where the per-page words come from (null: the default hooks).
  static Result<std::unique_ptr<AccessTracker>> create(std::uint64_t pages,
                                                      const MetadataHooks* hooks = nullptr);

  std::uint64_t pages() const noexcept { return pages_; }

  // Hot path. Out-of-range gfn or index: ignored.
  void record(Gfn gfn, std::uint32_t node_index) noexcept {
    if (gfn >= pages_ || node_index >= PageHeat::kNoIndex) return;
    const std::uint32_t now = epoch_.load(std::memory_order_relaxed);
    std::atomic<std::uint64_t>& w = words_[gfn];
    std::uint64_t old = w.load(std::memory_order_relaxed);
    for (int tries = 0; tries < 4; ++tries) {
      const std::uint64_t next = with_sample(old, now, node_index);
      if (next == old) return;  // saturated: no store, no cache-line bounce
      // seq_cst with mark_sampled's load (see the top): not a lost mark.
      if (w.compare_exchange_weak(old, next, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        mark_sampled(gfn);
        return;
      }
    }
  }

  // Sampled chunks (see the top): chunk c holds pages [c * kChunkPages,
  // (c + 1) * kChunkPages); chunk_words() bitmap words of 64 chunks each.
  static constexpr unsigned kChunkShift = 6;
  static constexpr std::uint64_t kChunkPages = std::uint64_t{1} << kChunkShift;
  std::uint64_t chunk_words() const noexcept { return chunk_words_; }
  // The bits of word `i` of the bitmap that are in `mask`, cleared there; 0
  // for i out of range. A caller that cannot look at every chunk it took
  // gives the rest back (mark_sampled_chunks, which also lets the migrator
  // point its own pass at chunks no sample marked).
  std::uint64_t take_sampled_chunks(std::uint64_t i, std::uint64_t mask = ~std::uint64_t{0}) noexcept {
    // A stale zero leaves a new bit set: taken next time, never lost.
    if (i >= chunk_words_ || (chunks_[i].load(std::memory_order_relaxed) & mask) == 0) return 0;
    // seq_cst, as heat()'s loads after it: they see every sample whose
    // mark_sampled found the bit still set (see the top).
    return chunks_[i].fetch_and(~mask, std::memory_order_seq_cst) & mask;
  }
  void mark_sampled_chunks(std::uint64_t i, std::uint64_t bits) noexcept {
    if (i < chunk_words_ && bits) chunks_[i].fetch_or(bits, std::memory_order_relaxed);
  }

  // Decoded state as of the current epoch (decay applied, not stored).
  PageHeat heat(Gfn gfn) const noexcept;
  // heat(gfn).old_index without the decay (which never changes it): the
  // node of the page's last sample however old, PageHeat::kNoIndex if
  // never sampled or out of range. For walks that look at most pages.
  std::uint32_t old_index(Gfn gfn) const noexcept {
    if (gfn >= pages_) return PageHeat::kNoIndex;
    return static_cast<std::uint32_t>((words_[gfn].load(std::memory_order_relaxed) >> kLastShift) &
                                      ((1u << kLastBits) - 1));
  }
  // Forgets the streak (after a move, so a page needs two fresh samples
  // before it can move again); keeps the node sets (sharing memory).
  void reset_streak(Gfn gfn) noexcept;
  // After a policy move: forgets the streak and raises the switch score to
  // at least kMovedScore, so the page cannot be moved back by the filter
  // for that many epochs (a vCPU-move follow still may). Bounds how often
  // a shared page whose samples happen to run one way can bounce.
  static constexpr std::uint32_t kMovedScore = 7;
  void moved(Gfn gfn) noexcept;
  // Next epoch, and the sweep of one slice of the words (see the top).
  // Called by one thread at a time (the migrator, under its lock).
  void advance_epoch() noexcept;
  // Words swept per advance_epoch: every word is visited once per
  // kSweepEpochs epochs, well inside the 4096-epoch wrap.
  static constexpr std::uint32_t kSweepEpochs = 1024;
  std::uint32_t epoch() const noexcept { return epoch_.load(std::memory_order_relaxed) & kEpochMask; }

  // Word layout, public for tests.
  static constexpr unsigned kLastShift = 0, kLastBits = 10;
  static constexpr unsigned kStreakShift = 10, kStreakBits = 2;
  static constexpr unsigned kEpochShift = 12, kEpochBits = 12;
  static constexpr unsigned kSeenShift = 24, kPrevShift = 40;  // 16 bits each
  static constexpr unsigned kHitsShift = 56, kHitsBits = 2;
  static constexpr unsigned kQuickShift = 58, kSteadyShift = 59;  // 1 bit each
  static constexpr unsigned kSwitchShift = 60, kSwitchBits = 4;
  static_assert(kHitsShift + kHitsBits <= kQuickShift && kQuickShift < kSteadyShift && kSteadyShift < kSwitchShift &&
                    kSwitchShift + kSwitchBits <= 64,
                "fields overlap");
  static_assert(kPrevShift + 16 <= kHitsShift && kSeenShift + 16 <= kPrevShift, "fields overlap");
  static constexpr std::uint32_t kEpochMask = (1u << kEpochBits) - 1;
  // decayed() reads an age above kEpochMask / 2 as a stamp ahead of a late
  // sampler's epoch: no word may grow that old, which the sweep ensures.
  static_assert(kSweepEpochs + 2 < kEpochMask / 2, "swept words must stay in the lower half of the epoch range");

  // Pure functions on a word (the whole policy input), for tests.
  static std::uint64_t decayed(std::uint64_t word, std::uint32_t now) noexcept;
  static std::uint64_t with_sample(std::uint64_t word, std::uint32_t now,
                                   std::uint32_t node_index) noexcept;
  static PageHeat decode(std::uint64_t word) noexcept;
  static constexpr std::uint64_t kEmptyWord = std::uint64_t{PageHeat::kNoIndex} << kLastShift;

 private:
  AccessTracker() = default;
  std::uint64_t pages_ = 0;
  // Epoch counter: written by the migrator (step), read relaxed by samplers;
  // only its low kEpochBits are stored in words.
  std::atomic<std::uint32_t> epoch_{0};
  std::uint64_t sweep_cursor_ = 0;  // next word advance_epoch sweeps; its caller's (one at a time)
  // One word per gfn. Every access is atomic (samplers CAS, the migrator
  // CASes reset_streak); no lock. Invariant: the last field is < 1023 or
  // exactly 1023 with streak 0 and not steady ("never sampled"); the last field
  // outlives decay (PageHeat::old_index), last_index shows it while the
  // node sets say the sample is recent.
  MetadataArray<std::atomic<std::uint64_t>> words_;
  // Sampled-chunk bitmap: bit c % 64 of word c / 64 for chunk c. Set by
  // record() (after the page's word changed: seq_cst, see the top),
  // cleared by take_sampled_chunks (seq_cst); no lock. Invariant: no bit at or beyond
  // chunk ceil(pages_ / kChunkPages) is ever set.
  std::uint64_t chunk_words_ = 0;
  MetadataArray<std::atomic<std::uint64_t>> chunks_;
  void mark_sampled(Gfn gfn) noexcept {
    const std::uint64_t c = gfn >> kChunkShift;
    std::atomic<std::uint64_t>& word = chunks_[c >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (c & 63);
    if (!(word.load(std::memory_order_seq_cst) & bit)) word.fetch_or(bit, std::memory_order_release);
  }
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
