// PageAllocator::alloc_bulk / free_bulk: the same placement, claim, owner
// and scrub rules as alloc/free for every frame, all or nothing (every
// error leaves the allocator as it was), whole blocks back to the heap,
// and racing frees of the same frames decided exactly once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

using test::make;
using test::req;

// Counters of every node, for "nothing changed" checks (per-CPU caches may
// be drained by a failed call, so free and cached count together).
struct Snapshot {
  std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> used_free;  // used, free+cached
  std::map<NodeId, std::uint64_t> claimed, offlined;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const PageAllocator& pa) {
  Snapshot s;
  for (const NodeInfo& n : pa.topology().nodes()) {
    const NodeStats st = pa.stats(n.id).value();
    s.used_free[n.id] = {st.used, st.free + st.cached};
    s.claimed[n.id] = st.claimed;
    s.offlined[n.id] = st.offlined;
  }
  return s;
}

std::map<NodeId, std::size_t> per_node(const PageAllocator& pa, const std::vector<Mfn>& frames) {
  std::map<NodeId, std::size_t> out;
  for (Mfn m : frames) ++out[pa.node_of(m)];
  return out;
}

TEST(heap_bulk, RoundTripMergesBack) {
  auto pa = make(test::one_node(1024));
  ASSERT_TRUE(pa);
  std::vector<Mfn> got(300);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 5), got));
  std::vector<Mfn> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());  // distinct
  for (Mfn m : got) EXPECT_EQ(pa->node_of(m), 0u);
  EXPECT_EQ(pa->stats(0).value().used, 300u);
  EXPECT_TRUE(pa->check_frames());
  // Every frame is an order-0 block of owner 5, as if alloc() had made it.
  EXPECT_EQ(pa->free(got[7], 0, 6).error(), Errc::not_owner);
  EXPECT_EQ(pa->free(got[7], 1, 5).error(), Errc::invalid_order);
  ASSERT_TRUE(pa->free(got[7], 0, 5));
  ASSERT_TRUE(pa->split(got[8], 0, 5));
  got.erase(got.begin() + 7);
  ASSERT_TRUE(pa->free_bulk(got, 5));
  EXPECT_TRUE(pa->check_frames());
  pa->drain_all();
  const NodeStats st = pa->stats(0).value();
  EXPECT_EQ(st.used, 0u);
  EXPECT_EQ(st.free, 1024u);
  EXPECT_EQ(st.largest_free_order, 10);
}

