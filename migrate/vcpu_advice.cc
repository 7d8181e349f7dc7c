// vCPU advice: move the vCPUs instead of their memory when that is cheaper
// (see VcpuAdvice in include/numaheap/migrator.h and vcpu_advice.h).
//
// Per guest and per node X running vCPUs of it (the group: the tracker
// records the node a sample came from, not the vCPU, so the vCPUs on X are
// weighed together), a page is the group's hot page when its last sample
// (this or the previous epoch) came from X and no other node running vCPUs
// of the guest sampled it then. Y is the node holding most of them. Then,
// with c = 4 KiB / copy bandwidth + per-page overhead, k vCPUs in the
// group, and T(n, to) = n pages at the rate limit into `to`:
//   memory: (hot - on X) x c + k x s(X, Y) x T(hot - on X, X) / 2 x (hot - on X) / hot
//   vCPU:   k x vcpu_move + (hot - on Y) x c + k x s(Y, X) x T(hot - on Y, Y) / 2 x (hot - on Y) / hot
// where s(a, b) = memory_bound_share x (distance(a, b) / 10 - 1) is how
// much slower a vCPU runs while its memory is remote (half the pages wait
// on average, for the share of them that is remote). Advice is given when
// Y holds at least min_share and min_pages of the hot pages, Y has CPU
// room for the whole group (every vCPU allowed there, enough free CPUs),
// and memory >= margin x vCPU. examine() runs before the policy's scan of
// the guest, so an embedder that follows the advice from on_advice can
// keep this step from moving the memory it is about to join.
#include "migrate/vcpu_advice.h"

#include <cmath>

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;

}  // namespace

Status VcpuAdvisor::validate(const VcpuAdviceConfig& c) noexcept {
  // Written so that NaN fails every comparison.
  const auto within = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!within(c.copy_gb_s, 1e-6, 1e6) || !within(c.page_overhead_us, 0, 1e6) ||
      !within(c.vcpu_move_us, 0, 1e9) || !within(c.memory_bound_share, 0, 1) || !within(c.margin, 1, 1e6) ||
      !within(c.min_share, 0, 1))
    return Errc::invalid_argument;
  return {};
}

void VcpuAdvisor::examine(Migrator::Impl& m, GuestSlot& g) {
  if (!config.enabled || g.options.vcpus == 0 || !g.vcpus_on || !g.vcpus_placed) return;
  const std::size_t nodes = m.nodes;
  // Rows for the nodes running vCPUs of the guest; their bitmap (mod 16, as the tracker's).
  if (!row_of.resize(nodes, -1)) return;
  std::uint16_t vcpu_bits = 0;
  std::size_t rows = 0;
  for (std::size_t i = 0; i < nodes; ++i) {
    row_of[i] = g.vcpus_on[i] ? static_cast<std::int32_t>(rows++) : -1;
    if (g.vcpus_on[i]) vcpu_bits = static_cast<std::uint16_t>(vcpu_bits | (1u << (i % 16)));
  }
  if (rows == 0 || !hot.resize(rows * nodes)) return;
  for (auto& h : hot) h = 0;

  // Pages sampled only on a node whose vCPUs all left for X are X's group's
  // too (the policy would move them to X at once: Impl::vacated_index).
  const bool vacated = m.begin_vacated(g);
  const std::uint64_t pages = g.mover->page_count();
  PageState st[kChunk];
  for (Gfn first = 0; first < pages; first += kChunk) {
    const std::size_t n = static_cast<std::size_t>(pages - first < kChunk ? pages - first : kChunk);
    if (!m.call_mover([&] { return g.mover->query(first, std::span<PageState>(st, n)); })) return;
    for (std::size_t i = 0; i < n; ++i) {
      const int pi = m.index(st[i].node);
      if (pi < 0 || !m.range_of(g, first + i)) continue;
      const PageHeat h = g.tracker->heat(first + i);
      const std::uint32_t to = vacated ? m.vacated_index(g, h) : kNoVcpuNode;
      if (to != kNoVcpuNode && row_of[to] >= 0) {
        ++hot[static_cast<std::size_t>(row_of[to]) * nodes + static_cast<std::size_t>(pi)];
        continue;
      }
      if (!h.sampled() || h.last_index >= nodes || row_of[h.last_index] < 0) continue;
      const auto mine = static_cast<std::uint16_t>(1u << (h.last_index % 16));
      if ((h.seen | h.prev_seen) & vcpu_bits & ~mine) continue;  // shared with vCPUs elsewhere
      ++hot[static_cast<std::size_t>(row_of[h.last_index]) * nodes + static_cast<std::size_t>(pi)];
    }
  }

  const double page_us = 4.096 / config.copy_gb_s + config.page_overhead_us;
  // Cost of moving `moving` of `total` hot pages into `into`, where k vCPUs
  // run and wait on those still on `away`.
  const auto cost = [&](std::uint64_t moving, std::uint64_t total, NodeId into, NodeId away, std::uint32_t k) {
    const double r = m.rate_mb_s(into);  // as Impl::admit: 0 = unlimited
    const double wait_us = r > 0 ? static_cast<double>(moving) * 4096.0 / (r * 1048576.0) * 1e6 : 0;
    const double d = static_cast<double>(m.topo->distance(into, away)) / 10.0 - 1;
    const double slow = config.memory_bound_share * std::max(0.0, d);
    return static_cast<double>(moving) * page_us +
           k * slow * wait_us / 2 * static_cast<double>(moving) / static_cast<double>(total);
  };

  for (std::size_t x = 0; x < nodes; ++x) {
    if (row_of[x] < 0) continue;
    const std::uint64_t* row = &hot[static_cast<std::size_t>(row_of[x]) * nodes];
    std::uint64_t total = 0;
    std::size_t y = nodes;
    for (std::size_t i = 0; i < nodes; ++i) {
      total += row[i];
      if (i != x && (y == nodes || row[i] > row[y])) y = i;
    }
    if (y == nodes || total == 0 || row[y] < config.min_pages ||
        static_cast<double>(row[y]) < config.min_share * static_cast<double>(total))
      continue;
    const NodeId from = m.topo->node_at(x).id, to = m.topo->node_at(y).id;
    const std::uint32_t k = g.vcpus_on[x];
    // CPU room on `to` for the whole group.
    const NodeInfo& target = m.topo->node_at(y);
    if (!target.has_cpus()) continue;
    std::int64_t room = config.free_cpus ? config.free_cpus(config.room_ctx, to) : -1;
    if (room < 0) room = static_cast<std::int64_t>(target.cpus.size()) - g.vcpus_on[y];
    if (room < static_cast<std::int64_t>(k)) continue;
    bool allowed = true;
    for (std::uint32_t v = 0; v < g.options.vcpus && allowed && config.vcpu_allowed; ++v)
      if (m.topo->node_of_cpu(g.vcpu_cpu[v].load(std::memory_order_relaxed)) == from)
        allowed = config.vcpu_allowed(config.room_ctx, g.id, v, to) != 0;
    if (!allowed) continue;

    VcpuAdvice a;
    a.guest = g.id;
    a.from_node = from;
    a.to_node = to;
    a.group = k;
    a.pages = total - row[x];
    a.pages_after = total - row[y];
    a.memory_cost_us = cost(a.pages, total, from, to, k);
    a.vcpu_cost_us = k * config.vcpu_move_us + cost(a.pages_after, total, to, from, k);
    a.saving_us = a.memory_cost_us - a.vcpu_cost_us;
    if (a.saving_us <= 0 || a.memory_cost_us < config.margin * a.vcpu_cost_us) continue;
    bool followed = false;
    for (std::uint32_t v = 0; v < g.options.vcpus; ++v) {
      if (m.topo->node_of_cpu(g.vcpu_cpu[v].load(std::memory_order_relaxed)) != from) continue;
      a.vcpu = v;
      if (!pending.push_back(a)) break;  // out of metadata memory: the rest is not given
      ++m.stats.advice_given;
      if (config.on_advice && config.on_advice(config.on_advice_ctx, &a) != 0) followed = true;
    }
    if (followed) hold_group(m, g, x, vcpu_bits);
  }
}

