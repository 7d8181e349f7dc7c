// Per-CPU cache refills and the descriptor lines they hand to a CPU.
//
// Descriptors are 24 bytes, so neighbouring frames share 64-byte cache
// lines. Two CPUs cycling frames whose descriptors share a line bounce it
// on every alloc and free (false sharing; neighbour_cpus in
// bench/numaheap_bench.cc measured 3.6x the pair's cost). A refill takes,
// with each block, the rest of its aligned 8-frame group that is free, so
// frames that reach CPUs' caches by refill never put two CPUs on one line.
// Checked here on a fresh heap, CPUs taking
// turns to empty their caches, for the cached orders below a line group,
// batches that are and are not multiples of a group, and a node whose
// first frame is not group-aligned.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "allocator/heap/frame_table.h"
#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

using test::make;
using test::req;

// The descriptors of an aligned group of 2^3 frames fill 3 cache lines
// exactly (the table is laid out so: FrameTable::init), so "no two CPUs on
// one line" is "no group split between two CPUs' refills".
constexpr unsigned kGroupOrder = 3;

Topology one_range(Mfn first, std::uint64_t frames) {
  TopologyBuilder b("test:lines");
  b.add_node(0, {0, 1}, frames << kFrameShift).set_frames(0, {{first, frames}});
  auto t = b.build();
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return std::move(t).value();
}

TEST(heap_cache_lines, RefillsNeverPutTwoCpusOnOneDescriptorLine) {
  for (const Mfn first : {Mfn{1024}, Mfn{1029}}) {
    const Topology topo = one_range(first, 2048);
    for (unsigned order = 0; order <= 2; ++order)
      for (const std::uint32_t batch : {5u, 3u, 31u}) {
        SCOPED_TRACE(testing::Message() << "first " << first << " order " << order << " batch " << batch);
        test::FakeCpu cpu;
        HeapConfig hc;
        hc.use_rseq = false;
        hc.pcp_batch = batch;
        hc.pcp_high = 128;
        auto pa = make(topo, test::frame_only(&cpu), hc);
        ASSERT_TRUE(pa);
        std::map<std::uint64_t, std::uint32_t> group_cpu;  // aligned 8-frame group -> the CPU that got it
        std::uint64_t shared = 0;
        for (int round = 0; round < 6; ++round)
          for (std::uint32_t c : {0u, 1u}) {
            cpu.cpu = c;
            // One refill's worth: the first alloc refills, then the cache
            // empties (the other CPU's cache is already empty).
            std::vector<Mfn> got{pa->alloc(req(order, 0)).value().mfn};
            const std::uint64_t left = pa->stats(0).value().cached >> order;
            for (std::uint64_t i = 0; i < left; ++i) got.push_back(pa->alloc(req(order, 0)).value().mfn);
            EXPECT_EQ(pa->stats(0).value().cached, 0u);
            for (Mfn b : got)
              for (Mfn f = b; f < b + (Mfn{1} << order); ++f) {
                auto [it, fresh] = group_cpu.emplace(f >> kGroupOrder, c);
                if (!fresh && it->second != c) ++shared;
              }
          }
        EXPECT_EQ(shared, 0u) << "8-frame groups (3 descriptor lines) handed to both CPUs by refills";
        EXPECT_TRUE(pa->check_frames());
      }
  }
}

// A refill takes only the free blocks of a group: frames in use in it stay
// their owner's, and the books stay right.
TEST(heap_cache_lines, GroupsFramesInUseStayTheirs) {
  constexpr Mfn kBase = 1024;  // frames kBase.. (frame 0 is never managed)
  test::FakeCpu cpu;
  HeapConfig hc;
  hc.use_rseq = false;
  hc.pcp_batch = 3;
  hc.pcp_high = 64;
  auto pa = make(one_range(kBase, 1024), test::frame_only(&cpu), hc);
  ASSERT_TRUE(pa);
  // Frames below as offsets from kBase. CPU 0's refill of 3: 0, then the
  // rest of its group, 1..7.
  std::vector<Mfn> held;
  for (int i = 0; i < 8; ++i) held.push_back(pa->alloc(req(0, 0)).value().mfn);
  std::sort(held.begin(), held.end());
  for (int i = 0; i < 8; ++i) ASSERT_EQ(held[static_cast<std::size_t>(i)], kBase + Mfn(i));
  EXPECT_EQ(pa->stats(0).value().cached, 0u);
  // 0..3 go back to the heap (one order-2 block); 4..7 stay in use.
  for (Mfn m = kBase; m < kBase + 4; ++m) ASSERT_TRUE(pa->free(m, 0, 1));
  pa->drain_all();
  // CPU 1's refill of 3 takes 0 (the smallest block first), then the rest
  // of its group that is free, 1..3, and not 4..7: in use.
  cpu.cpu = 1;
  const Mfn a = pa->alloc(req(0, 0)).value().mfn;
  EXPECT_LT(a, kBase + 4);
  NodeStats st = pa->stats(0).value();
  EXPECT_EQ(st.cached, 3u);
  EXPECT_EQ(st.used, 5u);
  EXPECT_EQ(st.free + st.cached + st.used, st.managed);
  EXPECT_TRUE(pa->check_frames());
  for (Mfn m = kBase + 4; m < kBase + 8; ++m) EXPECT_TRUE(pa->free(m, 0, 1)) << m;  // still CPU 0's owner's
  ASSERT_TRUE(pa->free(a, 0, 1));
  pa->drain_all();
  st = pa->stats(0).value();
  EXPECT_EQ(st.free, st.managed);
  EXPECT_EQ(st.largest_free_order, 10);
  EXPECT_TRUE(pa->check_frames());
}

// The layout the refills rely on: whatever the ranges (unaligned edges,
// holes, several nodes), the descriptor of every frame whose number is a
// multiple of 8 starts a cache line, so an aligned group of 8 frames has
// 3 lines of its own.
TEST(heap_cache_lines, AlignedGroupsOwnWholeDescriptorLines) {
  int which = 0;
  for (const Topology& topo : {test::sparse_nodes(), one_range(1029, 2048), test::two_nodes(1000)}) {
    SCOPED_TRACE(which++);
    FrameTable table;
    ASSERT_TRUE(table.init(topo, default_metadata()));
    std::uint64_t frames = 0;
    for (const FrameRangeInfo& r : table.ranges())
      for (Mfn m = r.first; m < r.end; ++m) {
        ++frames;
        const auto at = reinterpret_cast<std::uintptr_t>(&table.desc(r, m));
        if (m % 8 == 0) {
          ASSERT_EQ(at % 64, 0u) << "frame " << m;
        }
        ASSERT_EQ(table.mfn_of(&table.desc(r, m)), m);
      }
    EXPECT_EQ(frames, table.frame_count());
    // Up to 7 unused descriptors per range: still 24 bytes a frame, give or take.
    EXPECT_LT(table.bytes_per_frame(), 24.0 + 200.0 * static_cast<double>(table.ranges().size()) /
                                                 static_cast<double>(frames));
  }
}

}  // namespace
}  // namespace numaheap