TEST(heap_bulk, WholeBlocksInAscendingRuns) {
  auto pa = make(test::one_node(1024));
  ASSERT_TRUE(pa);
  std::vector<Mfn> got(512);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), got));
  for (std::size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i], got[0] + i);
  EXPECT_EQ(got[0] % 512, 0u);
  NodeStats st = pa->stats(0).value();
  EXPECT_EQ(st.free_blocks[9], 1u);  // the other half, untouched
  EXPECT_EQ(st.largest_free_order, 9);
  // Back as one 2 MiB block, merged at once (no per-CPU cache on the way).
  ASSERT_TRUE(pa->free_bulk(got, 1));
  st = pa->stats(0).value();
  EXPECT_EQ(st.cached, 0u);
  EXPECT_EQ(st.free_blocks[10], 1u);
  EXPECT_EQ(st.dirty, 1024u);  // the freed half made the merged block dirty
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, SmallestBlocksFirst) {
  // No per-CPU caches: a small request would be served by one otherwise.
  HeapConfig hc;
  hc.pcp_high = 0;
  auto pa = make(test::one_node(1024), {}, hc);
  ASSERT_TRUE(pa);
  // Leave single free frames between used ones: the bulk takes those
  // fragments before it splits a larger block, as alloc() would.
  std::vector<Mfn> singles;
  for (int i = 0; i < 8; ++i) singles.push_back(pa->alloc(req(0, 0, AllocFlags::exact_node)).value().mfn);
  pa->drain_all();
  ASSERT_TRUE(pa->free(singles[1], 0, 1));
  ASSERT_TRUE(pa->free(singles[3], 0, 1));
  pa->drain_all();
  const NodeStats before = pa->stats(0).value();
  ASSERT_GE(before.free_blocks[0], 2u);
  std::vector<Mfn> got(2);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), got));
  const NodeStats after = pa->stats(0).value();
  EXPECT_EQ(after.free_blocks[0], before.free_blocks[0] - 2);
  for (unsigned o = 1; o <= kMaxOrder; ++o) EXPECT_EQ(after.free_blocks[o], before.free_blocks[o]) << o;
  ASSERT_TRUE(pa->free_bulk(got, 1));
  for (Mfn m : singles) {
    if (m == singles[1] || m == singles[3]) continue;
    ASSERT_TRUE(pa->free(m, 0, 1));
  }
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, BadRequestsChangeNothing) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  std::vector<Mfn> out(4, kInvalidMfn);
  const Snapshot before = snapshot(*pa);
  EXPECT_EQ(pa->alloc_bulk(req(1, 0), out).error(), Errc::invalid_order);
  EXPECT_EQ(pa->alloc_bulk(req(kMaxOrder + 1, 0), out).error(), Errc::invalid_order);
  EXPECT_EQ(pa->alloc_bulk(req(0, 7), out).error(), Errc::invalid_node);
  EXPECT_EQ(pa->alloc_bulk(req(0, kMaxNodes + 3), out).error(), Errc::invalid_node);
  EXPECT_EQ(pa->alloc_bulk(req(0, 0, 0, kNoOwner), out).error(), Errc::invalid_argument);
  EXPECT_EQ(pa->alloc_bulk(req(0, 0, 1u << 9), out).error(), Errc::invalid_argument);
  AllocRequest contradictory = req(0, 4, AllocFlags::exact_node);
  contradictory.exclude.set(4);
  EXPECT_EQ(pa->alloc_bulk(contradictory, out).error(), Errc::invalid_argument);
  // Memoryless node exactly: nothing there.
  EXPECT_EQ(pa->alloc_bulk(req(0, 9, AllocFlags::exact_node), out).error(), Errc::no_memory);
  // More than the node has, exactly: all or nothing.
  std::vector<Mfn> big(257);
  EXPECT_EQ(pa->alloc_bulk(req(0, 4, AllocFlags::exact_node), big).error(), Errc::no_memory);
  // More than every allowed node together.
  AllocRequest only4 = req(0, 4);
  only4.exclude.set(0);
  only4.exclude.set(250);
  EXPECT_EQ(pa->alloc_bulk(only4, big).error(), Errc::no_memory);
  std::vector<Mfn> all(300 + 256 + 200 + 1);
  EXPECT_EQ(pa->alloc_bulk(req(0, 0), all).error(), Errc::no_memory);
  for (Mfn m : out) EXPECT_EQ(m, kInvalidMfn);
  EXPECT_TRUE(snapshot(*pa) == before);
  // Nothing asked: nothing done, but the request is still checked.
  EXPECT_TRUE(pa->alloc_bulk(req(0, 0), std::span<Mfn>{}));
  EXPECT_EQ(pa->alloc_bulk(req(0, 7), std::span<Mfn>{}).error(), Errc::invalid_node);
  EXPECT_TRUE(pa->free_bulk(std::span<const Mfn>{}, 1));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, ExactNodeTakesAllOfIt) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  // A frame of node 4 in the calling CPU's cache is drained, not missed.
  auto one = pa->alloc(req(0, 4, AllocFlags::exact_node)).value();
  ASSERT_TRUE(pa->free(one.mfn, 0, 1));
  std::vector<Mfn> got(256);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 4, AllocFlags::exact_node), got));
  EXPECT_EQ(per_node(*pa, got), (std::map<NodeId, std::size_t>{{4, 256}}));
  EXPECT_EQ(pa->stats(4).value().free + pa->stats(4).value().cached, 0u);
  ASSERT_TRUE(pa->free_bulk(got, 1));
  pa->drain_all();
  EXPECT_EQ(pa->stats(4).value().largest_free_order, 8);
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, FallbackPreferredNodeFirstThenByDistance) {
  auto pa = make(test::sparse_nodes());
  ASSERT_TRUE(pa);
  // Node 4 (256 frames) first, then its fallback order: 0 (20), 250 (25).
  std::vector<Mfn> got(256 + 300 + 10);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 4), got));
  EXPECT_EQ(per_node(*pa, got), (std::map<NodeId, std::size_t>{{4, 256}, {0, 300}, {250, 10}}));
  for (std::size_t i = 0; i < 256; ++i) EXPECT_EQ(pa->node_of(got[i]), 4u);  // preferred first
  ASSERT_TRUE(pa->free_bulk(got, 1));
  // Excluding node 0: node 4, then 250.
  AllocRequest r = req(0, 4);
  r.exclude.set(0);
  std::vector<Mfn> ex(300);
  ASSERT_TRUE(pa->alloc_bulk(r, ex));
  EXPECT_EQ(per_node(*pa, ex), (std::map<NodeId, std::size_t>{{4, 256}, {250, 44}}));
  ASSERT_TRUE(pa->free_bulk(ex, 1));
  // A memoryless preferred node falls back like alloc().
  std::vector<Mfn> nine(3);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 9), nine));
  EXPECT_EQ(per_node(*pa, nine), (std::map<NodeId, std::size_t>{{250, 3}}));
  ASSERT_TRUE(pa->free_bulk(nine, 1));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, ClaimsProtectAndAreConsumed) {
  auto pa = make(test::two_nodes(2048));
  ASSERT_TRUE(pa);
  ASSERT_TRUE(pa->claim(2, 2000, 0));
  // Owner 1 may take only the 48 unclaimed frames of node 0.
  std::vector<Mfn> over(49), fits(48);
  const Snapshot before = snapshot(*pa);
  EXPECT_EQ(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 1), over).error(), Errc::no_memory);
  EXPECT_TRUE(snapshot(*pa) == before);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 1), fits));
  // Falling back, owner 1 gets the rest from node 1.
  std::vector<Mfn> spill(10);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, 0, 1), spill));
  EXPECT_EQ(per_node(*pa, spill), (std::map<NodeId, std::size_t>{{1, 10}}));
  // Owner 2 consumes its claim, all of it, and not a frame more.
  std::vector<Mfn> claimed(2000);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node | AllocFlags::use_claim, 2), claimed));
  EXPECT_EQ(pa->claimed_by(2), 0u);
  EXPECT_EQ(per_node(*pa, claimed), (std::map<NodeId, std::size_t>{{0, 2000}}));
  EXPECT_TRUE(pa->check_invariants());
  ASSERT_TRUE(pa->free_bulk(claimed, 2));
  ASSERT_TRUE(pa->free_bulk(fits, 1));
  ASSERT_TRUE(pa->free_bulk(spill, 1));
  EXPECT_TRUE(pa->release_owner(2));

  // A global claim spread over both nodes by a falling-back bulk request.
  ASSERT_TRUE(pa->claim(3, 3000));
  std::vector<Mfn> other(1200);
  // 4096 free, 3000 claimed: another owner gets at most 1096.
  EXPECT_EQ(pa->alloc_bulk(req(0, 0, 0, 1), other).error(), Errc::no_memory);
  std::vector<Mfn> three(3000);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::use_claim, 3), three));
  EXPECT_EQ(pa->claimed_by(3), 0u);
  EXPECT_EQ(per_node(*pa, three), (std::map<NodeId, std::size_t>{{0, 2048}, {1, 952}}));
  EXPECT_TRUE(pa->check_invariants());
  ASSERT_TRUE(pa->free_bulk(three, 3));
  EXPECT_TRUE(pa->release_owner(3));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, NodeAndGlobalClaimsTogether) {
  auto pa = make(test::two_nodes(1024));
  ASSERT_TRUE(pa);
  ASSERT_TRUE(pa->claim(4, 100, 1));
  ASSERT_TRUE(pa->claim(4, 50));
  ASSERT_TRUE(pa->claim(5, 1800));  // leaves 2048 - 1950 = 98 unclaimed
  // Owner 4: 100 from its node-1 claim, 50 global, 98 spare = 248 at most.
  std::vector<Mfn> too_many(249), most(248);
  const Snapshot before = snapshot(*pa);
  EXPECT_EQ(pa->alloc_bulk(req(0, 1, AllocFlags::use_claim, 4), too_many).error(), Errc::no_memory);
  EXPECT_TRUE(snapshot(*pa) == before);
  EXPECT_EQ(pa->claimed_by(4), 150u);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 1, AllocFlags::use_claim, 4), most));
  EXPECT_EQ(pa->claimed_by(4), 0u);
  EXPECT_EQ(pa->claimed_by(5), 1800u);
  EXPECT_TRUE(pa->check_invariants());
  ASSERT_TRUE(pa->free_bulk(most, 4));
  EXPECT_TRUE(pa->release_owner(4));
  EXPECT_TRUE(pa->release_owner(5));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, BadFreesChangeNothing) {
  auto pa = make(test::two_nodes(1024));
  ASSERT_TRUE(pa);
  // More than free_bulk's chunk of 64 (its look-ahead pass): a bad frame
  // in a later chunk must still put back every frame of the earlier ones.
  std::vector<Mfn> got(200);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 7), got));
  auto big = pa->alloc(req(2, 1, AllocFlags::exact_node, 7)).value();
  auto foreign = pa->alloc(req(0, 1, AllocFlags::exact_node, 8)).value();
  auto freed = pa->alloc(req(0, 1, AllocFlags::exact_node, 7)).value();
  auto offl = pa->alloc(req(0, 1, AllocFlags::exact_node, 7)).value();
  ASSERT_TRUE(pa->free(offl.mfn, 0, 7));
  pa->drain_all();
  ASSERT_EQ(pa->offline(offl.mfn).value(), OfflineState::offlined);
  ASSERT_TRUE(pa->free(freed.mfn, 0, 7));  // sits in a per-CPU cache: a double free
  const Snapshot before = snapshot(*pa);

  auto with = [&](Mfn bad, std::size_t at) {
    std::vector<Mfn> v = got;
    v.insert(v.begin() + static_cast<long>(at), bad);
    return v;
  };
  for (std::size_t at : {std::size_t{0}, std::size_t{30}, std::size_t{63}, std::size_t{64}, std::size_t{130},
                         got.size()}) {
    EXPECT_EQ(pa->free_bulk(with(0, at), 7).error(), Errc::invalid_frame) << at;
    EXPECT_EQ(pa->free_bulk(with(1u << 30, at), 7).error(), Errc::invalid_frame) << at;
    EXPECT_EQ(pa->free_bulk(with(big.mfn + 1, at), 7).error(), Errc::invalid_frame) << at;
    EXPECT_EQ(pa->free_bulk(with(offl.mfn, at), 7).error(), Errc::invalid_frame) << at;
    EXPECT_EQ(pa->free_bulk(with(big.mfn, at), 7).error(), Errc::invalid_order) << at;
    EXPECT_EQ(pa->free_bulk(with(foreign.mfn, at), 7).error(), Errc::not_owner) << at;
    EXPECT_EQ(pa->free_bulk(with(freed.mfn, at), 7).error(), Errc::double_free) << at;
    EXPECT_EQ(pa->free_bulk(with(got[5], at), 7).error(), Errc::double_free) << at;  // listed twice
  }
  EXPECT_EQ(pa->free_bulk(got, 8).error(), Errc::not_owner);
  EXPECT_EQ(pa->free_bulk(got, kNoOwner).error(), Errc::invalid_argument);
  EXPECT_TRUE(snapshot(*pa) == before);
  EXPECT_TRUE(pa->check_frames());
  // Still all ours, one by one too.
  ASSERT_TRUE(pa->free(got.back(), 0, 7));
  got.pop_back();
  ASSERT_TRUE(pa->free_bulk(got, 7));
  EXPECT_EQ(pa->free_bulk(got, 7).error(), Errc::double_free);
  ASSERT_TRUE(pa->free(big.mfn, 2, 7));
  ASSERT_TRUE(pa->free(foreign.mfn, 0, 8));
  EXPECT_TRUE(pa->check_frames());
}

