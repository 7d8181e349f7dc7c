// The policies the simulator compares.
//
//  none      first touch, never move.
//  naive     move a page to the node of every sample that is not its own.
//  autonuma  Linux's automatic NUMA balancing as its documentation and
//            papers describe it (written here; no kernel code): a scanner
//            arms `scan_size` MiB of the address space every scan period
//            (1 s at first, adapting between 1 s and 60 s: slower while
//            hinting faults are mostly local, faster while they are not);
//            only armed pages fault, once; a fault migrates the page to the
//            faulting node when the previous fault on it came from that
//            node too (two-stage filter); at most 128 MiB per 100 ms per
//            destination node; a destination must keep 1% free.
//  numaheap  the real Migrator (default config, period = the simulator's;
//            huge pages kept whole, coalesced through CountingMover),
//            fed with record_access and stepped with step_at.
//  numaheap-follow  (not run by default) numaheap whose embedder follows
//            the migrator's vCPU advice: when moving a guest's vCPUs on a
//            node to the node holding their hot memory looks cheaper than
//            moving the memory (Migrator::set_vcpu_advice, with this
//            model's copy bandwidth, per-page overhead and --vcpu-move-us),
//            it moves them there from the next period on (their accesses
//            then come from that node), pays vcpu_move_us for each, and
//            tells the migrator, which leaves their memory in place.
//  oracle    knows each period's accesses before they happen: every page
//            is on the node that touches it most in the period (ties stay),
//            moves are instant and free. An upper bound, not a policy.
#include <algorithm>
#include <cmath>
#include <map>

#include "bench/sim/world.h"
#include "numaheap/migrator.h"

namespace numaheap::sim {

namespace {

class NonePolicy final : public Policy {};

// Free frames per node at the start of a period, kept up to date by the
// policy's own moves: a policy looks at free memory before it tries a
// move (as any real one would), so `moves_failed` counts refusals it could
// not foresee rather than the same doomed retry once per sample.
class Room {
 public:
  void snapshot(World& w, double watermark) {
    room_.clear();
    for (const NodeInfo& n : w.topo().nodes()) {
      const std::uint64_t free = w.free_pages(n.id);
      const auto mark = static_cast<std::uint64_t>(watermark * static_cast<double>(w.managed_pages(n.id)));
      room_[n.id] = free > mark ? free - mark : 0;
    }
  }
  bool has(NodeId n) { return room_[n] > 0; }
  void moved(NodeId from, NodeId to) { --room_[to], ++room_[from]; }

 private:
  std::map<NodeId, std::uint64_t> room_;
};

class NaivePolicy final : public Policy {
 public:
  void begin_period(World& w, std::uint64_t, double, std::span<const Touch>) override { room_.snapshot(w, 0); }
  void samples(World& w, double, std::span<const Sample> s) override {
    for (const Sample& x : s) {
      ++samples_used;
      const NodeId here = w.node_of(x.guest, x.gfn);
      if (here == x.node || !room_.has(x.node)) continue;
      const Gfn g = x.gfn;
      if (w.move(x.guest, std::span<const Gfn>(&g, 1), x.node)) room_.moved(here, x.node);
    }
  }

 private:
  Room room_;
};

class OraclePolicy final : public Policy {
 public:
  bool free_moves() const override { return true; }
  void begin_period(World& w, std::uint64_t, double, std::span<const Touch> touches) override {
    std::map<std::pair<std::uint32_t, NodeId>, std::vector<Gfn>> moves;
    for (std::size_t i = 0; i < touches.size();) {
      const std::uint32_t guest = touches[i].guest;
      const Gfn gfn = touches[i].gfn;
      const NodeId here = w.node_of(guest, gfn);
      NodeId best = kNoNode;
      double best_count = 0, here_count = 0;
      for (; i < touches.size() && touches[i].guest == guest && touches[i].gfn == gfn; ++i) {
        const Touch& t = touches[i];
        if (t.node == here) here_count = t.count;
        if (t.count > best_count && w.topo().find(t.node)->has_memory()) best = t.node, best_count = t.count;
      }
      if (best != kNoNode && best != here && best_count > here_count) moves[{guest, best}].push_back(gfn);
    }
    room_.snapshot(w, 0);
    for (auto& [key, gfns] : moves) {
      std::size_t fit = 0;  // the oracle knows how much room there is too
      while (fit < gfns.size() && room_.has(key.second)) room_.moved(kNoNode, key.second), ++fit;
      w.move(key.first, std::span<const Gfn>(gfns.data(), fit), key.second);
    }
  }

