// The cold store's preallocated bookkeeping: a slab of entries, an
// open-addressing index by (pool, object, index), and intrusive lists
// threaded through the slab by 32-bit slot numbers. Nothing here allocates
// after init() (metadata hooks); nothing here locks (the ColdStore's lock
// guards it all).
#pragma once

#include <cstdint>

#include "numaheap/cold_store.h"
#include "numaheap/metadata.h"

namespace numaheap::cold_detail {

inline constexpr std::uint32_t kNil = 0xffffffffu;

enum class EntryState : std::uint8_t { free = 0, live = 1, dropped = 2 };

// One slot. live: holds a page (mfn on node `node_idx`); dropped: an
// ephemeral page stored under this key was reclaimed (a marker, no frame);
// free: on the free list (linked through pool_next).
struct Entry {
  ObjectId object = 0;
  std::uint64_t seq = 0;  // put order; ages within one list only grow
  Mfn mfn = kInvalidMfn;
  PoolId pool = 0;
  std::uint32_t index = 0;
  // Age list of its node (live ephemeral) or the marker list (dropped);
  // unused (kNil) for live persistent pages.
  std::uint32_t age_prev = kNil, age_next = kNil;
  std::uint32_t pool_prev = kNil, pool_next = kNil;  // its pool's list / free list
  std::uint32_t node_idx = 0;                         // dense node index (live only)
  EntryState state = EntryState::free;
  bool ephemeral = false;
};

// Doubly linked list over slab slots, through a pair of Entry members.
struct List {
  std::uint32_t head = kNil, tail = kNil;
  std::uint64_t size = 0;
};

template <std::uint32_t Entry::*Prev, std::uint32_t Entry::*Next>
struct Links {
  static void push_back(List& l, Entry* slab, std::uint32_t i) noexcept {
    slab[i].*Prev = l.tail;
    slab[i].*Next = kNil;
    if (l.tail != kNil) slab[l.tail].*Next = i;
    else l.head = i;
    l.tail = i;
    ++l.size;
  }
  static void remove(List& l, Entry* slab, std::uint32_t i) noexcept {
    const std::uint32_t p = slab[i].*Prev, n = slab[i].*Next;
    if (p != kNil) slab[p].*Next = n;
    else l.head = n;
    if (n != kNil) slab[n].*Prev = p;
    else l.tail = p;
    slab[i].*Prev = slab[i].*Next = kNil;
    --l.size;
  }
};
using AgeLinks = Links<&Entry::age_prev, &Entry::age_next>;
using PoolLinks = Links<&Entry::pool_prev, &Entry::pool_next>;

// Entries plus the key index. Capacity fixed at init().
class Table {
 public:
  static bool valid_size(std::uint64_t entries) noexcept { return entries > 0 && entries < kNil / 4; }
  // False when `entries` is not a valid_size() or the hooks have no memory
  // (the table then stays empty).
  bool init(const MetadataHooks* hooks, std::uint64_t entries) noexcept {
    if (!valid_size(entries)) return false;
    std::uint64_t cap = 1;
    while (cap < 2 * entries) cap <<= 1;
    MetadataArray<Entry> slab;
    MetadataArray<std::uint32_t> index;
    if (!slab.allocate(hooks, entries) || !index.allocate(hooks, cap)) return false;
    slab_ = std::move(slab);
    index_ = std::move(index);
    count_ = static_cast<std::uint32_t>(entries);
    mask_ = cap - 1;
    for (std::uint64_t k = 0; k < cap; ++k) index_[k] = kNil;
    for (std::uint32_t i = 0; i < count_; ++i) slab_[i].pool_next = i + 1 < count_ ? i + 1 : kNil;
    free_head_ = 0;
    free_count_ = count_;
    return true;
  }

  Entry* slab() noexcept { return slab_.get(); }
  const Entry* slab() const noexcept { return slab_.get(); }
  Entry& at(std::uint32_t i) noexcept { return slab_[i]; }
  const Entry& at(std::uint32_t i) const noexcept { return slab_[i]; }
  std::uint32_t capacity() const noexcept { return count_; }
  std::uint32_t free_count() const noexcept { return free_count_; }

  std::uint32_t find(PoolId pool, ObjectId object, std::uint32_t index) const noexcept {
    for (std::uint64_t k = home(pool, object, index);; k = (k + 1) & mask_) {
      const std::uint32_t i = index_[k];
      if (i == kNil) return kNil;
      const Entry& e = slab_[i];
      if (e.pool == pool && e.object == object && e.index == index) return i;
    }
  }

  // A free slot, filled with the key and indexed; kNil when none is left.
  std::uint32_t take(PoolId pool, ObjectId object, std::uint32_t index) noexcept {
    if (free_head_ == kNil) return kNil;
    const std::uint32_t i = free_head_;
    free_head_ = slab_[i].pool_next;
    --free_count_;
    Entry& e = slab_[i];
    e = Entry{};
    e.pool = pool;
    e.object = object;
    e.index = index;
    std::uint64_t k = home(pool, object, index);
    while (index_[k] != kNil) k = (k + 1) & mask_;
    index_[k] = i;
    return i;
  }

  // Unindexes slot i and returns it to the free list (lists already left).
  void give_back(std::uint32_t i) noexcept {
    const Entry& e = slab_[i];
    std::uint64_t k = home(e.pool, e.object, e.index);
    while (index_[k] != i) k = (k + 1) & mask_;
    // Backward-shift deletion keeps every probe run unbroken.
    std::uint64_t hole = k;
    for (std::uint64_t j = (hole + 1) & mask_; index_[j] != kNil; j = (j + 1) & mask_) {
      const Entry& m = slab_[index_[j]];
      const std::uint64_t h = home(m.pool, m.object, m.index);
      // Move m into the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (!stays) {
        index_[hole] = index_[j];
        hole = j;
      }
    }
    index_[hole] = kNil;
    slab_[i] = Entry{};
    slab_[i].pool_next = free_head_;
    free_head_ = i;
    ++free_count_;
  }

 private:
  std::uint64_t home(PoolId pool, ObjectId object, std::uint32_t index) const noexcept {
    std::uint64_t x = object * 0x9e3779b97f4a7c15ull;
    x ^= (std::uint64_t{pool} << 32 | index) + 0x632be59bd9b4e019ull + (x << 6) + (x >> 2);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x & mask_;
  }

  MetadataArray<Entry> slab_;            // count_ entries
  MetadataArray<std::uint32_t> index_;  // mask_ + 1 slots: slab slot or kNil
  std::uint64_t mask_ = 0;
  std::uint32_t count_ = 0;
  std::uint32_t free_head_ = kNil;
  std::uint32_t free_count_ = 0;
};

}  // namespace numaheap::cold_detail
