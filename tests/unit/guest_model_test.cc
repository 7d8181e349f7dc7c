// rapidcheck stateful test of guest memory against a plain model: create +
// populate, balloon down/up, device buffers and destroy of many guests on a
// small sparse host. After every command: each frame is owned by at most one
// guest, every guest page sits on its vnode's pnode, per-node use equals the
// sum over guests, and both the allocator and each guest pass their checks.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <set>

#include "numaheap/guest_memory.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kPage = kFrameSize;

// Sparse ids, one memoryless node, nodes of 8 MiB so guests run out.
Topology host_topology() {
  TopologyBuilder b("model-host");
  b.add_node(0, {0, 1}, 8u << 20).add_node(2, {2}, 8u << 20).add_node(5, {3}, 0).add_node(9, {}, 6u << 20);
  const std::uint32_t rows[4][4] = {{10, 20, 20, 30}, {20, 10, 30, 20}, {20, 30, 10, 20}, {30, 20, 20, 10}};
  const NodeId ids[4] = {0, 2, 5, 9};
  for (int i = 0; i < 4; ++i) b.set_distance_row(ids[i], rows[i]);
  return std::move(b.build()).value();
}

struct GuestModel {
  std::uint64_t ram_pages = 0;
  std::uint64_t ballooned = 0;
  std::uint64_t device_pages = 0;
};

// Whether a guest fits depends on the placer and the allocator, which the
// generator cannot foresee; so commands name guest *slots*, the rapidcheck
// model is empty, and the reference model of each guest lives beside the
// SUT, updated from what each operation reported and checked against it.
struct Model {};
constexpr int kSlots = 5;

struct Slot {
  std::unique_ptr<GuestMemory> gm;
  GuestModel model;
};

struct Sut {
  Topology topo = host_topology();
  std::unique_ptr<PageAllocator> pa;
  std::map<int, Slot> slots;
  OwnerId next_owner = 1;
  Sut() { pa = std::move(PageAllocator::create(topo)).value(); }
};

void check_all(Sut& sut) {
  RC_ASSERT(sut.pa->check_invariants().has_value());
  std::map<NodeId, std::uint64_t> used_by_guests;
  std::set<Mfn> seen;
  for (const auto& [slot, s] : sut.slots) {
    const GuestMemory& gm = *s.gm;
    const GuestModel& m = s.model;
    RC_ASSERT(gm.check_invariants().has_value());
    RC_ASSERT(gm.present_pages() == m.ram_pages - m.ballooned + m.device_pages);
    for (Gfn gfn = 0; gfn < gm.gfn_limit(); ++gfn) {
      P2mEntry e = gm.lookup(gfn);
      if (!e.present()) continue;
      RC_ASSERT(seen.insert(e.mfn).second);  // no frame in two guests / twice
      NodeId node = sut.pa->node_of(e.mfn);
      if (gfn < gm.ram_pages()) RC_ASSERT(node == gm.home_node_of(gfn));
      ++used_by_guests[node];
    }
  }
  for (const auto& n : sut.topo.nodes()) {
    auto st = sut.pa->stats(n.id);
    RC_ASSERT(st.has_value());
    RC_ASSERT(st->used == used_by_guests[n.id]);
    RC_ASSERT(st->claimed == 0u);  // claims never outlive an operation
  }
}

struct Create : rc::state::Command<Model, Sut> {
  int slot = 0;
  GuestSpec spec;
  Create() {
    slot = *rc::gen::inRange(0, kSlots);
    spec.name = "g";
    spec.vcpus = *rc::gen::inRange<std::uint32_t>(1, 4);
    const std::size_t vnodes = *rc::gen::inRange<std::size_t>(0, 3);
    const NodeId pnodes[] = {0, 2, 9, 5 /* memoryless: invalid */};
    if (vnodes == 0) {
      spec.memory_bytes = *rc::gen::inRange<std::uint64_t>(1, 1200) * kPage;
    } else {
      for (std::size_t v = 0; v < vnodes; ++v) {
        VNodeSpec vn;
        vn.memory_bytes = *rc::gen::inRange<std::uint64_t>(1, 700) * kPage;
        vn.pnode = *rc::gen::element(pnodes[0], pnodes[1], pnodes[2], pnodes[3], kNoNode);
        spec.memory_bytes += vn.memory_bytes;
        spec.vnodes.push_back(vn);
      }
      for (std::uint32_t c = 0; c < spec.vcpus; ++c) spec.vnodes[c % vnodes].vcpus.push_back(c);
    }
    if (*rc::gen::inRange(0, 3) == 0) spec.devices = {DeviceSpec{"dev", *rc::gen::element(NodeId{0}, NodeId{2}, NodeId{9})}};
  }
  void run(const Model&, Sut& sut) const override {
    if (sut.slots.count(slot)) return;  // occupied: nothing to do
    const OwnerId owner = sut.next_owner++;
    std::vector<std::uint64_t> used_before;
    for (const auto& n : sut.topo.nodes()) used_before.push_back(sut.pa->stats(n.id)->used);
    PlacementOptions po;
    po.watermark_bytes = 0;
    po.watermark_fraction = 0;
    Placer placer(sut.topo, po);
    std::vector<NodeUsage> usage = placer.idle_usage();
    for (std::size_t i = 0; i < usage.size(); ++i) {
      auto st = sut.pa->stats(sut.topo.node_at(i).id);
      usage[i].free_bytes = (st->free + st->cached) << kFrameShift;
    }
    auto p = placer.place(spec, usage);
    bool kept = false;
    if (p) {
      GuestOptions go;
      go.device_region_pages = 256;  // keeps the per-step p2m walks short
      auto gm = GuestMemory::create(*sut.pa, spec, *p, owner, go);
      RC_ASSERT(gm.has_value());
      if ((*gm)->populate()) {
        GuestModel m{(*gm)->ram_pages(), 0, 0};
        sut.slots[slot] = Slot{std::move(*gm), m};
        kept = true;
      }
    }
    RC_TAG(kept ? "create: kept" : "create: did not fit");
    if (!kept)  // all or nothing: the host is exactly as before
      for (std::size_t i = 0; i < used_before.size(); ++i)
        RC_ASSERT(sut.pa->stats(sut.topo.node_at(i).id)->used == used_before[i]);
    check_all(sut);
  }
  void show(std::ostream& os) const override {
    os << "Create(slot " << slot << ", " << spec.memory_bytes / kPage << " pages, " << spec.vnodes.size()
       << " vnodes)";
  }
};

