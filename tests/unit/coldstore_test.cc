// ColdStore: opt-in, put/get/flush/flush_object/destroy_pool, pages only
// outside the guest's home (nearest node with room first), full nodes
// (ephemeral fails cleanly, persistent loses nothing), reclaim oldest-first,
// dropped pages reported as such, security of flushed pages, bad input.
#include <gtest/gtest.h>

#include "numaheap/cold_store.h"
#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr OwnerId kColdOwner = 7000;
constexpr OwnerId kHog = 7100;

struct Host {
  Topology topo;
  FakeMachine mem;
  std::unique_ptr<PageAllocator> pa;
  std::unique_ptr<ColdStore> cs;
  std::vector<std::pair<Mfn, NodeId>> hog;
  explicit Host(Topology t = line_nodes(4, 256), std::uint64_t watermark = 16) : topo(std::move(t)), mem(topo) {
    pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    ColdStoreConfig c;
    c.owner = kColdOwner;
    c.max_entries = 4096;
    c.watermark_pages = watermark;
    c.watermark_fraction = 0;
    c.room_recheck = 1;  // exact watermarks
    c.access = mem.access();
    auto r = ColdStore::create(*pa, c);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    cs = std::move(r).value();
  }
  ~Host() {
    for (auto [m, n] : hog) (void)pa->free(m, 0, kHog);
  }
  std::uint64_t avail(NodeId n) const { return pa->stats(n)->free + pa->stats(n)->cached; }
  // Another owner takes node n down to `leave` free pages.
  void fill_node(NodeId n, std::uint64_t leave) {
    while (avail(n) > leave) {
      auto a = pa->alloc(AllocRequest{0, n, AllocFlags::exact_node, kHog, {}});
      if (!a) break;
      hog.push_back({a->mfn, n});
    }
  }
  void check() {
    EXPECT_TRUE(cs->check_invariants().has_value());
    EXPECT_TRUE(pa->check_invariants().has_value());
  }
};

struct Page {
  unsigned char b[kFrameSize];
  explicit Page(std::uint32_t tag) { fill_page(b, tag); }
};

}  // namespace

TEST(ColdStore, GuestsMustOptIn) {
  Host h;
  auto g = pinned_guest(*h.pa, "no", 1, 0, 4, true, /*cold=*/false);
  auto r = h.cs->create_pool(*g, PoolKind::ephemeral);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("opted in"), std::string::npos);
  auto all = h.cs->create_pool(h.topo.memory_nodes(), PoolKind::persistent);
  EXPECT_EQ(all.error().code, Errc::invalid_argument);  // nowhere to go
}

TEST(ColdStore, PutGetFlushRoundTrip) {
  Host h;
  auto g = pinned_guest(*h.pa, "vm", 1, 1, 8);
  for (PoolKind kind : {PoolKind::ephemeral, PoolKind::persistent}) {
    PoolId p = *h.cs->create_pool(*g, kind);
    Page a(11), b(12), out(0);
    auto n = h.cs->put(p, 5, 0, a.b);
    ASSERT_TRUE(n.has_value());
    EXPECT_NE(*n, 1u);  // never the guest's home
    EXPECT_TRUE(*n == 0u || *n == 2u);  // nearest first (both at 20)
    ASSERT_TRUE(h.cs->put(p, 5, 1, b.b).has_value());
    ASSERT_TRUE(h.cs->put(p, 6, 0, b.b).has_value());
    EXPECT_EQ(*h.cs->get(p, 5, 0, out.b), ColdGet::hit);
    EXPECT_EQ(std::memcmp(out.b, a.b, kFrameSize), 0);
    ASSERT_TRUE(h.cs->put(p, 5, 0, b.b).has_value());  // overwrite
    EXPECT_EQ(*h.cs->get(p, 5, 0, out.b), ColdGet::hit);
    EXPECT_EQ(std::memcmp(out.b, b.b, kFrameSize), 0);
    EXPECT_EQ(*h.cs->get(p, 9, 0, out.b), ColdGet::miss);
    ASSERT_TRUE(h.cs->flush(p, 5, 1).has_value());
    EXPECT_EQ(*h.cs->get(p, 5, 1, out.b), ColdGet::miss);
    ASSERT_TRUE(h.cs->flush(p, 5, 1).has_value());  // absent: fine
    ASSERT_TRUE(h.cs->put(p, 5, 7, a.b).has_value());
    EXPECT_EQ(*h.cs->flush_object(p, 5), 2u);
    EXPECT_EQ(*h.cs->get(p, 6, 0, out.b), ColdGet::hit);
    EXPECT_EQ(h.cs->stats().pages, 1u);
    h.check();
    ASSERT_TRUE(h.cs->destroy_pool(p).has_value());
    EXPECT_EQ(h.cs->get(p, 6, 0, out.b).error(), Errc::invalid_argument);  // stale id
    EXPECT_EQ(h.cs->stats().pages, 0u);
  }
  for (NodeId n : {0u, 2u, 3u}) EXPECT_EQ(h.pa->stats(n)->used, 0u);
  h.check();
}

