// SharingManager: opt-in, merge and free duplicates, node policies (the
// ksm_tests -N scenario), copy-on-write onto the writer's node, zero pages,
// large blocks, policy switch refused while merged, stats, security (no old
// bytes reach another guest) and errors.
#include <gtest/gtest.h>

#include "numaheap/sharing.h"
#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr OwnerId kShareOwner = 9000;

struct Host {
  Topology topo;
  FakeMachine mem;
  std::unique_ptr<PageAllocator> pa;
  std::unique_ptr<SharingManager> sm;
  explicit Host(SharingPolicy policy = SharingPolicy::across_nodes(), Topology t = line_nodes(4, 1024))
      : topo(std::move(t)), mem(topo) {
    pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    SharingConfig c;
    c.owner = kShareOwner;
    c.policy = policy;
    c.access = mem.access();
    auto r = SharingManager::create(*pa, c);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    sm = std::move(r).value();
  }
  std::uint64_t used(NodeId n) const { return pa->stats(n)->used; }
  std::unique_ptr<GuestMemory> guest(const char* name, OwnerId owner, NodeId node, std::uint64_t pages) {
    auto g = pinned_guest(*pa, name, owner, node, pages);
    EXPECT_TRUE(sm->add_guest(*g).has_value());
    return g;
  }
  void fill(GuestMemory& g, Gfn gfn, std::uint32_t tag) { fill_page(mem.at(g.lookup(gfn).mfn), tag); }
  void check() {
    EXPECT_TRUE(sm->check_invariants().has_value());
    EXPECT_TRUE(pa->check_invariants().has_value());
  }
};

}  // namespace

TEST(Sharing, GuestsMustOptIn) {
  Host h;
  auto g = pinned_guest(*h.pa, "private", 1, 0, 8, /*sharing=*/false);
  auto r = h.sm->add_guest(*g);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("opted in"), std::string::npos) << r.error().message;
  EXPECT_FALSE(h.sm->scan(*g, 0, 8).has_value());
  auto g2 = pinned_guest(*h.pa, "twice", 2, 0, 8);
  ASSERT_TRUE(h.sm->add_guest(*g2).has_value());
  EXPECT_EQ(h.sm->add_guest(*g2).error().code, Errc::busy);
  ASSERT_TRUE(h.sm->remove_guest(*g2).has_value());
}

TEST(Sharing, MergesDuplicatesIntoOneReadOnlyFrameAndFreesThem) {
  Host h;
  auto a = h.guest("a", 1, 0, 16);
  auto b = h.guest("b", 2, 0, 16);
  for (Gfn k = 0; k < 16; ++k) {
    h.fill(*a, k, 100 + k);              // a: 16 distinct pages
    h.fill(*b, k, k < 8 ? 100 + k : 500 + k);  // b: the first 8 equal a's
  }
  const std::uint64_t before = h.used(0);
  ASSERT_EQ(*h.sm->scan(*a, 0, 16), 0u);  // nothing to match yet
  ASSERT_EQ(*h.sm->scan(*b, 0, 16), 16u);  // 8 frames, each taking a's and b's page
  SharingStats s = h.sm->stats();
  EXPECT_EQ(s.pages_shared, 8u);
  EXPECT_EQ(s.pages_sharing, 16u);
  EXPECT_EQ(s.pages_saved, 8u);
  ASSERT_EQ(s.per_node.size(), 1u);
  EXPECT_EQ(s.per_node[0].node, 0u);
  EXPECT_EQ(s.per_node[0].saved, 8u);
  EXPECT_EQ(h.used(0), before - 8);  // 16 private frames freed, 8 shared allocated
  for (Gfn k = 0; k < 8; ++k) {
    P2mEntry ea = a->lookup(k), eb = b->lookup(k);
    EXPECT_EQ(ea.mfn, eb.mfn);
    EXPECT_TRUE(ea.flags & P2mFlags::shared);
    EXPECT_TRUE(page_is(guest_page(h.mem, *a, k), 100 + k));
  }
  for (Gfn k = 8; k < 16; ++k) EXPECT_FALSE(b->lookup(k).flags & P2mFlags::shared);
  // A third guest joins an existing frame without a new allocation.
  auto c = h.guest("c", 3, 0, 4);
  h.fill(*c, 0, 103);
  const std::uint64_t before_c = h.used(0);
  EXPECT_EQ(*h.sm->scan(*c, 0, 1), 1u);
  EXPECT_EQ(h.used(0), before_c - 1);
  EXPECT_EQ(c->lookup(0).mfn, a->lookup(3).mfn);
  h.check();
  EXPECT_TRUE(a->check_invariants().has_value());
  for (auto* g : {a.get(), b.get(), c.get()}) ASSERT_TRUE(h.sm->remove_guest(*g).has_value());
  EXPECT_EQ(h.sm->stats().pages_shared, 0u);
  for (auto* g : {a.get(), b.get(), c.get()}) ASSERT_TRUE(g->destroy().has_value());
  for (NodeId n = 0; n < 4; ++n) EXPECT_EQ(h.used(n), 0u);
}

