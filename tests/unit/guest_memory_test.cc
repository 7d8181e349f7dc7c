// GuestMemory: populate per vnode (exact node, largest extents first,
// all-or-nothing), ballooning, device buffers, backend affinity, destroy.
#include <gtest/gtest.h>

#include "numaheap/guest_memory.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

struct Host {
  Topology topo = builtin_default_topology();
  std::unique_ptr<PageAllocator> pa;
  Host() {
    auto r = PageAllocator::create(topo);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    pa = std::move(*r);
  }
  std::uint64_t free_pages(NodeId n) const {
    auto s = pa->stats(n);
    return s->free + s->cached;
  }
  std::uint64_t used_pages() const {
    std::uint64_t u = 0;
    for (NodeId n = 0; n < 4; ++n) u += pa->stats(n)->used;
    return u;
  }
};

GuestSpec vnuma_guest(std::uint64_t mb0, std::uint64_t mb1, NodeId p0, NodeId p1) {
  GuestSpec g;
  g.name = "vm";
  g.memory_bytes = (mb0 + mb1) * kMiB;
  g.vcpus = 2;
  g.vnodes = {VNodeSpec{mb0 * kMiB, {0}, p0, {}}, VNodeSpec{mb1 * kMiB, {1}, p1, {}}};
  g.devices = {DeviceSpec{"nic0", 3}};
  return g;
}

Placement place(const Host& h, const GuestSpec& g) {
  Placer placer(h.topo);
  auto p = placer.place(g, placer.idle_usage());
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
  return *p;
}

}  // namespace

TEST(GuestMemory, PopulatesEachVnodeOnItsNodeWithLargeExtents) {
  Host h;
  GuestSpec g = vnuma_guest(1026, 64, 1, 2);  // 1 GiB + 2 MiB on node 1, 64 MiB on node 2
  auto gm = GuestMemory::create(*h.pa, g, place(h, g), 10);
  ASSERT_TRUE(gm.has_value()) << gm.error().message;
  auto rep = (*gm)->populate();
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  EXPECT_EQ(rep->extents_1g, 1u);
  EXPECT_EQ(rep->extents_2m, 1u + 32u);
  EXPECT_EQ(rep->extents_4k, 0u);
  EXPECT_TRUE(rep->striped.empty());
  const auto& layout = (*gm)->layout();
  ASSERT_EQ(layout.size(), 2u);
  for (const auto& r : layout)
    for (Gfn gfn = r.first; gfn < r.first + r.pages; ++gfn) {
      P2mEntry e = (*gm)->lookup(gfn);
      ASSERT_TRUE(e.present());
      ASSERT_EQ(h.pa->node_of(e.mfn), r.pnode) << "gfn " << gfn;
    }
  EXPECT_TRUE((*gm)->check_invariants().has_value());
  EXPECT_EQ(h.pa->claimed_by(10), 0u);  // claims never outlive populate
  EXPECT_FALSE((*gm)->populate().has_value());  // busy
}

TEST(GuestMemory, PopulateIsAllOrNothing) {
  Host h;
  const std::uint64_t free1 = h.free_pages(1), free2 = h.free_pages(2);
  // Node 2 cannot hold 4 GiB: nothing may be left allocated anywhere.
  GuestSpec g = vnuma_guest(64, 4096, 1, 2);
  Placement p;
  p.vnode_pnodes = {1, 2};
  auto gm = GuestMemory::create(*h.pa, g, p, 11);
  ASSERT_TRUE(gm.has_value()) << gm.error().message;
  auto rep = (*gm)->populate();
  ASSERT_FALSE(rep.has_value());
  EXPECT_NE(rep.error().message.find("on node 2"), std::string::npos) << rep.error().message;
  EXPECT_EQ(h.free_pages(1), free1);
  EXPECT_EQ(h.free_pages(2), free2);
  EXPECT_EQ(h.used_pages(), 0u);
  EXPECT_EQ(h.pa->claimed_by(11), 0u);
  EXPECT_EQ((*gm)->present_pages(), 0u);
}

TEST(GuestMemory, StripingIsReportedNeverSilent) {
  Host h;
  GuestSpec g = vnuma_guest(64, 2100, 1, 2);  // node 2 has ~1998 MB
  Placement p;
  p.vnode_pnodes = {1, 2};
  GuestOptions o;
  o.allow_striping = true;
  auto gm = GuestMemory::create(*h.pa, g, p, 12, o);
  ASSERT_TRUE(gm.has_value());
  auto rep = (*gm)->populate();
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  ASSERT_FALSE(rep->striped.empty());
  std::uint64_t striped = 0;
  for (const auto& s : rep->striped) {
    EXPECT_NE(s.node, 2u);
    striped += s.bytes;
  }
  EXPECT_GE(striped, (2100 - 1998) * kMiB);
}