TEST(ColdStore, NearestNodeAboveWatermarkFirstThenFarther) {
  Host h(line_nodes(4, 256), 16);
  auto g = pinned_guest(*h.pa, "vm", 1, 0, 8);
  PoolId p = *h.cs->create_pool(*g, PoolKind::ephemeral);
  EXPECT_EQ(h.cs->pool_node_order(p), (Vector<NodeId>{1, 2, 3}));
  Page a(1);
  EXPECT_EQ(*h.cs->put(p, 0, 0, a.b), 1u);
  h.fill_node(1, 17);  // node 1 just above its watermark: one more page fits
  EXPECT_EQ(*h.cs->put(p, 0, 1, a.b), 1u);
  EXPECT_EQ(*h.cs->put(p, 0, 2, a.b), 2u);  // node 1 at the watermark: next nearest
  h.fill_node(2, 16);
  EXPECT_EQ(*h.cs->put(p, 0, 3, a.b), 3u);
  h.fill_node(3, 16);
  // Every other node at its watermark: an ephemeral put fails cleanly.
  const auto before = h.cs->stats();
  EXPECT_EQ(h.cs->put(p, 0, 4, a.b).error(), Errc::no_memory);
  EXPECT_EQ(h.cs->stats().pages, before.pages);
  EXPECT_EQ(h.cs->stats().put_failures, before.put_failures + 1);
  h.check();
}

TEST(ColdStore, PersistentPutsUseReserveThenEphemeralThenFailLosingNothing) {
  Host h(line_nodes(3, 128), 8);
  auto g = pinned_guest(*h.pa, "vm", 1, 0, 8);
  PoolId eph = *h.cs->create_pool(*g, PoolKind::ephemeral);
  PoolId per = *h.cs->create_pool(*g, PoolKind::persistent);
  Page e(3);
  // Ephemeral pages fill nodes 1 and 2 down to their watermarks.
  std::uint32_t ne = 0;
  while (h.cs->put(eph, 1, ne, e.b)) ++ne;
  ASSERT_GT(ne, 200u);
  // Persistent pages go below the watermarks, then push ephemeral ones out.
  std::uint32_t np = 0;
  for (;; ++np) {
    Page d(100 + np);
    if (!h.cs->put(per, 2, np, d.b)) break;
  }
  EXPECT_GE(np, ne + 16);
  EXPECT_EQ(h.cs->stats().per_node[1].ephemeral + h.cs->stats().per_node[2].ephemeral, 0u);
  // Full: the failed put lost nothing; every persistent page reads back.
  Page out(0);
  for (std::uint32_t k = 0; k < np; ++k) {
    ASSERT_EQ(*h.cs->get(per, 2, k, out.b), ColdGet::hit) << k;
    Page want(100 + k);
    ASSERT_EQ(std::memcmp(out.b, want.b, kFrameSize), 0) << k;
  }
  // Overwriting a stored page needs no memory and works even now.
  Page z(999);
  ASSERT_TRUE(h.cs->put(per, 2, 0, z.b).has_value());
  EXPECT_EQ(*h.cs->get(per, 2, 0, out.b), ColdGet::hit);
  EXPECT_EQ(std::memcmp(out.b, z.b, kFrameSize), 0);
  // The dropped ephemeral pages say so.
  EXPECT_EQ(*h.cs->get(eph, 1, 0, out.b), ColdGet::dropped);
  EXPECT_EQ(h.pa->stats(0)->used, 8u);  // the home node was never touched
  h.check();
}

TEST(ColdStore, ReclaimDropsEphemeralOldestFirstNeverPersistent) {
  Host h;
  auto g = pinned_guest(*h.pa, "vm", 1, 0, 8);
  PoolId eph = *h.cs->create_pool(*g, PoolKind::ephemeral);
  PoolId per = *h.cs->create_pool(*g, PoolKind::persistent);
  Page a(1), out(0);
  for (std::uint32_t k = 0; k < 6; ++k) {
    ASSERT_EQ(*h.cs->put(eph, 0, k, a.b), 1u);
    ASSERT_EQ(*h.cs->put(per, 0, k, a.b), 1u);
  }
  ASSERT_TRUE(h.cs->put(eph, 0, 0, a.b).has_value());  // re-put: youngest now
  const std::uint64_t used = h.pa->stats(1)->used;
  EXPECT_EQ(h.cs->reclaim(1, 3), 3u);
  EXPECT_EQ(h.pa->stats(1)->used, used - 3);
  for (std::uint32_t k : {1u, 2u, 3u}) EXPECT_EQ(*h.cs->get(eph, 0, k, out.b), ColdGet::dropped) << k;
  for (std::uint32_t k : {0u, 4u, 5u}) EXPECT_EQ(*h.cs->get(eph, 0, k, out.b), ColdGet::hit) << k;
  EXPECT_EQ(ColdStore::reclaim_hook(h.cs.get(), 1, 100), 3u);
  EXPECT_EQ(h.cs->reclaim(1, 100), 0u);  // persistent pages stay
  EXPECT_EQ(h.cs->reclaim(2, 100), 0u);
  EXPECT_EQ(h.cs->reclaim(77, 100), 0u);
  for (std::uint32_t k = 0; k < 6; ++k) EXPECT_EQ(*h.cs->get(per, 0, k, out.b), ColdGet::hit);
  // A dropped key comes back with a put; a flush forgets the marker.
  ASSERT_TRUE(h.cs->put(eph, 0, 1, a.b).has_value());
  EXPECT_EQ(*h.cs->get(eph, 0, 1, out.b), ColdGet::hit);
  ASSERT_TRUE(h.cs->flush(eph, 0, 2).has_value());
  EXPECT_EQ(*h.cs->get(eph, 0, 2, out.b), ColdGet::miss);
  EXPECT_EQ(h.cs->stats().reclaimed, 6u);
  h.check();
}

