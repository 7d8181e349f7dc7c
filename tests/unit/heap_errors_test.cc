// PageAllocator: every error path leaves the allocator unchanged, plus the
// basic behaviours (fallback, exact node, exclusion, claims, offlining).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

using test::make;
using test::req;

TEST(heap_basics, AllocFreeRoundTrip) {
  auto pa = make(test::one_node());
  ASSERT_TRUE(pa);
  auto st0 = pa->stats(0).value();
  EXPECT_EQ(st0.managed, 1024u);
  EXPECT_EQ(st0.free, 1024u);
  EXPECT_EQ(st0.largest_free_order, 10);
  for (unsigned order : {0u, 1u, 5u, 9u, 10u}) {
    auto a = pa->alloc(req(order, 0));
    ASSERT_TRUE(a) << order;
    EXPECT_EQ(a->node, 0u);
    EXPECT_EQ(a->mfn & (frames_of_order(order) - 1), 0u);
    EXPECT_TRUE(pa->check_frames());
    ASSERT_TRUE(pa->free(a->mfn, order, 1));
    EXPECT_TRUE(pa->check_frames());
  }
  pa->drain_all();
  auto st = pa->stats(0).value();
  EXPECT_EQ(st.free, 1024u);
  EXPECT_EQ(st.largest_free_order, 10);  // everything merged back
  EXPECT_EQ(st.used, 0u);
}

TEST(heap_errors, BadRequests) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  EXPECT_EQ(pa->alloc(req(kMaxOrder + 1, 0)).error(), Errc::invalid_order);
  EXPECT_EQ(pa->alloc(req(0, 7)).error(), Errc::invalid_node);
  EXPECT_EQ(pa->alloc(req(0, kMaxNodes + 5)).error(), Errc::invalid_node);
  EXPECT_EQ(pa->alloc(req(0, 0, 0, kNoOwner)).error(), Errc::invalid_argument);
  EXPECT_EQ(pa->alloc(req(0, 0, 1u << 10)).error(), Errc::invalid_argument);
  // Memoryless node: exact fails, preferred falls back to the nearest (250).
  EXPECT_EQ(pa->alloc(req(0, 9, AllocFlags::exact_node)).error(), Errc::no_memory);
  auto a = pa->alloc(req(0, 9));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->node, 250u);
  // Larger than any node.
  EXPECT_EQ(pa->alloc(req(9, 0)).error(), Errc::no_memory);
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_errors, BadFrees) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  auto a = pa->alloc(req(2, 4, AllocFlags::exact_node, 7)).value();
  EXPECT_EQ(a.node, 4u);
  const auto before = pa->stats(4).value();
  EXPECT_EQ(pa->free(0, 0, 7).error(), Errc::invalid_frame);          // mfn 0
  EXPECT_EQ(pa->free(200, 0, 7).error(), Errc::invalid_frame);        // hole
  EXPECT_EQ(pa->free(1u << 30, 0, 7).error(), Errc::invalid_frame);   // beyond
  EXPECT_EQ(pa->free(a.mfn + 1, 0, 7).error(), Errc::invalid_frame);  // not a head
  EXPECT_EQ(pa->free(a.mfn, 1, 7).error(), Errc::invalid_order);
  EXPECT_EQ(pa->free(a.mfn, kMaxOrder + 1, 7).error(), Errc::invalid_order);
  EXPECT_EQ(pa->free(a.mfn, 2, 8).error(), Errc::not_owner);
  EXPECT_EQ(pa->free(a.mfn, 2, kNoOwner).error(), Errc::invalid_argument);
  const auto after = pa->stats(4).value();
  EXPECT_EQ(before.used, after.used);
  EXPECT_EQ(before.free, after.free);
  ASSERT_TRUE(pa->free(a.mfn, 2, 7));
  EXPECT_EQ(pa->free(a.mfn, 2, 7).error(), Errc::double_free);
  // Order-0 goes through a per-CPU cache: double free still caught.
  auto b = pa->alloc(req(0, 4, AllocFlags::exact_node, 7)).value();
  ASSERT_TRUE(pa->free(b.mfn, 0, 7));
  EXPECT_EQ(pa->free(b.mfn, 0, 7).error(), Errc::double_free);
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_placement, ExactNodeAndExclude) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  // Exhaust node 4 exactly: 256 frames.
  std::vector<Mfn> got;
  for (;;) {
    auto a = pa->alloc(req(0, 4, AllocFlags::exact_node));
    if (!a) {
      EXPECT_EQ(a.error(), Errc::no_memory);
      break;
    }
    EXPECT_EQ(pa->node_of(a->mfn), 4u);
    got.push_back(a->mfn);
  }
  EXPECT_EQ(got.size(), 256u);
  // Preferring node 4 now falls back; excluding 0 and 250 leaves nothing.
  AllocRequest r = req(0, 4);
  auto fb = pa->alloc(r);
  ASSERT_TRUE(fb);
  EXPECT_NE(fb->node, 4u);
  r.exclude.set(0);
  r.exclude.set(250);
  EXPECT_EQ(pa->alloc(r).error(), Errc::no_memory);
  r.exclude.reset(250);
  auto ex = pa->alloc(r);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->node, 250u);
  // Exact node that is excluded: contradictory.
  AllocRequest bad = req(0, 0, AllocFlags::exact_node);
  bad.exclude.set(0);
  EXPECT_EQ(pa->alloc(bad).error(), Errc::invalid_argument);
  for (Mfn m : got) ASSERT_TRUE(pa->free(m, 0, 1));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_placement, FallbackFollowsDistance) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  // From node 9 (memoryless): 250 at 15, then 0 / 4 at 30.
  const auto order = pa->topology().fallback_order(9);
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], 250u);
}