// ksm_tests -N: one identical page on each of two nodes.
TEST(Sharing, SameNodeOnlyNeverMergesAcrossNodes) {
  for (bool across : {true, false}) {
    Host h(across ? SharingPolicy::across_nodes() : SharingPolicy::same_node_only());
    auto a = h.guest("n0", 1, 0, 2);
    auto b = h.guest("n1", 2, 1, 2);
    h.fill(*a, 0, 77);
    h.fill(*b, 0, 77);
    (void)h.sm->scan(*a, 0, 1);
    (void)h.sm->scan(*b, 0, 1);
    SharingStats s = h.sm->stats();
    EXPECT_EQ(s.pages_sharing, across ? 2u : 0u) << (across ? "across" : "same node only");
    if (!across) {
      EXPECT_EQ(s.refused_by_policy, 1u);
      EXPECT_NE(a->lookup(0).mfn, b->lookup(0).mfn);
    } else {
      EXPECT_EQ(h.pa->node_of(a->lookup(0).mfn), 0u);  // the older page's node
    }
    h.check();
    ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
    ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
  }
}

TEST(Sharing, WithinDistanceFollowsTheSlit) {
  Host h(SharingPolicy::within_distance(20));  // line: 0-1 is 20, 0-2 is 30
  auto a = h.guest("n0", 1, 0, 2);
  auto b = h.guest("n1", 2, 1, 2);
  auto c = h.guest("n2", 3, 2, 2);
  for (auto* g : {a.get(), b.get(), c.get()}) h.fill(*g, 0, 42);
  (void)h.sm->scan(*a, 0, 1);
  (void)h.sm->scan(*b, 0, 1);
  (void)h.sm->scan(*c, 0, 1);
  EXPECT_EQ(a->lookup(0).mfn, b->lookup(0).mfn);
  EXPECT_NE(a->lookup(0).mfn, c->lookup(0).mfn);
  EXPECT_EQ(h.sm->stats().pages_sharing, 2u);
  h.check();
  for (auto* g : {a.get(), b.get(), c.get()}) ASSERT_TRUE(h.sm->remove_guest(*g).has_value());
}

TEST(Sharing, PolicyChangeIsBusyWhileMergedThenAllowedAfterUnmerge) {
  Host h;
  auto a = h.guest("a", 1, 0, 4);
  auto b = h.guest("b", 2, 1, 4);
  h.fill(*a, 1, 5);
  h.fill(*b, 1, 5);
  (void)h.sm->scan(*a, 0, 4);
  (void)h.sm->scan(*b, 0, 4);
  ASSERT_GT(h.sm->stats().pages_sharing, 0u);
  EXPECT_EQ(h.sm->set_policy(SharingPolicy::same_node_only()).error(), Errc::busy);
  EXPECT_EQ(h.sm->policy(), SharingPolicy::across_nodes());
  EXPECT_TRUE(h.sm->set_policy(SharingPolicy::across_nodes()).has_value());  // no change: fine
  EXPECT_EQ(h.sm->set_policy(SharingPolicy::within_distance(0)).error(), Errc::invalid_argument);
  ASSERT_TRUE(h.sm->unmerge_all().has_value());
  EXPECT_EQ(h.sm->stats().pages_sharing, 0u);
  EXPECT_TRUE(page_is(guest_page(h.mem, *a, 1), 5));
  EXPECT_TRUE(page_is(guest_page(h.mem, *b, 1), 5));
  EXPECT_EQ(h.pa->node_of(b->lookup(1).mfn), 1u);  // back home
  ASSERT_TRUE(h.sm->set_policy(SharingPolicy::same_node_only()).has_value());
  (void)h.sm->scan(*a, 0, 4);
  (void)h.sm->scan(*b, 0, 4);
  // Zero pages still merge (per-node zero frames); the cross-node pair not.
  EXPECT_NE(a->lookup(1).mfn, b->lookup(1).mfn);
  h.check();
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
  ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
}

