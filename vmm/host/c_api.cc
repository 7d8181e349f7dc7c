// C API of VMM guest RAM and the userfaultfd sampler (numaheap_vmm.h).
// Host library only.
#include <new>
#include <vector>

#include "numaheap/numaheap_vmm.h"
#include "numaheap/vmm.h"

#include "allocator/heap/c_handles.h"
#include "migrate/c_api_migrator.h"

struct numaheap_vmm_ram {
  std::unique_ptr<numaheap::GuestRam> ram;
};

struct numaheap_sampler {
  std::unique_ptr<numaheap::UffdSampler> s;
};

namespace {
using numaheap::capi::code;
using numaheap::capi::fail;
}  // namespace

extern "C" {

int numaheap_vmm_ram_create(const numaheap_topology* t, const numaheap_ram_region* regions, size_t region_count,
                              const numaheap_vnode_ram* vnodes, size_t vnode_count,
                              const numaheap_vmm_ram_options* options, numaheap_vmm_ram** out, char* err,
                              size_t err_len) {
  if (!t || !out || (region_count && !regions) || (vnode_count && !vnodes))
    return fail(numaheap::Errc::invalid_argument, "guest RAM: null argument", err, err_len);
  {
    std::vector<numaheap::GuestRamRegion> rs(region_count);
    for (size_t i = 0; i < region_count; ++i) {
      const int b = regions[i].backing;
      if (b < NUMAHEAP_RAM_ANONYMOUS || b > NUMAHEAP_RAM_HUGETLB)
        return fail(numaheap::Errc::invalid_argument, "guest RAM region: unknown backing", err, err_len);
      rs[i] = {regions[i].host, regions[i].bytes, regions[i].guest_phys, static_cast<numaheap::RamBacking>(b),
               regions[i].shared != 0};
    }
    std::vector<numaheap::VnodeRam> vs(vnode_count);
    for (size_t i = 0; i < vnode_count; ++i)
      vs[i] = {vnodes[i].vnode, vnodes[i].guest_phys, vnodes[i].bytes, numaheap::capi::mask_of(&vnodes[i].nodes)};
    numaheap::GuestRamOptions o;
    if (options) {
      o.bind = options->no_bind == 0;
      o.populate = options->no_populate == 0;
      o.populate_by_touch = options->populate_by_touch != 0;
      o.move_helper = options->no_move_helper == 0;
      o.trust_mappings = options->trust_mappings != 0;
    }
    auto ram = numaheap::GuestRam::create(t->topo, rs, vs, o);
    if (!ram) return fail(ram.error(), err, err_len);
    auto* h = new (std::nothrow) numaheap_vmm_ram{std::move(*ram)};
    if (!h) return fail(numaheap::Errc::no_memory, "guest RAM: out of memory", err, err_len);
    *out = h;
    return NUMAHEAP_OK;
  }
}

void numaheap_vmm_ram_destroy(numaheap_vmm_ram* r) { delete r; }

uint64_t numaheap_vmm_ram_pages(const numaheap_vmm_ram* r) { return r ? r->ram->page_count() : 0; }

void* numaheap_vmm_ram_host_address(const numaheap_vmm_ram* r, uint64_t gfn) {
  return r ? r->ram->host_address(gfn) : nullptr;
}

int numaheap_vmm_ram_gfn_of(const numaheap_vmm_ram* r, const void* host, uint64_t* gfn) {
  if (!r || !gfn) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto g = r->ram->gfn_of(host);
  if (!g) return code(g.error());
  *gfn = *g;
  return NUMAHEAP_OK;
}

int numaheap_vmm_ram_query(numaheap_vmm_ram* r, uint64_t first_gfn, size_t count, numaheap_page_state* out) {
  if (!r || (count && !out)) return NUMAHEAP_E_INVALID_ARGUMENT;
  // The whole range first (as GuestRam::query): a refused query writes nothing.
  const uint64_t pages = r->ram->page_count();
  if (first_gfn > pages || count > pages - first_gfn) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::PageState states[256];
  for (size_t at = 0; at < count; at += 256) {
    const size_t n = count - at < 256 ? count - at : 256;
    numaheap::Status st = r->ram->query(first_gfn + at, std::span<numaheap::PageState>(states, n));
    if (!st) return code(st.error());
    for (size_t i = 0; i < n; ++i)
      out[at + i] = {states[i].node, states[i].flags, states[i].order, states[i].retiring ? 1 : 0};
  }
  return NUMAHEAP_OK;
}

int numaheap_vmm_ram_move(numaheap_vmm_ram* r, const uint64_t* gfns, size_t count, uint32_t target,
                            uint8_t* outcomes, uint64_t* frames_moved) {
  if (!r || (count && (!gfns || !outcomes))) return NUMAHEAP_E_INVALID_ARGUMENT;
  static_assert(sizeof(numaheap::MoveOutcome) == sizeof(uint8_t));
  auto moved = r->ram->move(std::span<const numaheap::Gfn>(gfns, count), target, numaheap::MoveGranularity::pages,
                            std::span<numaheap::MoveOutcome>(reinterpret_cast<numaheap::MoveOutcome*>(outcomes), count));
  if (!moved) return code(moved.error());
  if (frames_moved) *frames_moved = moved->frames_moved;
  return NUMAHEAP_OK;
}

int numaheap_vmm_ram_move_each(numaheap_vmm_ram* r, numaheap_vmm_move_request* requests, size_t count) {
  if (!r || (count && !requests)) return NUMAHEAP_E_INVALID_ARGUMENT;
  std::vector<numaheap::MoveRequest> rs;
  std::vector<size_t> which;
  rs.reserve(count);
  which.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    numaheap_vmm_move_request& q = requests[i];
    q.frames_moved = 0;
    if (q.count && (!q.gfns || !q.outcomes)) {
      q.result = NUMAHEAP_E_INVALID_ARGUMENT;
      continue;
    }
    numaheap::MoveRequest m;
    m.gfns = std::span<const numaheap::Gfn>(q.gfns, q.count);
    m.target = q.target;
    m.granularity = q.whole_blocks ? numaheap::MoveGranularity::whole_blocks : numaheap::MoveGranularity::pages;
    m.out = std::span<numaheap::MoveOutcome>(reinterpret_cast<numaheap::MoveOutcome*>(q.outcomes), q.count);
    rs.push_back(m);
    which.push_back(i);
  }
  r->ram->move_each(rs);
  for (size_t k = 0; k < rs.size(); ++k) {
    numaheap_vmm_move_request& q = requests[which[k]];
    q.result = rs[k].result ? NUMAHEAP_OK : code(rs[k].result.error());
    if (rs[k].result) q.frames_moved = rs[k].result->frames_moved;
  }
  return NUMAHEAP_OK;
}

