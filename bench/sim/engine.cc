// The simulation loop: worlds, the cost model, samples and the report.
#include <algorithm>
#include <cmath>
#include <limits>

#include "bench/sim/world.h"
#include "numaheap/placement.h"

namespace numaheap::sim {

namespace {

constexpr OwnerId kFillerOwner = 1;
constexpr OwnerId kFirstGuestOwner = 100;

// Write protection and flushes are no-ops: the simulated guests have no
// vCPUs running concurrently, and frame-only memory has no contents to copy.
void no_runs(void*, const GfnRun*, std::size_t) {}
void no_flush(void*) {}
void no_copy(void*, Mfn, Mfn, std::uint64_t) {}

}  // namespace

std::uint64_t SimConfig::periods() const {
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(seconds * 1000.0 / period_ms - 1e-9)));
}

std::string validate(const SimConfig& c) {
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!in(c.period_ms, 1, 3600e3)) return "period must be 1 ms .. 1 h";
  if (!in(c.seconds, c.period_ms / 1000.0, 86400)) return "seconds must be one period .. 86400";
  if (c.periods() > 100000) return "more than 100000 periods";
  if (!in(c.access_rate, 1, 1e12)) return "access rate must be 1 .. 1e12 per vCPU-second";
  if (!in(c.local_ns, 0.001, 1e6)) return "local access time must be 0.001 .. 1e6 ns";
  if (!in(c.bandwidth_gb_s, 1e-6, 1e6)) return "bandwidth must be 1e-6 .. 1e6 GB/s";
  if (!in(c.page_overhead_us, 0, 1e6)) return "per-page overhead must be 0 .. 1e6 us";
  if (!in(c.sample_us, 0, 1e6)) return "sample cost must be 0 .. 1e6 us";
  if (!in(c.node_bandwidth_gb_s, 1e-6, 1e6)) return "node bandwidth must be 1e-6 .. 1e6 GB/s";
  if (!in(c.trace_weight, 1e-9, 1e12)) return "trace weight must be 1e-9 .. 1e12";
  if (!in(c.guest_scale, 1e-6, 1)) return "guest scale must be in (0, 1]";
  if (!in(c.split_page_cost, 0, 1e6)) return "split-page cost must be 0 .. 1e6 local accesses";
  if (!in(c.vcpu_move_us, 0, 1e9)) return "vCPU move cost must be 0 .. 1e9 us";
  return {};
}

// ---- CountingMover ----

CountingMover::CountingMover(World& world, std::uint32_t guest, FrameSwapMover& inner)
    : world_(world), guest_(guest), inner_(inner) {}

Result<MoveTotals> CountingMover::move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                       std::span<MoveOutcome> out) noexcept {
  constexpr std::size_t kChunk = 64;
  MoveTotals total;
  const std::uint64_t pages = inner_.page_count();
  for (std::size_t at = 0; at < gfns.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, gfns.size() - at);
    NodeId before[kChunk];
    std::uint8_t order[kChunk], block[kChunk];
    for (std::size_t i = 0; i < n; ++i) {
      PageState st;
      (void)inner_.query(gfns[at + i], std::span<PageState>(&st, 1));
      before[i] = st.node;
      block[i] = st.order;
      order[i] = granularity == MoveGranularity::whole_blocks ? st.order : 0;
    }
    Gfn split_head = ~Gfn{0};
    auto r = inner_.move(gfns.subspan(at, n), target, granularity, out.subspan(at, n));
    if (!r) return r.error();
    total.frames_moved += r->frames_moved;
    total.flushes += r->flushes;
    for (std::size_t i = 0; i < n; ++i) {
      const Gfn g = gfns[at + i];
      if (out[at + i] != MoveOutcome::moved) {
        ++world_.failed;
        continue;
      }
      if (before[i] == target || world_.node_of(guest_, g) != target) continue;
      // One operation: a 4 KiB page, or a whole block (every frame of it).
      ++world_.move_ops;
      if (block[i] > 0) {
        const Gfn head = g & ~((std::uint64_t{1} << block[i]) - 1);
        if (order[i] > 0) {
          ++world_.blocks_whole;
        } else if (head != split_head) {  // pages of one block in one call: one split
          ++world_.blocks_split;
          split_head = head;
        }
      }
      const std::uint64_t span = std::uint64_t{1} << order[i];
      const Gfn first = g & ~(span - 1);
      for (Gfn x = first; x < first + span && x < pages; ++x) {
        ++world_.moved;
        ++world_.moved_from[static_cast<std::size_t>(std::max(0, world_.topo().index_of(before[i])))];
        ++world_.moved_to[static_cast<std::size_t>(std::max(0, world_.topo().index_of(target)))];
        std::uint8_t& c = world_.move_counts[guest_][x];
        if (c < 255 && ++c == 2) ++world_.bounced;
      }
    }
  }
  return total;
}

