// The guest part of the C API (include/numaheap/numaheap_guest.h): the core
// part, creation on a caller's placement included (numaheap_guest_create_placed,
// _placed_shares). Placement (numaheap_guest_create, numaheap_control_domain_create)
// is host code: allocator/guest/host/c_api.cc.
//
// Core file (freestanding): handles from the default metadata hooks; each
// entry point checks its arguments, returns an error code, and changes
// nothing on error.
#include "numaheap/numaheap_guest.h"

#include <new>

#include "numaheap/guest_memory.h"

#include "allocator/guest/c_api_guest.h"
#include "allocator/heap/c_handles.h"

namespace numaheap::capi {

int guest_spec_from_c(const numaheap_guest_spec& cs, GuestSpec& spec, char* err,
                      std::size_t err_len) noexcept {
  if (cs.vnode_count && !cs.vnodes) return fail(Errc::invalid_argument, "vnodes is null", err, err_len);
  if (cs.device_count && !cs.devices) return fail(Errc::invalid_argument, "devices is null", err, err_len);
  const auto oom = [&] { return fail(Errc::no_memory, "out of memory", err, err_len); };
  spec.name = cs.name ? cs.name : "guest";
  spec.memory_bytes = cs.memory_bytes;
  spec.vcpus = cs.vcpus;
  for (std::size_t v = 0; v < cs.vnode_count; ++v) {
    const numaheap_vnode_spec& in = cs.vnodes[v];
    if (in.vcpu_count && !in.vcpus) return fail(Errc::invalid_argument, "vnode vcpus is null", err, err_len);
    if (in.distance_count && !in.distances)
      return fail(Errc::invalid_argument, "vnode distances is null", err, err_len);
    VNodeSpec vn;
    vn.memory_bytes = in.memory_bytes;
    vn.pnode = in.pnode;
    for (std::size_t k = 0; k < in.vcpu_count; ++k)
      if (!push(vn.vcpus, in.vcpus[k])) return oom();
    for (std::size_t k = 0; k < in.distance_count; ++k)
      if (!push(vn.distances, in.distances[k])) return oom();
    if (in.memory_mode < NUMAHEAP_MEM_DEFAULT || in.memory_mode > NUMAHEAP_MEM_INTERLEAVE)
      return fail(Errc::invalid_argument, "vnode memory_mode is not a NUMAHEAP_MEM_* value", err, err_len);
    vn.memory_mode = static_cast<MemoryPolicy>(in.memory_mode);
    if (in.nodes) vn.nodes = mask_of(in.nodes);
    if (!push(spec.vnodes, std::move(vn))) return oom();
  }
  for (std::size_t d = 0; d < cs.device_count; ++d) {
    DeviceSpec dev;
    dev.name = cs.devices[d].name ? cs.devices[d].name : "device";
    dev.host_node = cs.devices[d].host_node;
    if (!push(spec.devices, std::move(dev))) return oom();
  }
  if (cs.allowed_nodes) spec.allowed_nodes = mask_of(cs.allowed_nodes);
  spec.sharing = cs.sharing != 0;
  spec.cold_store = cs.cold_store != 0;
  if (cs.affinity_group) spec.affinity_group = cs.affinity_group;
  if (cs.anti_affinity_group) spec.anti_affinity_group = cs.anti_affinity_group;
  if (cs.memory_mode < NUMAHEAP_MEM_DEFAULT || cs.memory_mode > NUMAHEAP_MEM_INTERLEAVE)
    return fail(Errc::invalid_argument, "memory_mode is not a NUMAHEAP_MEM_* value", err, err_len);
  spec.memory_mode = static_cast<MemoryPolicy>(cs.memory_mode);
  if (cs.vcpu_pin_count && !cs.vcpu_pins) return fail(Errc::invalid_argument, "vcpu_pins is null", err, err_len);
  for (std::size_t i = 0; i < cs.vcpu_pin_count; ++i) {
    const numaheap_vcpu_pin& in = cs.vcpu_pins[i];
    if (in.cpu_count && !in.cpus) return fail(Errc::invalid_argument, "vcpu pin cpus is null", err, err_len);
    VcpuPin pin;
    pin.vcpu = in.vcpu;
    for (std::size_t k = 0; k < in.cpu_count; ++k)
      if (!push(pin.cpus, in.cpus[k])) return oom();
    if (in.nodes) pin.nodes = mask_of(in.nodes);
    pin.soft = in.soft != 0;
    if (!push(spec.vcpu_pins, std::move(pin))) return oom();
  }
  return NUMAHEAP_OK;
}

GuestOptions guest_options_from_c(const numaheap_guest_spec& cs) noexcept {
  GuestOptions o;
  o.allow_striping = cs.allow_striping != 0;
  o.scrub_on_free = cs.keep_contents_on_free == 0;
  if (cs.device_region_pages) o.device_region_pages = cs.device_region_pages;
  o.metadata = cs.metadata;
  return o;
}

int wrap_guest(std::unique_ptr<GuestMemory> gm, std::span<const std::uint32_t> nodes,
               numaheap_guest** out, char* err, std::size_t err_len) noexcept {
  auto* g = new numaheap_guest{};
  if (!g) return fail(Errc::no_memory, "out of memory", err, err_len);
  if (!g->nodes.assign(nodes.data(), nodes.size())) {
    delete g;
    return fail(Errc::no_memory, "out of memory", err, err_len);
  }
  g->gm = std::move(gm);
  *out = g;
  return NUMAHEAP_OK;
}

}  // namespace numaheap::capi

