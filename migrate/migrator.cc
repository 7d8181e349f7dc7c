// Migrator: registration, the lock-free inputs, the background thread,
// moves with their bookkeeping, stats and invariants. The per-page policy
// is in policy.cc, rehome in rehome.cc.
#include <algorithm>
#include <cassert>
#include <cmath>

#include "migrate/migrator_impl.h"
#include "migrate/vcpu_advice.h"

#if NUMAHEAP_HOSTED
#include "migrate/host/background.h"
#endif

namespace numaheap {

MigrateGuestOptions migrate_options_for(const GuestMemory& guest, bool vnuma_bound) {
  MigrateGuestOptions o;
  o.vnuma_bound = vnuma_bound;
  o.layout = guest.layout();  // out of memory: !ok(), which add_guest refuses
  o.vcpus = guest.spec().vcpus;
  return o;
}

Result<std::unique_ptr<Migrator>> Migrator::create(const Topology& topo, const MigratorConfig& config) {
  // Written so that NaN fails every comparison and is refused; infinities
  // and huge rates are out of range (they reached float-to-integer casts).
  const auto within = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  // period_ms 0 would make the background thread spin and stop the
  // freestanding core's clock (now = steps x period): no rate-limit refill.
  if (topo.node_count() == 0 || config.period_ms == 0 || config.max_guests == 0 || config.decay_steps == 0 ||
      config.scan_pages == 0 ||
      !within(config.rate_limit_mb_s, 0, kMaxRateLimitMbS) || !within(config.watermark_fraction, 0, 1) ||
      !within(config.spare_bandwidth_share, 0, 1) || !within(config.min_sample_share, 1e-9, 1) ||
      config.rehome_pages_per_step == 0 || config.rehome_max_passes == 0)
    return Errc::invalid_argument;
  MigratorConfig cfg = config;
#if NUMAHEAP_HOSTED
  if (!cfg.clock_ns) cfg.clock_ns = host::clock_ns;
#endif
  const MetadataHooks* meta = cfg.metadata ? cfg.metadata : default_metadata();
  if (!meta || !meta->alloc || !meta->release) return Errc::no_memory;
  std::unique_ptr<Impl> m(new (meta) Impl());
  if (!m) return Errc::no_memory;
  m->topo = &topo;
  m->meta = meta;
  m->config = cfg;
  m->nodes = topo.node_count();
  if (!m->slots.allocate(meta, config.max_guests) || !m->readers.allocate(meta, config.max_guests))
    return Errc::no_memory;
  for (std::uint32_t i = 0; i < config.max_guests; ++i) m->slots[i].store(nullptr, std::memory_order_relaxed);
  const double burst = config.rate_limit_mb_s * 1048576.0;  // one second's worth
  m->owned = Vector<std::unique_ptr<GuestSlot>>(meta);
  m->retired = Vector<std::unique_ptr<GuestSlot>>(meta);
  m->tokens = Vector<double>(meta);
  m->last_refill_ns = Vector<std::uint64_t>(meta);
  m->backoff_until = Vector<std::uint64_t>(meta);
  m->backoff_len = Vector<std::uint32_t>(meta);
  m->pair_pages = Vector<std::uint64_t>(meta);
  if (!m->tokens.resize(m->nodes, burst) || !m->last_refill_ns.resize(m->nodes, 0) ||
      !m->backoff_until.resize(m->nodes, 0) || !m->backoff_len.resize(m->nodes, 0) ||
      !m->pair_pages.resize(m->nodes * m->nodes, 0))
    return Errc::no_memory;
  std::unique_ptr<Migrator> mig(new (meta) Migrator(m.get()));
  if (!mig) return Errc::no_memory;
  m.release();
  return mig;
}

Migrator::~Migrator() {
  if (impl_->stop_background) impl_->stop_background(*this);
  delete advisor_;
  delete impl_;
}

Result<GuestId> Migrator::add_guest(Mover& mover, const MigrateGuestOptions& options) {
  Impl& m = *impl_;
  const std::uint64_t pages = mover.page_count();
  if (pages == 0 || options.vcpus > kMaxGuestVcpus) return Errc::invalid_argument;
  if (!options.layout.ok()) return Errc::no_memory;  // its builder ran out (migrate_options_for)
  NodeMask allowed = options.allowed.empty() ? m.topo->memory_nodes() : options.allowed;
  if (!m.topo->memory_nodes().contains(allowed) || allowed.empty()) return Errc::invalid_node;
  Vector<MigrateRange> ranges(m.meta);
  if (options.layout.empty()) {
    if (!ranges.push_back({0, pages, 0, kNoNode, allowed})) return Errc::no_memory;
  } else {
    Gfn end = 0;
    for (const auto& r : options.layout) {
      if (r.first < end || r.first > pages || r.pages > pages - r.first) return Errc::invalid_argument;
      // A binding outside `allowed` could never be honoured (pages may not
      // go there): refused, not accepted and ignored.
      if (options.vnuma_bound && (!m.topo->memory_nodes().test(r.pnode) || !allowed.test(r.pnode)))
        return Errc::invalid_node;
      if (!ranges.push_back({r.first, r.pages, r.vnode, r.pnode, allowed})) return Errc::no_memory;
      end = r.first + r.pages;
    }
  }
  auto tracker = AccessTracker::create(pages, m.meta);
  if (!tracker) return tracker.error();
  std::unique_ptr<GuestSlot> s(new (m.meta) GuestSlot());
  if (!s) return Errc::no_memory;
  s->mover = &mover;
  s->options.vnuma_bound = options.vnuma_bound;
  s->options.allowed = options.allowed;
  s->options.vcpus = options.vcpus;
  s->options.auto_balance = options.auto_balance;
  s->options.granularity = options.granularity;
  s->options.layout = Vector<GuestRange>(m.meta);
  if (!s->options.layout.assign(options.layout.data(), options.layout.size())) return Errc::no_memory;
  s->tracker = std::move(*tracker);
  s->ranges = std::move(ranges);
  if (options.vcpus) {
    if (!s->vcpu_cpu.allocate(m.meta, options.vcpus)) return Errc::no_memory;
    for (std::uint32_t v = 0; v < options.vcpus; ++v) s->vcpu_cpu[v].store(kMaxCpus, std::memory_order_relaxed);
    if (!s->vcpus_on.allocate(m.meta, m.nodes) || !s->vcpus_new.allocate(m.meta, m.nodes) ||
        !s->vacated_step.allocate(m.meta, m.nodes) || !s->vacated_to.allocate(m.meta, m.nodes) ||
        !s->vcpu_node.allocate(m.meta, options.vcpus))
      return Errc::no_memory;
    for (std::size_t i = 0; i < m.nodes; ++i) {
      s->vcpus_on[i] = 0;
      s->vacated_step[i] = 0;
      s->vacated_to[i] = kNoVcpuNode;
    }
    for (std::uint32_t v = 0; v < options.vcpus; ++v) s->vcpu_node[v] = kNoVcpuNode;
  }
  s->tracking_bytes = sizeof(GuestSlot) + sizeof(AccessTracker) +
                      (pages + s->tracker->chunk_words()) * sizeof(std::uint64_t) +
                      std::uint64_t{options.vcpus} * (sizeof(std::atomic<CpuId>) + sizeof(std::uint32_t)) +
                      (options.vcpus ? m.nodes * (3 * sizeof(std::uint32_t) + sizeof(std::uint64_t)) : 0) +
                      s->ranges.capacity() * sizeof(MigrateRange) +
                      s->options.layout.capacity() * sizeof(GuestRange);
  SpinGuard sg(m.step_lock);
  SpinGuard g(m.lock);
  m.reclaim_retired();
  for (GuestId id = 0; id < m.config.max_guests; ++id) {
    if (m.slots[id].load(std::memory_order_relaxed)) continue;
    s->id = id;
    // Before publishing: push_back cannot fail after.
    if (!m.owned.reserve(m.owned.size() + 1)) return Errc::no_memory;
    m.slots[id].store(s.get(), std::memory_order_release);
    m.tracking_bytes += s->tracking_bytes;
    m.owned.push_back(std::move(s));
    return id;
  }
  return Errc::busy;
}

void Migrator::Impl::reclaim_retired() noexcept {
  // Two polls: without racing readers a slot retired just now goes at once.
  for (int poll = 0; poll < 2 && !retired.empty(); ++poll) {
    for (std::size_t i = 0; i < retired.size(); ++i) {
      const GuestId id = retired[i]->id;
      bool first = true;  // poll each id once
      for (std::size_t j = 0; j < i && first; ++j) first = retired[j]->id != id;
      if (!first) continue;
      GuestReaders& r = readers[id];
      const std::uint32_t idle = 1 - r.phase.load(std::memory_order_relaxed);
      bool quiet = true;
      for (std::uint32_t k = 0; k < kReaderStripes && quiet; ++k)
        quiet = r.stripes[idle][k].n.load(std::memory_order_seq_cst) == 0;
      if (!quiet && !skip_grace_for_test) continue;  // a reader may still hold it: retried later
      for (auto& s : retired)
        if (s->id == id) s->grace_seen = static_cast<std::uint8_t>(s->grace_seen | (1u << idle));
      r.phase.store(idle, std::memory_order_seq_cst);  // new readers go there; the other phase drains
    }
    for (std::size_t i = retired.size(); i-- > 0;) {
      if (retired[i]->grace_seen != 3 && !skip_grace_for_test) continue;
      tracking_bytes -= retired[i]->tracking_bytes;
      retired[i] = std::move(retired.back());
      retired.pop_back();  // frees the slot, its tracker and vCPU table
    }
  }
}

Status Migrator::remove_guest(GuestId id) {
  Impl& m = *impl_;
  SpinGuard sg(m.step_lock);  // the step may be using the slot across a mover call
  SpinGuard g(m.lock);
  GuestSlot* s = m.slot(id);
  if (!s) return Errc::invalid_argument;
  // Room first: a guest that cannot be retired stays, untouched and
  // published all along (removal fails cleanly).
  if (!m.retired.reserve(m.retired.size() + 1)) return Errc::no_memory;
  s->removed = true;
  if (s->rehome.active) {
    s->rehome.active = false;
    s->rehome.state.store(static_cast<std::uint8_t>(RehomeState::cancelled), std::memory_order_release);
  }
  // Unpublish (seq_cst: ordered before the reader counts reclaim_retired
  // reads), then free the slot once no input can still be using it.
  m.slots[id].store(nullptr, std::memory_order_seq_cst);
  if (advisor_) advisor_->forget_guest(id);  // a new guest may get the id before the next step
  auto it = std::find_if(m.owned.begin(), m.owned.end(), [s](const auto& p) { return p.get() == s; });
  m.retired.push_back(std::move(*it));
  *it = std::move(m.owned.back());
  m.owned.pop_back();
  m.reclaim_retired();
  return {};
}

void Migrator::record_access(GuestId id, Gfn gfn, CpuId cpu) noexcept {
  const SlotReader r(*impl_, id, cpu);
  GuestSlot* s = r.get();
  if (!s) return;
  const int idx = impl_->topo->index_of(impl_->topo->node_of_cpu(cpu));
  if (idx >= 0) s->tracker->record(gfn, static_cast<std::uint32_t>(idx));
}

void Migrator::record_vcpu_access(GuestId id, Gfn gfn, std::uint32_t vcpu) noexcept {
  const SlotReader r(*impl_, id, vcpu);
  GuestSlot* s = r.get();
  if (!s || vcpu >= s->options.vcpus) return;
  const CpuId cpu = s->vcpu_cpu[vcpu].load(std::memory_order_relaxed);
  const int idx = impl_->topo->index_of(impl_->topo->node_of_cpu(cpu));
  if (idx >= 0) s->tracker->record(gfn, static_cast<std::uint32_t>(idx));
}

Result<double> Migrator::sample_share(GuestId id) const {
  const Impl& m = *impl_;
  SpinGuard g(m.lock);  // not step_lock: this may run while the step waits on a mover
  const GuestSlot* s = m.slot(id);
  if (!s || s->removed) return Errc::invalid_argument;
  // A vCPU on another node than at the last step: its pages want looking at
  // now. (Read only: the step's scratch, vcpus_new, may be in use across a
  // mover call.)
  if (s->vcpu_node)
    for (std::uint32_t v = 0; v < s->options.vcpus; ++v)
      if (m.vcpu_index(*s, v) != s->vcpu_node[v]) return 1.0;
  return s->sample_share;
}

Status Migrator::set_vcpu_cpu(GuestId id, std::uint32_t vcpu, CpuId cpu) noexcept {
  const SlotReader r(*impl_, id, vcpu);
  GuestSlot* s = r.get();
  if (!s || vcpu >= s->options.vcpus) return Errc::invalid_argument;
  if (impl_->topo->node_of_cpu(cpu) == kNoNode) return Errc::invalid_argument;
  s->vcpu_cpu[vcpu].store(cpu, std::memory_order_relaxed);
  return {};
}

Status Migrator::bind_vnode(GuestId id, std::uint32_t vnode, NodeId pnode) {
  Impl& m = *impl_;
  SpinGuard sg(m.step_lock);  // the step reads the ranges across mover calls
  SpinGuard g(m.lock);
  GuestSlot* s = m.slot(id);
  if (!s || !s->options.vnuma_bound) return Errc::invalid_argument;
  if (!m.topo->memory_nodes().test(pnode)) return Errc::invalid_node;
  bool found = false;
  for (auto& r : s->ranges)
    if (r.vnode == vnode) {
      r.pnode = pnode;
      r.allowed.set(pnode);
      found = true;
    }
  return found ? Status{} : Status{Errc::invalid_argument};
}

// ---- stepping (the host library's background thread is in migrate/host/background.cc) ----

bool Migrator::running() const noexcept { return impl_->running.load(std::memory_order_acquire); }

#if !NUMAHEAP_HOSTED
// The freestanding core has no threads: the embedder calls step() or
// step_at() from its own timer. (The host library's are in background.cc.)
Status Migrator::start() { return Errc::unsupported; }
void Migrator::stop() {}
void Migrator::request_step() noexcept {}
#endif

StepReport Migrator::step() {
  // now_ns() reads step_no, written under the lock: read it under it too.
  std::uint64_t now;
  {
    SpinGuard g(impl_->lock);
    now = impl_->now_ns();
  }
  return step_at(now);
}

StepReport Migrator::step_at(std::uint64_t now_ns) {
  Impl& m = *impl_;
  SpinGuard sg(m.step_lock);
  SpinGuard g(m.lock);  // let go across mover calls (Impl::call_mover)
  const std::uint64_t t0 = m.config.clock_ns ? m.config.clock_ns(m.config.clock_ctx) : 0;
  m.reclaim_retired();
  StepReport rep;
  ++m.step_no;
  double local = 0, total = 0;
  if (advisor_) advisor_->begin_step();  // vCPU advice: vcpu_advice.cc
  for (GuestId id = 0; id < m.config.max_guests; ++id) {
    GuestSlot* s = m.slots[id].load(std::memory_order_relaxed);
    if (!s) continue;
    if (m.step_no % m.config.decay_steps == 0) s->tracker->advance_epoch();
    m.evacuate_retiring(*s, rep);  // broken RAM first, before rehome and policy moves
    if (s->rehome.active) m.rehome_step(*s, now_ns, rep);
    m.update_vcpu_nodes(*s);
    if (advisor_) advisor_->examine(m, *s);  // before the policy moves anything
    if (s->options.auto_balance || s->options.vnuma_bound) m.scan_guest(*s, now_ns, rep, local, total);
  }
  if (advisor_) advisor_->end_step();  // readers see whole steps' advice only
  if (total > 0) m.stats.local_access_ratio = local / total;
  ++m.stats.steps;
  if (m.config.clock_ns) m.stats.ns_stepping += m.config.clock_ns(m.config.clock_ctx) - t0;
#if NUMAHEAP_CHECK_INVARIANTS
  assert(m.check_locked().has_value());
#endif
  return rep;
}

// ---- moves and bookkeeping ----

std::size_t Migrator::Impl::admit(NodeId target, std::span<const std::uint64_t> frames, std::uint64_t now_ns,
                                  std::uint64_t& taken) {
  taken = 0;
  const double rate = rate_mb_s(target);
  if (rate <= 0) return frames.size();  // unlimited: nothing taken
  const int i = index(target);
  if (i < 0) return 0;
  const auto k = static_cast<std::size_t>(i);
  const double per_ns = rate * 1048576.0 / 1e9;
  const double burst = rate * 1048576.0;  // one second's worth
  double t = tokens[k];
  if (now_ns > last_refill_ns[k]) {
    t += per_ns * static_cast<double>(now_ns - last_refill_ns[k]);
    last_refill_ns[k] = now_ns;
  }
  t = std::min(burst, t);  // full; or shrunk with a rate that fell since the last refill
  std::size_t n = 0;
  for (; n < frames.size(); ++n) {
    const double need = static_cast<double>(frames[n] << kFrameShift);
    // Larger than the whole bucket: it could never hold the item, so the
    // item goes when the bucket is full and the debt is paid back at the
    // rate (before, such an item waited for ever and took the tokens of
    // every smaller one behind it).
    if (t < need && (need <= burst || t < burst)) break;
    t -= need;
    taken += frames[n];
  }
  tokens[k] = t;
  return n;
}

void Migrator::Impl::refund(NodeId target, std::uint64_t taken) noexcept {
  const int i = index(target);
  if (i < 0 || taken == 0) return;  // unlimited admissions take nothing, so give nothing back
  // At most back to where admit() found the bucket: within its depth then
  // (a rate that fell since shrinks it at the next admit).
  tokens[static_cast<std::size_t>(i)] += static_cast<double>(taken << kFrameShift);
}

void Migrator::Impl::back_off(NodeId target) noexcept {
  const int i = index(target);
  if (i < 0) return;
  const auto k = static_cast<std::size_t>(i);
  backoff_len[k] = std::min<std::uint32_t>(config.backoff_max_steps, backoff_len[k] ? backoff_len[k] * 2 : 1);
  backoff_until[k] = step_no + backoff_len[k];
}

const MigrateRange* Migrator::Impl::range_of(const GuestSlot& g, Gfn gfn) const noexcept {
  auto it = std::upper_bound(g.ranges.begin(), g.ranges.end(), gfn,
                             [](Gfn x, const MigrateRange& r) { return x < r.first; });
  if (it == g.ranges.begin()) return nullptr;
  --it;
  return gfn - it->first < it->pages ? &*it : nullptr;
}

void Migrator::Impl::do_move(GuestSlot& g, const Gfn* gfns, const PageState* from, std::size_t n,
                             NodeId target, MoveGranularity gran, MoveOutcome* out, StepReport& rep) {
  const std::uint64_t t0 = config.clock_ns ? config.clock_ns(config.clock_ctx) : 0;
  auto r = call_mover([&] { return g.mover->move(std::span<const Gfn>(gfns, n), target, gran, std::span<MoveOutcome>(out, n)); });
  if (config.clock_ns) stats.ns_moving += config.clock_ns(config.clock_ctx) - t0;
  book_move(g, gfns, from, n, target, gran, out, r, rep);
}

void Migrator::Impl::book_move(GuestSlot& g, const Gfn* gfns, const PageState* from, std::size_t n, NodeId target,
                               MoveGranularity gran, MoveOutcome* out, const Result<MoveTotals>& r,
                               StepReport& rep) {
  if (!r) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = r.error() == Errc::invalid_node ? MoveOutcome::invalid_node : MoveOutcome::busy;
  } else {
    stats.flushes += r->flushes;
    count_moved(g, r->frames_moved);
    rep.moved += r->frames_moved;
  }
  const int ti = index(target);
  bool failed_memory = false, any_moved = false;
  // A block may be split (balloon, sharing) between the query that gave
  // from[i].order and the move, which then moves only the page: the pair
  // counts take no more frames than the mover says changed node.
  std::uint64_t unpaired = r ? r->frames_moved : 0;
  for (std::size_t i = 0; i < n; ++i) {
    // An embedder's mover answering out of range (or not at all) is busy:
    // the page is looked at again, and the count stays inside the table.
    if (static_cast<std::size_t>(out[i]) >= kMoveOutcomeCount) out[i] = MoveOutcome::busy;
    ++stats.outcomes[static_cast<std::size_t>(out[i])];
    if (out[i] == MoveOutcome::moved) {
      any_moved = true;
      g.tracker->moved(gfns[i]);
      const int fi = index(from[i].node);
      if (fi >= 0 && ti >= 0 && fi != ti) {
        // Whole blocks count all their frames; a page of a split block one.
        const std::uint64_t frames =
            std::min(unpaired, gran == MoveGranularity::whole_blocks ? frames_of_order(from[i].order) : 1);
        unpaired -= frames;
        pair_pages[static_cast<std::size_t>(fi) * nodes + static_cast<std::size_t>(ti)] += frames;
      }
    } else if (out[i] == MoveOutcome::no_memory || out[i] == MoveOutcome::invalid_node) {
      failed_memory = true;
      ++rep.failed;
    } else if (out[i] == MoveOutcome::busy) {
      ++rep.failed;
    }
  }
  if (ti < 0) return;
  const auto k = static_cast<std::size_t>(ti);
  if (failed_memory) {
    back_off(target);
  } else if (any_moved) {
    backoff_len[k] = 0;
  }
}

