// Out of metadata memory: GuestMemory, SharingManager and ColdStore take
// their objects, p2m, tables and lists from metadata hooks. With hooks that
// fail after N allocations (every N from 0 up to success) or every Nth one,
// creation and pool creation fail cleanly with no_memory and give back all
// they took (the hooks count allocations and releases), and the calls that
// allocate later (populate, balloon_up, scan, put, set_pool_home) either
// work or fail without a half-made change.
#include <gtest/gtest.h>

#include "guest_oom_hooks.h"
#include "numaheap/cold_store.h"
#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr OwnerId kShareOwner = 9000;
constexpr OwnerId kColdOwner = 9001;

struct Host {
  Topology topo = line_nodes(4, 512);
  FakeMachine mem{topo};
  std::unique_ptr<PageAllocator> pa = std::move(PageAllocator::create(topo, mem.platform())).value();
  std::uint64_t free_pages() const {
    std::uint64_t f = 0;
    for (const auto& n : topo.nodes()) f += pa->stats(n.id)->free + pa->stats(n.id)->cached;
    return f;
  }
};

GuestSpec spec_of(const char* name, std::uint64_t pages, NodeId pnode) {
  GuestSpec s;
  s.name = name;
  s.memory_bytes = pages << kFrameShift;
  s.vcpus = 2;
  s.vnodes = {VNodeSpec{s.memory_bytes, {0, 1}, pnode, {}}};
  s.devices = {DeviceSpec{"nic", pnode}};
  s.sharing = true;
  s.cold_store = true;
  return s;
}

Placement placement_on(NodeId pnode) {
  Placement p;
  p.vnode_pnodes = {pnode};
  return p;
}

Result<std::unique_ptr<GuestMemory>, Error> make_guest(Host& h, const MetadataHooks* hooks, OwnerId owner,
                                                       NodeId pnode, std::uint64_t pages = 64) {
  GuestOptions o;
  o.device_region_pages = 16;
  o.metadata = hooks;
  return GuestMemory::create(*h.pa, spec_of("oom", pages, pnode), placement_on(pnode), owner, o);
}

// Runs make(n) with the hooks failing from allocation n on, for n = 0, 1,
// ... until it succeeds; every failure must be no_memory and leave no more
// allocated than before. Returns how many allocations success took.
template <class Make>
long fail_after_each(OomHooks& oom, Make make) {
  const long base = oom.live(), base_bytes = oom.live_bytes();
  for (long n = 0; n < 1000; ++n) {
    oom.reset(n);
    {
      auto r = make();
      if (r) {
        oom.reset();
        return n;
      }
      EXPECT_EQ(r.error().code, Errc::no_memory) << "after " << n << ": " << r.error().message;
    }
    EXPECT_EQ(oom.live(), base) << "leak after failing allocation " << n;
    EXPECT_EQ(oom.live_bytes(), base_bytes) << "after " << n;
  }
  ADD_FAILURE() << "never succeeded";
  return -1;
}

}  // namespace

TEST(GuestOom, CreateFailsCleanlyAtEveryAllocation) {
  Host h;
  OomHooks oom;
  const std::uint64_t before = h.free_pages();
  long took = fail_after_each(oom, [&] { return make_guest(h, oom.hooks(), 1, 1); });
  EXPECT_GT(took, 2);  // guest, layout, home record, Impl, p2m at least
  EXPECT_EQ(oom.live(), 0);  // the successful guest went with its Result
  EXPECT_EQ(h.free_pages(), before);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
}

TEST(GuestOom, PopulateBalloonAndBuffersFailWithoutChange) {
  Host h;
  OomHooks oom;
  {
    auto g = std::move(make_guest(h, oom.hooks(), 1, 1)).value();
    const std::uint64_t before = h.free_pages();
    oom.reset(0);
    auto rep = g->populate();
    ASSERT_FALSE(rep.has_value());
    EXPECT_EQ(rep.error().code, Errc::no_memory);
    EXPECT_EQ(g->present_pages(), 0u);
    EXPECT_FALSE(g->populated());
    EXPECT_EQ(h.free_pages(), before);
    oom.reset();
    ASSERT_TRUE(g->populate().has_value());
    ASSERT_EQ(*g->balloon_down(10), 10u);
    oom.reset(0);
    auto up = g->balloon_up(10);
    ASSERT_FALSE(up.has_value());
    EXPECT_EQ(up.error().code, Errc::no_memory);
    EXPECT_EQ(g->present_pages(), 54u);
    auto buf = g->alloc_device_buffer(0, 2);
    ASSERT_FALSE(buf.has_value());  // its record cannot be kept: nothing allocated
    EXPECT_EQ(buf.error().code, Errc::no_memory);
    EXPECT_EQ(g->present_pages(), 54u);
    EXPECT_FALSE(g->layout().ok());
    EXPECT_FALSE(g->pages_per_node().ok());
    oom.reset();
    EXPECT_EQ(*g->balloon_up(10), 10u);
    EXPECT_TRUE(g->alloc_device_buffer(0, 2).has_value());
    EXPECT_TRUE(g->check_frames().has_value());
  }
  EXPECT_EQ(oom.live(), 0);
}