TEST(heap_claims, Errors) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  EXPECT_EQ(pa->claim(1, 10, 7).error(), Errc::invalid_node);
  EXPECT_EQ(pa->claim(kNoOwner, 10).error(), Errc::invalid_argument);
  EXPECT_EQ(pa->claim(1, 257, 4).error(), Errc::claim_exceeded);
  EXPECT_EQ(pa->claim(1, 300 + 256 + 200 + 1).error(), Errc::claim_exceeded);
  EXPECT_EQ(pa->claimed_by(1), 0u);
  ASSERT_TRUE(pa->claim(1, 200, 4));
  EXPECT_EQ(pa->claimed_by(1), 200u);
  // Another owner cannot take node 4's claimed frames.
  std::vector<Mfn> other;
  for (;;) {
    auto a = pa->alloc(req(0, 4, AllocFlags::exact_node, 2));
    if (!a) break;
    other.push_back(a->mfn);
  }
  EXPECT_EQ(other.size(), 56u);
  EXPECT_EQ(pa->claim(3, 1, 4).error(), Errc::claim_exceeded);
  // Owner 1 consumes its claim.
  auto a = pa->alloc(req(3, 4, AllocFlags::exact_node | AllocFlags::use_claim, 1));
  ASSERT_TRUE(a);
  EXPECT_EQ(pa->claimed_by(1), 192u);
  EXPECT_TRUE(pa->check_invariants());
  ASSERT_TRUE(pa->release_owner(1));
  EXPECT_EQ(pa->claimed_by(1), 0u);
  EXPECT_TRUE(pa->check_invariants());
  for (Mfn m : other) ASSERT_TRUE(pa->free(m, 0, 2));
  ASSERT_TRUE(pa->free(a->mfn, 3, 1));
  EXPECT_TRUE(pa->check_frames());
}