TEST(heap_bulk, FreesFramesOfBothNodesAndSplitBlocks) {
  auto pa = make(test::two_nodes(1024));
  ASSERT_TRUE(pa);
  std::vector<Mfn> a(100), b(100), mixed;
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), a));
  ASSERT_TRUE(pa->alloc_bulk(req(0, 1, AllocFlags::exact_node), b));
  for (std::size_t i = 0; i < 100; ++i) {  // interleaved nodes, one order reversed
    mixed.push_back(a[99 - i]);
    mixed.push_back(b[i]);
  }
  auto blk = pa->alloc(req(3, 1, AllocFlags::exact_node)).value();
  ASSERT_TRUE(pa->split(blk.mfn, 3, 1));
  for (Mfn m = blk.mfn; m < blk.mfn + 8; ++m) mixed.push_back(m);
  ASSERT_TRUE(pa->free_bulk(mixed, 1));
  EXPECT_TRUE(pa->check_frames());
  pa->drain_all();
  for (NodeId n : {0u, 1u}) {
    const NodeStats st = pa->stats(n).value();
    EXPECT_EQ(st.used, 0u);
    EXPECT_EQ(st.largest_free_order, 10);
  }
}

TEST(heap_bulk, PendingOfflineFramesAreRetired) {
  auto pa = make(test::one_node(1024));
  ASSERT_TRUE(pa);
  std::vector<Mfn> got(16);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), got));
  ASSERT_EQ(pa->offline(got[3]).value(), OfflineState::pending);
  ASSERT_EQ(pa->offline(got[9]).value(), OfflineState::pending);
  EXPECT_EQ(pa->stats(0).value().pending_offline, 2u);
  ASSERT_TRUE(pa->free_bulk(got, 1));
  const NodeStats st = pa->stats(0).value();
  EXPECT_EQ(st.offlined, 2u);
  EXPECT_EQ(st.pending_offline, 0u);
  EXPECT_EQ(st.free + st.cached, 1022u);  // a small request refills a per-CPU cache
  EXPECT_EQ(st.used, 0u);
  EXPECT_TRUE(pa->check_frames());
  // Never handed out again.
  std::vector<Mfn> rest(1022);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), rest));
  for (Mfn m : rest) EXPECT_TRUE(m != got[3] && m != got[9]);
  ASSERT_TRUE(pa->free_bulk(rest, 1));
  EXPECT_TRUE(pa->check_frames());
}

