// The migrator's C API (include/numaheap/numaheap_migrate.h): the core part
// -- the Migrator, the frame-swap mover and its hooks. Kernel-moved VMM
// mappings are host code: migrate/host/c_api.cc.
//
// Core file (freestanding): handles from the default metadata hooks; each
// entry point checks its arguments, returns an error code, and changes
// nothing on error.
#include "numaheap/numaheap_migrate.h"

#include <cstddef>
#include <new>
#include <optional>

#include "numaheap/migrator.h"
#include "numaheap/mover.h"

#include "allocator/guest/c_api_guest.h"
#include "allocator/heap/c_handles.h"
#include "migrate/c_api_migrator.h"
#include "migrate/vcpu_advice.h"

// The frame-swap mover and the C hooks it calls through trampolines (the
// C++ hooks take GfnRun and return bool). Immutable after create.
struct numaheap_frame_mover {
  NUMAHEAP_METADATA_NEW_DELETE
  numaheap_frame_swap_hooks hooks{};
  std::optional<numaheap::FrameSwapMover> mover;
};

namespace {

using numaheap::Errc;
using numaheap::capi::code;

static_assert(NUMAHEAP_MOVE_OUTCOMES == numaheap::kMoveOutcomeCount);
static_assert(NUMAHEAP_MOVED == static_cast<int>(numaheap::MoveOutcome::moved));
static_assert(NUMAHEAP_MOVE_BUSY == static_cast<int>(numaheap::MoveOutcome::busy));
static_assert(NUMAHEAP_MOVE_NO_MEMORY == static_cast<int>(numaheap::MoveOutcome::no_memory));
static_assert(NUMAHEAP_MOVE_PINNED == static_cast<int>(numaheap::MoveOutcome::pinned));
static_assert(NUMAHEAP_MOVE_SHARED == static_cast<int>(numaheap::MoveOutcome::shared));
static_assert(NUMAHEAP_MOVE_INVALID_NODE == static_cast<int>(numaheap::MoveOutcome::invalid_node));
static_assert(NUMAHEAP_MOVE_NOT_PRESENT == static_cast<int>(numaheap::MoveOutcome::not_present));
static_assert(NUMAHEAP_REHOME_FAILED == static_cast<int>(numaheap::RehomeState::failed));
static_assert(NUMAHEAP_ALL_VNODES == numaheap::kAllVnodes);
static_assert(sizeof(numaheap_gfn_run) == sizeof(numaheap::GfnRun));
static_assert(offsetof(numaheap_gfn_run, pages) == offsetof(numaheap::GfnRun, pages));
// numaheap_migrator_vcpu_advice hands the C++ records out as they are.
static_assert(sizeof(numaheap_vcpu_advice) == sizeof(numaheap::VcpuAdvice));
static_assert(offsetof(numaheap_vcpu_advice, group) == offsetof(numaheap::VcpuAdvice, group));
static_assert(offsetof(numaheap_vcpu_advice, pages) == offsetof(numaheap::VcpuAdvice, pages));
static_assert(offsetof(numaheap_vcpu_advice, saving_us) == offsetof(numaheap::VcpuAdvice, saving_us));

// Largest gfn batch converted on the stack per mover call.
constexpr std::size_t kChunk = 256;

const numaheap_frame_swap_hooks& c_hooks(void* ctx) {
  return static_cast<numaheap_frame_mover*>(ctx)->hooks;
}
void tramp_write_protect(void* ctx, const numaheap::GfnRun* runs, std::size_t n) {
  const auto& h = c_hooks(ctx);
  h.write_protect(h.ctx, reinterpret_cast<const numaheap_gfn_run*>(runs), n);
}
void tramp_flush(void* ctx) {
  const auto& h = c_hooks(ctx);
  h.flush(h.ctx);
}
bool tramp_dirtied(void* ctx, numaheap::GfnRun run) {
  const auto& h = c_hooks(ctx);
  return h.dirtied(h.ctx, numaheap_gfn_run{run.first, run.pages}) != 0;
}
void tramp_unprotect(void* ctx, const numaheap::GfnRun* runs, std::size_t n) {
  const auto& h = c_hooks(ctx);
  h.unprotect(h.ctx, reinterpret_cast<const numaheap_gfn_run*>(runs), n);
}
void tramp_copy(void* ctx, numaheap::Mfn dst, numaheap::Mfn src, std::uint64_t frames) {
  const auto& h = c_hooks(ctx);
  h.copy(h.ctx, dst, src, frames);
}

numaheap_vcpu_advice c_advice(const numaheap::VcpuAdvice& a) {
  return {a.guest,          a.vcpu,  a.from_node,      a.to_node,      a.group,
          a.pages,          a.pages_after, a.memory_cost_us, a.vcpu_cost_us, a.saving_us};
}
int tramp_on_advice(void* ctx, const numaheap::VcpuAdvice* a) {
  auto* m = static_cast<numaheap_migrator*>(ctx);
  int (*hook)(void*, const numaheap_vcpu_advice*);
  void* hook_ctx;
  {
    numaheap::SpinGuard g(m->advice_lock);
    hook = m->on_advice;
    hook_ctx = m->on_advice_ctx;
  }
  const numaheap_vcpu_advice c = c_advice(*a);
  return hook ? hook(hook_ctx, &c) : 0;
}

// Runs a mover call over `count` gfns in chunks (outcomes converted to
// bytes). Stops at the first error; pages not reached get busy.
template <class Call>
int move_chunked(const uint64_t* gfns, std::size_t count, uint8_t* outcomes, uint64_t* frames_moved,
                 Call&& call) {
  std::uint64_t moved = 0;
  numaheap::MoveOutcome out[kChunk];
  for (std::size_t at = 0; at < count; at += kChunk) {
    const std::size_t n = count - at < kChunk ? count - at : kChunk;
    auto r = call(std::span<const numaheap::Gfn>(gfns + at, n), std::span<numaheap::MoveOutcome>(out, n));
    if (!r) {
      for (std::size_t i = at; i < count; ++i) outcomes[i] = NUMAHEAP_MOVE_BUSY;
      if (frames_moved) *frames_moved = moved;
      return code(r.error());
    }
    moved += r->frames_moved;
    for (std::size_t i = 0; i < n; ++i) outcomes[at + i] = static_cast<uint8_t>(out[i]);
  }
  if (frames_moved) *frames_moved = moved;
  return NUMAHEAP_OK;
}

}  // namespace