TEST(GuestOom, EveryNthAllocationFails) {
  Host h;
  OomHooks oom;
  const std::uint64_t before = h.free_pages();
  for (long every = 1; every <= 6; ++every) {
    oom.reset(-1, every);
    auto g = make_guest(h, oom.hooks(), 1, 2);
    if (!g) {
      EXPECT_EQ(g.error().code, Errc::no_memory);
      continue;
    }
    auto& gm = *g.value();
    auto rep = gm.populate();
    if (rep) {
      (void)gm.balloon_down(5);
      (void)gm.balloon_up(5);
    }
    oom.reset();
    EXPECT_TRUE(gm.check_frames().has_value()) << "every " << every;
  }
  EXPECT_EQ(oom.live(), 0);
  EXPECT_EQ(h.free_pages(), before);
}

TEST(SharingOom, CreateFailsCleanlyAtEveryAllocation) {
  Host h;
  OomHooks oom;
  SharingConfig c;
  c.owner = kShareOwner;
  c.access = h.mem.access();
  c.metadata = oom.hooks();
  fail_after_each(oom, [&] { return SharingManager::create(*h.pa, c); });
  EXPECT_EQ(oom.live(), 0);
}

// Merges with tables that cannot always grow: each merge happens whole or
// not at all, and everything is given back at the end.
TEST(SharingOom, ScanAndUnshareUnderFailingHooks) {
  Host h;
  OomHooks oom;
  const std::uint64_t before = h.free_pages();
  for (long every = 2; every <= 5; ++every) {
    SharingConfig c;
    c.owner = kShareOwner;
    c.access = h.mem.access();
    c.metadata = oom.hooks();
    auto sm = std::move(SharingManager::create(*h.pa, c)).value();
    auto a = pinned_guest(*h.pa, "a", 1, 0, 64);
    auto b = pinned_guest(*h.pa, "b", 2, 0, 64);
    for (Gfn gfn = 0; gfn < 64; ++gfn) {
      fill_page(h.mem.at(a->lookup(gfn).mfn), gfn % 8);
      fill_page(h.mem.at(b->lookup(gfn).mfn), gfn % 8);
    }
    ASSERT_TRUE(sm->add_guest(*a).has_value());
    ASSERT_TRUE(sm->add_guest(*b).has_value());
    oom.reset(-1, every);
    (void)sm->scan(*a, 0, 64);
    (void)sm->scan(*b, 0, 64);
    (void)sm->write_fault(*a, 3, 1);
    {
      const SharingStats s = sm->stats();
      EXPECT_GT(s.merge_failures + s.merges, 0u);
    }
    oom.reset();
    EXPECT_TRUE(sm->check_invariants().has_value()) << "every " << every;
    for (Gfn gfn = 0; gfn < 64; ++gfn) {
      EXPECT_TRUE(page_is(guest_page(h.mem, *a, gfn), gfn % 8)) << gfn;
      EXPECT_TRUE(page_is(guest_page(h.mem, *b, gfn), gfn % 8)) << gfn;
    }
    oom.reset(0);  // nothing at all: removal needs its work list
    if (sm->stats().pages_sharing) {
      auto r = sm->remove_guest(*a);
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code, Errc::no_memory);
    }
    oom.reset();
    ASSERT_TRUE(sm->remove_guest(*a).has_value());
    ASSERT_TRUE(sm->remove_guest(*b).has_value());
    EXPECT_TRUE(sm->check_invariants().has_value());
    sm.reset();
    EXPECT_EQ(oom.live(), 0) << "every " << every;
    ASSERT_TRUE(a->destroy().has_value());
    ASSERT_TRUE(b->destroy().has_value());
  }
  EXPECT_EQ(h.free_pages(), before);
}