Result<MoveTotals> CountingMover::coalesce(Gfn head, unsigned order, NodeId target, MoveOutcome& out) noexcept {
  const std::uint64_t span = std::uint64_t{1} << std::min(order, Mover::kMaxCoalesceOrder);
  std::vector<PageState> before(span);
  if (head + span <= inner_.page_count()) (void)inner_.query(head, before);
  auto r = inner_.coalesce(head, order, target, out);
  if (!r) return r;
  if (out != MoveOutcome::moved) {
    ++world_.failed;
    return r;
  }
  ++world_.move_ops;
  ++world_.coalesced;
  const auto ti = static_cast<std::size_t>(std::max(0, world_.topo().index_of(target)));
  for (std::uint64_t k = 0; k < span; ++k) {
    if (before[k].node == target) {
      ++world_.copied_in_place[ti];
      continue;
    }
    ++world_.moved;
    ++world_.moved_from[static_cast<std::size_t>(std::max(0, world_.topo().index_of(before[k].node)))];
    ++world_.moved_to[ti];
    std::uint8_t& c = world_.move_counts[guest_][head + k];
    if (c < 255 && ++c == 2) ++world_.bounced;
  }
  return r;
}

// ---- World ----

Result<std::unique_ptr<World>, Error> World::create(const Topology& topo, const Workload& workload) {
  std::unique_ptr<World> w(new World());
  w->topo_ = &topo;
  w->shapes = workload.guests();
  w->vcpu_moves = workload.vcpu_moves();
  PlatformConfig pc;
  pc.mode = MemoryMode::frame_only;
  auto pa = PageAllocator::create(topo, pc);
  if (!pa) return pa.error();
  w->pa_ = std::move(*pa);
  // Other tenants first: they were there before the guests.
  for (const NodeInfo& n : topo.nodes()) {
    std::uint64_t want = workload.filler_pages(n.id);
    for (unsigned order : {9u, 0u}) {
      AllocRequest r;
      r.order = order;
      r.node = n.id;
      r.flags = AllocFlags::exact_node | AllocFlags::no_scrub;
      r.owner = kFillerOwner;
      while (want >= (std::uint64_t{1} << order)) {
        auto a = w->pa_->alloc(r);
        if (!a) break;
        w->filler_.push_back(a->mfn);
        w->filler_order_.push_back(order);
        want -= std::uint64_t{1} << order;
      }
    }
  }
  FrameSwapHooks hooks;
  hooks.write_protect = no_runs;
  hooks.flush = no_flush;
  hooks.unprotect = no_runs;
  hooks.copy = no_copy;
  const auto& shapes = workload.guests();
  for (std::uint32_t g = 0; g < shapes.size(); ++g) {
    const GuestShape& s = shapes[g];
    GuestSpec spec;
    spec.name = s.name;
    spec.memory_bytes = s.pages << kFrameShift;
    spec.vcpus = static_cast<std::uint32_t>(s.vcpu_nodes.size());
    Placement p;
    p.nodes.set(s.boot_node);
    p.memory = {{s.boot_node, spec.memory_bytes}};
    (void)p.vcpu_nodes.assign(s.vcpu_nodes.data(), s.vcpu_nodes.size());
    p.reason = "simulated: all memory on the boot node";
    GuestOptions go;
    go.device_region_pages = 0;
    auto gm = GuestMemory::create(*w->pa_, spec, p, kFirstGuestOwner + g, go);
    if (!gm) return gm.error();
    auto pop = (*gm)->populate();
    if (!pop)
      return Error{pop.error().code, "guest " + s.name + " (" + std::to_string(s.pages >> 8) + " MiB on node " +
                                         std::to_string(s.boot_node) + "): " + pop.error().message};
    auto fs = FrameSwapMover::create(**gm, hooks);
    if (!fs) return Error{fs.error(), "frame swap mover"};
    w->swappers_.push_back(std::make_unique<FrameSwapMover>(std::move(*fs)));
    w->guests_.push_back(std::move(*gm));
    w->move_counts.emplace_back(s.pages, 0);
    w->moved_from.assign(topo.node_count(), 0);
    w->moved_to.assign(topo.node_count(), 0);
    w->copied_in_place.assign(topo.node_count(), 0);
    w->movers_.push_back(std::make_unique<CountingMover>(*w, g, *w->swappers_.back()));
    // First touch elsewhere (traces): put those pages there, uncounted.
    std::vector<std::vector<Gfn>> by_node(topo.node_count());
    for (Gfn gfn = 0; gfn < s.pages; ++gfn) {
      const NodeId n = workload.first_touch_node(g, gfn);
      if (n != kNoNode && n != s.boot_node && topo.index_of(n) >= 0)
        by_node[static_cast<std::size_t>(topo.index_of(n))].push_back(gfn);
    }
    for (std::size_t i = 0; i < by_node.size(); ++i) {
      if (by_node[i].empty()) continue;
      std::vector<MoveOutcome> out(by_node[i].size());
      auto r = w->swappers_.back()->move(by_node[i], topo.node_at(i).id, MoveGranularity::pages, out);
      if (!r) return Error{r.error(), "placing first-touched pages"};
    }
  }
  return w;
}