extern "C" {

const char* numaheap_move_outcome_name(int outcome) {
  if (outcome < 0 || outcome >= NUMAHEAP_MOVE_OUTCOMES) return "unknown";
  return numaheap::move_outcome_name(static_cast<numaheap::MoveOutcome>(outcome));
}

/* ---- Frame-swap mover ---- */

int numaheap_frame_mover_create(numaheap_guest* g, const numaheap_frame_swap_hooks* hooks,
                                const numaheap_frame_swap_options* options,
                                numaheap_frame_mover** out) {
  if (!g || !hooks || !out || !hooks->write_protect || !hooks->flush || !hooks->unprotect)
    return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::FrameSwapOptions o;
  if (options) {
    if (options->batch > numaheap::FrameSwapMover::kMaxBatch) return NUMAHEAP_E_INVALID_ARGUMENT;
    if (options->batch) o.batch = options->batch;
    o.unsafe_copy_before_protect = options->unsafe_copy_before_protect != 0;
  }
  auto* mv = new numaheap_frame_mover();
  if (!mv) return NUMAHEAP_E_NO_MEMORY;
  mv->hooks = *hooks;
  numaheap::FrameSwapHooks h;
  h.ctx = mv;
  h.write_protect = tramp_write_protect;
  h.flush = tramp_flush;
  h.dirtied = hooks->dirtied ? tramp_dirtied : nullptr;
  h.unprotect = tramp_unprotect;
  h.copy = hooks->copy ? tramp_copy : nullptr;
  auto r = numaheap::FrameSwapMover::create(*g->gm, h, o);
  if (!r) {
    delete mv;
    return code(r.error());
  }
  mv->mover.emplace(std::move(*r));
  *out = mv;
  return NUMAHEAP_OK;
}

void numaheap_frame_mover_destroy(numaheap_frame_mover* mv) { delete mv; }

int numaheap_frame_mover_query(numaheap_frame_mover* mv, uint64_t first_gfn, size_t count,
                               numaheap_page_state* out) {
  if (!mv || (count && !out)) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::PageState st[kChunk];
  for (std::size_t at = 0; at < count; at += kChunk) {
    const std::size_t n = count - at < kChunk ? count - at : kChunk;
    if (auto r = mv->mover->query(first_gfn + at, std::span<numaheap::PageState>(st, n)); !r)
      return code(r.error());
    for (std::size_t i = 0; i < n; ++i)
      out[at + i] = {st[i].node, st[i].flags, st[i].order, st[i].retiring ? 1 : 0};
  }
  return NUMAHEAP_OK;
}

int numaheap_frame_mover_move(numaheap_frame_mover* mv, const uint64_t* gfns, size_t count,
                              uint32_t target, int whole_blocks, uint8_t* outcomes,
                              uint64_t* frames_moved) {
  if (!mv || (count && (!gfns || !outcomes))) return NUMAHEAP_E_INVALID_ARGUMENT;
  const auto g = whole_blocks ? numaheap::MoveGranularity::whole_blocks : numaheap::MoveGranularity::pages;
  return move_chunked(gfns, count, outcomes, frames_moved, [&](auto in, auto out) {
    return mv->mover->move(in, target, g, out);
  });
}

int numaheap_frame_mover_evacuate(numaheap_frame_mover* mv, const uint64_t* gfns, size_t count,
                                  uint32_t target, uint8_t* outcomes, uint64_t* frames_moved) {
  if (!mv || (count && (!gfns || !outcomes))) return NUMAHEAP_E_INVALID_ARGUMENT;
  return move_chunked(gfns, count, outcomes, frames_moved, [&](auto in, auto out) {
    return mv->mover->evacuate(in, target, out);
  });
}

int numaheap_frame_mover_coalesce(numaheap_frame_mover* mv, uint64_t head_gfn, uint32_t order, uint32_t target,
                                  uint8_t* outcome, uint64_t* frames_moved) {
  if (!mv) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::MoveOutcome o = numaheap::MoveOutcome::busy;
  auto r = mv->mover->coalesce(head_gfn, order, target, o);
  if (!r) return code(r.error());
  if (outcome) *outcome = static_cast<uint8_t>(o);
  if (frames_moved) *frames_moved = r->frames_moved;
  return NUMAHEAP_OK;
}

/* ---- Migrator ---- */

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
  c->backoff_max_steps = d.backoff_max_steps;
  c->rehome_max_passes = d.rehome_max_passes;
  c->spare_bandwidth_mb_s = nullptr;
  c->spare_bandwidth_ctx = nullptr;
  c->spare_bandwidth_share = d.spare_bandwidth_share;
  c->min_sample_share = d.min_sample_share;
  c->quick_moves = d.quick_moves ? 1 : 0;
  c->keep_huge_pages = d.keep_huge_pages ? 1 : 0;
  c->watermark_max_pages = d.watermark_max_pages;
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
    cfg.backoff_max_steps = c->backoff_max_steps;
    cfg.rehome_max_passes = c->rehome_max_passes;
    cfg.spare_bandwidth_mb_s = c->spare_bandwidth_mb_s;
    cfg.spare_bandwidth_ctx = c->spare_bandwidth_ctx;
    cfg.spare_bandwidth_share = c->spare_bandwidth_share;
    cfg.min_sample_share = c->min_sample_share;
    cfg.quick_moves = c->quick_moves != 0;
    cfg.keep_huge_pages = c->keep_huge_pages != 0;
    cfg.watermark_max_pages = c->watermark_max_pages;
  }
  auto* h = new numaheap_migrator();
  if (!h) return NUMAHEAP_E_NO_MEMORY;
  auto m = numaheap::Migrator::create(t->topo, cfg);
  if (!m) {
    delete h;
    return code(m.error());
  }
  h->m = std::move(*m);
  *out = h;
  return NUMAHEAP_OK;
}