MigratorStats Migrator::stats() const {
  const Impl& m = *impl_;
  SpinGuard g(m.lock);
  MigratorStats s = m.stats;
  s.tracking_bytes = m.tracking_bytes;
  s.retired_guests = m.retired.size();
  // Out of metadata memory, `moves` is left short (moves.ok() is false).
  s.moves = Vector<NodePairMoves>(m.meta);
  for (std::size_t f = 0; f < m.nodes; ++f)
    for (std::size_t t = 0; t < m.nodes; ++t)
      if (std::uint64_t p = m.pair_pages[f * m.nodes + t])
        s.moves.push_back({m.topo->node_at(f).id, m.topo->node_at(t).id, p, p << kFrameShift});
  return s;
}

Result<MigrateGuestStats> Migrator::guest_stats(GuestId id) const noexcept {
  const SlotReader r(*impl_, id, 0);  // lock-free: hold the slot through its grace period
  const GuestSlot* s = r.get();
  if (!s) return Errc::invalid_argument;
  const GuestSlot::GuestCounters& c = s->counters;
  MigrateGuestStats out;
  out.pages_scanned = c.pages_scanned.load(std::memory_order_relaxed);
  out.pages_moved = c.pages_moved.load(std::memory_order_relaxed);
  out.bytes_moved = out.pages_moved << kFrameShift;
  out.pages_followed = c.pages_followed.load(std::memory_order_relaxed);
  out.pages_quick = c.pages_quick.load(std::memory_order_relaxed);
  out.pages_evacuated = c.pages_evacuated.load(std::memory_order_relaxed);
  out.local_access_ratio = c.local_access_ratio.load(std::memory_order_relaxed);
  out.vcpus = s->options.vcpus;  // fixed at add_guest
  return out;
}