// Fake machine memory behind the scrub hook: one tag per frame (0 = zero).
struct Tags {
  std::vector<std::uint64_t> tag;
  std::uint64_t scrubbed = 0;
  static void scrub(void* ctx, Mfn first, std::uint64_t count) {
    auto* t = static_cast<Tags*>(ctx);
    for (std::uint64_t i = 0; i < count; ++i) t->tag[first + i] = 0;
    t->scrubbed += count;
  }
};

TEST(heap_bulk, NeverHandsOverAnotherOwnersBytes) {
  const Topology topo = test::one_node(1024);
  Tags mem;
  mem.tag.assign(topo.node_at(0).frames[0].first_mfn + 1024, 0);
  PlatformConfig pc = test::frame_only();
  pc.hooks.ctx = &mem;
  pc.hooks.scrub = &Tags::scrub;
  auto pa = make(topo, pc);
  ASSERT_TRUE(pa);
  std::vector<Mfn> a(700);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 1), a));
  EXPECT_EQ(mem.scrubbed, 0u);  // boot memory is clean
  for (Mfn m : a) mem.tag[m] = 1;
  ASSERT_TRUE(pa->free_bulk(a, 1));
  // The same owner with no_scrub may see its own bytes: nothing scrubbed.
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node | AllocFlags::no_scrub, 1), a));
  EXPECT_EQ(mem.scrubbed, 0u);
  ASSERT_TRUE(pa->free_bulk(a, 1));
  // Another owner, even with no_scrub, never does.
  std::vector<Mfn> b(1024);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node | AllocFlags::no_scrub, 2), b));
  for (Mfn m : b) EXPECT_EQ(mem.tag[m], 0u) << m;
  EXPECT_EQ(mem.scrubbed, 1024u);  // the freed run merged into one dirty block
  // Owner 1 without no_scrub: its own dirty bytes are scrubbed too.
  for (Mfn m : b) mem.tag[m] = 2;
  ASSERT_TRUE(pa->free_bulk(b, 2));
  std::vector<Mfn> c(10);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 2), c));
  for (Mfn m : c) EXPECT_EQ(mem.tag[m], 0u) << m;
  ASSERT_TRUE(pa->free_bulk(c, 2));
  EXPECT_TRUE(pa->check_frames());
}

