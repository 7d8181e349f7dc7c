// GuestMemory safety (issue 12, items 6 and 8):
//  * sizes never wrap: a device region near 2^64 frames, or a placement
//    whose shares overflow, is refused at create() -- it used to wrap the
//    p2m to a handful of entries that populate then wrote past;
//  * populate and balloon_up undo only their own claims: what the embedder
//    claimed for the owner before is there, unchanged, after the call --
//    whether the call failed or succeeded.
#include <gtest/gtest.h>

#include <limits>

#include "numaheap/guest_memory.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kNodeFrames = 4096;  // 16 MiB per node
constexpr OwnerId kGuest = 10, kOther = 20;

struct Host {
  Topology topo = std::move(TopologyBuilder("guest-safety")
                                .add_node(0, {0}, kNodeFrames << kFrameShift)
                                .add_node(1, {1}, kNodeFrames << kFrameShift)
                                .build())
                      .value();
  std::unique_ptr<PageAllocator> pa = std::move(PageAllocator::create(topo)).value();
};

// A one-vnode guest of `pages` frames on `pnode`.
GuestSpec guest(std::uint64_t pages, NodeId pnode) {
  GuestSpec g;
  g.name = "vm";
  g.memory_bytes = pages << kFrameShift;
  g.vcpus = 1;
  g.vnodes = {VNodeSpec{pages << kFrameShift, {0}, pnode, {}}};
  return g;
}

Placement placement_of(const GuestSpec& g) {
  Placement p;
  for (const auto& v : g.vnodes) {
    p.vnode_pnodes.push_back(v.pnode);
    p.nodes.set(v.pnode);
  }
  return p;
}

struct Claims {
  std::uint64_t node0, node1, global;
  bool operator==(const Claims&) const = default;
};
Claims claims_of(const PageAllocator& pa, OwnerId owner) {
  return {pa.claimed_by(owner, 0), pa.claimed_by(owner, 1), pa.claimed_by(owner, kNoNode)};
}

}  // namespace

// ---- item 6: overflow ----

TEST(GuestSafety, DeviceRegionNearTwoToTheSixtyFourIsRefused) {
  Host h;
  const GuestSpec g = guest(512, 0);
  ASSERT_TRUE(h.pa->claim(kGuest, 7, 1).has_value());  // must survive the refusals
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  for (std::uint64_t region : {max, max - 1, max - 511, max - 512, max - 1023, uint64_t{1} << 63,
                               kMaxGuestFrames, kMaxGuestFrames - 511}) {
    GuestOptions o;
    o.device_region_pages = region;
    auto gm = GuestMemory::create(*h.pa, g, placement_of(g), kGuest, o);
    if (gm.has_value()) {
      // Today's main: the sum wrapped and the p2m is smaller than RAM.
      ADD_FAILURE() << "region " << region << " accepted, gfn_limit " << (*gm)->gfn_limit() << " for "
                    << (*gm)->ram_pages() << " RAM pages";
      continue;
    }
    EXPECT_EQ(gm.error().code, Errc::invalid_argument) << region;
    EXPECT_EQ(claims_of(*h.pa, kGuest), (Claims{0, 7, 0})) << "a refused create changed the claims";
  }
  // The largest region that fits is accepted in principle; a plain big one works.
  GuestOptions o;
  o.device_region_pages = 1u << 20;
  auto gm = GuestMemory::create(*h.pa, g, placement_of(g), kGuest, o);
  ASSERT_TRUE(gm.has_value()) << gm.error().message;
  EXPECT_GE((*gm)->gfn_limit(), (*gm)->device_gfn_base() + o.device_region_pages);
  EXPECT_GE((*gm)->device_gfn_base(), (*gm)->ram_pages());
  EXPECT_TRUE((*gm)->populate().has_value());
  EXPECT_TRUE((*gm)->check_invariants().has_value());
}

