// The freestanding side of Topology: memory from metadata hooks (running
// out is Errc::no_memory from build(), with nothing leaked, whatever
// allocation fails), a Topology from a fixed region, shared handles whose
// copies never allocate, and NodeMask text without allocation.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "numaheap/metadata.h"
#include "numaheap/topology.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

// Hooks over malloc that count what they give and take back, and refuse
// every allocation after the first `budget` ones.
struct CountingHooks {
  MetadataHooks hooks{this, &CountingHooks::alloc, &CountingHooks::release};
  std::atomic<long> budget{1L << 30};
  std::atomic<long> allocs{0}, frees{0}, refused{0};
  std::atomic<long long> bytes{0};

  static void* alloc(void* ctx, std::size_t n, std::size_t align, std::uint32_t) {
    auto* self = static_cast<CountingHooks*>(ctx);
    if (self->budget.fetch_sub(1) <= 0) {
      ++self->refused;
      return nullptr;
    }
    void* p = std::aligned_alloc(align, (n + align - 1) / align * align);
    if (!p) return nullptr;
    std::memset(p, 0, n);  // the contract: memory reads as zero
    ++self->allocs;
    self->bytes += static_cast<long long>(n);
    return p;
  }
  static void release(void* ctx, void* p, std::size_t n) {
    auto* self = static_cast<CountingHooks*>(ctx);
    ++self->frees;
    self->bytes -= static_cast<long long>(n);
    std::free(p);
  }
  bool balanced() const { return allocs == frees && bytes == 0; }
};

// A machine with everything build() must allocate for: CPUs, distances
// (one by one and by row), and either given or laid-out frames.
Result<Topology, Error> build_machine(const MetadataHooks* hooks, bool given_frames) {
  TopologyBuilder b("oom-machine", hooks);
  b.add_node(0, {0, 1, 2, 3}, 2 * kGiB)
      .add_node(4, std::vector<CpuId>{7, 6, 5, 4}, 2 * kGiB)
      .add_node(9, {}, 0)
      .add_node(12, {8, 9}, kGiB, kGiB / 2);
  const std::uint32_t row0[] = {10, 21, 31, 21};
  b.set_distance_row(0, row0);
  b.set_distance(4, 0, 21).set_distance(4, 4, 10).set_distance(12, 0, 31);
  if (given_frames) {
    b.set_frames(0, {{1, 99}, {1000, 24}})
        .set_frames(4, std::vector<FrameRange>{{2048, 256}})
        .set_frames(12, {{4096, 256}});
  }
  return b.build();
}

}  // namespace

TEST(TopologyCore, BuilderTakesAllMemoryFromItsHooks) {
  CountingHooks h;
  {
    auto t = build_machine(&h.hooks, true);
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ(t->hooks(), &h.hooks);
    EXPECT_EQ(t->node_count(), 4u);
    EXPECT_EQ(t->source(), "oom-machine");
    EXPECT_EQ(t->distance(0, 12), 21u);
    EXPECT_EQ(t->distance(12, 0), 31u);
    EXPECT_EQ(t->node_of_cpu(6), 4u);
    EXPECT_EQ(t->find(4)->cpu_vector(), (std::vector<CpuId>{4, 5, 6, 7}));
    EXPECT_EQ(t->node_of_mfn(1000), 0u);
    EXPECT_EQ(t->fallback_order(9).size(), 3u);
    EXPECT_GT(h.allocs.load(), 0);
  }
  EXPECT_TRUE(h.balanced()) << h.allocs << " allocs, " << h.frees << " frees, " << h.bytes
                            << " bytes";
}

