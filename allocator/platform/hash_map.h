// HashMap<K, V, Hash>: the core's small open-addressing hash table, for
// the indexes std::unordered_map and std::unordered_multimap used to hold
// (sharing's content index and reverse maps). Freestanding: its slot array
// comes from metadata hooks, and running out of memory is a `false` /
// nullptr return, never a throw or a crash.
//
// Contract:
//  * Linear probing over a power-of-two slot array, at most 3/4 full
//    (grows by doubling before an insert would pass that).
//  * Duplicate keys are allowed (multimap use): insert() never looks for
//    an existing key; find_or_insert() does. Entries with equal keys are
//    visited with first()/next() (slot cursors).
//  * Deletion is backward-shift (no tombstones), so every probe run stays
//    unbroken and lookups never scan more than one cluster.
//  * Any insert may move every entry (growth); any erase may move entries
//    of the same cluster: pointers and slot numbers into the table are
//    valid only until the next insert or erase. reserve(n) guarantees that
//    inserts up to n entries in total neither grow nor fail.
//  * No locking: the owner's lock guards the table.
//
// Invariants (check_invariants()): size() equals the occupied slots; every
// entry is reachable from its home slot without crossing an empty slot;
// occupied <= 3/4 of capacity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "numaheap/metadata.h"

namespace numaheap {

// Mixes an integer key (splitmix64's finaliser).
inline std::uint64_t hash_mix(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

template <class K>
struct IntHash {
  static_assert(std::is_integral_v<K>);
  std::uint64_t operator()(K k) const noexcept { return hash_mix(static_cast<std::uint64_t>(k)); }
};

template <class K, class V, class Hash = IntHash<K>>
class HashMap {
 public:
  static constexpr std::size_t npos = ~std::size_t{0};

  HashMap() noexcept : hooks_(default_metadata()) {}
  explicit HashMap(const MetadataHooks* hooks) noexcept : hooks_(hooks) {}
  HashMap(const HashMap&) = delete;
  HashMap& operator=(const HashMap&) = delete;
  HashMap(HashMap&& o) noexcept { steal(o); }
  HashMap& operator=(HashMap&& o) noexcept {
    if (this != &o) {
      release();
      steal(o);
    }
    return *this;
  }
  ~HashMap() { release(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return cap_; }  // slots
  const MetadataHooks* hooks() const noexcept { return hooks_; }

  // Room for `n` entries in total without growing. False when out of
  // memory (the table is then unchanged).
  bool reserve(std::size_t n) noexcept {
    if (n <= limit(cap_)) return true;
    std::size_t cap = cap_ ? cap_ : 16;
    while (limit(cap) < n) {
      if (cap > (npos >> 2)) return false;
      cap <<= 1;
    }
    return rehash(cap);
  }

  // Adds an entry (even when `k` is present: multimap use). Returns its
  // value, or nullptr when out of memory (nothing changed).
  template <class... A>
  V* insert(const K& k, A&&... a) noexcept {
    if (!reserve(size_ + 1)) return nullptr;
    std::size_t s = home(k);
    while (slots_[s].used) s = (s + 1) & (cap_ - 1);
    Slot& slot = slots_[s];
    ::new (&slot.key) K(k);
    ::new (&slot.value) V(std::forward<A>(a)...);
    slot.used = true;
    ++size_;
    return &slot.value;
  }
  // The value under `k`, inserting a default one if absent; *inserted says
  // which. nullptr when out of memory.
  V* find_or_insert(const K& k, bool* inserted = nullptr) noexcept {
    if (V* v = find(k)) {
      if (inserted) *inserted = false;
      return v;
    }
    if (inserted) *inserted = true;
    return insert(k);
  }

  V* find(const K& k) noexcept {
    const std::size_t s = first(k);
    return s == npos ? nullptr : &slots_[s].value;
  }
  const V* find(const K& k) const noexcept {
    const std::size_t s = first(k);
    return s == npos ? nullptr : &slots_[s].value;
  }
  bool contains(const K& k) const noexcept { return first(k) != npos; }

  // Slot cursors over the entries whose key equals `k`: first(k), then
  // next(k, s) until npos. After erase_at(s), seek(k, s) continues.
  std::size_t first(const K& k) const noexcept { return cap_ ? seek(k, home(k)) : npos; }
  std::size_t next(const K& k, std::size_t s) const noexcept { return seek(k, (s + 1) & (cap_ - 1)); }
  // The first slot at or after `s` (within its cluster) holding key `k`.
  std::size_t seek(const K& k, std::size_t s) const noexcept {
    if (!cap_) return npos;
    for (std::size_t n = 0; n < cap_ && slots_[s].used; ++n, s = (s + 1) & (cap_ - 1))
      if (slots_[s].key == k) return s;
    return npos;
  }
  bool used_at(std::size_t s) const noexcept { return slots_[s].used; }
  const K& key_at(std::size_t s) const noexcept { return slots_[s].key; }
  V& value_at(std::size_t s) noexcept { return slots_[s].value; }
  const V& value_at(std::size_t s) const noexcept { return slots_[s].value; }

  // Removes the entry in slot `s` (backward-shift deletion).
  void erase_at(std::size_t hole) noexcept {
    const std::size_t mask = cap_ - 1;
    destroy(slots_[hole]);
    for (std::size_t j = (hole + 1) & mask; slots_[j].used; j = (j + 1) & mask) {
      const std::size_t h = home(slots_[j].key);
      // The entry in j may fill the hole unless its home lies cyclically
      // in (hole, j]: then the hole is not on its probe path.
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (stays) continue;
      ::new (&slots_[hole].key) K(std::move(slots_[j].key));
      ::new (&slots_[hole].value) V(std::move(slots_[j].value));
      slots_[hole].used = true;
      destroy(slots_[j]);
      hole = j;
    }
    --size_;
  }
  // Removes one entry with key `k`; false when there is none.
  bool erase(const K& k) noexcept {
    const std::size_t s = first(k);
    if (s == npos) return false;
    erase_at(s);
    return true;
  }
  // Removes every entry for which pred(key, value) holds; returns how many.
  template <class Pred>
  std::size_t erase_if(Pred pred) noexcept {
    std::size_t n = 0;
    // An erase only moves entries of the cluster backwards into slots at or
    // after the hole (or wraps one from the front to the back, where it is
    // looked at again): re-examining slot s after an erase misses nothing.
    for (std::size_t s = 0; s < cap_; ++s)
      while (slots_[s].used && pred(static_cast<const K&>(slots_[s].key), slots_[s].value)) {
        erase_at(s);
        ++n;
      }
    return n;
  }

  // Calls f(key, value) for every entry, in slot order.
  template <class F>
  void for_each(F f) const noexcept {
    for (std::size_t s = 0; s < cap_; ++s)
      if (slots_[s].used) f(static_cast<const K&>(slots_[s].key), static_cast<const V&>(slots_[s].value));
  }
  template <class F>
  void for_each(F f) noexcept {
    for (std::size_t s = 0; s < cap_; ++s)
      if (slots_[s].used) f(static_cast<const K&>(slots_[s].key), slots_[s].value);
  }

  // Empties the table; keeps its slots.
  void clear() noexcept {
    for (std::size_t s = 0; s < cap_; ++s)
      if (slots_[s].used) destroy(slots_[s]);
    size_ = 0;
  }

  // See the invariants at the top.
  bool check_invariants() const noexcept {
    std::size_t used = 0;
    for (std::size_t s = 0; s < cap_; ++s) {
      if (!slots_[s].used) continue;
      ++used;
      for (std::size_t p = home(slots_[s].key); p != s; p = (p + 1) & (cap_ - 1))
        if (!slots_[p].used) return false;
    }
    return used == size_ && size_ <= limit(cap_);
  }

 private:
  // A slot; key and value are constructed only while `used`.
  struct Slot {
    union {
      K key;
    };
    union {
      V value;
    };
    bool used;
    Slot() noexcept : used(false) {}
    ~Slot() {}
  };

  static std::size_t limit(std::size_t cap) noexcept { return cap / 4 * 3; }
  std::size_t home(const K& k) const noexcept { return static_cast<std::size_t>(Hash{}(k)) & (cap_ - 1); }
  static void destroy(Slot& s) noexcept {
    s.key.~K();
    s.value.~V();
    s.used = false;
  }

  bool rehash(std::size_t cap) noexcept {
    if (!hooks_ || !hooks_->alloc) return false;
    void* p = hooks_->alloc(hooks_->ctx, cap * sizeof(Slot), alignof(Slot) < 16 ? 16 : alignof(Slot),
                            NUMAHEAP_ANY_NODE);
    if (!p) return false;
    Slot* fresh = static_cast<Slot*>(p);
    for (std::size_t s = 0; s < cap; ++s) ::new (&fresh[s]) Slot();
    Slot* old = slots_;
    const std::size_t old_cap = cap_;
    slots_ = fresh;
    cap_ = cap;
    for (std::size_t s = 0; s < old_cap; ++s) {
      if (!old[s].used) continue;
      std::size_t t = home(old[s].key);
      while (fresh[t].used) t = (t + 1) & (cap - 1);
      ::new (&fresh[t].key) K(std::move(old[s].key));
      ::new (&fresh[t].value) V(std::move(old[s].value));
      fresh[t].used = true;
      destroy(old[s]);
    }
    if (old) {
      for (std::size_t s = 0; s < old_cap; ++s) old[s].~Slot();
      hooks_->release(hooks_->ctx, old, old_cap * sizeof(Slot));
    }
    return true;
  }
  void release() noexcept {
    if (!slots_) return;
    clear();
    for (std::size_t s = 0; s < cap_; ++s) slots_[s].~Slot();
    hooks_->release(hooks_->ctx, slots_, cap_ * sizeof(Slot));
    slots_ = nullptr;
    cap_ = 0;
  }
  void steal(HashMap& o) noexcept {
    slots_ = o.slots_;
    cap_ = o.cap_;
    size_ = o.size_;
    hooks_ = o.hooks_;
    o.slots_ = nullptr;
    o.cap_ = o.size_ = 0;
  }

  Slot* slots_ = nullptr;  // cap_ slots (a power of two) or none
  std::size_t cap_ = 0;
  std::size_t size_ = 0;  // used slots; <= limit(cap_)
  const MetadataHooks* hooks_ = nullptr;  // gives and takes slots_
};

}  // namespace numaheap