// A request of at most a per-CPU cache's worth (HeapConfig::pcp_high, 124
// by default) for the CPU's own node is served by that CPU's cache, and a
// free_bulk of as many goes back there, as alloc() and free() would do
// frame by frame: in the steady state no heap lock is taken.
TEST(heap_bulk, SmallRequestsGoThroughTheCpusCache) {
  test::FakeCpu cpu;
  auto pa = make(test::one_node(1024), test::frame_only(&cpu));
  ASSERT_TRUE(pa);
  std::vector<Mfn> got(64);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 5), got));
  NodeStats st = pa->stats(0).value();
  EXPECT_EQ(st.used, 64u);
  const std::uint64_t free_after_refill = st.free;
  const std::uint64_t cached = st.cached;
  EXPECT_EQ(free_after_refill + cached, 1024u - 64u);
  ASSERT_TRUE(pa->free_bulk(got, 5));
  st = pa->stats(0).value();
  EXPECT_EQ(st.used, 0u);
  EXPECT_EQ(st.cached, cached + 64u);   // into CPU 0's cache
  EXPECT_EQ(st.free, free_after_refill);  // the heap untouched
  // Served from there again, the heap untouched; every frame an order-0
  // block of the owner, as alloc() makes it.
  std::vector<Mfn> again(64);
  ASSERT_TRUE(pa->alloc_bulk(req(0, kNoNode, 0, 5), again));
  st = pa->stats(0).value();
  EXPECT_EQ(st.free, free_after_refill);
  EXPECT_EQ(st.cached, cached);
  std::vector<Mfn> a = got, b = again;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  EXPECT_EQ(pa->free(again[3], 0, 6).error(), Errc::not_owner);
  EXPECT_EQ(pa->free(again[3], 1, 5).error(), Errc::invalid_order);
  // Another CPU's cache is not this one's: CPU 1 refills its own.
  cpu.cpu = 1;
  std::vector<Mfn> other(10);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 5), other));
  for (Mfn m : other) EXPECT_EQ(std::count(again.begin(), again.end(), m), 0) << m;
  ASSERT_TRUE(pa->free_bulk(other, 5));
  // A double free of frames sitting in a cache is refused, nothing changes.
  ASSERT_TRUE(pa->free_bulk(again, 5));
  const Snapshot before = snapshot(*pa);
  EXPECT_EQ(pa->free_bulk(again, 5).error(), Errc::double_free);
  EXPECT_EQ(pa->free(again[0], 0, 5).error(), Errc::double_free);
  EXPECT_TRUE(snapshot(*pa) == before);
  EXPECT_TRUE(pa->check_frames());
  pa->drain_all();
  st = pa->stats(0).value();
  EXPECT_EQ(st.free, 1024u);
  EXPECT_EQ(st.largest_free_order, 10);
}

