// The host part of the guest C API: placement (include/numaheap/
// numaheap_place.h), numaheap_guest_create (auto placement) and the control
// domain (include/numaheap/numaheap_guest.h). Toolstack code, in
// libnumaheap.a only.
#include <new>
#include <string>
#include <vector>

#include "numaheap/guest_memory.h"
#include "numaheap/guest_spec.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/numaheap_place.h"
#include "numaheap/placement.h"

#include "allocator/guest/c_api_guest.h"
#include "allocator/heap/c_handles.h"

namespace {

using namespace numaheap;
using capi::fail;

std::vector<NodeUsage> usage_of(const Topology& topo, const numaheap_node_usage* in, std::size_t n,
                                bool& ok) {
  ok = true;
  if (!in) return Placer(topo).idle_usage();
  std::vector<NodeUsage> u(topo.node_count());
  if (n != topo.node_count()) {
    ok = false;
    return u;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (in[i].node != topo.node_at(i).id) ok = false;
    u[i].free_bytes = in[i].free_bytes;
    u[i].vcpus = in[i].vcpus;
    u[i].utilization = in[i].utilization;
  }
  return u;
}

PlacementHints hints_of(const numaheap_placement_hints* h) {
  PlacementHints out;
  if (h) {
    out.affinity_nodes = capi::mask_of(h->affinity_nodes);
    out.anti_affinity_nodes = capi::mask_of(h->anti_affinity_nodes);
  }
  return out;
}

// Usage from the heap's counters: what is free and not claimed.
std::vector<NodeUsage> heap_usage(const PageAllocator& pa) {
  const Topology& topo = pa.topology();
  std::vector<NodeUsage> usage = Placer(topo).idle_usage();
  for (std::size_t i = 0; i < usage.size(); ++i) {
    auto st = pa.stats(topo.node_at(i).id);
    if (!st) continue;
    std::uint64_t avail = st->free + st->cached;
    avail = avail > st->claimed ? avail - st->claimed : 0;
    usage[i].free_bytes = avail << kFrameShift;
  }
  return usage;
}

std::size_t copy_usage(const Topology& topo, const std::vector<NodeUsage>& u, numaheap_node_usage* out,
                       std::size_t max) {
  for (std::size_t i = 0; i < u.size() && out && i < max; ++i)
    out[i] = {topo.node_at(i).id, u[i].free_bytes, u[i].vcpus, u[i].utilization};
  return u.size();
}

// Places and creates a guest from a spec (shared by guest_create and the
// control domain).
int create_placed_by_placer(numaheap_heap* h, const GuestSpec& spec, const GuestOptions& opts,
                            std::uint32_t owner, numaheap_guest** out, char* err, std::size_t err_len) {
  PageAllocator& pa = *h->pa;
  Placer placer(pa.topology());
  const std::vector<NodeUsage> usage = heap_usage(pa);
  auto placement = placer.place(spec, usage);
  if (!placement) return fail(placement.error(), err, err_len);
  auto gm = GuestMemory::create(pa, spec, *placement, owner, opts);
  if (!gm) return fail(gm.error(), err, err_len);
  std::vector<std::uint32_t> nodes;
  if (!placement->vnode_pnodes.empty())
    nodes.assign(placement->vnode_pnodes.begin(), placement->vnode_pnodes.end());
  else
    for (const auto& s : placement->memory) nodes.push_back(s.node);
  return capi::wrap_guest(std::move(*gm), nodes, out, err, err_len);
}

}  // namespace

