// Page sharing through the C API (include/numaheap/numaheap_sharing.h).
//
// Core file (freestanding): handles from the default metadata hooks; each
// entry point checks its arguments, returns an error code, and changes
// nothing on error.
#include "numaheap/numaheap_sharing.h"

#include <new>

#include "numaheap/sharing.h"

#include "allocator/guest/c_api_guest.h"
#include "allocator/heap/c_handles.h"
#include "allocator/platform/spin_lock.h"

struct numaheap_sharing {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::SharingManager> sm;
  numaheap_sharing_config config{};  // the C hooks; immutable after create
  // The C handle of each added guest, for the write-protect hooks (which
  // get the GuestMemory). Guarded by `lock`, a leaf lock.
  struct Known {
    const numaheap::GuestMemory* gm;
    numaheap_guest* g;
  };
  numaheap::SpinLock lock;
  numaheap::Vector<Known> guests;

  numaheap_guest* handle_of(const numaheap::GuestMemory& gm) {
    numaheap::SpinGuard guard(lock);
    for (const Known& k : guests)
      if (k.gm == &gm) return k.g;
    return nullptr;
  }
};

namespace {

using namespace numaheap;
using capi::code;
using capi::fail;

static_assert(NUMAHEAP_SHARE_ACROSS_NODES == static_cast<int>(SharingPolicy::Kind::across_nodes));
static_assert(NUMAHEAP_SHARE_SAME_NODE == static_cast<int>(SharingPolicy::Kind::same_node_only));
static_assert(NUMAHEAP_SHARE_WITHIN_DISTANCE == static_cast<int>(SharingPolicy::Kind::within_distance));

bool policy_of(const numaheap_sharing_policy& p, SharingPolicy& out) {
  switch (p.kind) {
    case NUMAHEAP_SHARE_ACROSS_NODES: out = SharingPolicy::across_nodes(); return true;
    case NUMAHEAP_SHARE_SAME_NODE: out = SharingPolicy::same_node_only(); return true;
    case NUMAHEAP_SHARE_WITHIN_DISTANCE: out = SharingPolicy::within_distance(p.max_distance); return true;
    default: return false;
  }
}

bool tramp_protect(void* ctx, const GuestMemory& gm, Gfn gfn) {
  auto* s = static_cast<numaheap_sharing*>(ctx);
  numaheap_guest* g = s->handle_of(gm);
  return g && s->config.write_protect(s->config.hooks_ctx, g, gfn) != 0;
}

void tramp_unprotect(void* ctx, const GuestMemory& gm, Gfn gfn) {
  auto* s = static_cast<numaheap_sharing*>(ctx);
  if (numaheap_guest* g = s->handle_of(gm)) s->config.write_unprotect(s->config.hooks_ctx, g, gfn);
}

}  // namespace

