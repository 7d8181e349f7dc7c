// Guest memory inside the NUMA guest: populate a two-vnode guest in
// host-memory mode and let the kernel confirm every page of each vnode is
// on that vnode's pnode.
#include <numaif.h>

#include <cerrno>
#include <string>
#include <vector>

#include "numaheap/guest_memory.h"
#include "vm_checks.h"

namespace numaheap::vmtest {

void run_guest_checks(const Topology& live) {
  constexpr std::uint64_t kNodeHeap = 32ull << 20, kVnode = 12ull << 20;
  TopologyBuilder b("vm-guest-heaps");
  for (const auto& n : live.nodes()) b.add_node(n.id, n.cpus, n.has_memory() ? kNodeHeap : 0);
  for (const auto& a : live.nodes())
    for (const auto& c : live.nodes())
      if (live.raw_distance(a.id, c.id)) b.set_distance(a.id, c.id, live.raw_distance(a.id, c.id));
  auto topo = b.build();
  if (!topo || topo->memory_nodes().count() < 2) {
    report(false, "guest checks need two memory nodes", topo ? "" : topo.error().message);
    return;
  }
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  auto pa = PageAllocator::create(*topo, pc);
  report(pa.has_value(), "host-memory allocator for the guest checks", pa ? "" : pa.error().message);
  if (!pa) return;
  // vnode 0 on the last memory node, vnode 1 on the first: not simply 0, 1.
  const NodeId p0 = topo->memory_nodes().last(), p1 = topo->memory_nodes().first();
  GuestSpec g;
  g.name = "vm-guest";
  g.memory_bytes = 2 * kVnode;
  g.vcpus = 2;
  g.vnodes = {VNodeSpec{kVnode, {0}, p0, {}}, VNodeSpec{kVnode, {1}, p1, {}}};
  PlacementOptions po;
  po.watermark_bytes = 0;  // the heaps are small on purpose
  po.watermark_fraction = 0;
  Placer placer(*topo, po);
  auto placement = placer.place(g, placer.idle_usage());
  report(placement.has_value(), "two-vnode guest placed", placement ? "" : placement.error().message);
  if (!placement) return;
  auto gm = GuestMemory::create(**pa, g, *placement, 42);
  report(gm.has_value(), "guest memory created", gm ? "" : gm.error().message);
  if (!gm) return;
  auto rep = (*gm)->populate();
  report(rep.has_value() && rep->striped.empty(), "guest populated without striping",
         rep ? "" : rep.error().message);
  if (!rep) return;
  for (const auto& r : (*gm)->layout()) {
    std::vector<void*> pages;
    for (Gfn gfn = r.first; gfn < r.first + r.pages; ++gfn) {
      auto* p = static_cast<volatile std::uint64_t*>((**pa).frame_address((*gm)->lookup(gfn).mfn));
      if (!p) break;
      p[0] = gfn;  // the guest writes its memory; the kernel places the page
      pages.push_back(const_cast<std::uint64_t*>(p));
    }
    std::vector<int> status(pages.size(), -1);
    long rc = move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0);
    std::size_t wrong = 0, intact = 0;
    for (std::size_t i = 0; i < pages.size(); ++i) {
      if (status[i] != static_cast<int>(r.pnode)) ++wrong;
      if (static_cast<std::uint64_t*>(pages[i])[0] == r.first + i) ++intact;
    }
    report(rc == 0 && pages.size() == r.pages && wrong == 0 && intact == pages.size(),
           "vnode " + std::to_string(r.vnode) + ": all " + std::to_string(r.pages) +
               " pages on pnode " + std::to_string(r.pnode) + " per move_pages",
           rc ? "move_pages: " + std::to_string(errno) : std::to_string(wrong) + " misplaced");
  }
  report((*gm)->destroy().has_value(), "guest destroyed", "");
  auto st0 = (**pa).stats(p0);
  report(st0 && st0->used == 0 && st0->dirty == 0, "destroy left node " + std::to_string(p0) + " clean",
         "");
}

}  // namespace numaheap::vmtest
