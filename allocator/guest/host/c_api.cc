// The host part of the guest C API: placement (include/numaheap/
// numaheap_place.h), numaheap_guest_create (auto placement) and the control
// domain (include/numaheap/numaheap_guest.h). Toolstack code, in
// libnumaheap.a only.
#include <chrono>
#include <new>
#include <string>
#include <vector>

#include "numaheap/topology_io.h"

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

std::size_t copy_usage(const Topology& topo, const std::vector<NodeUsage>& u, numaheap_node_usage* out,
                       std::size_t max) {
  for (std::size_t i = 0; i < u.size() && out && i < max; ++i)
    out[i] = {topo.node_at(i).id, u[i].free_bytes, u[i].vcpus, u[i].utilization};
  return u.size();
}

// A C placement's lists as a Placement (for commit / release); false when
// an array is missing or smaller than its count.
bool placement_of(const numaheap_placement& p, Placement& pl) {
  if ((p.memory_count && !p.memory) || (p.vcpu_count && !p.vcpu_nodes)) return false;
  if (p.memory_count > p.memory_cap || p.vcpu_count > p.vcpu_cap) return false;
  pl.nodes = capi::mask_of(&p.nodes);
  for (std::size_t i = 0; i < p.memory_count; ++i) (void)pl.memory.push_back({p.memory[i].node, p.memory[i].bytes});
  for (std::size_t i = 0; i < p.vcpu_count; ++i) (void)pl.vcpu_nodes.push_back(p.vcpu_nodes[i]);
  return pl.ok();
}

int placement_out(const Placement& p, numaheap_placement* out) {
  capi::mask_out(p.nodes, &out->nodes);
  out->memory_count = p.memory.size();
  for (std::size_t i = 0; i < p.memory.size() && i < out->memory_cap; ++i)
    out->memory[i] = {p.memory[i].node, p.memory[i].bytes};
  out->vcpu_count = p.vcpu_nodes.size();
  for (std::size_t i = 0; i < p.vcpu_nodes.size() && i < out->vcpu_cap; ++i) out->vcpu_nodes[i] = p.vcpu_nodes[i];
  out->vnode_count = p.vnode_pnodes.size();
  for (std::size_t i = 0; i < p.vnode_pnodes.size() && i < out->vnode_cap; ++i)
    out->vnode_pnodes[i] = p.vnode_pnodes[i];
  out->vnode_memory_count = p.vnode_memory.size();
  for (std::size_t i = 0; i < p.vnode_memory.size() && i < out->vnode_memory_cap; ++i)
    out->vnode_memory[i] = {p.vnode_memory[i].vnode, p.vnode_memory[i].node, p.vnode_memory[i].bytes};
  out->cost = p.cost;
  capi::copy_text(std::string_view(p.reason.data(), p.reason.size()), out->reason, sizeof out->reason);
  return NUMAHEAP_OK;
}

bool placement_arrays_ok(const numaheap_placement* out) {
  return !((out->memory_cap && !out->memory) || (out->vcpu_cap && !out->vcpu_nodes) ||
           (out->vnode_cap && !out->vnode_pnodes) || (out->vnode_memory_cap && !out->vnode_memory));
}

bool usage_matches(const Topology& topo, const numaheap_node_usage* usage, std::size_t count) {
  if (!usage || count != topo.node_count()) return false;
  for (std::size_t i = 0; i < count; ++i)
    if (usage[i].node != topo.node_at(i).id) return false;
  return true;
}

// Places and creates a guest from a spec (shared by guest_create and the
// control domain).
int create_placed_by_placer(numaheap_heap* h, const GuestSpec& spec, const GuestOptions& opts,
                            const PlacementOptions& popts, std::uint32_t owner, numaheap_guest** out, char* err,
                            std::size_t err_len) {
  PageAllocator& pa = *h->pa;
  Placer placer(pa.topology(), popts);
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

// The C options, checked (NULL: the defaults). A watermark fraction outside
// [0, 1) would keep a whole node (or more) free, or a negative amount.
bool options_of(const numaheap_placement_options* o, PlacementOptions& out, char* err, std::size_t err_len,
                int& rc) {
  out = PlacementOptions{};
  rc = NUMAHEAP_OK;
  if (!o) return true;
  if (!(o->watermark_fraction >= 0 && o->watermark_fraction < 1)) {
    rc = fail(Errc::invalid_argument, "watermark_fraction must be in [0, 1)", err, err_len);
    return false;
  }
  out.watermark_bytes = o->watermark_bytes;
  out.watermark_fraction = o->watermark_fraction;
  return true;
}

}  // namespace

struct numaheap_place_session {
  numaheap::Topology topo;  // for the node ids of numaheap_place_session_usage
  numaheap::PlacementSession session;
};

