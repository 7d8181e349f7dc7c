// threads_n for numaheap (threads_bench.h): host-memory mode, one numaheap
// node per NUMA node of the CPUs in use (ids and CPU lists as the host's
// libnuma gives them), each thread asking for its CPU's node with
// node = kNoNode ("the calling CPU's node", which the topology maps; an
// explicit node id, even the same one, takes the slow path, not the
// per-CPU cache), preferred, not exact. Owner 1 for every thread (one
// guest, freed on any CPU), no_scrub as in numaheap_bench.cc. Bulk:
// alloc_bulk/free_bulk of kBulk frames.
#include <cstdio>
#include <map>
#include <memory>

#include "numaheap/page_allocator.h"
#include "threads_bench.h"

namespace {

using numaheap::bench::Cpu;
using numaheap::bench::CpuMap;

std::unique_ptr<numaheap::PageAllocator> g_pa;

struct Numaheap {
  static constexpr const char* kName = "numaheap";
  using Handle = numaheap::Mfn;
  struct Ctx {
    numaheap::AllocRequest req;
  };
  // Reserved per node (host memory, untouched until used): room for each
  // of its threads' mixed window and cross-CPU ring, plus slack.
  static constexpr std::uint64_t kPerThread = std::uint64_t{64} << 20;
  static constexpr std::uint64_t kPerNode = std::uint64_t{256} << 20;

  static bool setup(const CpuMap& cpus) {
    std::map<int, std::vector<numaheap::CpuId>> by_node;
    for (const Cpu& c : cpus) {
      auto& v = by_node[c.node];
      if (std::find(v.begin(), v.end(), c.cpu) == v.end()) v.push_back(c.cpu);
    }
    numaheap::TopologyBuilder b("bench:threads");
    for (const auto& [node, list] : by_node)
      b.add_node(static_cast<numaheap::NodeId>(node), list, kPerNode + kPerThread * list.size());
    auto topo = b.build();
    if (!topo) {
      std::fprintf(stderr, "numaheap: %s\n", topo.error().message.c_str());
      return false;
    }
    numaheap::PlatformConfig pc;
    pc.mode = numaheap::MemoryMode::host_memory;
    pc.require_bind = false;
    auto pa = numaheap::PageAllocator::create(*topo, pc);
    if (!pa) {
      std::fprintf(stderr, "numaheap: %s\n", pa.error().message.c_str());
      return false;
    }
    g_pa = std::move(pa).value();
    return true;
  }
  static Ctx context(const Cpu&) {
    Ctx ctx;
    ctx.req.node = numaheap::kNoNode;  // the calling (pinned) CPU's node
    ctx.req.flags = numaheap::AllocFlags::no_scrub;
    ctx.req.owner = 1;
    return ctx;
  }
  static bool alloc(Ctx& c, unsigned order, Handle& h) {
    c.req.order = order;
    auto a = g_pa->alloc(c.req);
    if (!a) return false;
    h = a->mfn;
    return true;
  }
  static void release(Ctx& c, Handle h, unsigned order) { (void)g_pa->free(h, order, c.req.owner); }
  static bool alloc_bulk(Ctx& c, std::span<Handle> out) {
    c.req.order = 0;
    return static_cast<bool>(g_pa->alloc_bulk(c.req, out));
  }
  static void free_bulk(Ctx& c, std::span<const Handle> in) { (void)g_pa->free_bulk(in, c.req.owner); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::threads_main<Numaheap>(argc, argv); }
