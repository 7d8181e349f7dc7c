// The migrator's C API (include/numaheap/numaheap_migrate.h) over Migrator
// and KernelMover.
#include "numaheap/numaheap_migrate.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "numaheap/migrator.h"

// Same definition as in allocator/heap/c_api.cc (one definition, two TUs).
struct numaheap_topology {
  numaheap::Topology topo;
};

struct numaheap_migrator {
  std::unique_ptr<numaheap::Migrator> m;
  std::mutex lock;  // guards movers
  std::vector<std::unique_ptr<numaheap::KernelMover>> movers;  // live as long as the migrator
};

namespace {

using numaheap::Errc;

static_assert(NUMAHEAP_MOVE_OUTCOMES == numaheap::kMoveOutcomeCount);
static_assert(NUMAHEAP_MOVE_INVALID_NODE == static_cast<int>(numaheap::MoveOutcome::invalid_node));
static_assert(NUMAHEAP_MOVE_NOT_PRESENT == static_cast<int>(numaheap::MoveOutcome::not_present));
static_assert(NUMAHEAP_REHOME_FAILED == static_cast<int>(numaheap::RehomeState::failed));

int code(Errc e) { return static_cast<int>(e); }
int code(const numaheap::Status& s) { return s ? NUMAHEAP_OK : code(s.error()); }

numaheap::NodeMask mask_of(const numaheap_nodemask* m) {
  numaheap::NodeMask out;
  for (std::uint32_t w = 0; w < NUMAHEAP_MAX_NODES / 64; ++w)
    for (std::uint32_t b = 0; b < 64; ++b)
      if ((m->bits[w] >> b) & 1u) out.set(w * 64 + b);
  return out;
}

}  // namespace

