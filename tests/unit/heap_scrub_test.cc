// A frame freed by owner A is never handed to owner B with A's bytes in it:
// on every path (per-CPU cache, buddy split, fallback node, order-9 cache,
// merged blocks, the lock-free per-CPU fast path, an interrupted background
// scrub), in host-memory mode (real bytes) and in frame-only mode (a fake
// machine memory behind hooks). heap_scrub_broken_test runs the last two
// against deliberately broken allocators: they must catch them.
#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"
#include "unit/scrub_scenarios.h"

namespace numaheap {
namespace {

using test::req;

// Fake machine memory for frame-only mode: one tag per frame (0 = zeros).
struct FakeMemory {
  Mfn base = 0;
  std::vector<std::uint64_t> tag;
  static void scrub(void* ctx, Mfn first, std::uint64_t count) {
    auto* m = static_cast<FakeMemory*>(ctx);
    for (std::uint64_t i = 0; i < count; ++i) m->tag[first + i - m->base] = 0;
  }
  static void copy(void* ctx, Mfn dst, Mfn src) {
    auto* m = static_cast<FakeMemory*>(ctx);
    m->tag[dst - m->base] = m->tag[src - m->base];
  }
};

enum class Mode { host, frames };

class Scrub : public ::testing::TestWithParam<Mode> {
 protected:
  // Nodes 0 and 1 of `frames` each. Host mode binds node 0; node 1 does not
  // exist here, so it runs unbound (require_bind = false).
  void SetUp() override { build(test::two_nodes(1024)); }
  void build(const Topology& t) {
    topo_ = t;
    mem_.base = 0;
    Mfn end = 0;
    for (const NodeInfo& n : t.nodes())
      for (const FrameRange& r : n.frames) end = std::max(end, r.first_mfn + r.count);
    mem_.tag.assign(end, 0);
    PlatformConfig pc;
    if (GetParam() == Mode::host) {
      pc.mode = MemoryMode::host_memory;
      pc.require_bind = false;
    } else {
      pc.mode = MemoryMode::frame_only;
      pc.hooks.ctx = &mem_;
      pc.hooks.scrub = &FakeMemory::scrub;
      pc.hooks.copy = &FakeMemory::copy;
    }
    HeapConfig hc;
    hc.cpus = 1;
    pa_ = test::make(topo_, pc, hc);
    ASSERT_TRUE(pa_);
  }
  void write(Mfn mfn, unsigned order, OwnerId owner) {
    for (std::uint64_t i = 0; i < frames_of_order(order); ++i) {
      if (GetParam() == Mode::host) {
        auto* p = static_cast<unsigned char*>(pa_->frame_address(mfn + i));
        ASSERT_NE(p, nullptr);
        std::memset(p, static_cast<int>(0xA0 + owner), kFrameSize);
      } else {
        mem_.tag[mfn + i] = owner;
      }
    }
  }
  // True when every byte of the block is zero or `owner`'s own pattern.
  bool clean_for(Mfn mfn, unsigned order, OwnerId owner) {
    for (std::uint64_t i = 0; i < frames_of_order(order); ++i) {
      if (GetParam() == Mode::host) {
        auto* p = static_cast<const unsigned char*>(pa_->frame_address(mfn + i));
        for (std::size_t b = 0; b < kFrameSize; ++b)
          if (p[b] != 0 && p[b] != 0xA0 + owner) return false;
      } else if (mem_.tag[mfn + i] != 0 && mem_.tag[mfn + i] != owner) {
        return false;
      }
    }
    return true;
  }
  // Owner A takes all of `node` as blocks of `order`, dirties and frees them.
  void dirty_node(NodeId node, unsigned order, OwnerId a) {
    std::vector<Mfn> got;
    for (;;) {
      auto r = pa_->alloc(req(order, node, AllocFlags::exact_node, a));
      if (!r) break;
      write(r->mfn, order, a);
      got.push_back(r->mfn);
    }
    ASSERT_FALSE(got.empty());
    for (Mfn m : got) ASSERT_TRUE(pa_->free(m, order, a));
  }
  // Owner B drains `node` with `order` allocations; every one must be clean.
  void expect_clean(NodeId node, unsigned order, OwnerId b, std::uint32_t flags = 0) {
    std::vector<Mfn> got;
    for (;;) {
      auto r = pa_->alloc(req(order, node, flags, b));
      if (!r) break;
      EXPECT_TRUE(clean_for(r->mfn, order, b)) << "mfn " << r->mfn << " order " << order;
      got.push_back(r->mfn);
    }
    EXPECT_FALSE(got.empty());
    for (Mfn m : got) ASSERT_TRUE(pa_->free(m, order, b));
    EXPECT_TRUE(pa_->check_frames());
  }

