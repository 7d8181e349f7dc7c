// The guest part of the C API (include/numaheap/numaheap_guest.h).
#include "numaheap/numaheap_guest.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "allocator/heap/c_handles.h"
#include "numaheap/guest_memory.h"
#include "numaheap/placement.h"

struct numaheap_guest {
  std::unique_ptr<numaheap::GuestMemory> gm;
  numaheap::Placement placement;
};

namespace {

using namespace numaheap;

int fail(const Error& e, char* err, std::size_t len) {
  if (err && len) std::snprintf(err, len, "%s", e.message.c_str());
  return static_cast<int>(e.code);
}

}  // namespace

extern "C" {

int numaheap_guest_create(numaheap_heap* h, const numaheap_guest_spec* cs, uint32_t owner,
                          numaheap_guest** out, char* err, size_t err_len) {
  if (!h || !cs || !out) return fail({Errc::invalid_argument, "null argument"}, err, err_len);
  if (cs->vnode_count && !cs->vnodes) return fail({Errc::invalid_argument, "vnodes is null"}, err, err_len);
  GuestSpec spec;
  spec.name = cs->name ? cs->name : "guest";
  spec.memory_bytes = cs->memory_bytes;
  spec.vcpus = cs->vcpus;
  for (std::size_t v = 0; v < cs->vnode_count; ++v) {
    const numaheap_vnode_spec& in = cs->vnodes[v];
    if (in.vcpu_count && !in.vcpus) return fail({Errc::invalid_argument, "vnode vcpus is null"}, err, err_len);
    VNodeSpec vn;
    vn.memory_bytes = in.memory_bytes;
    vn.pnode = in.pnode;
    vn.vcpus.assign(in.vcpus, in.vcpu_count);
    spec.vnodes.push_back(std::move(vn));
  }
  PageAllocator& pa = *h->pa;
  const Topology& topo = pa.topology();
  Placer placer(topo);
  std::vector<NodeUsage> usage = placer.idle_usage();
  for (std::size_t i = 0; i < usage.size(); ++i) {
    auto st = pa.stats(topo.node_at(i).id);
    if (!st) continue;
    std::uint64_t avail = st->free + st->cached;
    avail = avail > st->claimed ? avail - st->claimed : 0;
    usage[i].free_bytes = avail << kFrameShift;
  }
  auto placement = placer.place(spec, usage);
  if (!placement) return fail(placement.error(), err, err_len);
  GuestOptions opts;
  opts.allow_striping = cs->allow_striping != 0;
  auto gm = GuestMemory::create(pa, spec, *placement, owner, opts);
  if (!gm) return fail(gm.error(), err, err_len);
  auto* g = new (std::nothrow) numaheap_guest{std::move(*gm), std::move(*placement)};
  if (!g) return fail({Errc::no_memory, "out of memory"}, err, err_len);
  *out = g;
  return 0;
}

int numaheap_guest_populate(numaheap_guest* g, char* err, size_t err_len) {
  if (!g) return fail({Errc::invalid_argument, "null guest"}, err, err_len);
  auto r = g->gm->populate();
  return r ? 0 : fail(r.error(), err, err_len);
}

int numaheap_guest_balloon_down(numaheap_guest* g, uint64_t pages, uint64_t* done) {
  if (!g) return static_cast<int>(Errc::invalid_argument);
  auto r = g->gm->balloon_down(pages);
  if (!r) return static_cast<int>(r.error().code);
  if (done) *done = *r;
  return 0;
}

int numaheap_guest_balloon_up(numaheap_guest* g, uint64_t pages) {
  if (!g) return static_cast<int>(Errc::invalid_argument);
  auto r = g->gm->balloon_up(pages);
  return r ? 0 : static_cast<int>(r.error().code);
}

int numaheap_guest_lookup(const numaheap_guest* g, uint64_t gfn, uint64_t* mfn, uint32_t* flags) {
  if (!g || !mfn) return static_cast<int>(Errc::invalid_argument);
  P2mEntry e = g->gm->lookup(gfn);
  if (flags) *flags = e.flags;
  if (!e.present()) return static_cast<int>(Errc::not_present);
  *mfn = e.mfn;
  return 0;
}

uint64_t numaheap_guest_ram_pages(const numaheap_guest* g) { return g ? g->gm->ram_pages() : 0; }

uint64_t numaheap_guest_present_pages(const numaheap_guest* g) { return g ? g->gm->present_pages() : 0; }

int numaheap_guest_relayout(numaheap_guest* g, const numaheap_guest_range* ranges, size_t count) {
  if (!g || (!ranges && count)) return NUMAHEAP_E_INVALID_ARGUMENT;
  std::vector<numaheap::GuestRange> l;
  for (std::size_t k = 0; k < count; ++k) l.push_back({ranges[k].first, ranges[k].pages, ranges[k].pnode, ranges[k].vnode});
  auto st = g->gm->relayout(l);
  return st ? NUMAHEAP_OK : static_cast<int>(st.error());
}

uint32_t numaheap_guest_home_node_of(const numaheap_guest* g, uint64_t gfn) {
  return g ? g->gm->home_node_of(gfn) : numaheap::kNoNode;
}

uint64_t numaheap_guest_layout_generation(const numaheap_guest* g) {
  return g ? g->gm->layout_generation() : 0;
}

size_t numaheap_guest_nodes(const numaheap_guest* g, uint32_t* nodes, size_t max) {
  if (!g || !nodes) return 0;
  std::size_t n = 0;
  if (!g->placement.vnode_pnodes.empty()) {
    for (NodeId p : g->placement.vnode_pnodes)
      if (n < max) nodes[n++] = p;
  } else {
    for (const auto& s : g->placement.memory)
      if (n < max) nodes[n++] = s.node;
  }
  return n;
}

int numaheap_guest_destroy(numaheap_guest* g) {
  if (!g) return 0;
  Status st = g->gm->destroy();
  if (!st && st.error() == Errc::busy) return static_cast<int>(st.error());  // nothing done: keep the handle
  delete g;  // invalid_frame: released all it could (see numaheap_guest_lost_frames)
  return st ? 0 : static_cast<int>(st.error());
}

int numaheap_guest_check(const numaheap_guest* g, int full) {
  if (!g) return static_cast<int>(Errc::invalid_argument);
  Status st = full ? g->gm->check_frames() : g->gm->check_invariants();
  return st ? 0 : static_cast<int>(st.error());
}

uint64_t numaheap_guest_lost_frames(const numaheap_guest* g) { return g ? g->gm->lost_frames() : 0; }

}  // extern "C"