// Flushed (and reclaimed) pages are scrubbed before another owner gets them.
TEST(ColdStore, FlushedPagesNeverReachAnotherGuest) {
  Host h(line_nodes(2, 128), 4);
  auto g = pinned_guest(*h.pa, "vm", 1, 0, 8);
  PoolId p = *h.cs->create_pool(*g, PoolKind::persistent);
  PoolId q = *h.cs->create_pool(*g, PoolKind::ephemeral);
  Page secret(31337);
  for (std::uint32_t k = 0; k < 32; ++k) {
    ASSERT_EQ(*h.cs->put(p, 0, k, secret.b), 1u);
    ASSERT_EQ(*h.cs->put(q, 0, k, secret.b), 1u);
  }
  EXPECT_EQ(*h.cs->flush_object(p, 0), 32u);
  EXPECT_EQ(h.cs->reclaim(1, 32), 32u);
  auto eve = pinned_guest(*h.pa, "eve", 66, 1, h.avail(1), false, false);
  ASSERT_NE(eve, nullptr);
  for (Gfn k = 0; k < eve->ram_pages(); ++k)
    ASSERT_FALSE(h.mem.frame_holds(eve->lookup(k).mfn, secret.b, kFrameSize)) << k;
}

TEST(ColdStore, BadInputIsRefusedAndChangesNothing) {
  Host h;
  auto g = pinned_guest(*h.pa, "vm", 1, 0, 8);
  PoolId p = *h.cs->create_pool(*g, PoolKind::ephemeral);
  Page a(1);
  EXPECT_EQ(h.cs->put(p, 0, 0, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->get(p, 0, 0, nullptr).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->put(p + 1, 0, 0, a.b).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->flush(p + 1, 0, 0).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->flush_object(p + 1, 0).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->destroy_pool(p + 1).error(), Errc::invalid_argument);
  EXPECT_EQ(h.cs->create_pool(NodeMask::single(0), static_cast<PoolKind>(9)).error().code,
            Errc::invalid_argument);
  ColdStoreConfig bad;
  bad.max_entries = 0;
  EXPECT_FALSE(ColdStore::create(*h.pa, bad).has_value());
  ColdStoreConfig no_access;
  EXPECT_EQ(ColdStore::create(*h.pa, no_access).error().code, Errc::unsupported);
  EXPECT_EQ(h.cs->stats().pages, 0u);
  h.check();
}

TEST(ColdStore, EntryTableFullFailsCleanlyAndRecyclesMarkers) {
  Topology t = line_nodes(2, 256);
  FakeMachine mem(t);
  auto pa = std::move(PageAllocator::create(t, mem.platform())).value();
  ColdStoreConfig c;
  c.owner = kColdOwner;
  c.max_entries = 8;
  c.watermark_pages = 0;
  c.watermark_fraction = 0;
  c.room_recheck = 1;  // exact watermarks
  c.access = mem.access();
  auto cs = std::move(ColdStore::create(*pa, c)).value();
  PoolId p = *cs->create_pool(NodeMask::single(0), PoolKind::ephemeral);
  Page a(5), out(0);
  for (std::uint32_t k = 0; k < 8; ++k) ASSERT_TRUE(cs->put(p, 0, k, a.b).has_value());
  EXPECT_EQ(cs->put(p, 0, 8, a.b).error(), Errc::no_memory);
  EXPECT_EQ(cs->reclaim(1, 2), 2u);  // keys 0, 1 become markers
  ASSERT_TRUE(cs->put(p, 0, 8, a.b).has_value());  // recycles key 0's marker
  EXPECT_EQ(*cs->get(p, 0, 0, out.b), ColdGet::miss);
  EXPECT_EQ(*cs->get(p, 0, 1, out.b), ColdGet::dropped);
  EXPECT_TRUE(cs->check_invariants().has_value());
}
