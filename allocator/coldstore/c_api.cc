// The cold-page store through the C API (include/numaheap/numaheap_cold.h).
//
// Core file (freestanding): handles from the default metadata hooks; each
// entry point checks its arguments, returns an error code, and changes
// nothing on error.
#include "numaheap/numaheap_cold.h"

#include <new>

#include "numaheap/cold_store.h"

#include "allocator/guest/c_api_guest.h"
#include "allocator/heap/c_handles.h"

struct numaheap_cold_store {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::ColdStore> cs;
};

namespace {

using namespace numaheap;
using capi::code;
using capi::fail;

static_assert(NUMAHEAP_POOL_EPHEMERAL == static_cast<int>(PoolKind::ephemeral));
static_assert(NUMAHEAP_POOL_PERSISTENT == static_cast<int>(PoolKind::persistent));
static_assert(NUMAHEAP_COLD_HIT == static_cast<int>(ColdGet::hit));
static_assert(NUMAHEAP_COLD_MISS == static_cast<int>(ColdGet::miss));
static_assert(NUMAHEAP_COLD_DROPPED == static_cast<int>(ColdGet::dropped));

bool kind_of(int k, PoolKind& out) {
  if (k != NUMAHEAP_POOL_EPHEMERAL && k != NUMAHEAP_POOL_PERSISTENT) return false;
  out = static_cast<PoolKind>(k);
  return true;
}

}  // namespace