TEST(Sharing, WriteUnsharesOntoTheWritersNodeWithContentIntact) {
  Host h;
  auto a = h.guest("a", 1, 0, 4);
  auto b = h.guest("b", 2, 0, 4);
  auto c = h.guest("c", 3, 0, 4);
  for (auto* g : {a.get(), b.get(), c.get()}) h.fill(*g, 2, 9);
  for (auto* g : {a.get(), b.get(), c.get()}) (void)h.sm->scan(*g, 2, 1);
  const Mfn shared = a->lookup(2).mfn;
  ASSERT_EQ(h.sm->stats().pages_sharing, 3u);
  // a's vCPU runs on node 3 (CPU 3): the copy lands there, not round-robin.
  ASSERT_TRUE(h.sm->write_fault_cpu(*a, 2, 3).has_value());
  P2mEntry ea = a->lookup(2);
  EXPECT_FALSE(ea.flags & P2mFlags::shared);
  EXPECT_EQ(h.pa->node_of(ea.mfn), 3u);
  EXPECT_TRUE(page_is(h.mem.at(ea.mfn), 9));
  EXPECT_EQ(b->lookup(2).mfn, shared);
  EXPECT_TRUE(h.sm->write_fault(*a, 2, 3).has_value());  // already private: nothing to do
  // The writer's node full: the copy falls back along the distance order.
  std::vector<Mfn> hog;
  while (auto x = h.pa->alloc(AllocRequest{0, 2, AllocFlags::exact_node, 77, {}})) hog.push_back(x->mfn);
  ASSERT_TRUE(guest_write(*h.sm, h.mem, *b, 2, 10, 2).has_value());
  const NodeId nb = h.pa->node_of(b->lookup(2).mfn);
  EXPECT_TRUE(nb == 1u || nb == 3u) << nb;
  EXPECT_TRUE(page_is(guest_page(h.mem, *b, 2), 10));
  EXPECT_TRUE(page_is(guest_page(h.mem, *c, 2), 9));  // c still sees the original
  // The last sharer frees the shared frame.
  ASSERT_TRUE(h.sm->unshare(*c, 2).has_value());
  EXPECT_EQ(h.pa->node_of(c->lookup(2).mfn), 0u);
  EXPECT_TRUE(page_is(guest_page(h.mem, *c, 2), 9));
  EXPECT_EQ(h.sm->stats().pages_shared, 0u);
  for (Mfn m : hog) ASSERT_TRUE(h.pa->free(m, 0, 77).has_value());
  h.check();
  for (auto* g : {a.get(), b.get(), c.get()}) ASSERT_TRUE(h.sm->remove_guest(*g).has_value());
}

TEST(Sharing, ZeroPagesMapToTheirNodesZeroFrame) {
  Host h(SharingPolicy::across_nodes());
  auto a = h.guest("a", 1, 0, 8);  // fresh memory: all zero
  auto b = h.guest("b", 2, 1, 8);
  EXPECT_EQ(*h.sm->scan(*a, 0, 8), 8u);
  EXPECT_EQ(*h.sm->scan(*b, 0, 8), 8u);
  SharingStats s = h.sm->stats();
  EXPECT_EQ(s.pages_shared, 2u);  // one zero frame per node, even across_nodes
  EXPECT_EQ(s.zero_mappings, 16u);
  EXPECT_EQ(s.bytes_hashed, 0u);
  EXPECT_EQ(h.pa->node_of(a->lookup(5).mfn), 0u);
  EXPECT_EQ(h.pa->node_of(b->lookup(5).mfn), 1u);
  ASSERT_TRUE(guest_write(*h.sm, h.mem, *a, 5, 33, 0).has_value());
  EXPECT_TRUE(page_is(guest_page(h.mem, *a, 5), 33));
  EXPECT_TRUE(page_is(guest_page(h.mem, *a, 4), 0));
  h.check();
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
  ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
}

TEST(Sharing, LargeBlocksAreSplitBeforeMerging) {
  Host h;
  auto a = h.guest("big", 1, 0, 512);  // one 2 MiB block
  ASSERT_EQ(a->lookup(0).order, 9u);
  auto b = h.guest("b", 2, 0, 4);
  for (Gfn k = 0; k < 512; ++k) h.fill(*a, k, 1000 + k);
  h.fill(*b, 0, 1000 + 300);
  (void)h.sm->scan(*a, 0, 512);
  EXPECT_EQ(*h.sm->scan(*b, 0, 1), 2u);
  EXPECT_EQ(a->lookup(300).mfn, b->lookup(0).mfn);
  EXPECT_EQ(a->lookup(0).order, 0u);
  EXPECT_TRUE(a->check_invariants().has_value());
  for (Gfn k = 0; k < 512; ++k) ASSERT_TRUE(page_is(guest_page(h.mem, *a, k), 1000 + k)) << k;
  h.check();
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
  ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
  ASSERT_TRUE(a->destroy().has_value());
  ASSERT_TRUE(b->destroy().has_value());
  for (NodeId n = 0; n < 4; ++n) EXPECT_EQ(h.used(n), 0u);
}