extern "C" {

void numaheap_placement_options_init(numaheap_placement_options* o) {
  if (!o) return;
  const PlacementOptions d;
  o->watermark_bytes = d.watermark_bytes;
  o->watermark_fraction = d.watermark_fraction;
}

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
  return numaheap_place_ex(t, cs, usage, usage_count, hints, nullptr, out, err, err_len);
}

int numaheap_place_ex(const numaheap_topology* t, const numaheap_guest_spec* cs,
                      const numaheap_node_usage* usage, size_t usage_count,
                      const numaheap_placement_hints* hints, const numaheap_placement_options* opts,
                      numaheap_placement* out, char* err, size_t err_len) {
  if (!t || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  PlacementOptions po;
  if (int rc = 0; !options_of(opts, po, err, err_len, rc)) return rc;
  if (!placement_arrays_ok(out))
    return fail(Errc::invalid_argument, "placement array is null", err, err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  bool ok = true;
  const std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return fail(Errc::invalid_argument, "usage must list every node in topology order", err, err_len);
  auto p = Placer(t->topo, po).place(spec, u, hints_of(hints));
  if (!p) return fail(p.error(), err, err_len);
  return placement_out(*p, out);
}

int numaheap_place_cost(const numaheap_topology* t, const numaheap_guest_spec* cs,
                        const numaheap_nodemask* set, const numaheap_node_usage* usage,
                        size_t usage_count, const numaheap_placement_hints* hints, double* cost) {
  return numaheap_place_cost_ex(t, cs, set, usage, usage_count, hints, nullptr, cost);
}

int numaheap_place_cost_ex(const numaheap_topology* t, const numaheap_guest_spec* cs,
                           const numaheap_nodemask* set, const numaheap_node_usage* usage,
                           size_t usage_count, const numaheap_placement_hints* hints,
                           const numaheap_placement_options* opts, double* cost) {
  if (!t || !cs || !set || !cost) return NUMAHEAP_E_INVALID_ARGUMENT;
  PlacementOptions po;
  if (int rc = 0; !options_of(opts, po, nullptr, 0, rc)) return rc;
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, nullptr, 0); rc) return rc;
  bool ok = true;
  const std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return NUMAHEAP_E_INVALID_ARGUMENT;
  *cost = Placer(t->topo, po).set_cost(spec, capi::mask_of(set), u, hints_of(hints));
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

int numaheap_place_release(const numaheap_topology* t, const numaheap_placement* p,
                           numaheap_node_usage* usage, size_t usage_count) {
  if (!t || !p || !usage_matches(t->topo, usage, usage_count)) return NUMAHEAP_E_INVALID_ARGUMENT;
  Placement pl;
  if (!placement_of(*p, pl)) return NUMAHEAP_E_INVALID_ARGUMENT;
  bool ok = true;
  std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  Placer(t->topo).release(pl, u);
  copy_usage(t->topo, u, usage, usage_count);
  return NUMAHEAP_OK;
}

numaheap_place_session* numaheap_place_session_create(const numaheap_topology* t,
                                                      const numaheap_node_usage* usage,
                                                      size_t usage_count) {
  return numaheap_place_session_create_ex(t, usage, usage_count, nullptr);
}

numaheap_place_session* numaheap_place_session_create_ex(const numaheap_topology* t,
                                                         const numaheap_node_usage* usage, size_t usage_count,
                                                         const numaheap_placement_options* opts) {
  if (!t) return nullptr;
  PlacementOptions po;
  if (int rc = 0; !options_of(opts, po, nullptr, 0, rc)) return nullptr;
  if (usage && !usage_matches(t->topo, usage, usage_count)) return nullptr;
  bool ok = true;
  std::vector<NodeUsage> u = usage_of(t->topo, usage, usage_count, ok);
  if (!ok) return nullptr;
  return new (std::nothrow) numaheap_place_session{t->topo, PlacementSession(t->topo, std::move(u), po)};
}

void numaheap_place_session_destroy(numaheap_place_session* s) { delete s; }

int numaheap_place_session_place(numaheap_place_session* s, const numaheap_guest_spec* cs,
                                 numaheap_placement* out, char* err, size_t err_len) {
  if (!s || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (!placement_arrays_ok(out)) return fail(Errc::invalid_argument, "placement array is null", err, err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  auto p = s->session.place(spec);
  if (!p) return fail(p.error(), err, err_len);
  return placement_out(*p, out);
}

int numaheap_place_session_release(numaheap_place_session* s, const numaheap_guest_spec* cs,
                                   const numaheap_placement* p) {
  if (!s || !cs || !p) return NUMAHEAP_E_INVALID_ARGUMENT;
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, nullptr, 0); rc) return rc;
  Placement pl;
  if (!placement_of(*p, pl)) return NUMAHEAP_E_INVALID_ARGUMENT;
  s->session.release(spec, pl);
  return NUMAHEAP_OK;
}

size_t numaheap_place_session_usage(const numaheap_place_session* s, numaheap_node_usage* out,
                                    size_t max) {
  if (!s) return 0;
  std::span<const NodeUsage> u = s->session.usage();
  return copy_usage(s->topo, std::vector<NodeUsage>(u.begin(), u.end()), out, max);
}

int numaheap_place_session_set_utilization(numaheap_place_session* s, const double* utilization,
                                           size_t count) {
  if (!s || !utilization || count != s->session.usage().size()) return NUMAHEAP_E_INVALID_ARGUMENT;
  std::span<NodeUsage> u = s->session.mutable_usage();
  for (std::size_t i = 0; i < count; ++i)
    u[i].utilization = utilization[i] < 0 ? -1.0 : std::min(utilization[i], 1.0);
  return NUMAHEAP_OK;
}

int numaheap_measure_utilization(const numaheap_topology* t, const char* proc_root,
                                 uint32_t interval_ms, numaheap_node_usage* usage,
                                 size_t usage_count, char* err, size_t err_len) {
  if (!t || !usage_matches(t->topo, usage, usage_count))
    return fail(Errc::invalid_argument, "usage must list every node in topology order", err, err_len);
  std::vector<NodeUsage> u(usage_count);
  auto r = measure_node_utilization(t->topo, u, std::chrono::milliseconds(interval_ms),
                                    proc_root ? proc_root : "");
  if (!r) return fail(r.error(), err, err_len);
  for (std::size_t i = 0; i < usage_count; ++i) usage[i].utilization = u[i].utilization;
  return NUMAHEAP_OK;
}

int numaheap_utilization_between(const numaheap_topology* t, const char* stat_before,
                                 const char* stat_after, numaheap_node_usage* usage,
                                 size_t usage_count, char* err, size_t err_len) {
  if (!t || !stat_before || !stat_after || !usage_matches(t->topo, usage, usage_count))
    return fail(Errc::invalid_argument, "null argument, or usage not listing every node in topology order",
                err, err_len);
  CpuTimes sample[2];
  const char* paths[2] = {stat_before, stat_after};
  for (int k = 0; k < 2; ++k) {
    auto text = read_text_file(paths[k]);
    if (!text) return fail(text.error(), err, err_len);
    auto parsed = parse_proc_stat(*text, paths[k]);
    if (!parsed) return fail(parsed.error(), err, err_len);
    sample[k] = std::move(*parsed);
  }
  const std::vector<double> u = node_utilization(t->topo, sample[0], sample[1]);
  for (std::size_t i = 0; i < usage_count; ++i) usage[i].utilization = u[i];
  return NUMAHEAP_OK;
}

int numaheap_guest_create(numaheap_heap* h, const numaheap_guest_spec* cs, uint32_t owner,
                          numaheap_guest** out, char* err, size_t err_len) {
  return numaheap_guest_create_ex(h, cs, owner, nullptr, out, err, err_len);
}

int numaheap_guest_create_ex(numaheap_heap* h, const numaheap_guest_spec* cs, uint32_t owner,
                             const numaheap_placement_options* opts, numaheap_guest** out, char* err,
                             size_t err_len) {
  if (!h || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  PlacementOptions po;
  if (int rc = 0; !options_of(opts, po, err, err_len, rc)) return rc;
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  return create_placed_by_placer(h, spec, capi::guest_options_from_c(*cs), po, owner, out, err, err_len);
}

int numaheap_control_domain_create(numaheap_heap* h, uint64_t total_bytes, uint32_t owner,
                                   const char* name, numaheap_guest** out, char* err,
                                   size_t err_len) {
  return numaheap_control_domain_create_ex(h, total_bytes, owner, name, nullptr, out, err, err_len);
}

int numaheap_control_domain_create_ex(numaheap_heap* h, uint64_t total_bytes, uint32_t owner,
                                      const char* name, const numaheap_placement_options* opts,
                                      numaheap_guest** out, char* err, size_t err_len) {
  if (!h || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  PlacementOptions po;
  if (int rc = 0; !options_of(opts, po, err, err_len, rc)) return rc;
  // From the heap's free memory now, above the watermarks the placer keeps.
  auto spec = control_domain_spec(*h->pa, total_bytes, name ? name : "dom0", po);
  if (!spec) return fail(spec.error(), err, err_len);
  return create_placed_by_placer(h, *spec, GuestOptions{}, po, owner, out, err, err_len);
}

}  // extern "C"