extern "C" {

void numaheap_cold_config_init(numaheap_cold_config* c) {
  if (!c) return;
  const ColdStoreConfig d;
  *c = numaheap_cold_config{};
  c->owner = d.owner;
  c->max_pools = d.max_pools;
  c->max_entries = d.max_entries;
  c->watermark_pages = d.watermark_pages;
  c->watermark_fraction = d.watermark_fraction;
  c->room_recheck = d.room_recheck;
  c->scrub_on_free = d.scrub_on_free ? 1 : 0;
}

int numaheap_cold_store_create(numaheap_heap* h, const numaheap_cold_config* c,
                               numaheap_cold_store** out, char* err, size_t err_len) {
  if (!h || !c || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  ColdStoreConfig cc;
  cc.owner = c->owner;
  cc.max_pools = c->max_pools;
  cc.max_entries = c->max_entries;
  cc.watermark_pages = c->watermark_pages;
  cc.watermark_fraction = c->watermark_fraction;
  cc.room_recheck = c->room_recheck;
  cc.scrub_on_free = c->scrub_on_free != 0;
  cc.access.ctx = c->access_ctx;
  cc.access.address = c->address;
  auto* s = new numaheap_cold_store();
  if (!s) return fail(Errc::no_memory, "out of memory", err, err_len);
  auto r = ColdStore::create(*h->pa, cc);
  if (!r) {
    delete s;
    return fail(r.error(), err, err_len);
  }
  s->cs = std::move(*r);
  *out = s;
  return NUMAHEAP_OK;
}

void numaheap_cold_store_destroy(numaheap_cold_store* cs) { delete cs; }

int numaheap_cold_pool_create(numaheap_cold_store* cs, const numaheap_guest* g, int kind,
                              uint32_t* pool, char* err, size_t err_len) {
  PoolKind k;
  if (!cs || !g || !pool) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (!kind_of(kind, k)) return fail(Errc::invalid_argument, "unknown pool kind", err, err_len);
  auto r = cs->cs->create_pool(*g->gm, k);
  if (!r) return fail(r.error(), err, err_len);
  *pool = *r;
  return NUMAHEAP_OK;
}

int numaheap_cold_pool_create_home(numaheap_cold_store* cs, const numaheap_nodemask* home, int kind,
                                   const char* name, uint32_t* pool, char* err, size_t err_len) {
  PoolKind k;
  if (!cs || !home || !pool) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (!kind_of(kind, k)) return fail(Errc::invalid_argument, "unknown pool kind", err, err_len);
  auto r = cs->cs->create_pool(capi::mask_of(home), k, name ? capi::c_text(name, 256) : std::string_view("pool", 4));
  if (!r) return fail(r.error(), err, err_len);
  *pool = *r;
  return NUMAHEAP_OK;
}

int numaheap_cold_pool_set_home(numaheap_cold_store* cs, uint32_t pool, const numaheap_nodemask* home,
                                uint64_t* stayed) {
  if (!cs || !home) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = cs->cs->set_pool_home(pool, capi::mask_of(home));
  if (!r) return code(r.error());
  if (stayed) *stayed = *r;
  return NUMAHEAP_OK;
}

int numaheap_cold_pool_destroy(numaheap_cold_store* cs, uint32_t pool) {
  return cs ? code(cs->cs->destroy_pool(pool)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_cold_put(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index,
                      const void* page, uint32_t* node) {
  if (!cs || !page) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = cs->cs->put(pool, object, index, page);
  if (!r) return code(r.error());
  if (node) *node = *r;
  return NUMAHEAP_OK;
}

int numaheap_cold_get(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index,
                      void* out, int* result) {
  if (!cs || !out || !result) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = cs->cs->get(pool, object, index, out);
  if (!r) return code(r.error());
  *result = static_cast<int>(*r);
  return NUMAHEAP_OK;
}

int numaheap_cold_flush(numaheap_cold_store* cs, uint32_t pool, uint64_t object, uint32_t index) {
  return cs ? code(cs->cs->flush(pool, object, index)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_cold_flush_object(numaheap_cold_store* cs, uint32_t pool, uint64_t object,
                               uint64_t* removed) {
  if (!cs) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = cs->cs->flush_object(pool, object);
  if (!r) return code(r.error());
  if (removed) *removed = *r;
  return NUMAHEAP_OK;
}

uint64_t numaheap_cold_reclaim(numaheap_cold_store* cs, uint32_t node, uint64_t pages) {
  return cs ? cs->cs->reclaim(node, pages) : 0;
}

uint64_t numaheap_cold_store_reclaim_hook(void* cold_store, uint32_t node, uint64_t pages) {
  return numaheap_cold_reclaim(static_cast<numaheap_cold_store*>(cold_store), node, pages);
}

uint32_t numaheap_cold_node_of(const numaheap_cold_store* cs, uint32_t pool, uint64_t object,
                               uint32_t index) {
  return cs ? cs->cs->node_of(pool, object, index) : NUMAHEAP_NO_NODE;
}

size_t numaheap_cold_pool_node_order(const numaheap_cold_store* cs, uint32_t pool, uint32_t* out,
                                     size_t max) {
  if (!cs) return 0;
  std::size_t i = 0;
  for (NodeId n : cs->cs->pool_node_order(pool)) {
    if (out && i < max) out[i] = n;
    ++i;
  }
  return i;
}

int numaheap_cold_get_stats(const numaheap_cold_store* cs, numaheap_cold_stats* out) {
  if (!cs || !out || (out->per_node_cap && !out->per_node)) return NUMAHEAP_E_INVALID_ARGUMENT;
  const ColdStoreStats s = cs->cs->stats();
  out->pools = s.pools;
  out->pages = s.pages;
  out->dropped_markers = s.dropped_markers;
  out->puts = s.puts;
  out->put_failures = s.put_failures;
  out->gets = s.gets;
  out->hits = s.hits;
  out->misses = s.misses;
  out->dropped_gets = s.dropped_gets;
  out->flushes = s.flushes;
  out->reclaimed = s.reclaimed;
  std::size_t i = 0;
  for (const auto& n : s.per_node) {
    if (i < out->per_node_cap) out->per_node[i] = {n.node, n.ephemeral, n.persistent};
    ++i;
  }
  out->per_node_count = i;
  return NUMAHEAP_OK;
}

int numaheap_cold_check(const numaheap_cold_store* cs) {
  return cs ? code(cs->cs->check_invariants()) : NUMAHEAP_E_INVALID_ARGUMENT;
}

}  // extern "C"