TEST(GuestMemory, BalloonDownPrefersAwayPagesThenUpRestoresHome) {
  Host h;
  GuestSpec g;
  g.name = "b";
  g.memory_bytes = 64 * kMiB;
  g.vcpus = 1;
  Placement p;
  p.memory = {{0, 64 * kMiB}};
  auto gm = GuestMemory::create(*h.pa, g, p, 13);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  const std::uint64_t used = h.used_pages();
  auto down = (*gm)->balloon_down(100);  // splits 2 MiB extents
  ASSERT_TRUE(down.has_value()) << down.error().message;
  EXPECT_EQ(*down, 100u);
  EXPECT_EQ(h.used_pages(), used - 100);
  EXPECT_EQ((*gm)->present_pages(), 64 * 256 - 100u);
  EXPECT_TRUE((*gm)->check_invariants().has_value());
  // Top of memory went first.
  EXPECT_FALSE((*gm)->lookup(64 * 256 - 1).present());
  EXPECT_TRUE((*gm)->lookup(0).present());
  auto too_many = (*gm)->balloon_up(101);
  EXPECT_FALSE(too_many.has_value());
  auto up = (*gm)->balloon_up(100);
  ASSERT_TRUE(up.has_value()) << up.error().message;
  EXPECT_EQ((*gm)->present_pages(), 64 * 256u);
  for (Gfn gfn = 0; gfn < 64 * 256; ++gfn) ASSERT_EQ(h.pa->node_of((*gm)->lookup(gfn).mfn), 0u);
  EXPECT_TRUE((*gm)->check_invariants().has_value());
  EXPECT_TRUE(h.pa->check_invariants().has_value());
}

TEST(GuestMemory, DeviceBuffersArePinnedOnTheDeviceNode) {
  Host h;
  GuestSpec g = vnuma_guest(64, 64, 0, 1);
  auto gm = GuestMemory::create(*h.pa, g, place(h, g), 14);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  auto buf = (*gm)->alloc_device_buffer(0, 3);
  ASSERT_TRUE(buf.has_value()) << buf.error().message;
  EXPECT_EQ(buf->node, 3u);
  EXPECT_EQ(buf->pages, 4u);
  EXPECT_GE(buf->gfn, (*gm)->device_gfn_base());
  for (Gfn k = buf->gfn; k < buf->gfn + buf->pages; ++k) {
    P2mEntry e = (*gm)->lookup(k);
    EXPECT_TRUE(e.flags & P2mFlags::pinned);
    EXPECT_EQ(h.pa->node_of(e.mfn), 3u);
  }
  // Ballooning never takes pinned pages.
  auto down = (*gm)->balloon_down(1u << 20);
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(*down, 128 * 256u);
  EXPECT_TRUE((*gm)->lookup(buf->gfn).present());
  EXPECT_FALSE((*gm)->alloc_device_buffer(5, 1).has_value());
  EXPECT_TRUE((*gm)->free_device_buffer(buf->gfn).has_value());
  EXPECT_FALSE((*gm)->free_device_buffer(buf->gfn).has_value());
}

TEST(GuestMemory, BackendAffinityFollowsTheMemory) {
  Host h;
  GuestSpec g = vnuma_guest(512, 64, 2, 1);
  auto gm = GuestMemory::create(*h.pa, g, place(h, g), 15);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  BackendAffinity b = (*gm)->backend_affinity();
  EXPECT_EQ(b.node, 2u);
  EXPECT_EQ(b.cpus, (Vector<CpuId>{8, 9, 10, 11}));
  EXPECT_NE(b.reason.find("node 2 holds 512 MB"), std::string::npos) << b.reason;
}

TEST(GuestMemory, DestroyReturnsEverything) {
  Host h;
  std::vector<std::uint64_t> before;
  for (NodeId n = 0; n < 4; ++n) before.push_back(h.free_pages(n));
  GuestSpec g = vnuma_guest(1024, 300, 0, 3);
  auto gm = GuestMemory::create(*h.pa, g, place(h, g), 16);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  ASSERT_TRUE((*gm)->alloc_device_buffer(0, 16).has_value());
  ASSERT_TRUE((*gm)->balloon_down(1000).has_value());
  ASSERT_TRUE((*gm)->destroy().has_value());
  ASSERT_TRUE((*gm)->destroy().has_value());  // idempotent
  h.pa->drain_all();
  for (NodeId n = 0; n < 4; ++n) {
    EXPECT_EQ(h.free_pages(n), before[n]) << "node " << n;
    EXPECT_EQ(h.pa->stats(n)->dirty, 0u) << "node " << n << " left dirty frames";
  }
  EXPECT_EQ(h.used_pages(), 0u);
  EXPECT_EQ(h.pa->claimed_by(16), 0u);
  EXPECT_TRUE(h.pa->check_frames().has_value());
}