World::~World() {
  movers_.clear();
  swappers_.clear();
  for (auto& g : guests_) (void)g->destroy();
  guests_.clear();
  for (std::size_t i = 0; i < filler_.size(); ++i) (void)pa_->free(filler_[i], filler_order_[i], kFillerOwner);
}

NodeId World::node_of(std::uint32_t g, Gfn gfn) const {
  const P2mEntry e = guests_[g]->lookup(gfn);
  return e.present() ? pa_->node_of(e.mfn) : kNoNode;
}

unsigned World::order_of(std::uint32_t g, Gfn gfn) const { return guests_[g]->lookup(gfn).order; }

std::uint64_t World::move(std::uint32_t g, std::span<const Gfn> gfns, NodeId target) {
  if (gfns.empty()) return 0;
  const std::uint64_t before = moved;
  std::vector<MoveOutcome> out(gfns.size());
  (void)movers_[g]->move(gfns, target, MoveGranularity::pages, out);
  return moved - before;
}

std::uint64_t World::free_pages(NodeId n) const {
  auto s = pa_->stats(n);
  return s ? s->free + s->cached : 0;
}
std::uint64_t World::managed_pages(NodeId n) const {
  auto s = pa_->stats(n);
  return s ? s->managed : 0;
}
std::uint64_t World::lowest_free() const {
  std::uint64_t low = std::numeric_limits<std::uint64_t>::max();
  for (const NodeInfo& n : topo_->nodes())
    if (managed_pages(n.id)) low = std::min(low, free_pages(n.id));
  return low == std::numeric_limits<std::uint64_t>::max() ? 0 : low;
}

// ---- run ----

