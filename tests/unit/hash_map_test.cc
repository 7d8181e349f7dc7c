// HashMap (allocator/platform/hash_map.h): insert, erase, growth, the
// multimap cursors, erase_if, out of memory, and a model check against
// std::unordered_multimap.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <random>
#include <unordered_map>
#include <vector>

#include "allocator/platform/hash_map.h"
#include "numaheap/vector.h"
#include "unit/guest_oom_hooks.h"

namespace numaheap {
namespace {

// Every key lands in one of 4 home slots: long clusters, wrap-around and
// backward shifts get exercised even in small tables.
struct CrowdedHash {
  std::uint64_t operator()(std::uint64_t k) const noexcept { return (k % 4) * 0x9e3779b97f4a7c15ull; }
};

TEST(HashMap, InsertFindEraseGrow) {
  test::OomHooks oom;
  {
    HashMap<std::uint64_t, std::uint64_t> m(oom.hooks());
    for (std::uint64_t k = 0; k < 10000; ++k) ASSERT_NE(m.insert(k, k * 3), nullptr);
    EXPECT_EQ(m.size(), 10000u);
    EXPECT_TRUE(m.check_invariants());
    for (std::uint64_t k = 0; k < 10000; ++k) {
      const std::uint64_t* v = m.find(k);
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(*v, k * 3);
    }
    EXPECT_EQ(m.find(10000), nullptr);
    for (std::uint64_t k = 0; k < 10000; k += 2) EXPECT_TRUE(m.erase(k));
    EXPECT_FALSE(m.erase(0));
    EXPECT_EQ(m.size(), 5000u);
    EXPECT_TRUE(m.check_invariants());
    for (std::uint64_t k = 0; k < 10000; ++k) EXPECT_EQ(m.contains(k), k % 2 == 1);
  }
  EXPECT_EQ(oom.live(), 0);
}

TEST(HashMap, MultimapCursors) {
  HashMap<std::uint64_t, int, CrowdedHash> m;
  for (int i = 0; i < 5; ++i) ASSERT_NE(m.insert(7, i), nullptr);
  ASSERT_NE(m.insert(3, 100), nullptr);
  std::vector<int> seen;
  for (std::size_t s = m.first(7); s != m.npos; s = m.next(7, s)) seen.push_back(m.value_at(s));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
  // Erase the odd ones while walking (seek continues after an erase).
  for (std::size_t s = m.first(7); s != m.npos;) {
    if (m.value_at(s) % 2) {
      m.erase_at(s);
      s = m.seek(7, s);
    } else {
      s = m.next(7, s);
    }
  }
  seen.clear();
  for (std::size_t s = m.first(7); s != m.npos; s = m.next(7, s)) seen.push_back(m.value_at(s));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(*m.find(3), 100);
  EXPECT_TRUE(m.check_invariants());
}

TEST(HashMap, FindOrInsertAndEraseIf) {
  HashMap<std::uint64_t, int, CrowdedHash> m;
  bool inserted = false;
  for (std::uint64_t k = 0; k < 200; ++k) {
    int* v = m.find_or_insert(k, &inserted);
    ASSERT_NE(v, nullptr);
    EXPECT_TRUE(inserted);
    *v = static_cast<int>(k);
  }
  EXPECT_EQ(*m.find_or_insert(5, &inserted), 5);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(m.erase_if([](std::uint64_t k, int) { return k % 3 == 0; }), 67u);
  EXPECT_TRUE(m.check_invariants());
  for (std::uint64_t k = 0; k < 200; ++k) EXPECT_EQ(m.contains(k), k % 3 != 0) << k;
}

TEST(HashMap, OutOfMemoryLeavesTableUnchanged) {
  test::OomHooks oom;
  {
    HashMap<std::uint64_t, std::uint64_t> m(oom.hooks());
    oom.reset(0);
    EXPECT_EQ(m.insert(1, 1), nullptr);
    EXPECT_EQ(m.size(), 0u);
    oom.reset(1);  // the first table, then no growth
    std::uint64_t k = 0;
    while (m.insert(k, k)) ++k;
    EXPECT_GT(k, 0u);
    EXPECT_EQ(m.size(), k);
    EXPECT_TRUE(m.check_invariants());
    for (std::uint64_t j = 0; j < k; ++j) EXPECT_EQ(*m.find(j), j);
    EXPECT_FALSE(m.reserve(k * 4));
    oom.reset();
    EXPECT_TRUE(m.reserve(k * 4));
    const std::size_t cap = m.capacity();
    for (std::uint64_t j = k; j < k * 4; ++j) ASSERT_NE(m.insert(j, j), nullptr);
    EXPECT_EQ(m.capacity(), cap);  // reserve() meant no growth
  }
  EXPECT_EQ(oom.live(), 0);
  EXPECT_EQ(oom.live_bytes(), 0);
}

// Values with an owned resource: moves during growth and backward shifts
// must neither leak nor double-free.
TEST(HashMap, NonTrivialValues) {
  test::OomHooks oom;
  {
    HashMap<std::uint64_t, Vector<std::uint64_t>, CrowdedHash> m(oom.hooks());
    for (std::uint64_t k = 0; k < 300; ++k) {
      Vector<std::uint64_t>* v = m.insert(k, oom.hooks());
      ASSERT_NE(v, nullptr);
      for (std::uint64_t j = 0; j <= k % 5; ++j) ASSERT_TRUE(v->push_back(k));
    }
    m.erase_if([](std::uint64_t k, const Vector<std::uint64_t>&) { return k % 2 == 0; });
    for (std::uint64_t k = 1; k < 300; k += 2) {
      const Vector<std::uint64_t>* v = m.find(k);
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(v->size(), k % 5 + 1);
      EXPECT_EQ((*v)[0], k);
    }
  }
  EXPECT_EQ(oom.live(), 0);
}

// Random inserts, erases (one entry of a key, or by predicate) and lookups
// against std::unordered_multimap, with colliding and with mixed hashes.
template <class Hash>
void model_check(unsigned seed, std::uint64_t key_range) {
  std::mt19937_64 rng(seed);
  HashMap<std::uint64_t, std::uint64_t, Hash> m;
  std::unordered_multimap<std::uint64_t, std::uint64_t> model;
  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t k = rng() % key_range;
    switch (rng() % 6) {
      case 0:
      case 1: {
        const std::uint64_t v = rng();
        ASSERT_NE(m.insert(k, v), nullptr);
        model.emplace(k, v);
        break;
      }
      case 2: {  // erase the entry of k with the smallest value
        auto [b, e] = model.equal_range(k);
        if (b == e) {
          ASSERT_EQ(m.first(k), m.npos);
          break;
        }
        auto lo = std::min_element(b, e, [](auto& x, auto& y) { return x.second < y.second; });
        std::size_t s = m.first(k);
        while (s != m.npos && m.value_at(s) != lo->second) s = m.next(k, s);
        ASSERT_NE(s, m.npos);
        m.erase_at(s);
        model.erase(lo);
        break;
      }
      case 3: {  // erase every entry whose value has a given low byte
        const std::uint64_t byte = rng() % 256;
        std::size_t expect = 0;
        for (auto it = model.begin(); it != model.end();)
          if ((it->second & 0xff) == byte) {
            it = model.erase(it);
            ++expect;
          } else {
            ++it;
          }
        ASSERT_EQ(m.erase_if([&](std::uint64_t, std::uint64_t v) { return (v & 0xff) == byte; }), expect);
        break;
      }
      default: {
        std::vector<std::uint64_t> want, got;
        auto [b, e] = model.equal_range(k);
        for (auto it = b; it != e; ++it) want.push_back(it->second);
        for (std::size_t s = m.first(k); s != m.npos; s = m.next(k, s)) got.push_back(m.value_at(s));
        std::sort(want.begin(), want.end());
        std::sort(got.begin(), got.end());
        ASSERT_EQ(got, want) << "step " << step;
      }
    }
    ASSERT_EQ(m.size(), model.size());
    if (step % 997 == 0) {
      ASSERT_TRUE(m.check_invariants()) << "step " << step;
    }
  }
  std::multiset<std::pair<std::uint64_t, std::uint64_t>> all_m, all_model(model.begin(), model.end());
  m.for_each([&](std::uint64_t k, std::uint64_t v) { all_m.emplace(k, v); });
  EXPECT_EQ(all_m, all_model);
  EXPECT_TRUE(m.check_invariants());
}

TEST(HashMap, ModelCheckMixedHash) {
  for (unsigned seed = 1; seed <= 3; ++seed) model_check<IntHash<std::uint64_t>>(seed, 500);
}
TEST(HashMap, ModelCheckCollidingHash) {
  for (unsigned seed = 1; seed <= 3; ++seed) model_check<CrowdedHash>(seed, 64);
}

}  // namespace
}  // namespace numaheap