TEST(GuestSafety, PlacementSharesThatOverflowAreRefused) {
  Host h;
  GuestSpec g;  // no vNUMA: the placement's shares make the layout
  g.name = "vm";
  g.memory_bytes = 8 << kFrameShift;
  g.vcpus = 1;
  Placement p;
  p.nodes.set(0);
  p.nodes.set(1);
  // 2^63 + 2^63 + 8 pages' worth of bytes wraps to the guest's 8 pages.
  const std::uint64_t half = std::uint64_t{1} << 63;
  p.memory = {NodeShare{0, half}, NodeShare{1, half}, NodeShare{0, 8 << kFrameShift}};
  auto gm = GuestMemory::create(*h.pa, g, p, kGuest);
  ASSERT_FALSE(gm.has_value());
  EXPECT_EQ(gm.error().code, Errc::invalid_argument);
}

// ---- item 8: claims ----

TEST(GuestSafety, FailedPopulateKeepsTheEmbeddersClaims) {
  Host h;
  ASSERT_TRUE(h.pa->claim(kGuest, 100, 0).has_value());
  ASSERT_TRUE(h.pa->claim(kGuest, 50, 1).has_value());
  ASSERT_TRUE(h.pa->claim(kGuest, 30, kNoNode).has_value());
  const Claims before = claims_of(*h.pa, kGuest);
  // Node 1 cannot hold the guest: the claim step fails.
  const GuestSpec big = guest(kNodeFrames, 1);
  auto gm = GuestMemory::create(*h.pa, big, placement_of(big), kGuest);
  ASSERT_TRUE(gm.has_value()) << gm.error().message;
  EXPECT_FALSE((*gm)->populate().has_value());
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  gm->reset();  // destroy() releases the owner's claims: its documented end
}

TEST(GuestSafety, SuccessfulPopulateKeepsTheEmbeddersClaims) {
  Host h;
  ASSERT_TRUE(h.pa->claim(kGuest, 16, 0).has_value());
  ASSERT_TRUE(h.pa->claim(kGuest, 8, kNoNode).has_value());
  const Claims before = claims_of(*h.pa, kGuest);
  const GuestSpec g = guest(1024, 0);
  auto gm = GuestMemory::create(*h.pa, g, placement_of(g), kGuest);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  // The call's own claim is used up; the embedder's is untouched.
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
}

TEST(GuestSafety, FailedStripedPopulateKeepsTheEmbeddersClaims) {
  Host h;
  ASSERT_TRUE(h.pa->claim(kGuest, 40, 0).has_value());
  ASSERT_TRUE(h.pa->claim(kGuest, 20, kNoNode).has_value());
  const Claims before = claims_of(*h.pa, kGuest);
  GuestOptions o;
  o.allow_striping = true;
  const GuestSpec big = guest(2 * kNodeFrames - 16, 1);  // more than the host has unclaimed
  auto gm = GuestMemory::create(*h.pa, big, placement_of(big), kGuest, o);
  ASSERT_TRUE(gm.has_value());
  EXPECT_FALSE((*gm)->populate().has_value());
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  // A striped populate that succeeds leaves them alone as well.
  const GuestSpec fits = guest(kNodeFrames + 512, 1);
  auto gm2 = GuestMemory::create(*h.pa, fits, placement_of(fits), kGuest + 1, o);
  ASSERT_TRUE(gm2.has_value());
  ASSERT_TRUE(h.pa->claim(kGuest + 1, 5, 0).has_value());
  auto rep = (*gm2)->populate();
  ASSERT_TRUE(rep.has_value()) << rep.error().message;
  EXPECT_FALSE(rep->striped.empty());
  EXPECT_EQ(h.pa->claimed_by(kGuest + 1, 0), 5u);
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
}