namespace {

using namespace numaheap;
using capi::code;
using capi::fail;

static_assert(NUMAHEAP_P2M_PRESENT == P2mFlags::present);
static_assert(NUMAHEAP_P2M_PINNED == P2mFlags::pinned);
static_assert(NUMAHEAP_P2M_SHARED == P2mFlags::shared);
static_assert(NUMAHEAP_P2M_MIGRATING == P2mFlags::migrating);
static_assert(NUMAHEAP_P2M_DEVICE == P2mFlags::device);

constexpr std::uint32_t kP2mFlagMask = 0x1f;

bool to_entry(const numaheap_p2m_entry& in, P2mEntry& out) noexcept {
  if ((in.flags & ~kP2mFlagMask) || in.order > kMaxOrder) return false;
  out.mfn = in.mfn;
  out.flags = static_cast<std::uint8_t>(in.flags);
  out.order = static_cast<std::uint8_t>(in.order);
  return true;
}

// Creates the guest on `placement` and wraps it (nodes: per vnode or share).
int create_and_wrap(numaheap_heap* h, const GuestSpec& spec, const Placement& placement,
                    const numaheap_guest_spec& cs, std::uint32_t owner, const Vector<std::uint32_t>& nodes,
                    numaheap_guest** out, char* err, std::size_t err_len) noexcept {
  auto gm = GuestMemory::create(*h->pa, spec, placement, owner, capi::guest_options_from_c(cs));
  if (!gm) return fail(gm.error(), err, err_len);
  return capi::wrap_guest(std::move(*gm), std::span<const std::uint32_t>(nodes.data(), nodes.size()),
                          out, err, err_len);
}

template <class List>
std::size_t copy_shares(const List& in, numaheap_node_share* out, std::size_t cap) noexcept {
  std::size_t i = 0;
  for (const auto& s : in) {
    if (out && i < cap) out[i] = {s.node, s.bytes};
    ++i;
  }
  return i;
}

}  // namespace

