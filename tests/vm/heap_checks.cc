// Page allocator checks inside the NUMA guest, in host-memory mode: the
// kernel's move_pages(2) query -- not numaheap's bookkeeping -- says where
// every page really is.
#include <numaif.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "numaheap/page_allocator.h"
#include "vm_checks.h"

namespace numaheap::vmtest {

namespace {

constexpr std::uint64_t kHeapBytes = 32ull << 20;  // per memory node
constexpr OwnerId kOwner = 7;

// Node of each page according to the kernel (-errno for pages it cannot
// tell, e.g. -ENOENT for pages never touched).
std::vector<int> kernel_nodes(const std::vector<void*>& pages) {
  std::vector<int> status(pages.size(), -1);
  const std::size_t batch = 4096;
  for (std::size_t i = 0; i < pages.size(); i += batch) {
    std::size_t n = std::min(batch, pages.size() - i);
    std::vector<void*> p(pages.begin() + static_cast<std::ptrdiff_t>(i),
                         pages.begin() + static_cast<std::ptrdiff_t>(i + n));
    if (move_pages(0, n, p.data(), nullptr, status.data() + i, 0) != 0)
      for (std::size_t k = 0; k < n; ++k) status[i + k] = -errno;
  }
  return status;
}

int kernel_node(void* page) {
  std::vector<void*> one{page};
  return kernel_nodes(one)[0];
}

// The live topology with small heaps: the guest's nodes hold 96-256 MiB and
// the kernel needs some of it.
Result<Topology, Error> small_heaps(const Topology& live, bool include_memoryless_as_memory) {
  TopologyBuilder b("vm-small-heaps");
  for (const auto& n : live.nodes()) {
    bool mem = n.has_memory() || include_memoryless_as_memory;
    b.add_node(n.id, n.cpus, mem ? kHeapBytes : 0, mem ? kHeapBytes : 0);
  }
  for (const auto& a : live.nodes())
    for (const auto& c : live.nodes())
      if (live.raw_distance(a.id, c.id)) b.set_distance(a.id, c.id, live.raw_distance(a.id, c.id));
  return b.build();
}

}  // namespace

void run_heap_checks(const Topology& live) {
  auto topo = small_heaps(live, false);
  report(topo.has_value(), "small-heap topology builds", topo ? "" : topo.error().message);
  if (!topo) return;
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  auto heap = PageAllocator::create(*topo, pc);
  report(heap.has_value(), "host-memory allocator creates (mbind per node)",
         heap ? "" : heap.error().message);
  if (!heap) return;
  PageAllocator& pa = **heap;

  // 1. Every page of every node heap is on its node.
  for (const auto& n : topo->nodes()) {
    if (!n.has_memory()) continue;
    std::vector<void*> pages;
    for (const auto& r : n.frames)
      for (Mfn m = r.first_mfn; m < r.first_mfn + r.count; ++m) {
        auto* p = static_cast<volatile unsigned char*>(pa.frame_address(m));
        if (!p) continue;
        p[0] = 1;  // fault it in under the node's binding
        pages.push_back(const_cast<unsigned char*>(p));
      }
    auto where = kernel_nodes(pages);
    std::size_t wrong = 0;
    int example = 0;
    for (int w : where)
      if (w != static_cast<int>(n.id)) {
        if (!wrong) example = w;
        ++wrong;
      }
    report(!pages.empty() && wrong == 0,
           "node " + std::to_string(n.id) + ": all " + std::to_string(pages.size()) +
               " heap pages on the node per move_pages",
           wrong ? std::to_string(wrong) + " pages elsewhere (e.g. " + std::to_string(example) + ")" : "");
  }

  // 2. Exact-node allocations land on the node.
  for (const auto& n : topo->nodes()) {
    if (!n.has_memory()) continue;
    AllocRequest req{0, n.id, AllocFlags::exact_node, kOwner, {}};
    auto a = pa.alloc(req);
    bool ok = a.has_value() && a->node == n.id;
    int kn = ok ? kernel_node(pa.frame_address(a->mfn)) : -1;
    report(ok && kn == static_cast<int>(n.id), "exact-node allocation on node " + std::to_string(n.id),
           ok ? "kernel says node " + std::to_string(kn) : "alloc failed");
    if (a) (void)pa.free(a->mfn, 0, kOwner);
  }

  // 3. Fallback follows the distance order: fill one node, the next
  //    allocation preferring it comes from its nearest neighbour.
  NodeId first = topo->memory_nodes().first();
  auto order = topo->fallback_order(first);
  if (order.size() >= 2) {
    // Frames freed above may sit in another CPU's cache (this thread can
    // move between vCPUs); return them so "full" means full.
    pa.drain_all();
    std::vector<Allocation> held;
    Allocation spill{};
    for (int i = 0; i < 100000; ++i) {
      auto a = pa.alloc(AllocRequest{0, first, 0, kOwner, {}});
      if (!a) break;
      if (a->node != first) {
        spill = *a;
        break;
      }
      held.push_back(*a);
    }
    int kn = spill.mfn == kInvalidMfn ? -1 : kernel_node(pa.frame_address(spill.mfn));
    report(spill.node == order[1] && kn == static_cast<int>(order[1]),
           "fallback from full node " + std::to_string(first) + " goes to nearest node " +
               std::to_string(order[1]),
           "got node " + std::to_string(static_cast<int>(spill.node)) + ", kernel says " + std::to_string(kn));
    // Exact-node on the full node fails cleanly. Frames another vCPU's
    // cache refilled while we filled may still come back first (exact-node
    // drains caches before it gives up): take them, then it must fail.
    Result<Allocation> exact = Errc::busy;
    int from_caches = 0;
    for (; from_caches < 4096; ++from_caches) {
      exact = pa.alloc(AllocRequest{0, first, AllocFlags::exact_node, kOwner, {}});
      if (!exact) break;
      held.push_back(*exact);
    }
    report(!exact.has_value() && exact.error() == Errc::no_memory,
           "exact-node on a full node fails with no_memory (never falls back)",
           std::to_string(from_caches) + " frames came back from per-CPU caches first");
    if (spill.mfn != kInvalidMfn) (void)pa.free(spill.mfn, 0, kOwner);
    for (const auto& a : held) (void)pa.free(a.mfn, 0, kOwner);
  }

  // 4. Memoryless nodes: exact-node is a clean error, otherwise the nearest
  //    memory node serves, as the kernel confirms.
  for (const auto& n : topo->nodes()) {
    if (n.has_memory()) continue;
    auto exact = pa.alloc(AllocRequest{0, n.id, AllocFlags::exact_node, kOwner, {}});
    report(!exact.has_value(), "exact-node on memoryless node " + std::to_string(n.id) + " fails",
           exact ? "got a frame" : std::string("error ") + errc_name(exact.error()));
    auto near = pa.alloc(AllocRequest{0, n.id, 0, kOwner, {}});
    auto want = topo->fallback_order(n.id);
    int kn = near ? kernel_node(pa.frame_address(near->mfn)) : -1;
    report(near.has_value() && !want.empty() && near->node == want[0] &&
               kn == static_cast<int>(want[0]),
           "memoryless node " + std::to_string(n.id) + " falls back to nearest node " +
               (want.empty() ? std::string("?") : std::to_string(want[0])),
           "kernel says " + std::to_string(kn));
    if (near) (void)pa.free(near->mfn, 0, kOwner);

    // A heap that pretends the memoryless node has memory must not be
    // created: the kernel refuses the binding (numa_alloc_onnode would
    // silently hand back memory from elsewhere).
    auto liar = small_heaps(live, true);
    if (liar) {
      auto bad = PageAllocator::create(*liar, pc);
      report(!bad.has_value(), "host-memory heap on memoryless node " + std::to_string(n.id) + " is refused",
             bad ? "created anyway" : bad.error().message);
    }
  }
  auto inv = pa.check_invariants();
  report(inv.has_value(), "allocator invariants hold", inv ? "" : errc_name(inv.error()));
}

}  // namespace numaheap::vmtest