TEST(Sharing, PinnedAndChangedPagesAreNotMerged) {
  Host h;
  auto a = h.guest("a", 1, 0, 4);
  auto b = h.guest("b", 2, 0, 4);
  h.fill(*a, 0, 8);
  h.fill(*b, 0, 8);
  ASSERT_TRUE(a->update_flags(0, P2mFlags::pinned, 0));
  (void)h.sm->scan(*a, 0, 1);
  (void)h.sm->scan(*b, 0, 1);
  EXPECT_EQ(h.sm->stats().pages_sharing, 0u);
  // A remembered candidate that changed since is re-checked, never merged.
  h.fill(*a, 1, 12);
  h.fill(*b, 1, 12);
  (void)h.sm->scan(*a, 1, 1);
  h.fill(*a, 1, 13);
  (void)h.sm->scan(*b, 1, 1);
  EXPECT_NE(a->lookup(1).mfn, b->lookup(1).mfn);
  EXPECT_TRUE(page_is(guest_page(h.mem, *a, 1), 13));
  h.check();
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
  ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
}

// After unshare, no other guest can read the old content: the shared
// frame and the duplicates go back dirty and are scrubbed on reuse.
TEST(Sharing, OldContentNeverReachesAnotherGuest) {
  Host h(SharingPolicy::across_nodes(), line_nodes(2, 512));
  auto a = h.guest("a", 1, 0, 8);
  auto b = h.guest("b", 2, 0, 8);
  for (Gfn k = 0; k < 8; ++k) {
    h.fill(*a, k, 4242);
    h.fill(*b, k, 4242);
  }
  std::vector<Mfn> originals;
  for (Gfn k = 0; k < 8; ++k) originals.push_back(a->lookup(k).mfn), originals.push_back(b->lookup(k).mfn);
  (void)h.sm->scan(*a, 0, 8);
  (void)h.sm->scan(*b, 0, 8);
  ASSERT_EQ(h.sm->stats().pages_shared, 1u);
  const Mfn shared = a->lookup(0).mfn;
  for (Gfn k = 0; k < 8; ++k) {
    ASSERT_TRUE(guest_write(*h.sm, h.mem, *a, k, 1, 0).has_value());
    ASSERT_TRUE(guest_write(*h.sm, h.mem, *b, k, 2, 0).has_value());
  }
  ASSERT_EQ(h.sm->stats().pages_shared, 0u);
  // Another guest takes every free frame of both nodes.
  auto eve = pinned_guest(*h.pa, "eve", 66, 0, h.pa->stats(0)->free + h.pa->stats(0)->cached, false);
  ASSERT_NE(eve, nullptr);
  unsigned char secret[kFrameSize];
  fill_page(secret, 4242);
  bool got_shared = false;
  for (Gfn k = 0; k < eve->ram_pages(); ++k) {
    const Mfn m = eve->lookup(k).mfn;
    got_shared |= m == shared;
    ASSERT_FALSE(h.mem.frame_holds(m, secret, kFrameSize)) << "gfn " << k;
  }
  EXPECT_TRUE(got_shared);  // the test did reach the freed shared frame
  for (Mfn m : originals) EXPECT_FALSE(h.mem.frame_holds(m, secret, 64));
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
  ASSERT_TRUE(h.sm->remove_guest(*b).has_value());
}

TEST(Sharing, BadInputIsRefusedAndChangesNothing) {
  Host h;
  auto a = h.guest("a", 1, 0, 4);
  auto stranger = pinned_guest(*h.pa, "stranger", 5, 1, 4);
  EXPECT_EQ(h.sm->write_fault(*stranger, 0, 0).error(), Errc::invalid_argument);
  EXPECT_EQ(h.sm->write_fault(*a, 0, 77).error(), Errc::invalid_node);
  EXPECT_EQ(h.sm->write_fault_cpu(*a, 0, 999).error(), Errc::invalid_argument);
  EXPECT_EQ(h.sm->write_fault(*a, 100000, 0).error(), Errc::not_present);
  EXPECT_EQ(*h.sm->scan(*a, 1u << 30, 100), 0u);  // out of range: clamped to nothing
  EXPECT_EQ(*h.sm->scan(*a, 2, ~std::uint64_t{0}), 2u);  // no overflow; gfns 2, 3 are zero pages
  EXPECT_FALSE(h.sm->remove_guest(*stranger).has_value());
  SharingConfig bad;
  bad.owner = kNoOwner;
  EXPECT_FALSE(SharingManager::create(*h.pa, bad).has_value());
  SharingConfig no_access;  // frame_only without a FrameAccess hook
  EXPECT_EQ(SharingManager::create(*h.pa, no_access).error().code, Errc::unsupported);
  h.check();
  ASSERT_TRUE(h.sm->remove_guest(*a).has_value());
}
