// The C API's opaque handles, shared by the C API files of every layer
// (allocator/heap/c_api.cc, allocator/guest/c_api.cc, ...). Internal.
#pragma once

#include <memory>
#include <vector>

#include "numaheap/numaheap.h"
#include "numaheap/page_allocator.h"
#include "numaheap/topology.h"

struct numaheap_topology {
  numaheap::Topology topo;
};

struct numaheap_topology_builder {
  struct Node {
    std::uint32_t id;
    std::vector<numaheap::CpuId> cpus;
    std::uint64_t bytes;
    std::vector<numaheap::FrameRange> frames;
  };
  std::vector<Node> nodes;
  struct Dist { std::uint32_t from, to, d; };
  std::vector<Dist> distances;
};

struct numaheap_heap {
  std::unique_ptr<numaheap::PageAllocator> pa;
};