// Per-CPU cache entries hold a frame number in 40 bits: frames up to
// 2^40 - 1 are managed (and the highest one goes through a cache and back
// whole); a range reaching 2^40 is refused with a clear error.
TEST(heap_basics, FramesUpTo2To40) {
  constexpr Mfn kLimit = Mfn{1} << 40;
  const auto topo_at = [](Mfn first) {
    auto t = TopologyBuilder("test:high").add_node(0, {0, 1}, 64 << kFrameShift).set_frames(0, {{first, 64}}).build();
    EXPECT_TRUE(t.has_value());
    return std::move(t).value();
  };
  auto refused = PageAllocator::create(topo_at(kLimit - 32), {}, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::invalid_argument);
  EXPECT_NE(refused.error().message.view().find("2^40"), std::string_view::npos) << refused.error().message.view();

  auto pa = make(topo_at(kLimit - 64));
  ASSERT_TRUE(pa);
  std::vector<Mfn> got;
  while (auto a = pa->alloc(req(0, 0))) got.push_back(a->mfn);
  ASSERT_EQ(got.size(), 64u);
  EXPECT_NE(std::find(got.begin(), got.end(), kLimit - 1), got.end());
  for (Mfn m : got) ASSERT_TRUE(pa->free(m, 0, 1)) << m;
  EXPECT_TRUE(pa->check_invariants());
  for (Mfn& m : got) m = pa->alloc(req(0, 0)).value().mfn;  // popped from the caches
  EXPECT_NE(std::find(got.begin(), got.end(), kLimit - 1), got.end());
  for (Mfn m : got) ASSERT_TRUE(pa->free(m, 0, 1)) << m;
  EXPECT_EQ(pa->free(kLimit - 1, 0, 1).error(), Errc::double_free);
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_claims, TableFull) {
  HeapConfig hc;
  hc.max_claims = 2;
  auto pa = make(test::one_node(), {}, hc);
  ASSERT_TRUE(pa);
  ASSERT_TRUE(pa->claim(1, 1));
  ASSERT_TRUE(pa->claim(2, 1));
  EXPECT_EQ(pa->claim(3, 1).error(), Errc::busy);
  ASSERT_TRUE(pa->claim(1, 1));  // same record grows
  EXPECT_EQ(pa->claimed_by(1), 2u);
  EXPECT_TRUE(pa->check_invariants());
}

TEST(heap_offline, FreeAndPending) {
  auto pa = make(test::one_node());
  ASSERT_TRUE(pa);
  EXPECT_EQ(pa->offline(5).error(), Errc::invalid_frame);
  const Mfn base = pa->topology().node_at(0).frames[0].first_mfn;
  EXPECT_EQ(pa->offline(base + 77).value(), OfflineState::offlined);
  EXPECT_EQ(pa->offline(base + 77).value(), OfflineState::offlined);  // idempotent
  auto st = pa->stats(0).value();
  EXPECT_EQ(st.offlined, 1u);
  EXPECT_EQ(st.free, 1023u);
  EXPECT_TRUE(pa->check_frames());
  // Free lists stay maximal: the split left blocks of orders 0..9.
  EXPECT_EQ(st.largest_free_order, 9);
  auto a = pa->alloc(req(9, 0)).value();
  EXPECT_EQ(pa->offline(a.mfn + 3).value(), OfflineState::pending);
  EXPECT_EQ(pa->offline(a.mfn + 3).value(), OfflineState::pending);
  EXPECT_EQ(pa->stats(0).value().pending_offline, 1u);
  EXPECT_TRUE(pa->check_frames());
  ASSERT_TRUE(pa->free(a.mfn, 9, 1));
  st = pa->stats(0).value();
  EXPECT_EQ(st.offlined, 2u);
  EXPECT_EQ(st.pending_offline, 0u);
  EXPECT_EQ(st.free, 1022u);
  EXPECT_TRUE(pa->check_frames());
  // Offline frames are never handed out.
  std::vector<Mfn> all;
  for (;;) {
    auto b = pa->alloc(req(0, 0));
    if (!b) break;
    EXPECT_NE(b->mfn, base + 77);
    EXPECT_NE(b->mfn, a.mfn + 3);
    all.push_back(b->mfn);
  }
  EXPECT_EQ(all.size(), 1022u);
  EXPECT_EQ(pa->free(base + 77, 0, 1).error(), Errc::invalid_frame);
}