// The embedder moves the group on node index x to where its memory is: this
// step's samples from x must not pull that memory after it. Resetting the
// streak of the group's hot pages (the same test as above) keeps the
// policy's follow, quick and two-stage moves off them this step; their
// node history stays, so nothing else about them changes.
void VcpuAdvisor::hold_group(Migrator::Impl& m, GuestSlot& g, std::size_t x, std::uint16_t vcpu_bits) noexcept {
  const auto mine = static_cast<std::uint16_t>(1u << (x % 16));
  const std::uint64_t pages = g.mover->page_count();
  for (Gfn gfn = 0; gfn < pages; ++gfn) {
    const PageHeat h = g.tracker->heat(gfn);
    if (!h.sampled() || h.last_index != x || ((h.seen | h.prev_seen) & vcpu_bits & ~mine)) continue;
    g.tracker->reset_streak(gfn);
    ++m.stats.advice_held;
  }
}

// ---- Migrator's entry points for the advice ----

Status Migrator::set_vcpu_advice(const VcpuAdviceConfig& config) {
  if (Status v = VcpuAdvisor::validate(config); !v) return v;
  Impl& m = *impl_;
  SpinGuard step_guard(m.step_lock);  // the step reads the settings across mover calls
  SpinGuard guard(m.lock);
  if (!advisor_) {
    advisor_ = new (m.meta) VcpuAdvisor(m.meta);
    if (!advisor_) return Errc::no_memory;
  }
  advisor_->config = config;
  if (!config.enabled) advisor_->forget();
  return {};
}

std::size_t Migrator::vcpu_advice(std::span<VcpuAdvice> out) const {
  SpinGuard guard(impl_->lock);
  if (!advisor_) return 0;
  const auto& all = advisor_->advice;
  for (std::size_t i = 0; i < all.size() && i < out.size(); ++i) out[i] = all[i];
  return all.size();
}

Result<bool> Migrator::vcpu_advice_for(GuestId id, std::uint32_t vcpu, VcpuAdvice& out) const {
  const Impl& m = *impl_;
  SpinGuard guard(m.lock);
  const GuestSlot* s = m.slot(id);
  if (!s || s->removed || vcpu >= s->options.vcpus) return Errc::invalid_argument;
  if (!advisor_) return false;
  for (const VcpuAdvice& a : advisor_->advice)
    if (a.guest == id && a.vcpu == vcpu) {
      out = a;
      return true;
    }
  return false;
}

}  // namespace numaheap