extern "C" {

int numaheap_guest_create_placed(numaheap_heap* h, const numaheap_guest_spec* cs, uint32_t owner,
                                 const numaheap_node_share* shares, size_t share_count,
                                 numaheap_guest** out, char* err, size_t err_len) {
  if (!h || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (share_count && !shares) return fail(Errc::invalid_argument, "shares is null", err, err_len);
  if (cs->vnode_count && share_count)
    return fail(Errc::invalid_argument, "a vNUMA guest is placed by its vnodes' pnodes, not shares",
                err, err_len);
  if (!cs->vnode_count && !share_count)
    return fail(Errc::invalid_argument, "a guest without vNUMA needs shares", err, err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  Placement placement;
  Vector<std::uint32_t> nodes;
  for (std::size_t v = 0; v < cs->vnode_count; ++v) {
    const NodeId p = cs->vnodes[v].pnode;
    if (p == kNoNode)
      return fail(Errc::invalid_node,
                  "a vnode has no pnode (a vnode on several nodes: numaheap_guest_create_placed_shares)",
                  err, err_len);
    if (!capi::push(placement.vnode_pnodes, p) || !nodes.push_back(p))
      return fail(Errc::no_memory, "out of memory", err, err_len);
    placement.nodes.set(p);
  }
  for (std::size_t i = 0; i < share_count; ++i) {
    NodeShare s;
    s.node = shares[i].node;
    s.bytes = shares[i].bytes;
    if (!capi::push(placement.memory, s) || !nodes.push_back(s.node))
      return fail(Errc::no_memory, "out of memory", err, err_len);
    placement.nodes.set(s.node);
  }
  return create_and_wrap(h, spec, placement, *cs, owner, nodes, out, err, err_len);
}

int numaheap_guest_create_placed_shares(numaheap_heap* h, const numaheap_guest_spec* cs,
                                        uint32_t owner, const numaheap_vnode_share* pieces,
                                        size_t piece_count, numaheap_guest** out, char* err,
                                        size_t err_len) {
  if (!h || !cs || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (!pieces || !piece_count) return fail(Errc::invalid_argument, "no pieces given", err, err_len);
  if (!cs->vnode_count)
    return fail(Errc::invalid_argument,
                "a guest without vNUMA is placed by numaheap_guest_create_placed's node shares", err,
                err_len);
  GuestSpec spec;
  if (int rc = capi::guest_spec_from_c(*cs, spec, err, err_len); rc) return rc;
  // The spec first (its pnodes and nodesets exist, sizes sum), then the
  // pieces against it; GuestMemory::create checks the layout again.
  const Topology& topo = h->pa->topology();
  if (auto ok = validate_guest_spec(spec, topo); !ok) return fail(ok.error(), err, err_len);
  Placement placement;
  std::size_t k = 0;
  for (std::size_t v = 0; v < spec.vnodes.size(); ++v) {
    const VNodeSpec& vn = spec.vnodes[v];
    const bool bound = vn.memory_mode != MemoryPolicy::prefer;
    const bool guest_bound = spec.memory_mode != MemoryPolicy::prefer;
    NodeMask seen;
    std::uint64_t sum = 0;
    NodeId home = kNoNode;
    std::uint64_t home_bytes = 0;
    const std::size_t first = k;
    for (; k < piece_count && pieces[k].vnode == v; ++k) {
      const numaheap_vnode_share& p = pieces[k];
      const NodeInfo* n = topo.find(p.node);
      if (!n || !n->has_memory())
        return fail(make_error(Errc::invalid_node, "piece ", k, " of vnode ", v, ": node ", p.node,
                               n ? " has no memory" : " does not exist"),
                    err, err_len);
      if (p.bytes == 0 || (p.bytes & (kFrameSize - 1)))
        return fail(make_error(Errc::invalid_argument, "piece ", k, " of vnode ", v, " on node ",
                               p.node, ": ", p.bytes, " bytes is not a non-zero multiple of 4 KiB"),
                    err, err_len);
      if (seen.test(p.node))
        return fail(make_error(Errc::invalid_argument, "vnode ", v, " has two pieces on node ", p.node,
                               " (overlapping pieces)"),
                    err, err_len);
      seen.set(p.node);
      if (bound && !vn.nodes.empty() && !vn.nodes.test(p.node))
        return fail(make_error(Errc::invalid_argument, "piece ", k, " of vnode ", v, ": node ", p.node,
                               " is outside the vnode's nodes ", vn.nodes),
                    err, err_len);
      if (guest_bound && !spec.allowed_nodes.empty() && !spec.allowed_nodes.test(p.node))
        return fail(make_error(Errc::invalid_argument, "piece ", k, " of vnode ", v, ": node ", p.node,
                               " is outside the guest's allowed nodes ", spec.allowed_nodes),
                    err, err_len);
      if (p.bytes > vn.memory_bytes - sum)  // also keeps `sum` from wrapping
        return fail(make_error(Errc::invalid_argument, "vnode ", v, "'s pieces sum to more than its ",
                               vn.memory_bytes, " bytes"),
                    err, err_len);
      sum += p.bytes;
      if (p.bytes > home_bytes) {  // the first piece of the largest size
        home = p.node;
        home_bytes = p.bytes;
      }
      if (!capi::push(placement.vnode_memory, VNodeShare{static_cast<std::uint32_t>(v), p.node, p.bytes}))
        return fail(Errc::no_memory, "out of memory", err, err_len);
      placement.nodes.set(p.node);
    }
    if (k == first)
      return fail(make_error(Errc::invalid_argument, "vnode ", v,
                             " has no piece (pieces come in vnode order, each vnode's together)"),
                  err, err_len);
    if (sum != vn.memory_bytes)
      return fail(make_error(Errc::invalid_argument, "vnode ", v, "'s pieces sum to ", sum,
                             " bytes, not its ", vn.memory_bytes),
                  err, err_len);
    if (vn.pnode != kNoNode) {
      if (!seen.test(vn.pnode))
        return fail(make_error(Errc::invalid_argument, "vnode ", v, "'s pnode ", vn.pnode,
                               " holds none of its pieces"),
                    err, err_len);
      home = vn.pnode;
    }
    if (!capi::push(placement.vnode_pnodes, home))
      return fail(Errc::no_memory, "out of memory", err, err_len);
  }
  if (k != piece_count)
    return fail(make_error(Errc::invalid_argument, "piece ", k, " names vnode ", pieces[k].vnode,
                           pieces[k].vnode < spec.vnodes.size()
                               ? ", out of vnode order (each vnode's pieces together, vnodes ascending)"
                               : ", which does not exist"),
                err, err_len);
  return create_and_wrap(h, spec, placement, *cs, owner, placement.vnode_pnodes, out, err, err_len);
}

int numaheap_guest_populate(numaheap_guest* g, char* err, size_t err_len) {
  return numaheap_guest_populate_report(g, nullptr, err, err_len);
}

int numaheap_guest_populate_report(numaheap_guest* g, numaheap_populate_report* report, char* err,
                                   size_t err_len) {
  if (!g) return fail(Errc::invalid_argument, "null guest", err, err_len);
  if (report && ((report->per_node_cap && !report->per_node) || (report->striped_cap && !report->striped)))
    return fail(Errc::invalid_argument, "report array is null", err, err_len);
  auto r = g->gm->populate();
  if (!r) return fail(r.error(), err, err_len);
  if (report) {
    report->pages = r->pages;
    report->extents_1g = r->extents_1g;
    report->extents_2m = r->extents_2m;
    report->extents_4k = r->extents_4k;
    report->per_node_count = copy_shares(r->per_node, report->per_node, report->per_node_cap);
    report->striped_count = copy_shares(r->striped, report->striped, report->striped_cap);
  }
  return NUMAHEAP_OK;
}

int numaheap_guest_balloon_down(numaheap_guest* g, uint64_t pages, uint64_t* done) {
  if (!g) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = g->gm->balloon_down(pages);
  if (!r) return code(r.error().code);
  if (done) *done = *r;
  return NUMAHEAP_OK;
}

int numaheap_guest_balloon_up(numaheap_guest* g, uint64_t pages) {
  if (!g) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = g->gm->balloon_up(pages);
  return r ? NUMAHEAP_OK : code(r.error().code);
}

int numaheap_guest_alloc_device_buffer(numaheap_guest* g, size_t device, uint64_t pages,
                                       numaheap_device_buffer* out, char* err, size_t err_len) {
  if (!g || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  auto r = g->gm->alloc_device_buffer(device, pages);
  if (!r) return fail(r.error(), err, err_len);
  out->gfn = r->gfn;
  out->mfn = r->mfn;
  out->pages = r->pages;
  out->node = r->node;
  return NUMAHEAP_OK;
}

int numaheap_guest_free_device_buffer(numaheap_guest* g, uint64_t gfn) {
  if (!g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(g->gm->free_device_buffer(gfn));
}

int numaheap_guest_backend_affinity(const numaheap_guest* g, uint32_t* node, uint32_t* cpus,
                                    size_t cpu_cap, size_t* cpu_count, char* reason,
                                    size_t reason_len) {
  if (!g || (cpu_cap && !cpus)) return NUMAHEAP_E_INVALID_ARGUMENT;
  const BackendAffinity a = g->gm->backend_affinity();
  if (node) *node = a.node;
  std::size_t i = 0;
  for (CpuId c : a.cpus) {
    if (i < cpu_cap) cpus[i] = c;
    ++i;
  }
  if (cpu_count) *cpu_count = i;
  capi::copy_text(std::string_view(a.reason.data(), a.reason.size()), reason, reason_len);
  return NUMAHEAP_OK;
}

int numaheap_guest_lookup(const numaheap_guest* g, uint64_t gfn, uint64_t* mfn, uint32_t* flags) {
  if (!g || !mfn) return NUMAHEAP_E_INVALID_ARGUMENT;
  P2mEntry e = g->gm->lookup(gfn);
  if (flags) *flags = e.flags;
  if (!e.present()) return NUMAHEAP_E_NOT_PRESENT;
  *mfn = e.mfn;
  return NUMAHEAP_OK;
}

int numaheap_guest_p2m_get(const numaheap_guest* g, uint64_t gfn, numaheap_p2m_entry* out) {
  if (!g || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  const P2mEntry e = g->gm->lookup(gfn);
  out->mfn = e.present() ? e.mfn : NUMAHEAP_INVALID_MFN;
  out->flags = e.flags;
  out->order = e.order;
  return NUMAHEAP_OK;
}

int numaheap_guest_p2m_compare_exchange(numaheap_guest* g, uint64_t gfn,
                                        const numaheap_p2m_entry* expected,
                                        const numaheap_p2m_entry* desired) {
  if (!g || !expected || !desired) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (gfn >= g->gm->gfn_limit()) return NUMAHEAP_E_INVALID_ARGUMENT;
  P2mEntry want, next;
  if (!to_entry(*expected, want) || !to_entry(*desired, next)) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (!want.present()) want.mfn = kInvalidMfn;
  if (!next.present()) next = P2mEntry{};
  return g->gm->compare_exchange(gfn, want, next) ? NUMAHEAP_OK : NUMAHEAP_E_BUSY;
}

int numaheap_guest_p2m_update_flags(numaheap_guest* g, uint64_t gfn, uint32_t set, uint32_t clear) {
  if (!g || ((set | clear) & ~kP2mFlagMask)) return NUMAHEAP_E_INVALID_ARGUMENT;
  // "present" is the p2m's own business: compare_exchange adds and removes entries.
  if ((set | clear) & P2mFlags::present) return NUMAHEAP_E_INVALID_ARGUMENT;
  return g->gm->update_flags(gfn, static_cast<std::uint8_t>(set), static_cast<std::uint8_t>(clear))
             ? NUMAHEAP_OK
             : NUMAHEAP_E_NOT_PRESENT;
}

int numaheap_guest_split_to_pages(numaheap_guest* g, uint64_t gfn) {
  if (!g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(g->gm->split_to_pages(gfn));
}

uint64_t numaheap_guest_ram_pages(const numaheap_guest* g) { return g ? g->gm->ram_pages() : 0; }

uint64_t numaheap_guest_present_pages(const numaheap_guest* g) { return g ? g->gm->present_pages() : 0; }

uint64_t numaheap_guest_gfn_limit(const numaheap_guest* g) { return g ? g->gm->gfn_limit() : 0; }

uint64_t numaheap_guest_device_gfn_base(const numaheap_guest* g) {
  return g ? g->gm->device_gfn_base() : 0;
}

uint32_t numaheap_guest_owner(const numaheap_guest* g) { return g ? g->gm->owner() : 0; }

int numaheap_guest_populated(const numaheap_guest* g) { return g && g->gm->populated() ? 1 : 0; }

size_t numaheap_guest_layout(const numaheap_guest* g, numaheap_guest_range* out, size_t max) {
  if (!g) return 0;
  std::size_t i = 0;
  for (const GuestRange& r : g->gm->layout()) {
    if (out && i < max) out[i] = {r.first, r.pages, r.pnode, r.vnode};
    ++i;
  }
  return i;
}

int numaheap_guest_home_nodes(const numaheap_guest* g, numaheap_nodemask* out) {
  if (!g || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  capi::mask_out(g->gm->home_nodes(), out);
  return NUMAHEAP_OK;
}

size_t numaheap_guest_pages_per_node(const numaheap_guest* g, numaheap_node_share* out, size_t max) {
  if (!g) return 0;
  std::size_t i = 0;
  for (const NodeShare& s : g->gm->pages_per_node()) {  // `bytes` holds pages there
    if (out && i < max) out[i] = {s.node, s.bytes << kFrameShift};
    ++i;
  }
  return i;
}

void numaheap_guest_note_lost_frames(numaheap_guest* g, uint64_t frames) {
  if (g) g->gm->note_lost_frames(frames);
}

int numaheap_guest_relayout(numaheap_guest* g, const numaheap_guest_range* ranges, size_t count) {
  if (!g || (!ranges && count)) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (count > GuestMemory::kMaxLayoutRanges) return NUMAHEAP_E_INVALID_ARGUMENT;
  GuestRange l[GuestMemory::kMaxLayoutRanges];
  for (std::size_t k = 0; k < count; ++k) l[k] = {ranges[k].first, ranges[k].pages, ranges[k].pnode, ranges[k].vnode};
  return code(g->gm->relayout(std::span<const GuestRange>(l, count)));
}

uint32_t numaheap_guest_home_node_of(const numaheap_guest* g, uint64_t gfn) {
  return g ? g->gm->home_node_of(gfn) : kNoNode;
}

uint64_t numaheap_guest_layout_generation(const numaheap_guest* g) {
  return g ? g->gm->layout_generation() : 0;
}

size_t numaheap_guest_nodes(const numaheap_guest* g, uint32_t* nodes, size_t max) {
  if (!g || !nodes) return 0;
  std::size_t n = 0;
  for (std::uint32_t p : g->nodes)
    if (n < max) nodes[n++] = p;
  return n;
}

int numaheap_guest_destroy(numaheap_guest* g) {
  if (!g) return NUMAHEAP_OK;
  Status st = g->gm->destroy();
  if (!st && st.error() == Errc::busy) return code(st.error());  // nothing done: keep the handle
  delete g;  // invalid_frame: released all it could (see numaheap_guest_lost_frames)
  return code(st);
}

int numaheap_guest_check(const numaheap_guest* g, int full) {
  if (!g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(full ? g->gm->check_frames() : g->gm->check_invariants());
}

uint64_t numaheap_guest_lost_frames(const numaheap_guest* g) { return g ? g->gm->lost_frames() : 0; }

}  // extern "C"
