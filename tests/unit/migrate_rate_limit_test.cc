// The migrator's rate limit and its move statistics (audit s16, F3 and F8).
//
// Rate limit: one token bucket per destination node, one second of the
// (effective) rate deep. Over time it admits that rate whatever the size of
// what moves: an item larger than the whole bucket (a 2 MiB block below
// 2 MB/s, a 4 KiB page below 4 KB/s) goes when the bucket is full and
// leaves it in debt -- in every path that asks it (policy batches, rehome,
// coalescing) -- and the bytes moved over T seconds never exceed
// rate x T + one second's burst + one item. refund() gives back exactly
// what admit() took and was not used.
//
// Stats: blocks_split counts a block once however many of its pages one
// flush (or one chunk across a flush) moves; pages_followed and pages_quick
// never count more frames than the mover moved.
//
// Time is simulated (step_at, or a clock hook for step()): no sleeps.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "migrate/migrator_impl.h"
#include "migrate_rig.h"
#include "unit/forwarding_mover.h"

namespace numaheap {
// Tests only: the limiter's bucket of a node (one MigratorTestPeer per binary).
struct MigratorTestPeer {
  static double tokens(Migrator& m, std::size_t node) {
    SpinGuard g(m.impl_->lock);
    return m.impl_->tokens[node];
  }
};
}  // namespace numaheap

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr CpuId kCpuNode0 = 0, kCpuNode1 = 2, kCpuNode2 = 4;
constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr double kMiB = 1048576.0;
constexpr double kBlockBytes = 2 * kMiB;  // the largest item in these tests: one 2 MiB block

MigratorConfig quiet(double rate) {
  MigratorConfig c;
  c.rate_limit_mb_s = rate;
  c.watermark_fraction = 0;
  c.decay_steps = 1000;  // no decay unless a test wants it
  return c;
}

struct Rig : MigrateRig {
  explicit Rig(const MigratorConfig& cfg, std::uint64_t mb = 4, std::uint64_t frames = 4096, unsigned nodes = 2)
      : MigrateRig(cfg, false, mb, frames, nodes) {}
  void touch(Gfn gfn, CpuId cpu, int times = 1) {
    for (int i = 0; i < times; ++i) m->record_access(id, gfn, cpu);
  }
  RehomeState state() const { return m->rehome_progress(id)->state; }
  std::uint64_t pages_on(NodeId n) const {
    std::uint64_t c = 0;
    for (Gfn g = 0; g < gm->ram_pages(); ++g) c += node(g) == n;
    return c;
  }
  double bytes_moved() const { return static_cast<double>(m->stats().bytes_moved); }
};

// The long-run guarantee at time t (s) of a bucket that started full.
double rate_bound(double rate_mb_s, double t, double item = kBlockBytes) {
  return rate_mb_s * kMiB * t + rate_mb_s * kMiB + item;
}

double spare_answer = 0;
double spare_hook(void*, NodeId) { return spare_answer; }

std::uint64_t fake_now = 0;
std::uint64_t fake_clock(void*) { return fake_now; }

}  // namespace

// ---- F3: items larger than the bucket ----