extern "C" {

void numaheap_sharing_config_init(numaheap_sharing_config* c) {
  if (!c) return;
  const SharingConfig d;
  *c = numaheap_sharing_config{};
  c->owner = d.owner;
  c->policy = {NUMAHEAP_SHARE_ACROSS_NODES, 0};
  c->zero_pages = d.zero_pages ? 1 : 0;
}

int numaheap_sharing_create(numaheap_heap* h, const numaheap_sharing_config* c,
                            numaheap_sharing** out, char* err, size_t err_len) {
  if (!h || !c || !out) return fail(Errc::invalid_argument, "null argument", err, err_len);
  if (!c->write_protect != !c->write_unprotect)
    return fail(Errc::invalid_argument, "write_protect and write_unprotect go together", err, err_len);
  SharingConfig sc;
  if (!policy_of(c->policy, sc.policy)) return fail(Errc::invalid_argument, "unknown policy", err, err_len);
  sc.owner = c->owner;
  sc.access.ctx = c->access_ctx;
  sc.access.address = c->address;
  sc.zero_pages = c->zero_pages != 0;
  auto* s = new numaheap_sharing();
  if (!s) return fail(Errc::no_memory, "out of memory", err, err_len);
  s->config = *c;
  if (c->write_protect) {
    sc.hooks.ctx = s;
    sc.hooks.write_protect = tramp_protect;
    sc.hooks.write_unprotect = tramp_unprotect;
  }
  auto r = SharingManager::create(*h->pa, sc);
  if (!r) {
    delete s;
    return fail(r.error(), err, err_len);
  }
  s->sm = std::move(*r);
  *out = s;
  return NUMAHEAP_OK;
}

void numaheap_sharing_destroy(numaheap_sharing* s) { delete s; }

int numaheap_sharing_add_guest(numaheap_sharing* s, numaheap_guest* g, char* err, size_t err_len) {
  if (!s || !g) return fail(Errc::invalid_argument, "null argument", err, err_len);
  {
    SpinGuard guard(s->lock);
    if (!s->guests.reserve(s->guests.size() + 1)) return fail(Errc::no_memory, "out of memory", err, err_len);
  }
  auto r = s->sm->add_guest(*g->gm);
  if (!r) return fail(r.error(), err, err_len);
  SpinGuard guard(s->lock);
  for (const auto& k : s->guests)
    if (k.g == g) return NUMAHEAP_OK;
  (void)s->guests.push_back({g->gm.get(), g});  // reserved above
  return NUMAHEAP_OK;
}

int numaheap_sharing_remove_guest(numaheap_sharing* s, numaheap_guest* g, char* err, size_t err_len) {
  if (!s || !g) return fail(Errc::invalid_argument, "null argument", err, err_len);
  auto r = s->sm->remove_guest(*g->gm);
  if (!r) return fail(r.error(), err, err_len);
  SpinGuard guard(s->lock);
  for (std::size_t i = 0; i < s->guests.size(); ++i)
    if (s->guests[i].g == g) {
      s->guests.erase(s->guests.begin() + i);
      break;
    }
  return NUMAHEAP_OK;
}

int numaheap_sharing_scan(numaheap_sharing* s, numaheap_guest* g, uint64_t first, uint64_t count,
                          uint64_t* merged) {
  if (!s || !g) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = s->sm->scan(*g->gm, first, count);
  if (!r) return code(r.error());
  if (merged) *merged = *r;
  return NUMAHEAP_OK;
}

int numaheap_sharing_write_fault(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn,
                                 uint32_t writer_node) {
  if (!s || !g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(s->sm->write_fault(*g->gm, gfn, writer_node));
}

int numaheap_sharing_write_fault_cpu(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn,
                                     uint32_t writer_cpu) {
  if (!s || !g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(s->sm->write_fault_cpu(*g->gm, gfn, writer_cpu));
}

int numaheap_sharing_unshare(numaheap_sharing* s, numaheap_guest* g, uint64_t gfn) {
  if (!s || !g) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(s->sm->unshare(*g->gm, gfn));
}

int numaheap_sharing_unmerge_all(numaheap_sharing* s, char* err, size_t err_len) {
  if (!s) return fail(Errc::invalid_argument, "null argument", err, err_len);
  auto r = s->sm->unmerge_all();
  return r ? NUMAHEAP_OK : fail(r.error(), err, err_len);
}

int numaheap_sharing_get_policy(const numaheap_sharing* s, numaheap_sharing_policy* out) {
  if (!s || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  const SharingPolicy p = s->sm->policy();
  out->kind = static_cast<int>(p.kind());
  out->max_distance = p.max_distance();
  return NUMAHEAP_OK;
}

int numaheap_sharing_set_policy(numaheap_sharing* s, const numaheap_sharing_policy* p) {
  if (!s || !p) return NUMAHEAP_E_INVALID_ARGUMENT;
  SharingPolicy sp;
  if (!policy_of(*p, sp)) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(s->sm->set_policy(sp));
}

int numaheap_sharing_policy_allows(const numaheap_topology* t, const numaheap_sharing_policy* p,
                                   uint32_t a, uint32_t b) {
  SharingPolicy sp;
  if (!t || !p || !policy_of(*p, sp)) return 0;
  return sp.allows(t->topo, a, b) ? 1 : 0;
}

int numaheap_sharing_get_stats(const numaheap_sharing* s, numaheap_sharing_stats* out) {
  if (!s || !out || (out->per_node_cap && !out->per_node)) return NUMAHEAP_E_INVALID_ARGUMENT;
  const SharingStats st = s->sm->stats();
  out->pages_shared = st.pages_shared;
  out->pages_sharing = st.pages_sharing;
  out->pages_saved = st.pages_saved;
  out->zero_mappings = st.zero_mappings;
  out->candidates = st.candidates;
  out->pages_scanned = st.pages_scanned;
  out->bytes_hashed = st.bytes_hashed;
  out->bytes_compared = st.bytes_compared;
  out->merges = st.merges;
  out->unshares = st.unshares;
  out->refused_by_policy = st.refused_by_policy;
  out->merge_failures = st.merge_failures;
  std::size_t i = 0;
  for (const auto& n : st.per_node) {
    if (i < out->per_node_cap) out->per_node[i] = {n.node, n.frames, n.mappings, n.saved};
    ++i;
  }
  out->per_node_count = i;
  return NUMAHEAP_OK;
}

int numaheap_sharing_check(const numaheap_sharing* s) {
  return s ? code(s->sm->check_invariants()) : NUMAHEAP_E_INVALID_ARGUMENT;
}

}  // extern "C"