void numaheap_migrator_destroy(numaheap_migrator* m) { delete m; }

int numaheap_migrator_add_frame_guest(numaheap_migrator* m, numaheap_frame_mover* mv,
                                      const numaheap_migrate_guest_options* options,
                                      uint32_t* guest_id) {
  if (!m || !mv || !guest_id) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::MigrateGuestOptions o =
      numaheap::migrate_options_for(mv->mover->guest(), options && options->vnuma_bound);
  if (options) {
    if (options->vcpus) o.vcpus = options->vcpus;
    if (options->allowed) o.allowed = numaheap::capi::mask_of(options->allowed);
    o.auto_balance = options->manual_only == 0;
    o.granularity = options->whole_blocks ? numaheap::MoveGranularity::whole_blocks
                                          : numaheap::MoveGranularity::pages;
  }
  auto id = m->m->add_guest(*mv->mover, o);
  if (!id) return code(id.error());
  *guest_id = *id;
  return NUMAHEAP_OK;
}

int numaheap_migrator_remove_guest(numaheap_migrator* m, uint32_t guest_id) {
  if (!m) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::capi::OwnedMover* gone = nullptr;
  {
    // m->lock across both: add_mapping adds its guest and its entry under
    // it, so the entry found here is this guest's, not a newer one's.
    numaheap::SpinGuard g(m->lock);
    if (auto r = m->m->remove_guest(guest_id); !r) return code(r.error());
    for (numaheap::capi::OwnedMover** p = &m->owned; *p; p = &(*p)->next)
      if ((*p)->guest == guest_id) {
        gone = *p;
        *p = gone->next;
        break;
      }
  }
  // A mover the handle made for the guest goes with it. No step uses it
  // any more: remove_guest waited out a running step (step_lock) and
  // unpublished the slot, and the retired slot's mover pointer is never
  // followed (inputs and reclaim use only the tracker and counters).
  if (gone) {
    gone->destroy(gone->mover);
    delete gone;
  }
  return NUMAHEAP_OK;
}

