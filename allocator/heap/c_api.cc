// The C API (include/numaheap/numaheap.h) over PageAllocator and Topology.
#include "numaheap/numaheap.h"

#include <cstring>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "numaheap/page_allocator.h"
#include "numaheap/topology_io.h"

#include "allocator/heap/c_handles.h"

namespace {

using numaheap::Errc;

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

int code(Errc e) { return static_cast<int>(e); }

int fail(const numaheap::Error& e, char* err, std::size_t err_len) {
  if (err && err_len) {
    const std::size_t n = std::min(err_len - 1, e.message.size());
    std::memcpy(err, e.message.data(), n);
    err[n] = '\0';
  }
  return code(e.code);
}

numaheap::AllocRequest request(const numaheap_alloc_request& req) {
  numaheap::AllocRequest r;
  r.order = req.order;
  r.node = req.node;
  r.flags = req.flags;
  r.owner = req.owner;
  if (req.exclude)
    for (std::uint32_t w = 0; w < NUMAHEAP_MAX_NODES / 64; ++w)
      for (std::uint64_t bits = req.exclude->bits[w]; bits; bits &= bits - 1)
        r.exclude.set(w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits)));
  return r;
}

int wrap_topology(numaheap::Result<numaheap::Topology, numaheap::Error> r, numaheap_topology** out,
                  char* err, std::size_t err_len) {
  if (!r) return fail(r.error(), err, err_len);
  auto* t = new (std::nothrow) numaheap_topology{std::move(r).value()};
  if (!t) return NUMAHEAP_E_NO_MEMORY;
  *out = t;
  return NUMAHEAP_OK;
}

}  // namespace

extern "C" {

const char* numaheap_strerror(int error) {
  if (error < 0 || error > NUMAHEAP_E_UNSUPPORTED) return "unknown";
  return numaheap::errc_name(static_cast<Errc>(error));
}

numaheap_topology_builder* numaheap_topology_builder_new(void) {
  return new (std::nothrow) numaheap_topology_builder();
}

void numaheap_topology_builder_free(numaheap_topology_builder* b) { delete b; }

int numaheap_topology_builder_add_node(numaheap_topology_builder* b, uint32_t node,
                                       const uint32_t* cpus, size_t cpu_count,
                                       uint64_t memory_bytes) {
  if (!b || (cpu_count && !cpus)) return NUMAHEAP_E_INVALID_ARGUMENT;
  b->nodes.push_back({node, std::vector<numaheap::CpuId>(cpus, cpus + cpu_count), memory_bytes, {}});
  return NUMAHEAP_OK;
}

int numaheap_topology_builder_set_distance(numaheap_topology_builder* b, uint32_t from,
                                           uint32_t to, uint32_t distance) {
  if (!b) return NUMAHEAP_E_INVALID_ARGUMENT;
  b->distances.push_back({from, to, distance});
  return NUMAHEAP_OK;
}

int numaheap_topology_builder_add_frames(numaheap_topology_builder* b, uint32_t node,
                                         uint64_t first_mfn, uint64_t count) {
  if (!b) return NUMAHEAP_E_INVALID_ARGUMENT;
  for (auto& n : b->nodes)
    if (n.id == node) {
      n.frames.push_back({first_mfn, count});
      return NUMAHEAP_OK;
    }
  return NUMAHEAP_E_INVALID_NODE;
}

int numaheap_topology_builder_build(const numaheap_topology_builder* b, numaheap_topology** out,
                                    char* err, size_t err_len) {
  if (!b || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::TopologyBuilder tb("c-api");
  for (const auto& n : b->nodes) tb.add_node(n.id, n.cpus, n.bytes);
  for (const auto& d : b->distances) tb.set_distance(d.from, d.to, d.d);
  for (const auto& n : b->nodes)
    if (!n.frames.empty()) tb.set_frames(n.id, n.frames);
  return wrap_topology(tb.build(), out, err, err_len);
}

int numaheap_topology_parse_numactl(const char* text, size_t len, numaheap_topology** out,
                                    char* err, size_t err_len) {
  if (!text || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  return wrap_topology(numaheap::parse_numactl_text(std::string_view(text, len), "c-api"), out,
                       err, err_len);
}

int numaheap_topology_builtin(numaheap_topology** out) {
  if (!out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto* t = new (std::nothrow) numaheap_topology{numaheap::builtin_default_topology()};
  if (!t) return NUMAHEAP_E_NO_MEMORY;
  *out = t;
  return NUMAHEAP_OK;
}

void numaheap_topology_free(numaheap_topology* t) { delete t; }

size_t numaheap_topology_node_count(const numaheap_topology* t) {
  return t ? t->topo.node_count() : 0;
}

uint32_t numaheap_topology_node_id(const numaheap_topology* t, size_t index) {
  if (!t || index >= t->topo.node_count()) return NUMAHEAP_NO_NODE;
  return t->topo.node_at(index).id;
}

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
  if (!t || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap_config cfg;
  numaheap_config_init(&cfg);
  if (c) cfg = *c;
  if (cfg.mode != NUMAHEAP_FRAME_ONLY && cfg.mode != NUMAHEAP_HOST_MEMORY)
    return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::PlatformConfig pc;
  pc.mode = static_cast<numaheap::MemoryMode>(cfg.mode);
  pc.require_bind = cfg.require_bind != 0;
  pc.boot_memory_dirty = cfg.boot_memory_dirty != 0;
  pc.hooks.ctx = cfg.hooks.ctx;
  pc.hooks.scrub = cfg.hooks.scrub;
  pc.hooks.copy = cfg.hooks.copy;
  pc.hooks.current_cpu = cfg.hooks.current_cpu;
  pc.hooks.relax = cfg.hooks.relax;
  numaheap::HeapConfig hc;
  hc.pcp_batch = cfg.pcp_batch;
  hc.pcp_high = cfg.pcp_high;
  hc.pcp9_batch = cfg.pcp9_batch;
  hc.pcp9_high = cfg.pcp9_high;
  hc.max_claims = cfg.max_claims;
  hc.cpus = cfg.cpus;
  auto r = numaheap::PageAllocator::create(t->topo, pc, hc);
  if (!r) return fail(r.error(), err, err_len);
  auto* h = new (std::nothrow) numaheap_heap{std::move(r).value()};
  if (!h) return NUMAHEAP_E_NO_MEMORY;
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