namespace {

struct Lane {  // one policy's world and running totals
  std::unique_ptr<World> world;
  std::unique_ptr<Policy> policy;
  PolicyResult result;
  double accesses = 0, cost = 0;
  double cost_placement = 0, cost_moves = 0, cost_samples = 0, cost_contention = 0, cost_split = 0;
  std::uint64_t moved_before = 0, ops_before = 0, samples_before = 0;
  double vcpu_s_before = 0;
  std::vector<double> busy_s;  // per dense node: copy time still to flow (seconds)
};

// The first access of every touched page (touches sorted by guest, gfn),
// in order of arrival.
void first_accesses(std::span<const Touch> touches, std::vector<Sample>& out) {
  out.clear();
  std::vector<double> when;
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < touches.size();) {
    std::size_t best = i, j = i;
    for (; j < touches.size() && touches[j].guest == touches[i].guest && touches[j].gfn == touches[i].gfn; ++j)
      if (touches[j].first < touches[best].first) best = j;
    out.push_back({touches[best].guest, touches[best].gfn, touches[best].node});
    when.push_back(touches[best].first);
    i = j;
  }
  order.resize(out.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return when[a] < when[b]; });
  std::vector<Sample> sorted(out.size());
  for (std::size_t i = 0; i < order.size(); ++i) sorted[i] = out[order[i]];
  out.swap(sorted);
}

}  // namespace

std::vector<std::string> policy_names() { return {"none", "naive", "autonuma", "numaheap", "oracle"}; }