  Topology topo_;
  FakeMemory mem_;
  std::unique_ptr<PageAllocator> pa_;
};

TEST_P(Scrub, PerCpuCacheOrder0) {
  dirty_node(0, 0, 1);  // freed frames sit in the per-CPU cache (and heap)
  expect_clean(0, 0, 2, AllocFlags::exact_node | AllocFlags::no_scrub);
}

TEST_P(Scrub, PerCpuCacheOrder9) {
  dirty_node(0, 9, 1);
  expect_clean(0, 9, 2, AllocFlags::exact_node);
}

TEST_P(Scrub, BuddySplit) {
  dirty_node(0, 10, 1);  // one dirty 4 MiB block
  expect_clean(0, 2, 2, AllocFlags::exact_node | AllocFlags::no_scrub);
}

TEST_P(Scrub, FallbackNode) {
  dirty_node(1, 3, 1);
  // Fill node 0 as B so B's next allocations fall back to node 1.
  std::vector<Mfn> fill;
  for (;;) {
    auto r = pa_->alloc(req(0, 0, AllocFlags::exact_node, 2));
    if (!r) break;
    fill.push_back(r->mfn);
  }
  std::vector<Mfn> got;
  for (;;) {
    auto r = pa_->alloc(req(1, 0, 0, 2));
    if (!r) break;
    EXPECT_EQ(r->node, 1u);
    EXPECT_TRUE(clean_for(r->mfn, 1, 2));
    got.push_back(r->mfn);
  }
  EXPECT_EQ(got.size(), 512u);
  for (Mfn m : got) ASSERT_TRUE(pa_->free(m, 1, 2));
  for (Mfn m : fill) ASSERT_TRUE(pa_->free(m, 0, 2));
}

TEST_P(Scrub, NoScrubKeepsOnlyOwnBytes) {
  auto a = pa_->alloc(req(4, 0, AllocFlags::exact_node, 1)).value();
  write(a.mfn, 4, 1);
  ASSERT_TRUE(pa_->free(a.mfn, 4, 1));
  // Same owner, no_scrub: may see its own bytes, never another's.
  auto again = pa_->alloc(req(4, 0, AllocFlags::exact_node | AllocFlags::no_scrub, 1)).value();
  EXPECT_TRUE(clean_for(again.mfn, 4, 1));
  ASSERT_TRUE(pa_->free(again.mfn, 4, 1));
  // Mixed content (A's and B's halves merged): no_scrub must still scrub.
  auto x = pa_->alloc(req(3, 0, AllocFlags::exact_node, 1)).value();
  auto y = pa_->alloc(req(3, 0, AllocFlags::exact_node, 2)).value();
  write(x.mfn, 3, 1);
  write(y.mfn, 3, 2);
  ASSERT_TRUE(pa_->free(x.mfn, 3, 1));
  ASSERT_TRUE(pa_->free(y.mfn, 3, 2));
  expect_clean(0, 4, 1, AllocFlags::exact_node | AllocFlags::no_scrub);
}

TEST_P(Scrub, BackgroundScrubThenAlloc) {
  dirty_node(0, 10, 1);
  std::uint64_t total = 0;
  while (std::uint64_t n = pa_->scrub_some(0, 256)) total += n;
  EXPECT_EQ(total, 1024u);
  EXPECT_EQ(pa_->stats(0).value().dirty, 0u);
  expect_clean(0, 0, 2, AllocFlags::exact_node | AllocFlags::no_scrub);
}

INSTANTIATE_TEST_SUITE_P(heap_scrub, Scrub, ::testing::Values(Mode::host, Mode::frames),
                         [](const auto& param_info) {
                           return std::string(param_info.param == Mode::host ? "host" : "frames");
                         });

// alloc_bulk of a cache's worth is served from the CPU's per-CPU cache:
// another owner's frames freed there are scrubbed for the reader, even
// with no_scrub (heap_scrub_broken proves the route served them).
TEST(heap_scrub_bulk, CacheRouteScrubsAnotherOwnersFrames) {
  const test::BulkHandoverResult r = test::bulk_cache_handover();
  EXPECT_EQ(r.handed_out, 50u * 48u);
  EXPECT_EQ(r.unclean, 0u);
  EXPECT_EQ(r.from_cache, 50u) << "the small frees did not go to the per-CPU cache";
  EXPECT_TRUE(r.checks_pass);
}

// The same owner reading its own frames back with no_scrub keeps its bytes
// (nothing is scrubbed that the owner wrote itself).
TEST(heap_scrub_bulk, CacheRouteKeepsOwnBytesWithNoScrub) {
  const test::BulkHandoverResult r = test::bulk_cache_handover(3, 3, 5);
  EXPECT_EQ(r.handed_out, 5u * 48u);
  EXPECT_EQ(r.unclean, 5u * 48u) << "own bytes scrubbed although no_scrub was asked";
  EXPECT_TRUE(r.checks_pass);
}

}  // namespace
}  // namespace numaheap

