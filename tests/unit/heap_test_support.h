// Shared helpers of the heap tests: small topologies and a deterministic CPU.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "numaheap/page_allocator.h"
#include "numaheap/topology.h"

namespace numaheap::test {

// One node (id 0), `frames` frames from the builder's default layout.
inline Topology one_node(std::uint64_t frames = 1024) {
  auto t = TopologyBuilder("test:one").add_node(0, {0, 1}, frames << kFrameShift).build();
  EXPECT_TRUE(t.has_value());
  return std::move(t).value();
}

// Sparse ids 0, 4, 9 (memoryless), 250; node 0 has two ranges with a hole
// and unaligned edges; SLIT with a tie (4 and 250 both 20 from 0).
inline Topology sparse_nodes() {
  TopologyBuilder b("test:sparse");
  b.add_node(0, {0}, 300 << kFrameShift)
      .add_node(4, {1}, 256 << kFrameShift)
      .add_node(9, {2}, kUnknownBytes)
      .add_node(250, {3}, 200 << kFrameShift);
  b.set_frames(0, {{3, 97}, {1000, 203}})
      .set_frames(4, {{2048, 256}})
      .set_frames(250, {{512, 200}});
  const std::uint32_t rows[4][4] = {
      {10, 20, 30, 20}, {20, 10, 30, 25}, {30, 30, 10, 15}, {20, 25, 15, 10}};
  const NodeId ids[4] = {0, 4, 9, 250};
  for (int i = 0; i < 4; ++i) b.set_distance_row(ids[i], rows[i]);
  auto t = b.build();
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return std::move(t).value();
}

// Two nodes of `frames` each, 1 GiB apart (default layout), CPUs 0 / 1.
inline Topology two_nodes(std::uint64_t frames = 2048) {
  auto t = TopologyBuilder("test:two")
               .add_node(0, {0}, frames << kFrameShift)
               .add_node(1, {1}, frames << kFrameShift)
               .build();
  EXPECT_TRUE(t.has_value());
  return std::move(t).value();
}

// A CPU id the test sets; hooks.current_cpu reads it.
struct FakeCpu {
  std::atomic<std::uint32_t> cpu{0};
  static std::uint32_t read(void* ctx) {
    return static_cast<FakeCpu*>(ctx)->cpu.load(std::memory_order_relaxed);
  }
};

inline PlatformConfig frame_only(FakeCpu* cpu = nullptr) {
  PlatformConfig pc;
  pc.mode = MemoryMode::frame_only;
  if (cpu) {
    pc.hooks.ctx = cpu;
    pc.hooks.current_cpu = &FakeCpu::read;
  }
  return pc;
}

inline std::unique_ptr<PageAllocator> make(const Topology& t, const PlatformConfig& pc = {},
                                           const HeapConfig& hc = {}) {
  auto r = PageAllocator::create(t, pc, hc);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(r).value() : nullptr;
}

inline AllocRequest req(unsigned order, NodeId node = kNoNode, std::uint32_t flags = 0,
                        OwnerId owner = 1) {
  AllocRequest r;
  r.order = order;
  r.node = node;
  r.flags = flags;
  r.owner = owner;
  return r;
}

}  // namespace numaheap::test