// Requests the cache route must not serve: another node, the own node
// excluded, use_claim, more than a cache holds. Each takes from the heaps
// as before (frames in ascending runs).
TEST(heap_bulk, OtherRequestsTakeTheHeaps) {
  test::FakeCpu cpu;
  auto pa = make(test::two_nodes(1024), test::frame_only(&cpu));
  ASSERT_TRUE(pa);
  NodeMask not0;
  not0.set(0);
  AllocRequest excl = req(0, 0, 0, 1);
  excl.exclude = not0;
  ASSERT_TRUE(pa->claim(2, 64, 0));
  for (const AllocRequest& r : {req(0, 1, AllocFlags::exact_node), excl,
                                req(0, 0, AllocFlags::exact_node | AllocFlags::use_claim, 2)}) {
    std::vector<Mfn> got(64);
    ASSERT_TRUE(pa->alloc_bulk(r, got));
    for (std::size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i], got[0] + i);
    for (NodeId n : {0u, 1u}) EXPECT_EQ(pa->stats(n).value().cached, 0u) << n;
    ASSERT_TRUE(pa->free_bulk(got, r.owner));
    pa->drain_all();
  }
  std::vector<Mfn> big(125);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), big));
  for (std::size_t i = 1; i < big.size(); ++i) EXPECT_EQ(big[i], big[0] + i);
  EXPECT_EQ(pa->stats(0).value().cached, 0u);
  ASSERT_TRUE(pa->free_bulk(big, 1));  // more than a cache holds: to the heap
  EXPECT_EQ(pa->stats(0).value().cached, 0u);
  EXPECT_TRUE(pa->check_frames());
}