 private:
  Room room_;
};

class AutoNumaPolicy final : public Policy {
 public:
  static constexpr double kScanDelayS = 1, kPeriodMinS = 1, kPeriodMaxS = 60;
  static constexpr std::uint64_t kScanPages = (256ull << 20) >> kFrameShift;
  static constexpr double kRateBytesPerS = (128.0 * 1048576) / 0.1;
  static constexpr double kWatermark = 0.01;

  AutoNumaPolicy(World& w, const SimConfig& c) : config_(c) {
    for (std::uint32_t g = 0; g < w.guest_count(); ++g) {
      Task t;
      t.armed.assign(w.guest(g).ram_pages(), 0);
      t.last.assign(w.guest(g).ram_pages(), kNoNode);
      t.next_scan_s = kScanDelayS;
      tasks_.push_back(std::move(t));
    }
  }

  void begin_period(World& w, std::uint64_t, double now_s, std::span<const Touch>) override {
    budget_.clear();  // per destination node, bytes this period
    room_.snapshot(w, kWatermark);
    for (std::uint32_t g = 0; g < tasks_.size(); ++g) {
      Task& t = tasks_[g];
      while (t.next_scan_s <= now_s) {
        scan_window(t, w.guest(g).ram_pages());
        t.next_scan_s += t.period_s;
      }
    }
  }

  void samples(World& w, double, std::span<const Sample> s) override {
    const double period_bytes = kRateBytesPerS * config_.period_ms / 1000.0;
    for (const Sample& x : s) {
      Task& t = tasks_[x.guest];
      if (!t.armed[x.gfn]) continue;  // no hinting fault: the page is mapped
      t.armed[x.gfn] = 0;
      ++samples_used;
      const NodeId here = w.node_of(x.guest, x.gfn);
      (here == x.node ? t.local : t.remote) += 1;
      const NodeId previous = t.last[x.gfn];
      t.last[x.gfn] = x.node;
      if (here == x.node || previous != x.node) continue;  // two-stage filter
      if (!w.topo().find(x.node)->has_memory()) continue;
      double& used = budget_[x.node];
      if (used + kFrameSize > period_bytes) continue;  // rate limited
      if (!room_.has(x.node)) continue;  // destination at its watermark
      const Gfn g = x.gfn;
      if (w.move(x.guest, std::span<const Gfn>(&g, 1), x.node)) used += kFrameSize, room_.moved(here, x.node);
    }
  }

 private:
  struct Task {
    std::vector<std::uint8_t> armed;
    std::vector<NodeId> last;  // node of the previous hinting fault per page
    std::uint64_t cursor = 0;
    double period_s = kPeriodMinS, next_scan_s = 0;
    double local = 0, remote = 0;  // faults since the last full pass
  };

  void scan_window(Task& t, std::uint64_t pages) {
    for (std::uint64_t i = 0; i < std::min(kScanPages, pages); ++i) {
      t.armed[t.cursor] = 1;
      if (++t.cursor == pages) {
        t.cursor = 0;
        adapt(t);
      }
    }
  }

  // After a full pass: ten slots of the period; mostly local faults (7 in
  // 10 or more) lengthen it by a slot per tenth above 7 (at least one),
  // otherwise it shortens by a slot per tenth below 7; no faults double it.
  static void adapt(Task& t) {
    const double faults = t.local + t.remote;
    if (faults == 0) {
      t.period_s = std::min(kPeriodMaxS, t.period_s * 2);
    } else {
      const double slot = t.period_s / 10;
      const int tenths = static_cast<int>(std::floor(10 * t.local / faults));
      const double diff = tenths >= 7 ? slot * std::max(1, tenths - 7) : -slot * (7 - tenths);
      t.period_s = std::clamp(t.period_s + diff, kPeriodMinS, kPeriodMaxS);
    }
    t.local = t.remote = 0;
  }