namespace numaheap {
namespace {

// The background scrubber is told to stop by an allocation of the block it
// is scrubbing (scrub_scenarios.h: hand-shakes, no sleeps). The allocation
// gets a clean block, the scrubber gives the block up, and nothing it does
// afterwards touches the new owner's data.
TEST(heap_scrub_interrupt, AllocationStopsBackgroundScrubAndNewOwnersDataSurvives) {
  const test::InterruptResult r = test::interrupted_scrub();
  ASSERT_TRUE(r.allocated);
  EXPECT_EQ(r.frames_not_clean, 0u) << "handed over with the old owner's bytes";
  EXPECT_EQ(r.background_scrubbed, 0u) << "the scrub did not give the block up";
  EXPECT_EQ(r.frames_not_new_owners, 0u) << "the scrubber wrote after it was told to stop";
  EXPECT_TRUE(r.checks_pass);
}

// The rseq fast path pops another owner's dirty frames: scrubbed first.
TEST(heap_scrub_fast_path, LockFreePopScrubsAnotherOwnersFrames) {
  const test::FastPathResult r = test::fast_path_handover();
  if (!r.lockless) GTEST_SKIP() << "no rseq fast path here";
  EXPECT_GT(r.handed_out, 0u);
  EXPECT_EQ(r.unclean, 0u);
}

// The same for requests naming a node: the CPU's own (the fast path since
// issue 17), another one, the own one excluded (alloc_slow). Each gets its
// node's frames, scrubbed. (heap_scrub_broken proves which path served.)
TEST(heap_scrub_fast_path, NamedNodeRequestsScrubAnotherOwnersFrames) {
  const auto check = [](std::span<const test::NamedHandover> list) {
    for (const test::NamedHandover& h : list) {
      SCOPED_TRACE(h.what);
      const test::FastPathResult r = test::fast_path_handover(h.ask);
      if (!r.lockless) return;  // no rseq fast path here
      EXPECT_GT(r.handed_out, 0u);
      EXPECT_EQ(r.unclean, 0u);
      EXPECT_EQ(r.off_node, 0u);
    }
  };
  check(test::kOwnNodeRequests);
  check(test::kSlowPathRequests);
}

// Cache entries carry the dirty owner as a 16-bit tag; owners beyond it
// are "unknown": their frames are scrubbed for every other owner, and the
// tag never mistakes one owner for another (heap_scrub_broken shows the
// scenario catches a truncated tag).
TEST(heap_scrub_fast_path, OwnersBeyondTheEntryTagAreScrubbedForOthers) {
  for (const test::NamedHandover& h : test::kUntaggedOwners) {
    SCOPED_TRACE(h.what);
    const test::FastPathResult r = test::fast_path_handover(h.ask);
    if (!r.lockless) GTEST_SKIP() << "no rseq fast path here";
    EXPECT_GT(r.handed_out, 0u);
    EXPECT_EQ(r.unclean, 0u);
    EXPECT_TRUE(r.checks_pass);
  }
}

// An owner the tag cannot name asking for its own dirty frames with
// no_scrub: alloc's out-of-line path reads the word, which names the owner
// exactly, and spares the scrub (the frames come back with its bytes).
TEST(heap_scrub_fast_path, UntaggedOwnerKeepsItsOwnBytesWithNoScrub) {
  test::HandoverRequest ask;
  ask.writer = ask.reader = 0x10001;
  const test::FastPathResult r = test::fast_path_handover(ask, 20);
  if (!r.lockless) GTEST_SKIP() << "no rseq fast path here";
  EXPECT_GT(r.handed_out, 0u);
  // (Frames another round left in the other CPU's cache hold its 0xB2
  // bytes, which count as clean, if the thread moved between the phases.)
  EXPECT_GT(r.unclean, 0u) << "own bytes scrubbed although no_scrub was asked";
  EXPECT_TRUE(r.checks_pass);
}

}  // namespace
}  // namespace numaheap