TEST(GuestMemory, CreateRejectsBadInput) {
  Host h;
  GuestSpec g = vnuma_guest(64, 64, 0, 1);
  Placement wrong;
  wrong.vnode_pnodes = {0};
  EXPECT_FALSE(GuestMemory::create(*h.pa, g, wrong, 1).has_value());
  Placement ok;
  ok.vnode_pnodes = {0, 1};
  EXPECT_FALSE(GuestMemory::create(*h.pa, g, ok, kNoOwner).has_value());
  GuestSpec plain;
  plain.name = "p";
  plain.memory_bytes = 64 * kMiB;
  plain.vcpus = 1;
  Placement half;
  half.memory = {{0, 32 * kMiB}};
  auto r = GuestMemory::create(*h.pa, plain, half, 2);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("covers 32 MB"), std::string::npos) << r.error().message;
}

// On a node without a free 2 MiB block, every extent is 4 KiB (allocated in
// bulk, up to each 2 MiB boundary), still all on the vnode's node; with
// striping, the 4 KiB pages that do not fit come from other nodes and are
// reported; destroy frees them all.
TEST(GuestMemory, FragmentedNodeGetsFourKibExtents) {
  Host h;
  // Fragment node 1: take everything, give back every other frame.
  const std::uint64_t total = h.free_pages(1);
  std::vector<Mfn> all(total);
  ASSERT_TRUE(h.pa->alloc_bulk(AllocRequest{0, 1, AllocFlags::exact_node, 99, {}}, all));
  std::vector<Mfn> odd, even;
  for (Mfn m : all) (m % 2 ? odd : even).push_back(m);
  ASSERT_TRUE(h.pa->free_bulk(odd, 99));
  ASSERT_EQ(h.pa->stats(1)->largest_free_order, 0);
  const std::uint64_t room = h.free_pages(1);

  GuestSpec g;
  g.name = "frag";
  g.memory_bytes = 6 * kMiB;  // 1536 pages: three 2 MiB stretches of 4 KiB pages
  g.vcpus = 1;
  Placement p;
  p.memory = {{1, 6 * kMiB}};
  auto gm = GuestMemory::create(*h.pa, g, p, 21);
  ASSERT_TRUE(gm.has_value());
  auto rep = (*gm)->populate();
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  EXPECT_EQ(rep->extents_4k, 1536u);
  EXPECT_EQ(rep->extents_2m, 0u);
  EXPECT_TRUE(rep->striped.empty());
  for (Gfn gfn = 0; gfn < 1536; ++gfn) {
    const P2mEntry e = (*gm)->lookup(gfn);
    ASSERT_TRUE(e.present());
    EXPECT_EQ(e.order, 0u);
    EXPECT_EQ(h.pa->node_of(e.mfn), 1u);
  }
  EXPECT_TRUE((*gm)->check_invariants().has_value());
  EXPECT_EQ(h.free_pages(1), room - 1536);
  ASSERT_TRUE((*gm)->destroy().has_value());
  EXPECT_EQ(h.free_pages(1), room);

  // More than node 1 has left, striping allowed: the rest comes from
  // elsewhere, 4 KiB pages, and is reported.
  GuestSpec big = g;
  big.name = "striped";
  const std::uint64_t pages = (room + 1000 + 511) / 512 * 512;
  big.memory_bytes = pages << kFrameShift;
  Placement bp;
  bp.memory = {{1, big.memory_bytes}};
  GuestOptions o;
  o.allow_striping = true;
  auto sg = GuestMemory::create(*h.pa, big, bp, 22, o);
  ASSERT_TRUE(sg.has_value());
  auto srep = (*sg)->populate();
  ASSERT_TRUE(srep.has_value()) << srep.error().message;
  std::uint64_t striped = 0;
  for (const auto& s : srep->striped) {
    EXPECT_NE(s.node, 1u);
    striped += s.bytes;
  }
  EXPECT_EQ(striped, (pages - room) << kFrameShift);
  EXPECT_EQ(h.free_pages(1), 0u);
  EXPECT_TRUE((*sg)->check_invariants().has_value());
  ASSERT_TRUE((*sg)->balloon_down(700).has_value());  // away pages first, in bulk
  ASSERT_TRUE((*sg)->destroy().has_value());
  EXPECT_EQ(h.free_pages(1), room);
  ASSERT_TRUE(h.pa->free_bulk(even, 99));
  h.pa->drain_all();
  EXPECT_EQ(h.used_pages(), 0u);
  EXPECT_TRUE(h.pa->check_frames().has_value());
}