  SimConfig config_;
  std::vector<Task> tasks_;
  std::map<NodeId, double> budget_;
  Room room_;
};

// The real Migrator, fed as a hypervisor would: every vCPU placement and
// move through set_vcpu_cpu (at the start of the period it happens in);
// each node's spare memory bandwidth (the node's bandwidth less the guests'
// traffic of the last period, 64 B an access) through the adaptive rate
// limit's hook; and samples through record_access from the pages it armed
// for hinting faults this period -- every k-th page, k = 1 / the share
// sample_share() advises, at an offset that rotates each period (all pages
// while anything is remote or moving, down to 1/32 while everything is
// settled; strided rather than one contiguous window, so that a change
// anywhere in the guest is seen in the first period). Samples of unarmed pages do
// not exist for it (and cost nothing).
class NumaheapPolicy final : public Policy {
 public:
  static Result<std::unique_ptr<Policy>, Error> create(World& w, const SimConfig& c, bool follow) {
    std::unique_ptr<NumaheapPolicy> p(new NumaheapPolicy());
    p->config_ = c;
    p->follow_ = follow;
    p->traffic_.assign(w.topo().node_count(), 0.0);
    p->window_.assign(w.guest_count(), Window{});
    MigratorConfig mc;
    mc.period_ms = static_cast<std::uint32_t>(std::max(1.0, c.period_ms));
    std::uint64_t largest = 1;
    for (std::uint32_t g = 0; g < w.guest_count(); ++g) largest = std::max(largest, w.guest(g).ram_pages());
    mc.scan_pages = largest;  // look at every page every period
    mc.spare_bandwidth_mb_s = &NumaheapPolicy::spare;
    mc.spare_bandwidth_ctx = p.get();
    auto m = Migrator::create(w.topo(), mc);
    if (!m) return Error{m.error(), "migrator"};
    p->migrator_ = std::move(*m);
    p->topo_ = &w.topo();
    for (const NodeInfo& n : w.topo().nodes()) p->cpu_of_.push_back(n.has_cpus() ? n.cpus.front() : kMaxCpus);
    for (std::uint32_t g = 0; g < w.guest_count(); ++g) {
      MigrateGuestOptions o;
      o.vcpus = static_cast<std::uint32_t>(w.shapes[g].vcpu_nodes.size());
      auto id = p->migrator_->add_guest(w.mover(g), o);
      if (!id) return Error{id.error(), "migrator add_guest"};
      p->ids_.push_back(*id);
      p->workload_node_.push_back(w.shapes[g].vcpu_nodes);
      p->vcpu_node_.push_back(w.shapes[g].vcpu_nodes);
      p->remap_.emplace_back();
      for (std::uint32_t v = 0; v < o.vcpus; ++v) p->place(g, v, w.shapes[g].vcpu_nodes[v]);
    }
    // vCPU advice in this model's terms (reported; followed by numaheap-follow).
    VcpuAdviceConfig a;
    a.enabled = true;
    a.copy_gb_s = c.bandwidth_gb_s;
    a.page_overhead_us = c.page_overhead_us;
    a.vcpu_move_us = c.vcpu_move_us;
    a.on_advice = &NumaheapPolicy::advised;
    a.on_advice_ctx = p.get();
    a.free_cpus = &NumaheapPolicy::free_cpus;  // every guest's vCPUs count, not only the advised one's
    a.room_ctx = p.get();
    if (auto s = p->migrator_->set_vcpu_advice(a); !s) return Error{s.error(), "migrator set_vcpu_advice"};
    return std::unique_ptr<Policy>(std::move(p));
  }

  NodeId access_node(std::uint32_t g, NodeId node) const override {
    for (const auto& [from, to] : remap_[g])
      if (from == node) return to;
    return node;
  }