// A cold store over `h`'s memory whose metadata comes from `oom`.
static ColdStoreConfig cold_config(Host& h, OomHooks& oom) {
  ColdStoreConfig c;
  c.owner = kColdOwner;
  c.max_entries = 256;
  c.watermark_pages = 8;
  c.watermark_fraction = 0;
  c.access = h.mem.access();
  c.metadata = oom.hooks();
  return c;
}

TEST(ColdStoreOom, CreateAndPoolsFailCleanly) {
  Host h;
  OomHooks oom;
  const ColdStoreConfig c = cold_config(h, oom);
  fail_after_each(oom, [&] { return ColdStore::create(*h.pa, c); });
  EXPECT_EQ(oom.live(), 0);

  OomHooks guest_oom;
  auto cs = std::move(ColdStore::create(*h.pa, c)).value();
  {
    auto g = std::move(make_guest(h, guest_oom.hooks(), 1, 1)).value();
    // A pool: its node order is the only allocation.
    PoolId pool = 0;
    fail_after_each(oom, [&] {
      auto r = cs->create_pool(*g, PoolKind::persistent);
      if (r) pool = *r;
      return r;
    });
    EXPECT_EQ(cs->stats().pools, 1u);
    EXPECT_EQ(cs->pool_node_order(pool).size(), 3u);
    oom.reset(0);
    auto p2 = cs->create_pool(NodeMask::single(0), PoolKind::ephemeral, "plain");
    ASSERT_FALSE(p2.has_value());
    EXPECT_EQ(p2.error().code, Errc::no_memory);
    EXPECT_EQ(cs->stats().pools, 1u);
    EXPECT_FALSE(cs->stats().per_node.ok());
    EXPECT_FALSE(cs->pool_node_order(pool).ok());
    oom.reset();
    EXPECT_TRUE(cs->check_invariants().has_value());
  }
  cs.reset();
  EXPECT_EQ(oom.live(), 0);
  EXPECT_EQ(guest_oom.live(), 0);  // the pool's home record went with the store
}

// A put that must first follow its guest's new home (set_pool_home) and
// cannot allocate the node order or work list fails with no_memory and
// loses nothing; with memory it follows.
TEST(ColdStoreOom, FollowingTheHomeFailsWithoutLoss) {
  Host h;
  OomHooks oom;
  const ColdStoreConfig c = cold_config(h, oom);
  auto cs = std::move(ColdStore::create(*h.pa, c)).value();
  auto g = std::move(make_guest(h, nullptr, 1, 1)).value();
  ASSERT_TRUE(g->populate().has_value());
  const PoolId p = *cs->create_pool(*g, PoolKind::persistent);
  unsigned char page[kFrameSize], out[kFrameSize];
  fill_page(page, 5);
  auto n = cs->put(p, 1, 0, page);
  ASSERT_TRUE(n.has_value());
  // Rehome the guest onto the node that holds the page.
  auto layout = g->layout();
  ASSERT_TRUE(layout.ok());
  for (auto& r : layout) r.pnode = *n;
  ASSERT_TRUE(g->relayout(layout).has_value());
  oom.reset(0);
  auto r = cs->put(p, 1, 1, page);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::no_memory);
  EXPECT_EQ(*cs->get(p, 1, 0, out), ColdGet::hit);
  EXPECT_TRUE(page_is(out, 5));
  oom.reset();
  auto r2 = cs->put(p, 1, 1, page);
  ASSERT_TRUE(r2.has_value());
  EXPECT_NE(*r2, *n);
  EXPECT_NE(cs->node_of(p, 1, 0), *n);  // moved off the new home
  EXPECT_TRUE(cs->check_invariants().has_value());
  cs.reset();
  EXPECT_EQ(oom.live(), 0);
}

// A spec whose list ran out of memory while it was built is refused (it
// would describe another guest), with no_memory.
TEST(GuestOom, IncompleteSpecIsRefused) {
  Host h;
  OomHooks oom;
  GuestSpec s = spec_of("cut", 64, 1);
  EXPECT_TRUE(s.ok());
  Vector<std::uint32_t> vcpus(oom.hooks());
  oom.reset(0);
  EXPECT_FALSE(vcpus.push_back(0));
  s.vnodes[0].vcpus = std::move(vcpus);  // empty and !ok()
  EXPECT_FALSE(s.ok());
  auto v = validate_guest_spec(s, h.topo);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code, Errc::no_memory);
  auto g = GuestMemory::create(*h.pa, s, placement_on(1), 1);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, Errc::no_memory);
}