// 1e-3 MB/s (1048 bytes a second, accepted by create()): a bucket smaller
// than one 4 KiB page, let alone a 2 MiB block. Each block goes when the
// bucket is full; the rehome finishes. It stayed `running` for ever.
TEST(MigrateRateLimit, RehomeAtAThousandthOfAMegabyteASecondFinishes) {
  Rig r(quiet(1e-3));
  r.add(*r.mover, false);
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  int steps = 0;
  for (std::uint64_t s = 1; s <= 16 && r.state() == RehomeState::running; ++s, ++steps) {
    (void)r.m->step_at(s * 3600 * kSecond);
    ASSERT_LE(r.bytes_moved(), rate_bound(1e-3, 3600.0 * static_cast<double>(s))) << s;
  }
  EXPECT_EQ(r.state(), RehomeState::done) << "after " << steps << " steps an hour apart";
  EXPECT_EQ(r.pages_on(1), r.gm->ram_pages());
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// 1 MB/s: a hot 2 MiB block (sampled from node 1 every step) and a 4 KiB
// page that also wants node 1. The block goes when the bucket is full (one
// every 2 s at most), the page once the debt is paid. Before: the block took
// every token each step without moving, and nothing reached node 1.
TEST(MigrateRateLimit, HotBlockAndAPageBothReachANodeBelowTwoMegabytesASecond) {
  Rig r(quiet(1));
  r.add(*r.mover);
  ASSERT_TRUE(r.gm->split_to_pages(600).has_value());
  ASSERT_EQ(r.gm->lookup(0).order, 9);
  for (std::uint64_t s = 0; s < 10; ++s) {
    for (Gfn g = 0; g < 4; ++g) r.touch(g, kCpuNode1);
    r.touch(600, kCpuNode1);
    (void)r.m->step_at(s * kSecond);
    ASSERT_LE(r.bytes_moved(), rate_bound(1, static_cast<double>(s))) << s;
  }
  EXPECT_EQ(r.node(600), 1u);
  for (Gfn g = 0; g < 512; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(r.gm->lookup(0).order, 9);  // moved whole
  EXPECT_EQ(r.m->stats().blocks_moved_whole, 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// rate_limit_mb_s = 0 with a spare-bandwidth hook: the effective rate
// (share 0.5 of 1 MB/s spare) decides, including for blocks larger than its
// bucket. Before, the "bucket full" special case looked at the configured
// rate (0: off) and the rehome never ended.
TEST(MigrateRateLimit, RehomeOnSpareBandwidthAloneFinishes) {
  MigratorConfig c = quiet(0);
  c.spare_bandwidth_mb_s = spare_hook;
  c.spare_bandwidth_share = 0.5;
  spare_answer = 1.0;
  Rig r(c);
  r.add(*r.mover, false);
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  for (std::uint64_t s = 1; s <= 16 && r.state() == RehomeState::running; ++s) {
    (void)r.m->step_at(s * kSecond);
    // The bucket starts empty here (configured rate 0): no burst.
    ASSERT_LE(r.bytes_moved(), 0.5 * kMiB * static_cast<double>(s) + kBlockBytes) << s;
  }
  EXPECT_EQ(r.state(), RehomeState::done);
  EXPECT_EQ(r.pages_on(1), r.gm->ram_pages());
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// Coalescing takes a whole 2 MiB block of tokens: below 2 MB/s it goes when
// the bucket is full. Before, it was refused at every step.
TEST(MigrateRateLimit, CoalesceGoesBelowTwoMegabytesASecond) {
  Rig r(quiet(1));
  r.add(*r.mover);
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  r.touch(10, kCpuNode0, 2);  // settled on node 0, where all its pages are
  for (std::uint64_t s = 0; s < 4 && r.m->stats().blocks_coalesced == 0; ++s) (void)r.m->step_at(s * kSecond);
  EXPECT_EQ(r.m->stats().blocks_coalesced, 1u);
  EXPECT_EQ(r.gm->lookup(0).order, 9);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// The same through step() and the embedder's clock (the host's way of
// telling time; the core's is step_at's): one block every two seconds at
// 1 MB/s, and the rehome ends.
TEST(MigrateRateLimit, StepWithAClockHookPacesBlocksLargerThanTheBucket) {
  MigratorConfig c = quiet(1);
  c.clock_ns = fake_clock;
  fake_now = 0;
  Rig r(c, 8);  // four blocks
  r.add(*r.mover, false);
  ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
  std::vector<std::uint64_t> on1;
  for (int s = 0; s < 16 && r.state() == RehomeState::running; ++s) {
    fake_now = static_cast<std::uint64_t>(s) * kSecond / 2;  // a step every half second
    (void)r.m->step();
    on1.push_back(r.pages_on(1));
    ASSERT_LE(r.bytes_moved(), rate_bound(1, static_cast<double>(s) / 2)) << s;
  }
  EXPECT_EQ(r.state(), RehomeState::done);
  // t = 0: full bucket, block 1; then 2 s to pay the 1 MiB debt and refill.
  ASSERT_GE(on1.size(), 9u);
  EXPECT_EQ(on1[0], 512u);
  EXPECT_EQ(on1[3], 512u);   // t = 1.5 s
  EXPECT_EQ(on1[4], 1024u);  // t = 2 s
  EXPECT_EQ(on1[8], 1536u);  // t = 4 s
}

// ---- F3: the long-run rate, whatever the mix of item sizes ----

namespace {

// A guest of `mb` MiB with every other 2 MiB block split into 4 KiB pages:
// items of 512 frames and of 1 frame side by side.
void split_every_other_block(Rig& r) {
  for (Gfn head = 512; head < r.gm->ram_pages(); head += 1024) ASSERT_TRUE(r.gm->split_to_pages(head).has_value());
}

}  // namespace

TEST(MigrateRateLimit, RehomeOfMixedItemsKeepsTheLongRunRate) {
  for (double rate : {0.5, 1.0, 3.0}) {
    Rig r(quiet(rate), 32, 16384);
    r.add(*r.mover, false);
    split_every_other_block(r);
    ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
    constexpr int kSteps = 80;  // 20 s, a step every 250 ms
    for (int s = 1; s <= kSteps; ++s) {
      const double t = s * 0.25;
      (void)r.m->step_at(static_cast<std::uint64_t>(t * 1e9));
      ASSERT_LE(r.bytes_moved(), rate_bound(rate, t)) << "rate " << rate << " t " << t;
      ASSERT_TRUE(r.m->check_invariants().has_value());
    }
    // ...and it is reached: nothing larger than the bucket is stuck.
    const double want = rate * kMiB * 20;
    if (want < 30 * kMiB) {  // the guest (32 MiB) is not done yet: the limit is what holds it
      EXPECT_GE(r.bytes_moved(), want - 2 * kBlockBytes) << "rate " << rate;
    } else {
      EXPECT_EQ(r.state(), RehomeState::done) << "rate " << rate;
    }
  }
}

TEST(MigrateRateLimit, PolicyMovesOfMixedItemsKeepTheLongRunRate) {
  constexpr double kRate = 1.0;
  Rig r(quiet(kRate), 32, 16384);
  r.add(*r.mover);
  split_every_other_block(r);
  constexpr int kSteps = 40;  // 20 s, a step every 500 ms
  for (int s = 1; s <= kSteps; ++s) {
    for (Gfn g = 0; g < r.gm->ram_pages(); g += 3) r.touch(g, kCpuNode1);  // everything wants node 1
    const double t = s * 0.5;
    (void)r.m->step_at(static_cast<std::uint64_t>(t * 1e9));
    ASSERT_LE(r.bytes_moved(), rate_bound(kRate, t)) << t;
    ASSERT_TRUE(r.m->check_invariants().has_value());
  }
  EXPECT_GE(r.bytes_moved(), kRate * kMiB * 20 - 2 * kBlockBytes);
  EXPECT_GT(r.m->stats().blocks_moved_whole, 0u);  // blocks went too, not only pages
}

// A randomised mix: block and page items, rates around the block size,
// uneven step intervals. The bound holds after every step, and the rate is
// reached while there is work.
TEST(MigrateRateLimit, RandomMixesStayWithinTheBoundAndReachTheRate) {
  std::mt19937_64 rng(20261204);
  for (int round = 0; round < 6; ++round) {
    const double rate = std::uniform_real_distribution<double>(0.2, 4.0)(rng);
    Rig r(quiet(rate), 16, 8192);
    r.add(*r.mover, false);
    for (Gfn head = 0; head < r.gm->ram_pages(); head += 512) {
      if (rng() % 2) {
        ASSERT_TRUE(r.gm->split_to_pages(head).has_value());
      }
    }
    ASSERT_TRUE(r.m->rehome(r.id, NodeMask::single(1)).has_value());
    double t = 0;
    while (t < 10 && r.state() == RehomeState::running) {
      t += std::uniform_real_distribution<double>(0.01, 1.5)(rng);
      (void)r.m->step_at(static_cast<std::uint64_t>(t * 1e9));
      ASSERT_LE(r.bytes_moved(), rate_bound(rate, t)) << "round " << round << " rate " << rate << " t " << t;
    }
    if (r.state() == RehomeState::running) {
      // Some is lost to the cap between steps (a block waiting for a full
      // bucket: up to one step interval's refill), and a debt may be left.
      EXPECT_GE(r.bytes_moved(), rate * kMiB * t * 0.6 - kBlockBytes) << "round " << round << " rate " << rate;
    }
    EXPECT_TRUE(r.m->check_invariants().has_value());
  }
}

// ---- F3: refund() gives back only what admit() took ----

// Configured rate 0 and a spare-bandwidth hook that does not know (unlimited):
// a coalesce the mover refuses takes no token, so its refund must give none.
// Before, the refund put 2 MiB into a bucket that never had them.
TEST(MigrateRateLimit, RefundOfAnUnlimitedAdmissionAddsNothing) {
  MigratorConfig c = quiet(0);
  c.spare_bandwidth_mb_s = spare_hook;
  spare_answer = -1;  // unknown: unlimited
  Rig r(c);
  ForwardingMover no_coalesce(*r.mover);  // coalesce: unsupported (refunded)
  r.add(no_coalesce);
  ASSERT_TRUE(r.gm->split_to_pages(0).has_value());
  r.touch(10, kCpuNode0, 2);
  ASSERT_EQ(MigratorTestPeer::tokens(*r.m, 0), 0.0);
  (void)r.m->step_at(0);
  EXPECT_EQ(MigratorTestPeer::tokens(*r.m, 0), 0.0);
  EXPECT_EQ(r.m->stats().blocks_coalesced, 0u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// ---- F8: exact statistics ----

// One truly shared block whose pages go to two nodes in one flush (two
// batches): split once. Before: once per batch.
TEST(MigrateStatsExact, BlockSplitForTwoTargetsInOneFlushCountsOnce) {
  MigratorConfig c = quiet(0);
  c.quick_moves = false;
  Rig r(c, 4, 4096, 3);
  r.add(*r.mover);
  for (Gfn g = 0; g < 10; ++g) r.touch(g, kCpuNode1, 2);
  for (Gfn g = 100; g < 110; ++g) r.touch(g, kCpuNode2, 2);
  (void)r.m->step_at(1);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 20u);
  EXPECT_EQ(r.gm->lookup(200).order, 0);
  EXPECT_EQ(s.blocks_split, 1u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// A batch that fills up in the middle of a chunk is flushed there: the
// chunk's later pages were queried before that flush split their block.
// Block 0's last 32 pages and block 1's first 64 all go to node 1 page by
// page: two blocks split. Before: three.
TEST(MigrateStatsExact, BlockSplitAcrossAMidChunkFlushCountsOnce) {
  MigratorConfig c = quiet(0);
  c.quick_moves = false;
  c.keep_huge_pages = false;  // every policy move is of a 4 KiB page
  Rig r(c);
  r.add(*r.mover);
  for (Gfn g = 480; g < 576; ++g) r.touch(g, kCpuNode1, 2);
  (void)r.m->step_at(1);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 96u);
  for (Gfn g = 480; g < 576; ++g) ASSERT_EQ(r.node(g), 1u) << g;
  EXPECT_EQ(s.blocks_split, 2u);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

namespace {

// A balloon or sharing writer splits each block between the policy's query
// and its move: the mover then moves one 4 KiB page where the query said a
// 2 MiB block.
class SplitBeforeMoveMover final : public ForwardingMover {
 public:
  SplitBeforeMoveMover(Mover& inner, GuestMemory& gm) : ForwardingMover(inner), gm_(gm) {}
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity g,
                          std::span<MoveOutcome> out) noexcept override {
    for (Gfn gfn : gfns) (void)gm_.split_to_pages(gfn);
    return inner_.move(gfns, target, g, out);
  }

 private:
  GuestMemory& gm_;
};

}  // namespace

// pages_quick (and pages_followed) count what the mover moved, not the
// queried block size. Before: 512 quick pages for one page moved.
TEST(MigrateStatsExact, QuickAndFollowedCountOnlyWhatTheMoverMoved) {
  Rig r(quiet(0));
  SplitBeforeMoveMover splitting(*r.mover, *r.gm);
  r.add(splitting);
  r.touch(5, kCpuNode1);  // a first sample ever from node 1: quick, block whole
  (void)r.m->step_at(1);
  EXPECT_EQ(r.pages_on(1), 1u);  // the block's head, the gfn the policy listed
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 1u);
  EXPECT_EQ(s.pages_quick, 1u);
  EXPECT_EQ(s.blocks_moved_whole, 0u);  // one page went, not a block
  const auto gs = r.m->guest_stats(r.id);
  ASSERT_TRUE(gs.has_value());
  EXPECT_EQ(gs->pages_quick, 1u);
  EXPECT_LE(gs->pages_quick + gs->pages_followed, gs->pages_moved);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}

// The same for pages that follow their vCPUs off a vacated node.
TEST(MigrateStatsExact, FollowedBlocksCountOnlyWhatTheMoverMoved) {
  Rig r(quiet(0));
  SplitBeforeMoveMover splitting(*r.mover, *r.gm);
  r.add(splitting);
  const std::uint32_t vcpus = migrate_options_for(*r.gm, false).vcpus;
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode0).has_value());
  r.touch(5, kCpuNode0);
  (void)r.m->step_at(1);
  for (std::uint32_t v = 0; v < vcpus; ++v) ASSERT_TRUE(r.m->set_vcpu_cpu(r.id, v, kCpuNode1).has_value());
  (void)r.m->step_at(2);
  EXPECT_EQ(r.pages_on(1), 1u);
  const MigratorStats s = r.m->stats();
  EXPECT_EQ(s.pages_moved, 1u);
  EXPECT_EQ(s.pages_followed, 1u);
  EXPECT_LE(s.pages_followed + s.pages_quick, s.pages_moved);
  EXPECT_TRUE(r.m->check_invariants().has_value());
}