TEST(heap_offline, CachedFrame) {
  auto pa = make(test::one_node());
  ASSERT_TRUE(pa);
  auto a = pa->alloc(req(0, 0)).value();
  ASSERT_TRUE(pa->free(a.mfn, 0, 1));  // now in a per-CPU cache
  EXPECT_EQ(pa->offline(a.mfn).value(), OfflineState::offlined);
  EXPECT_TRUE(pa->check_frames());
  // Pending on an order-0 frame, then freed: retired, not cached.
  auto b = pa->alloc(req(0, 0)).value();
  EXPECT_EQ(pa->offline(b.mfn).value(), OfflineState::pending);
  ASSERT_TRUE(pa->free(b.mfn, 0, 1));
  EXPECT_EQ(pa->stats(0).value().offlined, 2u);
  EXPECT_TRUE(pa->check_frames());
}

// Orders 1..4 have per-CPU caches too (PerCpuCaches): a freed block waits
// there (counted in stats().cached, still checked by check_frames), a drain
// returns it to the buddy, each cache stays within its bound, and
// pcp_high = 0 turns them off. Both cache paths (locked and rseq).
TEST(heap_caches, MidOrdersCachedBoundedAndDrained) {
  for (const bool rseq : {false, true}) {
    SCOPED_TRACE(rseq ? "rseq" : "locked");
    test::FakeCpu cpu;
    HeapConfig hc;
    hc.pcp_batch = 8;
    hc.pcp_high = 32;  // order k holds at most 32 >> (k + 1) blocks
    hc.use_rseq = rseq;
    auto pa = rseq ? make(test::one_node(4096), {}, hc) : make(test::one_node(4096), test::frame_only(&cpu), hc);
    ASSERT_TRUE(pa);
    const std::uint64_t managed = pa->stats(0).value().managed;
    for (unsigned order = 1; order <= 4; ++order) {
      SCOPED_TRACE(order);
      std::vector<Mfn> held;
      for (int i = 0; i < 24; ++i) held.push_back(pa->alloc(req(order)).value().mfn);
      for (Mfn m : held) ASSERT_TRUE(pa->free(m, order, 1));
      NodeStats st = pa->stats(0).value();
      // Per CPU: with rseq each free goes to the cache of the CPU it runs on.
      const std::uint64_t cpus = rseq ? std::max(1u, std::thread::hardware_concurrency()) : 1;
      const std::uint64_t bound = cpus * (std::uint64_t{32u >> (order + 1)} << order);
      EXPECT_GT(st.cached, 0u);
      EXPECT_LE(st.cached, bound) << "a cache outgrew its bound";
      EXPECT_EQ(st.used, 0u);
      EXPECT_EQ(st.free + st.cached, managed);
      EXPECT_TRUE(pa->check_frames());
      // A cached block is still free only once: a second free is refused.
      EXPECT_EQ(pa->free(held.back(), order, 1).error(), Errc::double_free);
      pa->drain_all();
      st = pa->stats(0).value();
      EXPECT_EQ(st.cached, 0u);
      EXPECT_EQ(st.free, managed);
      EXPECT_TRUE(pa->check_frames());
    }
  }
  HeapConfig off;
  off.pcp_high = 0;
  auto pa = make(test::one_node(1024), {}, off);
  ASSERT_TRUE(pa);
  const Mfn m = pa->alloc(req(2)).value().mfn;
  ASSERT_TRUE(pa->free(m, 2, 1));
  EXPECT_EQ(pa->stats(0).value().cached, 0u);
}