// A reclaim hook over a hoard of owner 9's frames: gives back what it is
// asked for (while it has some) with one free_bulk, or with free() frame by
// frame (`one_by_one`).
struct Hoard {
  PageAllocator* pa = nullptr;
  std::vector<Mfn> frames;
  bool one_by_one = false;
  std::uint64_t asked = 0;
  ReclaimHook hook() {
    ReclaimHook h;
    h.ctx = this;
    h.fn = &give;
    return h;
  }
  static std::uint64_t give(void* p, NodeId, std::uint64_t pages) {
    auto* h = static_cast<Hoard*>(p);
    h->asked += pages;
    const std::uint64_t n = std::min<std::uint64_t>(pages, h->frames.size());
    if (h->one_by_one) {
      std::uint64_t k = 0;
      for (; k < n && h->pa->free(h->frames.back(), 0, 9); ++k) h->frames.pop_back();
      return k;
    }
    std::span<const Mfn> back(h->frames.data() + h->frames.size() - n, n);
    if (!h->pa->free_bulk(back, 9)) return 0;
    h->frames.resize(h->frames.size() - n);
    return n;
  }
};

TEST(heap_bulk, ReclaimHookAskedBeforeNoMemory) {
  auto pa = make(test::one_node(256));
  ASSERT_TRUE(pa);
  Hoard hoard;
  hoard.pa = pa.get();
  hoard.frames.resize(200);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 9), hoard.frames));
  pa->set_reclaim_hook(hoard.hook());
  std::vector<Mfn> want(100);  // 56 free, 44 must be reclaimed
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 1), want));
  EXPECT_GE(hoard.asked, 44u);
  EXPECT_EQ(hoard.frames.size(), 200u - hoard.asked);
  pa->set_reclaim_hook({});
  ASSERT_TRUE(pa->free_bulk(want, 1));
  ASSERT_TRUE(pa->free_bulk(hoard.frames, 9));
  EXPECT_TRUE(pa->check_frames());
}

// free_bulk racing free() of the same frames (a double free across
// threads): every frame is freed exactly once, whatever the interleaving.
TEST(heap_bulk, RacingFreesDecidedOnce) {
  auto pa = make(test::one_node(4096));
  ASSERT_TRUE(pa);
  for (int round = 0; round < 50; ++round) {
    std::vector<Mfn> got(256);
    ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node), got));
    std::atomic<bool> go{false};
    std::atomic<std::uint64_t> single_ok{0};
    bool bulk_ok = false;
    std::thread bulk([&] {
      while (!go.load()) {
      }
      bulk_ok = pa->free_bulk(got, 1).has_value();
    });
    std::thread single([&] {
      while (!go.load()) {
      }
      for (std::size_t i = got.size(); i-- > 0;)
        if (pa->free(got[i], 0, 1)) ++single_ok;
    });
    go = true;
    bulk.join();
    single.join();
    if (bulk_ok) {
      EXPECT_EQ(single_ok.load(), 0u);
    }
    // What neither freed (bulk refused and put back after single looked)
    // is still ours: free it now, exactly once.
    std::uint64_t later = 0;
    if (!bulk_ok)
      for (Mfn m : got) later += pa->free(m, 0, 1).has_value();
    EXPECT_EQ((bulk_ok ? got.size() : 0) + single_ok.load() + later, got.size());
    EXPECT_EQ(pa->stats(0).value().used, 0u);
    ASSERT_TRUE(pa->check_frames());
  }
}