// Whichever allocation fails -- in add_node, set_distance, set_frames or any
// step of build() -- the answer is no_memory with a message naming the
// source, and every byte goes back.
TEST(TopologyCore, EveryFailedAllocationIsNoMemoryAndLeaksNothing) {
  for (bool given_frames : {false, true}) {
    long needed = 0;
    {
      CountingHooks h;
      auto t = build_machine(&h.hooks, given_frames);
      ASSERT_TRUE(t.has_value()) << t.error().message;
      needed = h.allocs;
    }
    ASSERT_GT(needed, 5);
    for (long n = 0; n < needed; ++n) {
      CountingHooks h;
      h.budget = n;
      {
        auto t = build_machine(&h.hooks, given_frames);
        ASSERT_FALSE(t.has_value()) << "budget " << n << " of " << needed;
        EXPECT_EQ(t.error().code, Errc::no_memory) << n << ": " << t.error().message;
        EXPECT_EQ(t.error().message.rfind("oom-machine: ", 0), 0u) << t.error().message;
        EXPECT_NE(t.error().message.find("memory"), std::string::npos) << t.error().message;
        EXPECT_GT(h.refused.load(), 0);
      }
      EXPECT_TRUE(h.balanced()) << "budget " << n << ": " << h.allocs << " allocs, " << h.frees
                                << " frees";
    }
  }
}

TEST(TopologyCore, NullHooksAreNoMemoryNotACrash) {
  TopologyBuilder b("no-hooks", nullptr);
  b.add_node(0, {0}, kGiB);
  auto t = b.build();
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, Errc::no_memory);
}

TEST(TopologyCore, CopiesShareOneBlockAndNeverAllocate) {
  CountingHooks h;
  {
    auto built = build_machine(&h.hooks, false);
    ASSERT_TRUE(built.has_value());
    Topology a = *built;
    const long allocs = h.allocs, frees = h.frees;
    h.budget = 0;  // any allocation from here on would fail
    Topology b = a;
    Topology c;
    c = b;
    Topology d = std::move(c);
    EXPECT_EQ(c.node_count(), 0u);  // moved-from: empty, still usable
    EXPECT_EQ(c.index_of(0), -1);
    EXPECT_EQ(c.source(), "");
    EXPECT_EQ(h.allocs.load(), allocs);
    EXPECT_EQ(d.nodes().data(), a.nodes().data());  // the same block
    EXPECT_EQ(d.distance(0, 4), 21u);
    // Handles copied and dropped on many threads at once.
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&] {
        for (int k = 0; k < 10000; ++k) {
          Topology e = d;
          if (e.node_count() != 4) std::abort();
        }
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(h.allocs.load(), allocs);
    EXPECT_EQ(h.frees.load(), frees);  // still held
  }
  EXPECT_TRUE(h.balanced());
}

TEST(TopologyCore, EmptyTopologyAnswersEveryQuery) {
  Topology t;
  EXPECT_EQ(t.node_count(), 0u);
  EXPECT_TRUE(t.nodes().empty());
  EXPECT_EQ(t.find(0), nullptr);
  EXPECT_EQ(t.distance(0, 0), kMaxDistance);
  EXPECT_EQ(t.raw_distance(0, 0), 0u);
  EXPECT_FALSE(t.distances_given());
  EXPECT_EQ(t.node_of_cpu(0), kNoNode);
  EXPECT_EQ(t.max_cpu(), 0u);
  EXPECT_TRUE(t.fallback_order(0).empty());
  EXPECT_EQ(t.total_frames(), 0u);
  EXPECT_EQ(t.node_of_mfn(1), kNoNode);
  EXPECT_TRUE(t.node_mask().empty());
  EXPECT_EQ(t.hooks(), nullptr);
}