Result<SimReport, Error> run(const Topology& topo, Workload& workload, const SimConfig& config,
                             const std::vector<std::string>& policies, const Progress& progress) {
  if (std::string bad = validate(config); !bad.empty()) return Error{Errc::invalid_argument, bad};
  if (policies.empty()) return Error{Errc::invalid_argument, "no policy to run"};
  if (workload.guests().empty()) return Error{Errc::invalid_argument, "the workload has no guests"};
  SimReport rep;
  rep.topology = topo.source();
  rep.workload = workload.name();
  rep.config = config;
  rep.periods = config.periods();
  rep.vcpu_moves = workload.vcpu_moves();
  for (const auto& g : workload.guests()) rep.guest_pages += g.pages;

  std::vector<Lane> lanes;
  for (const std::string& name : policies) {
    for (const Lane& l : lanes)
      if (l.result.name == name) return Error{Errc::invalid_argument, "policy '" + name + "' given twice"};
    Lane l;
    auto w = World::create(topo, workload);
    if (!w) return w.error();
    l.world = std::move(*w);
    auto p = make_policy(name, *l.world, config);
    if (!p) return p.error();
    l.policy = std::move(*p);
    l.result.name = name;
    l.result.min_free_pages = l.world->lowest_free();
    lanes.push_back(std::move(l));
  }

  const double period_s = config.period_ms / 1000.0;
  // Costs in local-access units (one local access = local_ns).
  const double copy_s = static_cast<double>(kFrameSize) / (config.bandwidth_gb_s * 1e9);  // one 4 KiB copy
  const double op_s = config.page_overhead_us * 1e-6;
  const double sample_cost = config.sample_us * 1e3 / config.local_ns;
  const double slowdown = std::min(1.0, config.bandwidth_gb_s / config.node_bandwidth_gb_s);
  const std::size_t nodes = topo.node_count();
  for (Lane& l : lanes) l.busy_s.assign(nodes, 0.0);
  std::vector<Touch> touches;
  std::vector<Sample> samples;
  std::vector<double> flowing(nodes);
  for (std::uint64_t k = 0; k < rep.periods; ++k) {
    const double t0 = static_cast<double>(k) * period_s, t1 = t0 + period_s;
    workload.period(k, touches);
    first_accesses(touches, samples);
    for (Lane& l : lanes) {
      World& w = *l.world;
      l.moved_before = w.moved;
      l.ops_before = w.move_ops;
      l.samples_before = l.policy->samples_used;
      l.vcpu_s_before = l.policy->vcpu_move_seconds;
      std::vector<std::uint64_t> from_before = w.moved_from, to_before = w.moved_to, copied_before = w.copied_in_place;
      // Copies queued by earlier periods flow now: the share of this
      // period each node spends copying.
      for (std::size_t i = 0; i < nodes; ++i) {
        const double f = std::min(l.busy_s[i], period_s);
        l.busy_s[i] -= f;
        flowing[i] = f / period_s;
      }
      l.policy->begin_period(w, k, t0, touches);
      double local = 0, all = 0, cost = 0, contention = 0, split = 0;
      for (const Touch& x : touches) {
        const NodeId at = w.node_of(x.guest, x.gfn);
        const NodeId from = l.policy->access_node(x.guest, x.node);  // a vCPU the policy moved runs elsewhere
        all += x.count;
        if (at == from) local += x.count;
        const double base = x.count * topo.distance(from, at) / 10.0;
        cost += base;
        if (w.order_of(x.guest, x.gfn) == 0) split += x.count * config.split_page_cost;
        const int ai = topo.index_of(at);
        if (ai >= 0) contention += base * flowing[static_cast<std::size_t>(ai)] * slowdown;
      }
      l.policy->samples(w, t0, samples);
      l.policy->end_period(w, t1);
      const bool free = l.policy->free_moves();
      const std::uint64_t ops = w.move_ops - l.ops_before;
      std::uint64_t moved = w.moved - l.moved_before;  // frames copied: moved, and copied in place by a coalesce
      for (std::size_t i = 0; i < nodes; ++i) moved += w.copied_in_place[i] - copied_before[i];
      const double move_s = free ? 0
                                 : static_cast<double>(moved) * copy_s + static_cast<double>(ops) * op_s +
                                       (l.policy->vcpu_move_seconds - l.vcpu_s_before);
      const double migration = move_s * 1e9 / config.local_ns;
      const double sampling =
          free ? 0 : static_cast<double>(l.policy->samples_used - l.samples_before) * sample_cost;
      if (!free) {
        l.result.migration_seconds += move_s;
        // This period's copies flow from the next one on, on both ends.
        for (std::size_t i = 0; i < nodes; ++i)
          l.busy_s[i] += static_cast<double>((w.moved_from[i] - from_before[i]) + (w.moved_to[i] - to_before[i]) +
                                             2 * (w.copied_in_place[i] - copied_before[i])) * copy_s;
      }
      const double total = cost + contention + migration + sampling + split;
      l.result.local_ratio.push_back(all > 0 ? local / all : 1.0);
      l.result.access_cost.push_back(all > 0 ? total / all : 1.0);
      l.result.mib_moved.push_back(static_cast<double>(w.moved) / 256.0);
      l.accesses += all;
      l.cost += total;
      l.cost_placement += cost;
      l.cost_moves += migration;
      l.cost_samples += sampling;
      l.cost_contention += contention;
      l.cost_split += split;
      l.result.min_free_pages = std::min(l.result.min_free_pages, w.lowest_free());
    }
    if (progress) progress(k + 1, rep.periods);
  }
  for (Lane& l : lanes) {
    PolicyResult& r = l.result;
    r.local_ratio_final = r.local_ratio.back();
    double sum = 0;
    for (double v : r.local_ratio) sum += v;
    r.local_ratio_mean = sum / static_cast<double>(r.local_ratio.size());
    r.access_cost_mean = l.accesses > 0 ? l.cost / l.accesses : 1.0;
    const double per = l.accesses > 0 ? 1.0 / l.accesses : 0.0;
    r.cost_placement = l.accesses > 0 ? l.cost_placement * per : 1.0;
    r.cost_moves = l.cost_moves * per;
    r.cost_samples = l.cost_samples * per;
    r.cost_contention = l.cost_contention * per;
    r.cost_split = l.cost_split * per;
    r.blocks_coalesced = l.world->coalesced;
    r.blocks_moved_whole = l.world->blocks_whole;
    r.blocks_split = l.world->blocks_split;
    for (std::uint32_t g = 0; g < l.world->guest_count(); ++g)
      for (Gfn gfn = 0; gfn < l.world->guest(g).ram_pages(); ++gfn) r.split_pages_final += l.world->order_of(g, gfn) == 0;
    r.move_ops = l.world->move_ops;
    r.pages_migrated = l.world->moved;
    r.bytes_migrated = l.world->moved << kFrameShift;
    r.pages_bounced = l.world->bounced;
    r.moves_failed = l.world->failed;
    r.samples_used = l.policy->samples_used;
    r.vcpu_advice = l.policy->vcpu_advice;
    r.vcpus_moved = l.policy->vcpus_moved;
    rep.policies.push_back(std::move(r));
  }
  return rep;
}

}  // namespace numaheap::sim