struct BalloonDown : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, kSlots);
  std::uint64_t pages = *rc::gen::inRange<std::uint64_t>(1, 800);
  void run(const Model&, Sut& sut) const override {
    auto it = sut.slots.find(slot);
    if (it == sut.slots.end()) return;
    GuestModel& g = it->second.model;
    auto r = it->second.gm->balloon_down(pages);
    RC_ASSERT(r.has_value());
    RC_ASSERT(*r == std::min(pages, g.ram_pages - g.ballooned));
    g.ballooned += *r;
    RC_TAG("balloon down");
    check_all(sut);
  }
  void show(std::ostream& os) const override { os << "BalloonDown(slot " << slot << ", " << pages << ")"; }
};

struct BalloonUp : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, kSlots);
  std::uint64_t pages = *rc::gen::inRange<std::uint64_t>(1, 800);
  void run(const Model&, Sut& sut) const override {
    auto it = sut.slots.find(slot);
    if (it == sut.slots.end()) return;
    GuestModel& g = it->second.model;
    auto r = it->second.gm->balloon_up(pages);
    if (pages > g.ballooned) RC_ASSERT(!r.has_value());
    if (r) {
      RC_ASSERT(*r == pages);
      g.ballooned -= pages;
      RC_TAG("balloon up");
    }
    check_all(sut);
  }
  void show(std::ostream& os) const override { os << "BalloonUp(slot " << slot << ", " << pages << ")"; }
};

struct DeviceBuf : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, kSlots);
  std::uint64_t pages = *rc::gen::inRange<std::uint64_t>(1, 40);
  void run(const Model&, Sut& sut) const override {
    auto it = sut.slots.find(slot);
    if (it == sut.slots.end()) return;
    GuestMemory& gm = *it->second.gm;
    auto b = gm.alloc_device_buffer(0, pages);
    if (gm.spec().devices.empty()) RC_ASSERT(!b.has_value());
    if (b) {
      RC_ASSERT(sut.pa->node_of(b->mfn) == gm.spec().devices[0].host_node);
      RC_ASSERT(b->pages >= pages);
      it->second.model.device_pages += b->pages;
      RC_TAG("device buffer");
    }
    check_all(sut);
  }
  void show(std::ostream& os) const override { os << "DeviceBuf(slot " << slot << ", " << pages << ")"; }
};

struct Destroy : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, kSlots);
  void run(const Model&, Sut& sut) const override {
    auto it = sut.slots.find(slot);
    if (it == sut.slots.end()) return;
    RC_ASSERT(it->second.gm->destroy().has_value());
    sut.slots.erase(it);
    RC_TAG("destroy");
    check_all(sut);
  }
  void show(std::ostream& os) const override { os << "Destroy(slot " << slot << ")"; }
};

}  // namespace

RC_GTEST_PROP(GuestModel, ManyGuestsStayConsistent, ()) {
  Model model;
  Sut sut;
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<Create, Create, BalloonDown, BalloonUp, DeviceBuf,
                                                     Destroy>());
  // Tear down: the host is back to empty and clean.
  for (auto& [slot, s] : sut.slots) RC_ASSERT(s.gm->destroy().has_value());
  sut.pa->drain_all();
  for (const auto& n : sut.topo.nodes()) {
    auto st = sut.pa->stats(n.id);
    RC_ASSERT(st->used == 0u);
    RC_ASSERT(st->dirty == 0u);
  }
  RC_ASSERT(sut.pa->check_frames().has_value());
}