TEST(heap_scrub, BackgroundScrubCleans) {
  auto pa = make(test::one_node());
  ASSERT_TRUE(pa);
  // Order 5: not a per-CPU cached order, so the freed block goes straight
  // back to the buddy lists, dirty.
  auto a = pa->alloc(req(5, 0)).value();
  ASSERT_TRUE(pa->free(a.mfn, 5, 1));
  EXPECT_GT(pa->stats(0).value().dirty, 0u);
  EXPECT_EQ(pa->scrub_some(0, 0), 0u);
  EXPECT_EQ(pa->scrub_some(77, 100), 0u);  // unknown node
  std::uint64_t total = 0;
  while (std::uint64_t n = pa->scrub_some(0, 4)) total += n;
  EXPECT_GT(total, 0u);
  EXPECT_EQ(pa->stats(0).value().dirty, 0u);
  EXPECT_TRUE(pa->check_frames());
  EXPECT_EQ(pa->stats(0).value().largest_free_order, 10);
}

TEST(heap_create, HostMemoryOnMissingNodeFails) {
  auto t = TopologyBuilder("test:missing").add_node(37, {0}, 4 << 20).build().value();
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  auto r = PageAllocator::create(t, pc);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("mbind"), std::string::npos) << r.error().message;
}

TEST(heap_create, MetadataBudget) {
  auto pa = make(test::one_node(1 << 16));
  ASSERT_TRUE(pa);
  EXPECT_LE(pa->metadata_bytes_per_frame(), 24.01);
}

}  // namespace
}  // namespace numaheap

namespace numaheap {
namespace {

TEST(heap_split, SplitThenFreeSingly) {
  auto pa = test::make(test::one_node());
  ASSERT_TRUE(pa);
  auto a = pa->alloc(test::req(3, 0, 0, 5)).value();
  EXPECT_EQ(pa->split(a.mfn, 2, 5).error(), Errc::invalid_order);
  EXPECT_EQ(pa->split(a.mfn, 3, 6).error(), Errc::not_owner);
  EXPECT_EQ(pa->split(a.mfn + 1, 0, 5).error(), Errc::invalid_frame);
  EXPECT_EQ(pa->offline(a.mfn + 2).value(), OfflineState::pending);
  ASSERT_TRUE(pa->split(a.mfn, 3, 5));
  EXPECT_TRUE(pa->check_frames());
  for (Mfn m = a.mfn; m < a.mfn + 8; ++m) ASSERT_TRUE(pa->free(m, 0, 5)) << m;
  pa->drain_all();
  auto st = pa->stats(0).value();
  EXPECT_EQ(st.offlined, 1u);
  EXPECT_EQ(st.used, 0u);
  EXPECT_TRUE(pa->check_frames());
}

}  // namespace
}  // namespace numaheap

namespace numaheap {
namespace {

// 1 TiB, 8 nodes, frame-only: start-up writes block heads only.
TEST(heap_create, OneTebibyteInitUnderOneSecond) {
  TopologyBuilder b("test:1tib");
  for (NodeId n = 0; n < 8; ++n) b.add_node(n, {n}, std::uint64_t{128} << 30);
  const Topology topo = b.build().value();
  const auto t0 = std::chrono::steady_clock::now();
  auto pa = PageAllocator::create(topo);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(pa.has_value());
  EXPECT_LT(took, std::chrono::seconds(1));
  EXPECT_LE((*pa)->metadata_bytes_per_frame(), 24.001);  // 24-byte descriptors + range table
  auto st = (*pa)->stats(7).value();
  EXPECT_EQ(st.free, std::uint64_t{128} << 18);
  EXPECT_EQ(st.free_blocks[kMaxOrder], 128u);
  EXPECT_TRUE((*pa)->check_invariants());
  // Allocate a little from the middle of it and give it back.
  auto a = (*pa)->alloc(test::req(0, 5, AllocFlags::exact_node));
  ASSERT_TRUE(a);
  ASSERT_TRUE((*pa)->free(a->mfn, 0, 1));
}

}  // namespace
}  // namespace numaheap
