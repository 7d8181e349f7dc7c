// The C API (include/numaheap/numaheap.h) over PageAllocator and Topology:
// the core part (topology builder and queries, the heap). The loaders and
// the built-in machine are host code: allocator/topology/host/c_api.cc.
//
// Core file (freestanding): handles come from the default metadata hooks;
// every entry point checks its arguments, returns an error code, and
// changes nothing on error.
#include "numaheap/numaheap.h"

#include <new>
#include <span>
#include <type_traits>

#include "numaheap/page_allocator.h"

#include "allocator/heap/c_handles.h"

namespace {

using numaheap::Errc;
using numaheap::capi::code;
using numaheap::capi::fail;

static_assert(NUMAHEAP_E_NO_MEMORY == static_cast<int>(Errc::no_memory));
static_assert(NUMAHEAP_E_INVALID_NODE == static_cast<int>(Errc::invalid_node));
static_assert(NUMAHEAP_E_INVALID_ORDER == static_cast<int>(Errc::invalid_order));
static_assert(NUMAHEAP_E_INVALID_FRAME == static_cast<int>(Errc::invalid_frame));
static_assert(NUMAHEAP_E_DOUBLE_FREE == static_cast<int>(Errc::double_free));
static_assert(NUMAHEAP_E_NOT_OWNER == static_cast<int>(Errc::not_owner));
static_assert(NUMAHEAP_E_CLAIM_EXCEEDED == static_cast<int>(Errc::claim_exceeded));
static_assert(NUMAHEAP_E_BUSY == static_cast<int>(Errc::busy));
static_assert(NUMAHEAP_E_PINNED == static_cast<int>(Errc::pinned));
static_assert(NUMAHEAP_E_SHARED == static_cast<int>(Errc::shared));
static_assert(NUMAHEAP_E_INVALID_ARGUMENT == static_cast<int>(Errc::invalid_argument));
static_assert(NUMAHEAP_E_PARSE_ERROR == static_cast<int>(Errc::parse_error));
static_assert(NUMAHEAP_E_IO_ERROR == static_cast<int>(Errc::io_error));
static_assert(NUMAHEAP_E_NOT_PRESENT == static_cast<int>(Errc::not_present));
static_assert(NUMAHEAP_E_UNSUPPORTED == static_cast<int>(Errc::unsupported));
static_assert(NUMAHEAP_MAX_ORDER == numaheap::kMaxOrder);
static_assert(NUMAHEAP_NO_NODE == numaheap::kNoNode);
static_assert(NUMAHEAP_MAX_OWNER == numaheap::kMaxOwner);
static_assert(sizeof(numaheap_nodemask) == sizeof(numaheap::NodeMask));
static_assert(NUMAHEAP_ALLOC_EXACT_NODE == numaheap::AllocFlags::exact_node);
static_assert(NUMAHEAP_ALLOC_NO_SCRUB == numaheap::AllocFlags::no_scrub);
static_assert(NUMAHEAP_ALLOC_USE_CLAIM == numaheap::AllocFlags::use_claim);

numaheap::AllocRequest request(const numaheap_alloc_request& req) {
  numaheap::AllocRequest r;
  r.order = req.order;
  r.node = req.node;
  r.flags = req.flags;
  r.owner = req.owner;
  if (req.exclude) r.exclude = numaheap::capi::mask_of(req.exclude);
  return r;
}

// TopologyBuilder takes spans in the core; older headers took std::vector by
// value. The dependent type keeps the discarded branch uninstantiated.
template <class B>
void builder_add_node(B& tb, numaheap::NodeId id, std::span<const numaheap::CpuId> cpus,
                      std::uint64_t bytes, std::uint64_t free_bytes) {
  if constexpr (requires { tb.add_node(id, cpus, bytes, free_bytes); }) {
    tb.add_node(id, cpus, bytes, free_bytes);
  } else {
    using V = std::conditional_t<sizeof(B) != 0, std::vector<numaheap::CpuId>, void>;
    tb.add_node(id, V(cpus.begin(), cpus.end()), bytes, free_bytes);
  }
}
template <class B>
void builder_set_frames(B& tb, numaheap::NodeId id, std::span<const numaheap::FrameRange> f) {
  if constexpr (requires { tb.set_frames(id, f); }) {
    tb.set_frames(id, f);
  } else {
    using V = std::conditional_t<sizeof(B) != 0, std::vector<numaheap::FrameRange>, void>;
    tb.set_frames(id, V(f.begin(), f.end()));
  }
}

const numaheap_topology_builder::Node* find_node(const numaheap_topology_builder* b,
                                                 std::uint32_t id) {
  for (const auto& n : b->nodes)
    if (n.id == id) return &n;
  return nullptr;
}

}  // namespace