int numaheap_migrator_bind_vnode(numaheap_migrator* m, uint32_t guest_id, uint32_t vnode,
                                 uint32_t pnode) {
  return m ? code(m->m->bind_vnode(guest_id, vnode, pnode)) : NUMAHEAP_E_INVALID_ARGUMENT;
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

int numaheap_migrator_sample_share(const numaheap_migrator* m, uint32_t guest_id, double* out) {
  if (!m || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto r = m->m->sample_share(guest_id);
  if (!r) return code(r.error());
  *out = *r;
  return NUMAHEAP_OK;
}

// A background thread in the host library (migrate/host/background.cc);
// the core's Migrator::start says unsupported and stop/request_step do
// nothing (migrator.cc), so a core embedder links these too.
int numaheap_migrator_start(numaheap_migrator* m) {
  return m ? code(m->m->start()) : NUMAHEAP_E_INVALID_ARGUMENT;
}

void numaheap_migrator_stop(numaheap_migrator* m) {
  if (m) m->m->stop();
}

void numaheap_migrator_request_step(numaheap_migrator* m) {
  if (m) m->m->request_step();
}

int numaheap_migrator_running(const numaheap_migrator* m) { return m && m->m->running() ? 1 : 0; }

int numaheap_migrator_step(numaheap_migrator* m, uint64_t* moved) {
  if (!m) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::StepReport r = m->m->step();
  if (moved) *moved = r.moved;
  return NUMAHEAP_OK;
}

int numaheap_migrator_step_at(numaheap_migrator* m, uint64_t now_ns, numaheap_step_report* report) {
  if (!m) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::StepReport r = m->m->step_at(now_ns);
  if (report) *report = {r.scanned, r.moved, r.failed};
  return NUMAHEAP_OK;
}

int numaheap_migrator_check(const numaheap_migrator* m) {
  return m ? code(m->m->check_invariants()) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_migrator_rehome(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                             uint32_t vnode) {
  return numaheap_migrator_rehome_ex(m, guest_id, targets, vnode, 0);
}

int numaheap_migrator_rehome_ex(numaheap_migrator* m, uint32_t guest_id, const numaheap_nodemask* targets,
                                uint32_t vnode, uint32_t flags) {
  static_assert(NUMAHEAP_REHOME_OVERRIDE_LIMITS == numaheap::rehome_override_limits);
  if (!m || !targets || (flags & ~NUMAHEAP_REHOME_OVERRIDE_LIMITS)) return NUMAHEAP_E_INVALID_ARGUMENT;
  return code(m->m->rehome(guest_id, numaheap::capi::mask_of(targets), vnode, flags));
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

int numaheap_migrator_guest_stats(const numaheap_migrator* m, uint32_t guest_id, numaheap_migrate_guest_stats* out) {
  if (!m || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto g = m->m->guest_stats(guest_id);
  if (!g) return code(g.error());
  *out = {g->pages_scanned,  g->pages_moved, g->bytes_moved,       g->pages_followed,
          g->pages_quick,    g->pages_evacuated, g->local_access_ratio, g->vcpus};
  return NUMAHEAP_OK;
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
  out->pages_followed = s.pages_followed;
  out->pages_quick = s.pages_quick;
  out->blocks_moved_whole = s.blocks_moved_whole;
  out->blocks_split = s.blocks_split;
  out->blocks_coalesced = s.blocks_coalesced;
  out->ns_stepping = s.ns_stepping;
  out->ns_moving = s.ns_moving;
  out->local_access_ratio = s.local_access_ratio;
  out->tracking_bytes = s.tracking_bytes;
  out->retired_guests = s.retired_guests;
  out->flushes = s.flushes;
  out->advice_given = s.advice_given;
  out->advice_held = s.advice_held;
  out->pages_scanned_sampled = s.pages_scanned_sampled;
  return NUMAHEAP_OK;
}

size_t numaheap_migrator_node_pair_moves(const numaheap_migrator* m, numaheap_node_pair_moves* out, size_t cap) {
  if (!m) return 0;
  const numaheap::MigratorStats s = m->m->stats();
  for (std::size_t i = 0; i < s.moves.size() && i < cap && out; ++i)
    out[i] = {s.moves[i].from, s.moves[i].to, s.moves[i].pages, s.moves[i].bytes};
  return s.moves.size();
}


/* ---- vCPU advice ---- */

void numaheap_vcpu_advice_config_init(numaheap_vcpu_advice_config* c) {
  if (!c) return;
  const numaheap::VcpuAdviceConfig d;
  *c = {};
  c->enabled = d.enabled ? 1 : 0;
  c->copy_gb_s = d.copy_gb_s;
  c->page_overhead_us = d.page_overhead_us;
  c->vcpu_move_us = d.vcpu_move_us;
  c->memory_bound_share = d.memory_bound_share;
  c->margin = d.margin;
  c->min_share = d.min_share;
  c->min_pages = d.min_pages;
}

int numaheap_migrator_set_vcpu_advice(numaheap_migrator* m, const numaheap_vcpu_advice_config* c) {
  if (!m || !c) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::VcpuAdviceConfig a;
  a.enabled = c->enabled != 0;
  a.copy_gb_s = c->copy_gb_s;
  a.page_overhead_us = c->page_overhead_us;
  a.vcpu_move_us = c->vcpu_move_us;
  a.memory_bound_share = c->memory_bound_share;
  a.margin = c->margin;
  a.min_share = c->min_share;
  a.min_pages = c->min_pages;
  a.vcpu_allowed = c->vcpu_allowed;
  a.free_cpus = c->free_cpus;
  a.room_ctx = c->room_ctx;
  if (c->on_advice) {
    a.on_advice = tramp_on_advice;
    a.on_advice_ctx = m;
  }
  // Nothing changes on bad input: the hook is swapped only once the
  // numbers are accepted.
  if (auto v = numaheap::VcpuAdvisor::validate(a); !v) return code(v.error());
  {
    numaheap::SpinGuard g(m->advice_lock);
    m->on_advice = c->on_advice;
    m->on_advice_ctx = c->on_advice_ctx;
  }
  return code(m->m->set_vcpu_advice(a));
}

int numaheap_migrator_vcpu_advice(const numaheap_migrator* m, numaheap_vcpu_advice* out, size_t cap,
                                  size_t* count) {
  if (!m || (cap && !out)) return NUMAHEAP_E_INVALID_ARGUMENT;
  const std::size_t n = m->m->vcpu_advice(std::span<numaheap::VcpuAdvice>(
      reinterpret_cast<numaheap::VcpuAdvice*>(out), out ? cap : 0));
  if (count) *count = n;
  return NUMAHEAP_OK;
}

int numaheap_migrator_vcpu_advice_for(const numaheap_migrator* m, uint32_t guest_id, uint32_t vcpu,
                                      numaheap_vcpu_advice* out, int* has) {
  if (!m || !out || !has) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::VcpuAdvice a;
  auto r = m->m->vcpu_advice_for(guest_id, vcpu, a);
  if (!r) return code(r.error());
  *has = *r ? 1 : 0;
  if (*r) *out = c_advice(a);
  return NUMAHEAP_OK;
}

}  // extern "C"