Status Migrator::check_invariants() const {
  SpinGuard g(impl_->lock);  // a step may be inside a mover call: it holds step_lock only
  return impl_->check_locked();
}

Status Migrator::Impl::check_locked() const {
  std::uint64_t bytes = 0, guests_moved = 0;
  for (const auto& s : owned) {
    const GuestSlot::GuestCounters& c = s->counters;
    guests_moved += c.pages_moved.load(std::memory_order_relaxed);
    // What pages were moved for counts only frames the mover moved (policy.cc book_batch).
    if (c.pages_followed.load(std::memory_order_relaxed) + c.pages_quick.load(std::memory_order_relaxed) >
        c.pages_moved.load(std::memory_order_relaxed))
      return Errc::invalid_argument;
    Gfn end = 0;
    for (const auto& r : s->ranges) {
      if (r.first < end || r.allowed.empty()) return Errc::invalid_argument;
      if (r.first + r.pages > s->mover->page_count()) return Errc::invalid_argument;
      end = r.first + r.pages;
    }
    if (s->rehome.done.load() > s->rehome.total.load()) return Errc::invalid_argument;
    // The policy's sampled pass and vacated walk (migrator_impl.h).
    if (s->sampled_chunk >= 64 * s->tracker->chunk_words() || s->vacated_walk_left > s->tracker->pages())
      return Errc::invalid_argument;
    if (s->vacated_rewalk_step > step_no + config.backoff_max_steps + 1) return Errc::invalid_argument;  // past any backoff
    const bool published = !s->removed && slots[s->id].load(std::memory_order_relaxed) == s.get();
    if (s->removed || !published) return Errc::invalid_argument;
    bytes += s->tracking_bytes;
  }
  for (const auto& s : retired) {
    if (!s->removed || slots[s->id].load(std::memory_order_relaxed) == s.get()) return Errc::invalid_argument;
    bytes += s->tracking_bytes;
  }
  if (bytes != tracking_bytes) return Errc::invalid_argument;
  std::uint64_t pairs = 0;
  for (auto p : pair_pages) pairs += p;
  if (pairs > stats.pages_moved) return Errc::invalid_argument;  // every pair move was counted as moved
  if (guests_moved > stats.pages_moved) return Errc::invalid_argument;  // a guest's move was counted twice
  if (stats.pages_followed + stats.pages_quick > stats.pages_moved) return Errc::invalid_argument;
  if (stats.pages_scanned_sampled > stats.pages_scanned) return Errc::invalid_argument;
  // The rate limit's buckets: never deeper than the largest rate the
  // config allows, never in debt by more than one item (migrator_impl.h).
  const double deepest =
      (config.spare_bandwidth_mb_s ? std::max(config.rate_limit_mb_s, config.spare_bandwidth_share * kMaxRateLimitMbS)
                                   : config.rate_limit_mb_s) *
      1048576.0;
  for (std::size_t k = 0; k < nodes; ++k) {
    if (backoff_len[k] > config.backoff_max_steps) return Errc::invalid_argument;
    if (!(tokens[k] <= deepest && tokens[k] >= -kMaxRateItemBytes)) return Errc::invalid_argument;
  }
  return {};
}

}  // namespace numaheap