namespace numaheap::capi {
int wrap_topology(Result<Topology, Error> r, numaheap_topology** out, char* err,
                  std::size_t err_len) noexcept {
  if (!r) return fail(r.error(), err, err_len);
  auto* t = new numaheap_topology{std::move(r).value()};
  if (!t) return fail(Errc::no_memory, "out of memory", err, err_len);
  *out = t;
  return NUMAHEAP_OK;
}
}  // namespace numaheap::capi

extern "C" {

const char* numaheap_version(void) { return NUMAHEAP_VERSION_STRING; }

const char* numaheap_strerror(int error) {
  if (error < 0 || error > NUMAHEAP_E_UNSUPPORTED) return "unknown";
  return numaheap::errc_name(static_cast<Errc>(error));
}

/* ---- Topology builder ---- */

numaheap_topology_builder* numaheap_topology_builder_new(void) {
  return new numaheap_topology_builder();
}

void numaheap_topology_builder_free(numaheap_topology_builder* b) { delete b; }

int numaheap_topology_builder_add_node_ex(numaheap_topology_builder* b, uint32_t node,
                                          const uint32_t* cpus, size_t cpu_count,
                                          uint64_t memory_bytes, uint64_t free_bytes) {
  if (!b || (cpu_count && !cpus)) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (node >= NUMAHEAP_MAX_NODES || find_node(b, node)) return NUMAHEAP_E_INVALID_NODE;
  numaheap_topology_builder::Node n;
  n.id = node;
  n.bytes = memory_bytes;
  n.free_bytes = free_bytes;
  if (!n.cpus.assign(cpus, cpu_count)) return NUMAHEAP_E_NO_MEMORY;
  if (!b->nodes.push_back(std::move(n))) return NUMAHEAP_E_NO_MEMORY;
  return NUMAHEAP_OK;
}

int numaheap_topology_builder_add_node(numaheap_topology_builder* b, uint32_t node,
                                       const uint32_t* cpus, size_t cpu_count,
                                       uint64_t memory_bytes) {
  return numaheap_topology_builder_add_node_ex(b, node, cpus, cpu_count, memory_bytes,
                                               numaheap::kUnknownBytes);
}

int numaheap_topology_builder_set_distance(numaheap_topology_builder* b, uint32_t from,
                                           uint32_t to, uint32_t distance) {
  if (!b) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (from >= NUMAHEAP_MAX_NODES || to >= NUMAHEAP_MAX_NODES) return NUMAHEAP_E_INVALID_NODE;
  return b->distances.push_back({from, to, distance}) ? NUMAHEAP_OK : NUMAHEAP_E_NO_MEMORY;
}

int numaheap_topology_builder_set_distance_row(numaheap_topology_builder* b, uint32_t from,
                                               const uint32_t* row, size_t count) {
  if (!b || (count && !row)) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (!find_node(b, from)) return NUMAHEAP_E_INVALID_NODE;
  if (count != b->nodes.size()) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (!b->distances.reserve(b->distances.size() + count)) return NUMAHEAP_E_NO_MEMORY;
  for (std::size_t i = 0; i < count; ++i) (void)b->distances.push_back({from, b->nodes[i].id, row[i]});
  return NUMAHEAP_OK;
}

int numaheap_topology_builder_add_frames(numaheap_topology_builder* b, uint32_t node,
                                         uint64_t first_mfn, uint64_t count) {
  if (!b || count == 0 || first_mfn + count < first_mfn) return NUMAHEAP_E_INVALID_ARGUMENT;
  for (auto& n : b->nodes)
    if (n.id == node)
      return n.frames.push_back({first_mfn, count}) ? NUMAHEAP_OK : NUMAHEAP_E_NO_MEMORY;
  return NUMAHEAP_E_INVALID_NODE;
}

int numaheap_topology_builder_build(const numaheap_topology_builder* b, numaheap_topology** out,
                                    char* err, size_t err_len) {
  if (!b || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  numaheap::TopologyBuilder tb("c-api");
  for (const auto& n : b->nodes)
    builder_add_node(tb, n.id, std::span<const numaheap::CpuId>(n.cpus.data(), n.cpus.size()),
                     n.bytes, n.free_bytes);
  for (const auto& d : b->distances) tb.set_distance(d.from, d.to, d.d);
  for (const auto& n : b->nodes)
    if (!n.frames.empty())
      builder_set_frames(tb, n.id,
                         std::span<const numaheap::FrameRange>(n.frames.data(), n.frames.size()));
  return numaheap::capi::wrap_topology(tb.build(), out, err, err_len);
}

void numaheap_topology_free(numaheap_topology* t) { delete t; }

/* ---- Topology queries ---- */

size_t numaheap_topology_node_count(const numaheap_topology* t) {
  return t ? t->topo.node_count() : 0;
}

uint32_t numaheap_topology_node_id(const numaheap_topology* t, size_t index) {
  if (!t || index >= t->topo.node_count()) return NUMAHEAP_NO_NODE;
  return t->topo.node_at(index).id;
}

int numaheap_topology_has_node(const numaheap_topology* t, uint32_t node) {
  return t && t->topo.has_node(node) ? 1 : 0;
}

uint32_t numaheap_topology_distance(const numaheap_topology* t, uint32_t from, uint32_t to) {
  if (!t || !t->topo.has_node(from) || !t->topo.has_node(to)) return 0;
  return t->topo.distance(from, to);
}

uint32_t numaheap_topology_raw_distance(const numaheap_topology* t, uint32_t from, uint32_t to) {
  if (!t || !t->topo.has_node(from) || !t->topo.has_node(to)) return 0;
  return t->topo.raw_distance(from, to);
}

size_t numaheap_topology_node_cpus(const numaheap_topology* t, uint32_t node, uint32_t* cpus,
                                   size_t max) {
  const numaheap::NodeInfo* n = t ? t->topo.find(node) : nullptr;
  if (!n) return 0;
  std::size_t i = 0;
  for (numaheap::CpuId c : n->cpus) {
    if (cpus && i < max) cpus[i] = c;
    ++i;
  }
  return i;
}

uint32_t numaheap_topology_node_of_cpu(const numaheap_topology* t, uint32_t cpu) {
  return t ? t->topo.node_of_cpu(cpu) : NUMAHEAP_NO_NODE;
}

uint32_t numaheap_topology_max_cpu(const numaheap_topology* t) { return t ? t->topo.max_cpu() : 0; }

size_t numaheap_topology_fallback_order(const numaheap_topology* t, uint32_t node, uint32_t* out,
                                        size_t max) {
  if (!t || !t->topo.has_node(node)) return 0;
  std::size_t i = 0;
  for (numaheap::NodeId n : t->topo.fallback_order(node)) {
    if (out && i < max) out[i] = n;
    ++i;
  }
  return i;
}

int numaheap_topology_node_memory(const numaheap_topology* t, uint32_t node, uint64_t* total,
                                  uint64_t* free_bytes) {
  if (!t) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::NodeInfo* n = t->topo.find(node);
  if (!n) return NUMAHEAP_E_INVALID_NODE;
  if (total) *total = n->memory_bytes;
  if (free_bytes) *free_bytes = n->free_bytes;
  return NUMAHEAP_OK;
}

size_t numaheap_topology_node_frames(const numaheap_topology* t, uint32_t node,
                                     numaheap_frame_range* out, size_t max) {
  const numaheap::NodeInfo* n = t ? t->topo.find(node) : nullptr;
  if (!n) return 0;
  std::size_t i = 0;
  for (const numaheap::FrameRange& r : n->frames) {
    if (out && i < max) out[i] = {r.first_mfn, r.count};
    ++i;
  }
  return i;
}

uint64_t numaheap_topology_total_frames(const numaheap_topology* t) {
  return t ? t->topo.total_frames() : 0;
}

uint32_t numaheap_topology_node_of_mfn(const numaheap_topology* t, uint64_t mfn) {
  return t ? t->topo.node_of_mfn(mfn) : NUMAHEAP_NO_NODE;
}

int numaheap_topology_nodes(const numaheap_topology* t, numaheap_nodemask* all,
                            numaheap_nodemask* memory, numaheap_nodemask* cpus) {
  if (!t) return NUMAHEAP_E_INVALID_ARGUMENT;
  if (all) numaheap::capi::mask_out(t->topo.node_mask(), all);
  if (memory) numaheap::capi::mask_out(t->topo.memory_nodes(), memory);
  if (cpus) numaheap::capi::mask_out(t->topo.cpu_nodes(), cpus);
  return NUMAHEAP_OK;
}

int numaheap_topology_distances_given(const numaheap_topology* t) {
  return t && t->topo.distances_given() ? 1 : 0;
}

/* ---- Heap ---- */

void numaheap_config_init(numaheap_config* c) {
  if (!c) return;
  const numaheap::HeapConfig hc;
  *c = numaheap_config{};
  c->mode = NUMAHEAP_FRAME_ONLY;
  c->require_bind = 1;
  c->pcp_batch = hc.pcp_batch;
  c->pcp_high = hc.pcp_high;
  c->pcp9_batch = hc.pcp9_batch;
  c->pcp9_high = hc.pcp9_high;
  c->max_claims = hc.max_claims;
  c->cpus = hc.cpus;
}

int numaheap_create(const numaheap_topology* t, const numaheap_config* c, numaheap_heap** out,
                    char* err, size_t err_len) {
  if (!t || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  numaheap_config cfg;
  numaheap_config_init(&cfg);
  if (c) cfg = *c;
  if (cfg.mode != NUMAHEAP_FRAME_ONLY && cfg.mode != NUMAHEAP_HOST_MEMORY)
    return fail(Errc::invalid_argument, "unknown memory mode", err, err_len);
  numaheap::PlatformConfig pc;
  pc.mode = static_cast<numaheap::MemoryMode>(cfg.mode);
  pc.require_bind = cfg.require_bind != 0;
  pc.boot_memory_dirty = cfg.boot_memory_dirty != 0;
  pc.hooks.ctx = cfg.hooks.ctx;
  pc.hooks.scrub = cfg.hooks.scrub;
  pc.hooks.copy = cfg.hooks.copy;
  pc.hooks.current_cpu = cfg.hooks.current_cpu;
  pc.hooks.relax = cfg.hooks.relax;
  pc.metadata = cfg.metadata;
  numaheap::HeapConfig hc;
  hc.pcp_batch = cfg.pcp_batch;
  hc.pcp_high = cfg.pcp_high;
  hc.pcp9_batch = cfg.pcp9_batch;
  hc.pcp9_high = cfg.pcp9_high;
  hc.max_claims = cfg.max_claims;
  hc.cpus = cfg.cpus;
  // The handle first: nothing to undo when there is no memory for it.
  auto* h = new numaheap_heap{};
  if (!h) return fail(Errc::no_memory, "out of memory", err, err_len);
  auto r = numaheap::PageAllocator::create(t->topo, pc, hc);
  if (!r) {
    delete h;
    return fail(r.error(), err, err_len);
  }
  h->pa = std::move(r).value();
  *out = h;
  return NUMAHEAP_OK;
}

void numaheap_destroy(numaheap_heap* h) { delete h; }

int numaheap_alloc(numaheap_heap* h, const numaheap_alloc_request* req, uint64_t* mfn,
                   uint32_t* node) {
  if (!h || !req || !mfn) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto a = h->pa->alloc(request(*req));
  if (!a) return code(a.error());
  *mfn = a->mfn;
  if (node) *node = a->node;
  return NUMAHEAP_OK;
}

int numaheap_free(numaheap_heap* h, uint64_t mfn, uint32_t order, uint32_t owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->free(mfn, order, owner);
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_alloc_bulk(numaheap_heap* h, const numaheap_alloc_request* req, uint64_t* mfns,
                        size_t count) {
  if (!h || !req || (count && !mfns)) return NUMAHEAP_E_INVALID_ARGUMENT;
  static_assert(sizeof(uint64_t) == sizeof(numaheap::Mfn));
  auto st = h->pa->alloc_bulk(request(*req), std::span<numaheap::Mfn>(mfns, count));
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_free_bulk(numaheap_heap* h, const uint64_t* mfns, size_t count, uint32_t owner) {
  if (!h || (count && !mfns)) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->free_bulk(std::span<const numaheap::Mfn>(mfns, count), owner);
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_split(numaheap_heap* h, uint64_t mfn, uint32_t order, uint32_t owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(h->pa->split(mfn, order, owner));
}

int numaheap_claim(numaheap_heap* h, uint32_t owner, uint64_t pages, uint32_t node) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->claim(owner, pages, node);
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_release_owner(numaheap_heap* h, uint32_t owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->release_owner(owner);
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_set_claims_aside(numaheap_heap* h, uint32_t owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->set_claims_aside(owner);
  return st ? NUMAHEAP_OK : code(st.error());
}

int numaheap_restore_claims(numaheap_heap* h, uint32_t owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = h->pa->restore_claims(owner);
  return st ? NUMAHEAP_OK : code(st.error());
}

uint64_t numaheap_claimed(const numaheap_heap* h, uint32_t owner) {
  return h ? h->pa->claimed_by(owner) : 0;
}

uint64_t numaheap_claimed_on(const numaheap_heap* h, uint32_t owner, uint32_t node) {
  return h ? h->pa->claimed_by(owner, node) : 0;
}

uint64_t numaheap_global_claimed(const numaheap_heap* h) { return h ? h->pa->global_claimed() : 0; }

int numaheap_offline(numaheap_heap* h, uint64_t mfn, int* pending) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = h->pa->offline(mfn);
  if (!r) return code(r.error());
  if (pending) *pending = *r == numaheap::OfflineState::pending;
  return NUMAHEAP_OK;
}

uint64_t numaheap_offline_events(const numaheap_heap* h) { return h ? h->pa->offline_events() : 0; }

int numaheap_offline_pending(const numaheap_heap* h, uint64_t mfn, unsigned order) {
  return h && h->pa->offline_pending(mfn, order) ? 1 : 0;
}

uint64_t numaheap_scrub_some(numaheap_heap* h, uint32_t node, uint64_t budget) {
  return h ? h->pa->scrub_some(node, budget) : 0;
}

void numaheap_drain_all(numaheap_heap* h) {
  if (h) h->pa->drain_all();
}

void numaheap_drain_node(numaheap_heap* h, uint32_t node) {
  if (h && h->pa->topology().has_node(node)) h->pa->drain_node(node);
}

int numaheap_set_reclaim_hook(numaheap_heap* h, numaheap_reclaim_fn fn, void* ctx) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::ReclaimHook hook;
  hook.ctx = fn ? ctx : nullptr;
  hook.fn = fn;
  h->pa->set_reclaim_hook(hook);
  return NUMAHEAP_OK;
}

uint32_t numaheap_node_of(const numaheap_heap* h, uint64_t mfn) {
  return h ? h->pa->node_of(mfn) : NUMAHEAP_NO_NODE;
}

double numaheap_metadata_bytes_per_frame(const numaheap_heap* h) {
  return h ? h->pa->metadata_bytes_per_frame() : 0.0;
}

int numaheap_lockless_cpu_caches(const numaheap_heap* h) {
  return h && h->pa->lockless_cpu_caches() ? 1 : 0;
}

int numaheap_stats(const numaheap_heap* h, uint32_t node, numaheap_node_stats* out) {
  if (!h || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = h->pa->stats(node);
  if (!r) return code(r.error());
  const numaheap::NodeStats& s = *r;
  out->node = s.node;
  out->largest_free_order = s.largest_free_order;
  out->managed = s.managed;
  out->free = s.free;
  out->cached = s.cached;
  out->used = s.used;
  out->dirty = s.dirty;
  out->claimed = s.claimed;
  out->offlined = s.offlined;
  out->pending_offline = s.pending_offline;
  for (unsigned o = 0; o <= numaheap::kMaxOrder; ++o) {
    out->free_blocks[o] = s.free_blocks[o];
    out->dirty_blocks[o] = s.dirty_blocks[o];
  }
  return NUMAHEAP_OK;
}

int numaheap_check(const numaheap_heap* h, int full) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto st = full ? h->pa->check_frames() : h->pa->check_invariants();
  return st ? NUMAHEAP_OK : code(st.error());
}

void* numaheap_frame_address(const numaheap_heap* h, uint64_t mfn) {
  return h ? h->pa->frame_address(mfn) : nullptr;
}

int numaheap_allocated_block(const numaheap_heap* h, uint64_t mfn, uint32_t* order, uint32_t* owner) {
  if (!h) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = h->pa->allocated_block(mfn);
  if (!r) return code(r.error());
  if (order) *order = r->order;
  if (owner) *owner = r->owner;
  return NUMAHEAP_OK;
}

uint64_t numaheap_frames_owned_by(const numaheap_heap* h, uint32_t owner) {
  return h ? h->pa->frames_owned_by(owner) : 0;
}

}  // extern "C"