int numaheap_vmm_ram_node_frames(const numaheap_vmm_ram* r, uint32_t node, uint64_t* free_frames,
                                   uint64_t* total_frames) {
  if (!r || !free_frames || !total_frames) return NUMAHEAP_E_INVALID_ARGUMENT;
  return r->ram->node_frames(node, *free_frames, *total_frames) ? NUMAHEAP_OK : NUMAHEAP_E_INVALID_NODE;
}

size_t numaheap_vmm_ram_layout(const numaheap_vmm_ram* r, numaheap_ram_part* out, size_t cap) {
  if (!r) return 0;
  const auto layout = r->ram->layout();
  for (size_t i = 0; i < layout.size() && i < cap && out; ++i)
    out[i] = {layout[i].first, layout[i].pages, layout[i].pnode, layout[i].vnode};
  return layout.size();
}

int numaheap_vmm_ram_get_stats(const numaheap_vmm_ram* r, numaheap_vmm_ram_stats* out) {
  if (!r || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::GuestRamStats s = r->ram->stats();
  *out = {s.pages,          s.populated_madvise, s.populated_touch, s.moves,           s.pages_moved,
          s.moves_all,      s.moves_via_helper,  s.moves_grouped,   s.helper_refusals, s.helper_last_errno};
  return NUMAHEAP_OK;
}

int numaheap_migrator_add_vmm_ram(numaheap_migrator* m, numaheap_vmm_ram* r,
                                    const numaheap_migrate_guest_options* options, uint32_t* guest_id) {
  if (!m || !r || !guest_id) return NUMAHEAP_E_INVALID_ARGUMENT;
  numaheap::MigrateGuestOptions o =
      r->ram->migrate_options(options ? options->vcpus : 0, options && options->vnuma_bound);
  if (options) {
    if (options->allowed) o.allowed = numaheap::capi::mask_of(options->allowed);
    o.auto_balance = options->manual_only == 0;
    o.granularity = options->whole_blocks ? numaheap::MoveGranularity::whole_blocks : numaheap::MoveGranularity::pages;
  }
  auto id = m->m->add_guest(*r->ram, o);
  if (!id) return code(id.error());
  *guest_id = *id;
  return NUMAHEAP_OK;
}

void numaheap_sampler_config_init(numaheap_sampler_config* c) {
  if (!c) return;
  const numaheap::SamplerConfig d;
  *c = {d.pages_per_second, d.window_pages, static_cast<int>(d.cpu_source), d.max_handler_share,
        d.follow_advice ? 1 : 0, d.burst_pages};
}

int numaheap_sampler_create(numaheap_vmm_ram* r, numaheap_migrator* m, uint32_t guest_id,
                            const numaheap_sampler_config* c, numaheap_sampler** out, char* err, size_t err_len) {
  if (!r || !m || !out) return fail(numaheap::Errc::invalid_argument, "sampler: null argument", err, err_len);
  numaheap::SamplerConfig cfg;
  if (c) {
    if (c->cpu_source != NUMAHEAP_SAMPLE_THREAD_CPU && c->cpu_source != NUMAHEAP_SAMPLE_VCPU_THREADS)
      return fail(numaheap::Errc::invalid_argument, "sampler: unknown cpu_source", err, err_len);
    cfg.pages_per_second = c->pages_per_second;
    cfg.window_pages = c->window_pages;
    cfg.cpu_source = static_cast<numaheap::SampleCpuSource>(c->cpu_source);
    cfg.max_handler_share = c->max_handler_share;
    cfg.follow_advice = c->follow_advice != 0;
    cfg.burst_pages = c->burst_pages;
  }
  {
    auto s = numaheap::UffdSampler::create(*r->ram, *m->m, guest_id, cfg);
    if (!s) return fail(s.error(), err, err_len);
    numaheap_sampler* h = new (std::nothrow) numaheap_sampler{std::move(*s)};
    if (!h) return fail(numaheap::Errc::no_memory, "sampler: out of memory", err, err_len);
    *out = h;
    return NUMAHEAP_OK;
  }
}

void numaheap_sampler_destroy(numaheap_sampler* s) { delete s; }

int numaheap_sampler_set_vcpu_thread(numaheap_sampler* s, uint32_t vcpu, pid_t tid) {
  return s ? code(s->s->set_vcpu_thread(vcpu, tid)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_sampler_start(numaheap_sampler* s) { return s ? code(s->s->start()) : NUMAHEAP_E_INVALID_ARGUMENT; }

void numaheap_sampler_stop(numaheap_sampler* s) {
  if (s) s->s->stop();
}

int numaheap_sampler_running(const numaheap_sampler* s) { return s && s->s->running() ? 1 : 0; }

int numaheap_sampler_scan(numaheap_sampler* s, uint64_t first_gfn, uint64_t pages) {
  return s ? code(s->s->scan(first_gfn, pages)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

int numaheap_sampler_vcpu_moved(numaheap_sampler* s, uint32_t vcpu) {
  return s ? code(s->s->vcpu_moved(vcpu)) : NUMAHEAP_E_INVALID_ARGUMENT;
}

uint64_t numaheap_sampler_vcpu_samples(const numaheap_sampler* s, uint32_t vcpu) {
  return s ? s->s->vcpu_samples(vcpu) : 0;
}

void numaheap_sampler_close_window(numaheap_sampler* s) {
  if (s) s->s->close_window();
}

int numaheap_sampler_get_stats(const numaheap_sampler* s, numaheap_sampler_stats* out) {
  if (!s || !out) return NUMAHEAP_E_INVALID_ARGUMENT;
  const numaheap::SamplerStats st = s->s->stats();
  *out = {st.samples,      st.minor_samples, st.wp_samples,      st.windows, st.pages_windowed,
          st.ns_handling,  st.ns_per_sample, st.resolve_retries, st.errors, st.pages_armed,
          st.resolve_calls, st.bursts,       st.pages_burst,     st.budget_pages_per_second, st.handler_share,
          st.blocks_windowed, st.steps_requested, st.arm_calls, st.sheds, st.pages_shed,
          st.follow_extensions, st.regions_locked, st.faults_outside_windows, st.vcpu_unknown_samples,
          st.pages_locked};
  return NUMAHEAP_OK;
}

}  // extern "C"
