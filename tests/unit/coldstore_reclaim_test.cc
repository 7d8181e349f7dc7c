// The allocator's reclaim hook wired to the cold store: when a node is full,
// an allocation there makes the cold store drop ephemeral pages on it,
// oldest first; persistent pages are never dropped.
#include <gtest/gtest.h>

#include <vector>

#include "numaheap/cold_store.h"
#include "sharing_test_support.h"

using namespace numaheap;

TEST(ColdStoreReclaim, FullNodeDropsEphemeralPagesForAnAllocation) {
  // Two nodes of 512 frames: the pool's home is node 0, so cold pages go to 1.
  auto topo = std::move(TopologyBuilder("reclaim")
                            .add_node(0, {0}, 512 << kFrameShift)
                            .add_node(1, {1}, 512 << kFrameShift)
                            .build())
                  .value();
  test::FakeMachine machine(topo);
  auto pa = std::move(PageAllocator::create(topo, machine.platform())).value();
  ColdStoreConfig cfg;
  cfg.access = machine.access();
  cfg.watermark_pages = 0;
  cfg.watermark_fraction = 0;
  cfg.room_recheck = 1;
  auto store = std::move(ColdStore::create(*pa, cfg)).value();

  auto eph = store->create_pool(NodeMask::single(0), PoolKind::ephemeral);
  auto per = store->create_pool(NodeMask::single(0), PoolKind::persistent);
  ASSERT_TRUE(eph.has_value() && per.has_value());
  std::vector<unsigned char> page(kFrameSize, 0xAB);
  for (std::uint32_t i = 0; i < 100; ++i) ASSERT_TRUE(store->put(*eph, 1, i, page.data()).has_value());
  for (std::uint32_t i = 0; i < 20; ++i) ASSERT_TRUE(store->put(*per, 1, i, page.data()).has_value());
  ASSERT_EQ(store->node_of(*eph, 1, 0), 1u);

  // Another owner takes every remaining frame of node 1 (before the hook is
  // installed, so that this filling does not reclaim anything yet).
  std::vector<Mfn> held;
  for (;;) {
    auto a = pa->alloc(AllocRequest{0, 1, AllocFlags::exact_node, 77, {}});
    if (!a) break;
    held.push_back(a->mfn);
  }
  pa->set_reclaim_hook(ReclaimHook{store.get(), &ColdStore::reclaim_hook});
  // Still asking for node 1 exactly: only reclaim can make room, and it must.
  auto more = pa->alloc(AllocRequest{0, 1, AllocFlags::exact_node, 77, {}});
  ASSERT_TRUE(more.has_value());
  held.push_back(more->mfn);

  // The oldest ephemeral page went first; persistent ones are all there.
  std::vector<unsigned char> out(kFrameSize);
  auto first = store->get(*eph, 1, 0, out.data());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, ColdGet::dropped);
  auto last = store->get(*eph, 1, 99, out.data());
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, ColdGet::hit);
  for (std::uint32_t i = 0; i < 20; ++i) {
    auto g = store->get(*per, 1, i, out.data());
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(*g, ColdGet::hit) << i;
  }
  EXPECT_GE(store->stats().reclaimed, 1u);
  EXPECT_TRUE(store->check_invariants().has_value());
  EXPECT_TRUE(pa->check_invariants().has_value());

  // Without ephemeral pages left on node 1, exact-node allocations fail.
  while (pa->alloc(AllocRequest{0, 1, AllocFlags::exact_node, 77, {}})) {
  }
  EXPECT_EQ(store->stats().per_node[1].ephemeral, 0u);
  EXPECT_EQ(store->stats().per_node[1].persistent, 20u);
  pa->set_reclaim_hook({});
}