extern "C" {

size_t numaheap_idle_usage(const numaheap_topology* t, numaheap_node_usage* out, size_t max) {
  if (!t) return 0;
  return copy_usage(t->topo, Placer(t->topo).idle_usage(), out, max);
}

size_t numaheap_heap_usage(const numaheap_heap* h, numaheap_node_usage* out, size_t max) {
  if (!h) return 0;
  return copy_usage(h->pa->topology(), heap_usage(*h->pa), out, max);
}

int numaheap_place(const numaheap_topology* t, const numaheap_guest_spec* cs,
                   const numaheap_node_usage* usage, size_t usage_count,
                   const numaheap_placement_hints* hints, numaheap_placement* out, char* err,
                   size_t err_len) {
  if (!t || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if ((out->memory_cap && !out->memory) || (out->vcpu_cap && !out->vcpu_nodes) ||
      (out->vnode_cap && !out->vnode_pnodes))
    return fail(Errc::invalid_argument, "placement array is null", err, err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  bool ok = true;
  const std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return fail(Errc::invalid_argument, "usage must list every node in topology order", err, err_len);
  auto p = Placer(t->topo).place(spec, u, hints_of(hints));
  if (!p) return fail(p.error(), err, err_len);
  capi::mask_out(p->nodes, &out->nodes);
  out->memory_count = p->memory.size();
  for (std::size_t i = 0; i < p->memory.size() && i < out->memory_cap; ++i)
    out->memory[i] = {p->memory[i].node, p->memory[i].bytes};
  out->vcpu_count = p->vcpu_nodes.size();
  for (std::size_t i = 0; i < p->vcpu_nodes.size() && i < out->vcpu_cap; ++i) out->vcpu_nodes[i] = p->vcpu_nodes[i];
  out->vnode_count = p->vnode_pnodes.size();
  for (std::size_t i = 0; i < p->vnode_pnodes.size() && i < out->vnode_cap; ++i)
    out->vnode_pnodes[i] = p->vnode_pnodes[i];
  out->cost = p->cost;
  capi::copy_text(std::string_view(p->reason.data(), p->reason.size()), out->reason, sizeof out->reason);
  return NUMAHEAP_OK;
}

int numaheap_place_cost(const numaheap_topology* t, const numaheap_guest_spec* cs,
                        const numaheap_nodemask* set, const numaheap_node_usage* usage,
                        size_t usage_count, const numaheap_placement_hints* hints, double* cost) {
  if (!t || !cs || !set || !cost) return NUMAHEAP_E_INVALID_ARGUMENT;
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, nullptr, 0); rc) return rc;
  bool ok = true;
  const std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return NUMAHEAP_E_INVALID_ARGUMENT;
  *cost = Placer(t->topo).set_cost(spec, capi::mask_of(set), u, hints_of(hints));
  return NUMAHEAP_OK;
}

int numaheap_place_commit(const numaheap_topology* t, const numaheap_placement* p,
                          numaheap_node_usage* usage, size_t usage_count) {
  if (!t || !p || !usage || usage_count != t->topo.node_count()) return NUMAHEAP_E_INVALID_ARGUMENT;
  if ((p->memory_count && !p->memory) || (p->vcpu_count && !p->vcpu_nodes)) return NUMAHEAP_E_INVALID_ARGUMENT;
  bool ok = true;
  std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return NUMAHEAP_E_INVALID_ARGUMENT;
  Placement pl;
  for (std::size_t i = 0; i < p->memory_count && i < p->memory_cap; ++i)
    pl.memory.push_back({p->memory[i].node, p->memory[i].bytes});
  for (std::size_t i = 0; i < p->vcpu_count && i < p->vcpu_cap; ++i) pl.vcpu_nodes.push_back(p->vcpu_nodes[i]);
  Placer(t->topo).commit(pl, u);
  copy_usage(t->topo, u, usage, usage_count);
  return NUMAHEAP_OK;
}

int numaheap_guest_create(numaheap_heap* h, const numaheap_guest_spec* cs, uint32_t owner,
                          numaheap_guest** out, char* err, size_t err_len) {
  if (!h || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  return create_placed_by_placer(h, spec, capi::guest_options_from_c(*cs), owner, out, err, err_len);
}

int numaheap_control_domain_create(numaheap_heap* h, uint64_t total_bytes, uint32_t owner,
                                   const char* name, numaheap_guest** out, char* err,
                                   size_t err_len) {
  if (!h || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  auto spec = control_domain_spec(h->pa->topology(), total_bytes, name ? name : "dom0");
  if (!spec) return fail(spec.error(), err, err_len);
  return create_placed_by_placer(h, *spec, GuestOptions{}, owner, out, err, err_len);
}

}  // extern "C"