  void begin_period(World& w, std::uint64_t, double now_s, std::span<const Touch> touches) override {
    const std::size_t moves_before = next_move_;
    for (; next_move_ < w.vcpu_moves.size() && w.vcpu_moves[next_move_].at_s <= now_s + 1e-9; ++next_move_) {
      const VcpuMove& m = w.vcpu_moves[next_move_];
      workload_node_[m.guest][m.vcpu] = m.node;
      // The workload's scheduler moved a vCPU of the guest: its word
      // overrides what the embedder did on earlier advice.
      if (!remap_[m.guest].empty()) {
        remap_[m.guest].clear();
        for (std::uint32_t v = 0; v < workload_node_[m.guest].size(); ++v) place(m.guest, v, workload_node_[m.guest][v]);
      }
      place(m.guest, m.vcpu, m.node);
      vcpu_node_[m.guest] = workload_node_[m.guest];
    }
    // The hypervisor knows it just moved vCPUs: it steps the migrator at
    // once (before the guest runs), so memory sampled only where they all
    // left from follows them now instead of after their first samples.
    if (next_move_ != moves_before) {
      (void)migrator_->step_at(static_cast<std::uint64_t>(std::llround(now_s * 1e9)));
      apply_followed();  // advice followed in that step counts from this period
    }
    // The guests' memory traffic per node over the last period (what a
    // hypervisor reads from its memory controllers' counters).
    for (std::uint32_t g = 0; g < ids_.size(); ++g) {
      auto share = migrator_->sample_share(ids_[g]);
      Window& win = window_[g];
      const double stride = share && *share > 0 ? std::round(1.0 / *share) : 1.0;
      win.stride = static_cast<std::uint64_t>(std::clamp(stride, 1.0, 1e9));
      win.offset = win.next++ % win.stride;
    }
    std::fill(traffic_.begin(), traffic_.end(), 0.0);
    for (const Touch& x : touches) {
      const int i = topo_->index_of(w.node_of(x.guest, x.gfn));
      if (i >= 0) traffic_[static_cast<std::size_t>(i)] += x.count * 64.0;
    }
  }
  void samples(World& w, double, std::span<const Sample> s) override {
    for (const Sample& x : s) {
      const int i = w.topo().index_of(x.node);
      if (i < 0 || cpu_of_[static_cast<std::size_t>(i)] == kMaxCpus) continue;
      if (!window_[x.guest].armed(x.gfn)) continue;
      const int j = w.topo().index_of(access_node(x.guest, x.node));  // where the vCPU really ran
      if (j < 0 || cpu_of_[static_cast<std::size_t>(j)] == kMaxCpus) continue;
      migrator_->record_access(ids_[x.guest], x.gfn, cpu_of_[static_cast<std::size_t>(j)]);
      ++samples_used;
    }
  }
  void end_period(World&, double now_s) override {
    (void)migrator_->step_at(static_cast<std::uint64_t>(std::llround(now_s * 1e9)));
    apply_followed();
  }
  ~NumaheapPolicy() override {
    for (GuestId id : ids_) (void)migrator_->remove_guest(id);
  }