// As a hypervisor at boot: the metadata region is all the memory there is.
TEST(TopologyCore, BuildsFromAFixedRegion) {
  constexpr std::size_t kRegion = 256 * 1024;
  void* base = std::aligned_alloc(4096, kRegion);
  ASSERT_NE(base, nullptr);
  numaheap_metadata_hooks region{};
  ASSERT_EQ(numaheap_region_init(base, kRegion, 0, &region), 0);
  const std::size_t idle = numaheap_region_used(&region);
  {
    Topology kept;
    {
      TopologyBuilder b("region", &region);
      for (NodeId n = 0; n < 8; ++n)
        b.add_node(n * 2, {2 * n, 2 * n + 1}, n == 5 ? 0 : kGiB);  // node 10 memoryless
      for (NodeId a = 0; a < 8; ++a)
        for (NodeId c = 0; c < 8; ++c) b.set_distance(a * 2, c * 2, a == c ? 10 : 10 + 4 * (a > c ? a - c : c - a));
      auto t = b.build();
      ASSERT_TRUE(t.has_value()) << t.error().message;
      kept = *t;
    }
    EXPECT_GT(numaheap_region_used(&region), idle);
    EXPECT_EQ(kept.hooks(), &region);
    EXPECT_EQ(kept.node_count(), 8u);
    EXPECT_EQ(kept.memory_nodes().count(), 7u);
    EXPECT_EQ(kept.distance(0, 14), 38u);
    EXPECT_EQ(kept.node_of_cpu(7), 6u);
    auto f = kept.fallback_order(6);
    ASSERT_EQ(f.size(), 7u);
    EXPECT_EQ(f[0], 6u);
    EXPECT_TRUE(f[1] == 4u || f[1] == 8u);
    EXPECT_EQ(kept.total_frames(), 7 * (kGiB >> kFrameShift));
  }
  EXPECT_EQ(numaheap_region_used(&region), idle);  // all given back

  // A region too small for the CPU table fails cleanly.
  {
    TopologyBuilder b("tiny", &region);
    b.add_node(0, {0, kMaxCpus - 1}, kGiB);  // 64 Ki entries of cpu -> node
    auto t = b.build();
    ASSERT_FALSE(t.has_value());
    EXPECT_EQ(t.error().code, Errc::no_memory);
    EXPECT_NE(t.error().message.find("cpu table"), std::string::npos) << t.error().message;
  }
  EXPECT_EQ(numaheap_region_used(&region), idle);
  std::free(base);
}

TEST(TopologyCore, AddNodeTakesListsSpansAndVectors) {
  TopologyBuilder b;
  const CpuId some[] = {3, 2};
  const std::vector<CpuId> more{5, 4};
  Vector<CpuId> core_list{7, 6};
  b.add_node(0, {1, 0}, kGiB)
      .add_node(1, std::span<const CpuId>(some), kGiB)
      .add_node(2, more, kGiB)
      .add_node(3, core_list, kGiB)
      .add_node(4, {}, kGiB);
  auto t = b.build();
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->source(), "builder");
  EXPECT_EQ(t->find(1)->cpu_vector(), (std::vector<CpuId>{2, 3}));
  EXPECT_EQ(t->node_of_cpu(7), 3u);
  EXPECT_TRUE(t->find(4)->cpus.empty());
}

TEST(NodeMaskFormat, WritesIntoABufferWithoutAllocating) {
  NodeMask m;
  for (NodeId id : {0u, 1u, 4u, 5u, 250u, 251u, 252u, 1023u}) m.set(id);
  char buf[64];
  EXPECT_EQ(m.format(buf, sizeof buf), 20u);
  EXPECT_STREQ(buf, "0-1,4-5,250-252,1023");
  // Cut: NUL-terminated, the needed length still reported.
  char small[6];
  EXPECT_EQ(m.format(small, sizeof small), 20u);
  EXPECT_STREQ(small, "0-1,4");
  EXPECT_EQ(m.format(nullptr, 0), 20u);
  char one[1] = {'x'};
  EXPECT_EQ(NodeMask().format(one, 1), 0u);
  EXPECT_EQ(one[0], '\0');
  // The worst case fits the documented 2600 bytes.
  NodeMask alternate;
  for (NodeId id = 0; id < kMaxNodes; id += 2) alternate.set(id);
  EXPECT_LT(alternate.format(nullptr, 0), 2600u);
  EXPECT_EQ(alternate.to_string().size(), alternate.format(nullptr, 0));
}

TEST(NodeMaskFormat, GoesIntoErrorMessages) {
  NodeMask m;
  m.set(2);
  m.set(3);
  m.set(8);
  Error e = make_error(Errc::invalid_node, "nodes ", m, " have no memory");
  EXPECT_EQ(e.message, "nodes 2-3,8 have no memory");
  FixedString<5> cut;
  m.append_to(cut);
  EXPECT_EQ(cut, "2-3,");
}