// Bulk and single allocations and frees from several threads on two
// nodes: no frame ever has two holders, nothing leaks.
TEST(heap_bulk, ThreadsMixBulkAndSingle) {
  const Topology topo = test::two_nodes(4096);
  HeapConfig hc;
  hc.pcp_batch = 8;
  hc.pcp_high = 32;
  auto pa = make(topo, {}, hc);
  ASSERT_TRUE(pa);
  Mfn end = 0;
  for (const NodeInfo& n : topo.nodes()) end = std::max(end, n.frames.back().first_mfn + n.frames.back().count);
  std::vector<std::atomic<std::uint32_t>> holder(end);
  std::atomic<int> conflicts{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      const OwnerId me = static_cast<OwnerId>(t + 1);
      std::uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
      };
      std::vector<Mfn> mine;
      for (int i = 0; i < 3000; ++i) {
        const bool bulk = next() % 2;
        if (mine.size() < 600 && next() % 3 != 0) {
          const std::size_t n = bulk ? 1 + next() % 64 : 1;
          AllocRequest r = req(0, next() % 3 == 0 ? kNoNode : next() % 2,
                               next() % 2 ? AllocFlags::exact_node : 0, me);
          std::vector<Mfn> got(n);
          if (bulk) {
            if (!pa->alloc_bulk(r, got)) continue;
          } else {
            auto a = pa->alloc(r);
            if (!a) continue;
            got[0] = a->mfn;
          }
          for (Mfn m : got) {
            std::uint32_t expect = 0;
            if (!holder[m].compare_exchange_strong(expect, me)) ++conflicts;
            mine.push_back(m);
          }
        } else if (!mine.empty()) {
          const std::size_t n = std::min<std::size_t>(mine.size(), bulk ? 1 + next() % 64 : 1);
          std::vector<Mfn> give(mine.end() - static_cast<long>(n), mine.end());
          mine.resize(mine.size() - n);
          for (Mfn m : give) holder[m].store(0);
          if (bulk) {
            if (!pa->free_bulk(give, me)) ++errors;
          } else if (!pa->free(give[0], 0, me)) {
            ++errors;
          }
        }
      }
      for (Mfn m : mine) holder[m].store(0);
      if (!pa->free_bulk(mine, me)) ++errors;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(pa->check_frames());
  pa->drain_all();
  for (NodeId n : {0u, 1u}) {
    const NodeStats st = pa->stats(n).value();
    EXPECT_EQ(st.free, 4096u);
    EXPECT_EQ(st.largest_free_order, 12);
  }
}

// A reclaim hook that gives frames back with free(), one by one: they
// land in per-CPU caches, where a heap-wide bulk request must still find
// them (they are drained before the last try).
TEST(heap_bulk, FramesTheHookFreesIntoCachesAreFound) {
  auto pa = make(test::one_node(512));
  ASSERT_TRUE(pa);
  Hoard hoard;
  hoard.pa = pa.get();
  hoard.one_by_one = true;
  hoard.frames.resize(300);
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 9), hoard.frames));
  pa->set_reclaim_hook(hoard.hook());
  std::vector<Mfn> want(260);  // 212 free, 48 must be reclaimed
  ASSERT_TRUE(pa->alloc_bulk(req(0, 0, AllocFlags::exact_node, 1), want));
  EXPECT_GE(hoard.asked, 48u);
  pa->set_reclaim_hook({});
  ASSERT_TRUE(pa->free_bulk(want, 1));
  ASSERT_TRUE(pa->free_bulk(hoard.frames, 9));
  EXPECT_TRUE(pa->check_frames());
}

}  // namespace
}  // namespace numaheap