extern "C" {

void numaheap_migrator_config_init(numaheap_migrator_config* c) {
  if (!c) return;
  const numaheap::MigratorConfig d;
  c->period_ms = d.period_ms;
  c->scan_pages = d.scan_pages;
  c->decay_steps = d.decay_steps;
  c->rate_limit_mb_s = d.rate_limit_mb_s;
  c->watermark_pages = d.watermark_pages;
  c->watermark_fraction = d.watermark_fraction;
  c->max_guests = d.max_guests;
  c->rehome_pages_per_step = d.rehome_pages_per_step;
}

int numaheap_migrator_create(const numaheap_topology* t, const numaheap_migrator_config* c,
                             numaheap_migrator** out) {
  if (!t || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::MigratorConfig cfg;
  if (c) {
    cfg.period_ms = c->period_ms;
    cfg.scan_pages = c->scan_pages;
    cfg.decay_steps = c->decay_steps;
    cfg.rate_limit_mb_s = c->rate_limit_mb_s;
    cfg.watermark_pages = c->watermark_pages;
    cfg.watermark_fraction = c->watermark_fraction;
    cfg.max_guests = c->max_guests;
    cfg.rehome_pages_per_step = c->rehome_pages_per_step;
  }
  auto m = numaheap::Migrator::create(t->topo, cfg);
  if (!m) return code(m.error());
  auto* h = new (std::nothrow) numaheap_migrator();
  if (!h) return NUMAHEAP_E_NO_MEMORY;
  h->m = std::move(*m);
  *out = h;
  return NUMAHEAP_OK;
}

void numaheap_migrator_destroy(numaheap_migrator* m) { delete m; }

int numaheap_migrator_add_mapping(numaheap_migrator* m, void* base, uint64_t pages, uint32_t vcpus,
                                  const numaheap_nodemask* allowed, uint32_t* guest_id) {
  if (!m || !guest_id) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto km = numaheap::KernelMover::create(base, pages);
  if (!km) return code(km.error());
  std::unique_ptr<numaheap::KernelMover> mover(new (std::nothrow) numaheap::KernelMover(*km));
  if (!mover) return NUMAHEAP_E_NO_MEMORY;
  numaheap::MigrateGuestOptions o;
  o.vcpus = vcpus;
  if (allowed) o.allowed = mask_of(allowed);
  std::lock_guard<std::mutex> g(m->lock);
  auto id = m->m->add_guest(*mover, o);
  if (!id) return code(id.error());
  m->movers.push_back(std::move(mover));
  *guest_id = *id;
  return NUMAHEAP_OK;
}

int numaheap_migrator_remove_guest(numaheap_migrator* m, uint32_t guest_id) {
  return m ? code(m->m->remove_guest(guest_id)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

void numaheap_migrator_record_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t cpu) {
  if (m) m->m->record_access(guest_id, gfn, cpu);
}

void numaheap_migrator_record_vcpu_access(numaheap_migrator* m, uint32_t guest_id, uint64_t gfn, uint32_t vcpu) {
  if (m) m->m->record_vcpu_access(guest_id, gfn, vcpu);
}

int numaheap_migrator_set_vcpu_cpu(numaheap_migrator* m, uint32_t guest_id, uint32_t vcpu, uint32_t cpu) {
  return m ? code(m->m->set_vcpu_cpu(guest_id, vcpu, cpu)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_migrator_start(numaheap_migrator* m) {
  return m ? code(m->m->start()) : NUMAHEAP_E_INVALID_ARGUMENT;
}

void numaheap_migrator_stop(numaheap_migrator* m) {
  if (m) m->m->stop();
}

int numaheap_migrator_step(numaheap_migrator* m, uint64_t* moved) {
  if (!m) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::StepReport r = m->m->step();
  if (moved) *moved = r.moved;
  return NUMAHEAP_OK;
}

int numaheap_migrator_rehome(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                             uint32_t vnode) {
  if (!m || !targets) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(m->m->rehome(guest_id, mask_of(targets), vnode));
}

int numaheap_migrator_rehome_ex(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                                uint32_t vnode, uint32_t flags) {
  static_assert(NUMAHEAP_REHOME_OVERRIDE_LIMITS == numaheap::rehome_override_limits);
  if (!m || !targets) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(m->m->rehome(guest_id, mask_of(targets), vnode, flags));
}

int numaheap_migrator_rehome_progress(const numaheap_migrator* m, uint32_t guest_id,
                                      numaheap_rehome_progress* out) {
  if (!m || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto p = m->m->rehome_progress(guest_id);
  if (!p) return code(p.error());
  out->state = static_cast<int>(p->state);
  out->total = p->total;
  out->done = p->done;
  out->moved = p->moved;
  out->skipped = p->skipped;
  out->failed = p->failed;
  out->pass = p->pass;
  return NUMAHEAP_OK;
}

int numaheap_migrator_cancel_rehome(numaheap_migrator* m, uint32_t guest_id) {
  return m ? code(m->m->cancel_rehome(guest_id)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_migrator_get_stats(const numaheap_migrator* m, numaheap_migrator_stats* out) {
  if (!m || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::MigratorStats s = m->m->stats();
  out->steps = s.steps;
  out->pages_scanned = s.pages_scanned;
  out->pages_moved = s.pages_moved;
  out->bytes_moved = s.bytes_moved;
  for (std::size_t i = 0; i < NUMAHEAP_MOVE_OUTCOMES; ++i) out->outcomes[i] = s.outcomes[i];
  out->skipped_pinned = s.skipped_pinned;
  out->skipped_shared = s.skipped_shared;
  out->skipped_shared_access = s.skipped_shared_access;
  out->skipped_rate_limit = s.skipped_rate_limit;
  out->skipped_watermark = s.skipped_watermark;
  out->skipped_backoff = s.skipped_backoff;
  out->pages_evacuated = s.pages_evacuated;
  out->ns_stepping = s.ns_stepping;
  out->ns_moving = s.ns_moving;
  out->local_access_ratio = s.local_access_ratio;
  out->tracking_bytes = s.tracking_bytes;
  out->retired_guests = s.retired_guests;
  return NUMAHEAP_OK;
}

size_t numaheap_migrator_node_pair_moves(const numaheap_migrator* m, numaheap_node_pair_moves* out, size_t cap) {
  if (!m) return 0;
  const numaheap::MigratorStats s = m->m->stats();
  for (std::size_t i = 0; i < s.moves.size() && i < cap && out; ++i)
    out[i] = {s.moves[i].from, s.moves[i].to, s.moves[i].pages, s.moves[i].bytes};
  return s.moves.size();
}

}  // extern "C"