TEST(GuestSafety, FailedBalloonUpKeepsTheEmbeddersClaims) {
  Host h;
  const GuestSpec g = guest(1024, 1);
  auto gm = GuestMemory::create(*h.pa, g, placement_of(g), kGuest);
  ASSERT_TRUE(gm.has_value());
  ASSERT_TRUE((*gm)->populate().has_value());
  ASSERT_EQ((*gm)->balloon_down(64).value(), 64u);
  // The embedder claims for the guest elsewhere; another owner then takes
  // all of node 1 that is left, so balloon_up cannot claim its 64 pages.
  ASSERT_TRUE(h.pa->claim(kGuest, 10, 0).has_value());
  ASSERT_TRUE(h.pa->claim(kGuest, 3, kNoNode).has_value());
  const Claims before = claims_of(*h.pa, kGuest);
  std::vector<Mfn> taken;
  for (;;) {
    auto a = h.pa->alloc(AllocRequest{0, 1, AllocFlags::exact_node, kOther, {}});
    if (!a) break;
    taken.push_back(a->mfn);
  }
  ASSERT_FALSE(taken.empty());
  EXPECT_FALSE((*gm)->balloon_up(64).has_value());
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  EXPECT_EQ((*gm)->present_pages(), 1024u - 64u);  // nothing changed
  // Room again: balloon_up succeeds and still leaves the embedder's claims.
  for (std::size_t i = 0; i < 64; ++i) ASSERT_TRUE(h.pa->free(taken[i], 0, kOther).has_value());
  EXPECT_EQ((*gm)->balloon_up(64).value(), 64u);
  EXPECT_EQ(claims_of(*h.pa, kGuest), before);
  EXPECT_TRUE((*gm)->check_invariants().has_value());
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  for (std::size_t i = 64; i < taken.size(); ++i) ASSERT_TRUE(h.pa->free(taken[i], 0, kOther).has_value());
}

TEST(GuestSafety, ClaimsSetAsideAreReservedButNotConsumed) {
  Host h;
  ASSERT_TRUE(h.pa->claim(kGuest, kNodeFrames - 8, 0).has_value());
  ASSERT_TRUE(h.pa->set_claims_aside(kGuest).has_value());
  EXPECT_EQ(h.pa->set_claims_aside(kGuest).error(), Errc::busy);
  // Held: other owners still cannot take the memory, and the owner's
  // use_claim allocation does not eat into it either.
  EXPECT_FALSE(h.pa->alloc(AllocRequest{4, 0, AllocFlags::exact_node, kOther, {}}).has_value());
  EXPECT_FALSE(
      h.pa->alloc(AllocRequest{4, 0, AllocFlags::exact_node | AllocFlags::use_claim, kGuest, {}}).has_value());
  EXPECT_EQ(h.pa->claimed_by(kGuest, 0), kNodeFrames - 8);
  ASSERT_TRUE(h.pa->claim(kGuest, 4, 0).has_value());
  auto a = h.pa->alloc(AllocRequest{1, 0, AllocFlags::exact_node | AllocFlags::use_claim, kGuest, {}});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(h.pa->claimed_by(kGuest, 0), kNodeFrames - 8 + 2);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  ASSERT_TRUE(h.pa->restore_claims(kGuest).has_value());
  EXPECT_EQ(h.pa->claimed_by(kGuest, 0), kNodeFrames - 8);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  // Back in service: the owner's allocations consume it again.
  ASSERT_TRUE(h.pa->free(a->mfn, 1, kGuest).has_value());
  ASSERT_TRUE(
      h.pa->alloc(AllocRequest{2, 0, AllocFlags::exact_node | AllocFlags::use_claim, kGuest, {}}).has_value());
  EXPECT_EQ(h.pa->claimed_by(kGuest, 0), kNodeFrames - 8 - 4);
  // release_owner drops held claims too.
  ASSERT_TRUE(h.pa->set_claims_aside(kGuest).has_value());
  ASSERT_TRUE(h.pa->release_owner(kGuest).has_value());
  EXPECT_EQ(h.pa->claimed_by(kGuest), 0u);
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  EXPECT_EQ(h.pa->set_claims_aside(kMaxOwner + 1).error(), Errc::invalid_argument);
}