 private:
  NumaheapPolicy() = default;
  // Advice followed in a step (numaheap-follow): from then on (the next
  // period, or this one for the step at its start) the group's accesses
  // come from its new node.
  void apply_followed() {
    for (std::size_t i = 0; i < followed_.size(); ++i) {
      const VcpuAdvice& a = followed_[i];
      vcpu_move_seconds += config_.vcpu_move_us * 1e-6;
      ++vcpus_moved;
      if (i > 0 && followed_[i - 1].guest == a.guest && followed_[i - 1].from_node == a.from_node) continue;
      // One group per (guest, node): every vCPU the guest runs on from_node,
      // whether the workload put it there or an earlier advice did.
      auto& r = remap_[guest_of(a.guest)];
      bool direct = false;
      for (auto& [from, to] : r) {
        if (to == a.from_node) to = a.to_node;
        direct = direct || from == a.from_node;
      }
      if (!direct) r.emplace_back(a.from_node, a.to_node);
      std::erase_if(r, [](const auto& e) { return e.first == e.second; });
    }
    followed_.clear();
    vcpu_advice = migrator_->stats().advice_given;
  }
  void place(std::uint32_t g, std::uint32_t vcpu, NodeId node) {
    const int i = topo_->index_of(node);
    if (i >= 0 && cpu_of_[static_cast<std::size_t>(i)] != kMaxCpus)
      (void)migrator_->set_vcpu_cpu(ids_[g], vcpu, cpu_of_[static_cast<std::size_t>(i)]);
  }
  // VcpuAdviceConfig::on_advice, from inside step_at. numaheap reports
  // only; numaheap-follow moves the vCPU (set_vcpu_cpu is a lock-free
  // input, callable here) and says so, so the step leaves its memory.
  static int advised(void* ctx, const VcpuAdvice* a) {
    auto* p = static_cast<NumaheapPolicy*>(ctx);
    if (!p->follow_) return 0;
    const int i = p->topo_->index_of(a->to_node);
    if (i < 0 || p->cpu_of_[static_cast<std::size_t>(i)] == kMaxCpus) return 0;
    if (!p->migrator_->set_vcpu_cpu(a->guest, a->vcpu, p->cpu_of_[static_cast<std::size_t>(i)])) return 0;
    p->followed_.push_back(*a);
    p->vcpu_node_[p->guest_of(a->guest)][a->vcpu] = a->to_node;
    return 1;
  }
  // VcpuAdviceConfig::free_cpus: the node's CPUs less every simulated
  // guest's vCPUs on it now (one vCPU a CPU; the model has no CPU load).
  static std::int64_t free_cpus(void* ctx, NodeId node) {
    auto* p = static_cast<NumaheapPolicy*>(ctx);
    const NodeInfo* n = p->topo_->find(node);
    if (!n) return 0;
    auto free = static_cast<std::int64_t>(n->cpus.size());
    for (const auto& guest : p->vcpu_node_) free -= std::count(guest.begin(), guest.end(), node);
    return free;
  }
  std::uint32_t guest_of(GuestId id) const {
    for (std::uint32_t g = 0; g < ids_.size(); ++g)
      if (ids_[g] == id) return g;
    return 0;
  }
  static double spare(void* ctx, NodeId node) {
    auto* p = static_cast<NumaheapPolicy*>(ctx);
    const int i = p->topo_->index_of(node);
    if (i < 0) return -1;
    const double period_s = p->config_.period_ms / 1000.0;
    const double used = p->traffic_[static_cast<std::size_t>(i)] / period_s;
    return std::max(0.0, p->config_.node_bandwidth_gb_s * 1e9 - used) / 1048576.0;
  }

  struct Window {  // pages with gfn % stride == offset are armed this period
    std::uint64_t stride = 1, offset = 0, next = 0;
    bool armed(Gfn g) const { return g % stride == offset; }
  };
  SimConfig config_;
  std::vector<Window> window_;  // per guest
  const Topology* topo_ = nullptr;
  std::unique_ptr<Migrator> migrator_;
  std::vector<GuestId> ids_;
  std::vector<CpuId> cpu_of_;    // per dense node index: a CPU of it
  std::vector<double> traffic_;  // per dense node: guest bytes last period
  std::size_t next_move_ = 0;
  bool follow_ = false;          // numaheap-follow: move vCPUs on advice
  std::vector<VcpuAdvice> followed_;  // advice followed in the current step
  std::vector<std::vector<NodeId>> workload_node_;  // per guest, per vCPU: where the workload runs it
  std::vector<std::vector<NodeId>> vcpu_node_;      // per guest, per vCPU: where it runs (advice followed)
  // Per guest: (workload node, node the embedder moved its vCPUs to).
  std::vector<std::vector<std::pair<NodeId, NodeId>>> remap_;
};

}  // namespace

Result<std::unique_ptr<Policy>, Error> make_policy(std::string_view name, World& w, const SimConfig& c) {
  if (name == "none") return std::unique_ptr<Policy>(new NonePolicy());
  if (name == "naive") return std::unique_ptr<Policy>(new NaivePolicy());
  if (name == "autonuma") return std::unique_ptr<Policy>(new AutoNumaPolicy(w, c));
  if (name == "numaheap") return NumaheapPolicy::create(w, c, false);
  if (name == kFollowPolicy) return NumaheapPolicy::create(w, c, true);
  if (name == "oracle") return std::unique_ptr<Policy>(new OraclePolicy());
  std::string known;
  for (const auto& p : policy_names()) known += (known.empty() ? "" : ", ") + p;
  known += std::string(", ") + kFollowPolicy;
  return Error{Errc::invalid_argument, "unknown policy '" + std::string(name) + "' (known: " + known + ")"};
}

}  // namespace numaheap::sim
