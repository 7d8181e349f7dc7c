// Placer: node-set choice for new guests (see include/numaheap/placement.h).
#include "numaheap/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace numaheap {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::uint64_t kPage = kFrameSize;
constexpr std::uint64_t k2M = 2ull << 20;

// Weights of the cost terms (see placement.h for the order of preference).
constexpr double kAntiWeight = 100.0;  // per node shared with the anti group
constexpr double kDistWeight = 1.0;    // mean distance inside the set / 10 - 1
constexpr double kDeviceWeight = 1.0;  // device distance / 10 - 1, per device
constexpr double kAffinityWeight = 1.0;
constexpr double kLoadWeight = 0.5;    // vCPUs per CPU after placing
constexpr double kFreeWeight = 0.3;    // fraction of the set's memory in use after

std::string mb(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

std::string fmt2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// Everything one place() call needs, by dense node index.
struct Ctx {
  const Topology& topo;
  const GuestSpec& spec;
  std::span<const NodeUsage> usage;
  const PlacementHints& hints;
  std::size_t n = 0;
  std::vector<std::uint64_t> usable;  // free above the watermark, 4 KiB multiple
  std::vector<std::uint32_t> cpus;
  std::vector<bool> eligible;
  std::uint32_t need_cpus = 0;  // 0 when the machine cannot fit the vCPUs anyway
  // Precomputed once per call so the search's inner loops are array reads.
  std::vector<std::uint32_t> dmat;   // n*n effective distances by dense index
  std::vector<double> aff_node;      // near_term(i, affinity nodes)
  std::vector<double> dev_node;      // sum over devices of their extra distance to i alone
  std::vector<std::vector<std::uint32_t>> dev_dist;  // [device][i]
  std::vector<bool> anti;

  Ctx(const Topology& t, const GuestSpec& s, std::span<const NodeUsage> u,
      const PlacementHints& h, const Placer& placer)
      : topo(t), spec(s), usage(u), hints(h), n(t.node_count()) {
    usable.assign(n, 0);
    cpus.assign(n, 0);
    eligible.assign(n, false);
    std::uint64_t all_cpus = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const NodeInfo& node = t.node_at(i);
      cpus[i] = static_cast<std::uint32_t>(node.cpus.size());
      std::uint64_t wm = placer.watermark(node.id);
      std::uint64_t f = u[i].free_bytes;
      usable[i] = f > wm ? (f - wm) / kPage * kPage : 0;
      bool allowed = s.allowed_nodes.empty() || s.allowed_nodes.test(node.id);
      eligible[i] = allowed && node.has_memory() && usable[i] > 0;
      if (allowed) all_cpus += cpus[i];
    }
    need_cpus = all_cpus >= s.vcpus ? s.vcpus : 0;
    dmat.assign(n * n, 0);
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b)
        dmat[a * n + b] = t.distance(t.node_at(a).id, t.node_at(b).id);
    aff_node.assign(n, 0.0);
    anti.assign(n, false);
    for (std::size_t i = 0; i < n; ++i) {
      if (!h.affinity_nodes.empty()) aff_node[i] = near_term(i, h.affinity_nodes);
      anti[i] = h.anti_affinity_nodes.test(t.node_at(i).id);
    }
    for (const auto& dev : s.devices) {
      std::vector<std::uint32_t> row(n);
      for (std::size_t i = 0; i < n; ++i) row[i] = t.distance(dev.host_node, t.node_at(i).id);
      dev_dist.push_back(std::move(row));
    }
  }

  std::uint32_t dist(std::size_t a, std::size_t b) const { return dmat[a * n + b]; }

  // Load of a set after adding the guest's vCPUs.
  double load_term(const std::vector<std::size_t>& set) const {
    std::uint64_t c = 0, v = 0;
    double util = 0;
    bool util_known = true;
    for (auto i : set) {
      c += cpus[i];
      v += usage[i].vcpus;
      if (usage[i].utilization < 0) util_known = false;
      else util += usage[i].utilization * cpus[i];
    }
    if (c == 0) return 4.0;  // CPU-less: every vCPU runs on another node
    double guest = static_cast<double>(spec.vcpus) / static_cast<double>(c);
    if (util_known) return util / static_cast<double>(c) + guest;
    return static_cast<double>(v) / static_cast<double>(c) + guest;
  }

  // Distance from node i to the nearest node of a mask, / 10 - 1 (0 inside).
  double near_term(std::size_t i, const NodeMask& mask) const {
    std::uint32_t best = kMaxDistance;
    NodeId id = topo.node_at(i).id;
    for (NodeId m : mask)
      if (topo.has_node(m)) best = std::min(best, topo.distance(id, m));
    return m_or_zero(best);
  }
  static double m_or_zero(std::uint32_t d) { return d <= kLocalDistance ? 0.0 : d / 10.0 - 1.0; }

  // Terms that depend on a single node (devices, groups): summed per set.
  double device_term(const std::vector<std::size_t>& set) const {
    double total = 0;
    for (const auto& row : dev_dist) {
      std::uint32_t best = kMaxDistance;
      for (auto i : set) best = std::min(best, row[i]);
      total += m_or_zero(best);
    }
    return total;
  }

  // Sum of distances over ordered pairs of distinct members.
  double pair_sum(const std::vector<std::size_t>& set) const {
    double sum = 0;
    for (auto a : set)
      for (auto b : set)
        if (a != b) sum += dist(a, b);
    return sum;
  }

  double cost(const std::vector<std::size_t>& set) const { return cost_with(set, pair_sum(set)); }

  // cost() with the pair sum already known (the search keeps it updated).
  double cost_with(const std::vector<std::size_t>& set, double pairs) const {
    if (set.empty()) return kInf;
    std::uint64_t mem = 0, size = 0, c = 0;
    for (auto i : set) {
      if (!eligible[i]) return kInf;
      mem += usable[i];
      size += topo.node_at(i).memory_bytes;
      c += cpus[i];
    }
    if (mem < spec.memory_bytes || c < need_cpus) return kInf;
    double dist_term = 0;
    if (set.size() > 1)
      dist_term = pairs / static_cast<double>(set.size() * (set.size() - 1)) / 10.0 - 1.0;
    double aff = 0;
    if (!hints.affinity_nodes.empty()) {
      for (auto i : set) aff += aff_node[i];
      aff /= static_cast<double>(set.size());
    }
    double anti_count = 0;
    for (auto i : set)
      if (anti[i]) anti_count += 1;
    double used_after = 1.0 - static_cast<double>(mem - spec.memory_bytes) /
                                  static_cast<double>(std::max<std::uint64_t>(size, 1));
    return kAntiWeight * anti_count + kDistWeight * dist_term + kDeviceWeight * device_term(set) +
           kAffinityWeight * aff + kLoadWeight * load_term(set) + kFreeWeight * used_after;
  }
};

// Grows a set of exactly k nodes from `seed`: each step adds the nearest
// node (sum of distances both ways to the set) among those that keep the set
// able to fit the guest with the nodes still to come; ties go to more free
// memory. Empty when no such set exists.
std::vector<std::size_t> grow(const Ctx& c, std::size_t seed, std::size_t k,
                              const std::vector<std::size_t>& by_mem,
                              const std::vector<std::size_t>& by_cpu) {
  std::vector<std::size_t> set{seed};
  std::vector<bool> in(c.n, false);
  in[seed] = true;
  // to_set[i]: distances both ways between node i and the set's members.
  std::vector<std::uint64_t> to_set(c.n, 0);
  auto joined = [&](std::size_t x) {
    for (std::size_t i = 0; i < c.n; ++i) to_set[i] += c.dist(x, i) + c.dist(i, x);
  };
  joined(seed);
  std::uint64_t mem = c.usable[seed], cpu = c.cpus[seed];
  while (set.size() < k) {
    const std::size_t m = k - set.size() - 1;  // still to add after this one
    // Sums of the m and m+1 largest remaining, and each node's rank.
    auto top = [&](const std::vector<std::size_t>& order, auto value, std::uint64_t& sum_m,
                   std::uint64_t& sum_m1, std::vector<std::size_t>& rank) {
      sum_m = sum_m1 = 0;
      std::size_t r = 0;
      for (auto i : order) {
        if (in[i] || !c.eligible[i]) continue;
        rank[i] = r;
        if (r < m) sum_m += value(i);
        if (r < m + 1) sum_m1 += value(i);
        ++r;
      }
    };
    std::vector<std::size_t> mem_rank(c.n, c.n), cpu_rank(c.n, c.n);
    std::uint64_t mem_m, mem_m1, cpu_m, cpu_m1;
    top(by_mem, [&](std::size_t i) { return c.usable[i]; }, mem_m, mem_m1, mem_rank);
    top(by_cpu, [&](std::size_t i) { return std::uint64_t{c.cpus[i]}; }, cpu_m, cpu_m1, cpu_rank);
    std::size_t best = c.n;
    std::uint64_t best_d = 0;
    for (std::size_t i = 0; i < c.n; ++i) {
      if (in[i] || !c.eligible[i]) continue;
      std::uint64_t mem_rest = mem_rank[i] < m ? mem_m1 - c.usable[i] : mem_m;
      std::uint64_t cpu_rest = cpu_rank[i] < m ? cpu_m1 - c.cpus[i] : cpu_m;
      if (mem + c.usable[i] + mem_rest < c.spec.memory_bytes) continue;
      if (cpu + c.cpus[i] + cpu_rest < c.need_cpus) continue;
      const std::uint64_t d = to_set[i];
      if (best == c.n || d < best_d || (d == best_d && c.usable[i] > c.usable[best])) {
        best = i;
        best_d = d;
      }
    }
    if (best == c.n) return {};
    set.push_back(best);
    in[best] = true;
    joined(best);
    mem += c.usable[best];
    cpu += c.cpus[best];
  }
  return set;
}

// Single-swap local search from a feasible set. The pair-distance sum is
// kept incrementally (full[i]: distances both ways between node i and every
// member), so one trial costs O(k) instead of O(k^2).
void improve(const Ctx& c, std::vector<std::size_t>& set, double& cost) {
  std::vector<std::uint64_t> full(c.n, 0);
  std::vector<bool> in(c.n, false);
  for (auto x : set) {
    in[x] = true;
    for (std::size_t i = 0; i < c.n; ++i) full[i] += c.dist(x, i) + c.dist(i, x);
  }
  double pairs = c.pair_sum(set);
  const int passes = set.size() > 16 ? 1 : 8;  // big sets: one pass keeps it under 1 ms
  std::vector<std::size_t> trial;
  for (int pass = 0; pass < passes; ++pass) {
    bool changed = false;
    for (std::size_t pos = 0; pos < set.size(); ++pos)
      for (std::size_t cand = 0; cand < c.n; ++cand) {
        if (!c.eligible[cand] || in[cand]) continue;
        const std::size_t out = set[pos];
        const double trial_pairs = pairs - static_cast<double>(full[out] - 2 * c.dist(out, out)) +
                                   static_cast<double>(full[cand] - c.dist(cand, out) - c.dist(out, cand));
        trial = set;
        trial[pos] = cand;
        const double tc = c.cost_with(trial, trial_pairs);
        if (tc < cost - 1e-9) {
          for (std::size_t i = 0; i < c.n; ++i)
            full[i] = full[i] + c.dist(i, cand) + c.dist(cand, i) - c.dist(i, out) - c.dist(out, i);
          in[out] = false;
          in[cand] = true;
          set[pos] = cand;
          pairs = trial_pairs;
          cost = tc;
          changed = true;
        }
      }
    if (!changed) return;
  }
}

// Water-filling split of the guest's memory over the set: smaller nodes
// first, each taking an even share of what is left (2 MiB granules where
// possible, so populate can use large pages), capped by its usable memory.
std::vector<std::uint64_t> split_memory(const Ctx& c, const std::vector<std::size_t>& set) {
  std::vector<std::size_t> order(set.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return c.usable[set[a]] < c.usable[set[b]]; });
  std::vector<std::uint64_t> share(set.size(), 0);
  std::uint64_t rest = c.spec.memory_bytes;
  for (std::size_t k = 0; k < order.size(); ++k) {
    std::size_t left = order.size() - k;
    std::uint64_t fair = rest / left;
    if (left > 1) fair = fair / k2M * k2M;
    std::uint64_t s = std::min(fair, c.usable[set[order[k]]]);
    share[order[k]] = s;
    rest -= s;
  }
  for (std::size_t k = order.size(); rest > 0 && k-- > 0;) {  // spill, biggest room first
    std::size_t i = order[k];
    std::uint64_t add = std::min(rest, c.usable[set[i]] - share[i]);
    share[i] += add;
    rest -= add;
  }
  return share;
}

// Nearest node with CPUs to a node (itself if it has some).
NodeId cpu_home(const Topology& t, NodeId node) {
  if (const NodeInfo* n = t.find(node); n && n->has_cpus()) return node;
  NodeId best = kNoNode;
  std::uint32_t best_d = ~0u;
  for (const auto& o : t.nodes())
    if (o.has_cpus() && t.distance(node, o.id) < best_d) {
      best = o.id;
      best_d = t.distance(node, o.id);
    }
  return best == kNoNode ? node : best;
}

}  // namespace

Placer::Placer(const Topology& topo, PlacementOptions options) : topo_(&topo), options_(options) {}

std::vector<NodeUsage> Placer::idle_usage() const {
  std::vector<NodeUsage> u(topo_->node_count());
  for (std::size_t i = 0; i < u.size(); ++i) {
    const NodeInfo& n = topo_->node_at(i);
    if (!n.has_memory()) continue;
    u[i].free_bytes = n.free_bytes == kUnknownBytes ? n.memory_bytes : n.free_bytes;
  }
  return u;
}

std::uint64_t Placer::watermark(NodeId node) const noexcept {
  const NodeInfo* n = topo_->find(node);
  if (!n || !n->has_memory()) return 0;
  auto frac = static_cast<std::uint64_t>(static_cast<double>(n->memory_bytes) *
                                         options_.watermark_fraction);
  return std::max(options_.watermark_bytes, frac);
}

double Placer::set_cost(const GuestSpec& spec, const NodeMask& set,
                        std::span<const NodeUsage> usage, const PlacementHints& hints) const {
  if (usage.size() != topo_->node_count()) return kInf;
  Ctx c(*topo_, spec, usage, hints, *this);
  std::vector<std::size_t> idx;
  for (NodeId id : set) {
    if (!topo_->has_node(id)) return kInf;
    idx.push_back(static_cast<std::size_t>(topo_->index_of(id)));
  }
  return c.cost(idx);
}

void Placer::commit(const Placement& p, std::span<NodeUsage> usage) const {
  for (const auto& s : p.memory) {
    int i = topo_->index_of(s.node);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    auto& u = usage[static_cast<std::size_t>(i)];
    u.free_bytes = u.free_bytes > s.bytes ? u.free_bytes - s.bytes : 0;
  }
  for (NodeId n : p.vcpu_nodes) {
    int i = topo_->index_of(n);
    if (i >= 0 && static_cast<std::size_t>(i) < usage.size()) ++usage[static_cast<std::size_t>(i)].vcpus;
  }
}

namespace {

Result<Placement, Error> place_vnuma(const Ctx& c) {
  const Topology& t = c.topo;
  const GuestSpec& g = c.spec;
  std::vector<std::uint64_t> room = c.usable;
  std::vector<NodeId> pnode(g.vnodes.size(), kNoNode);
  std::vector<bool> used(c.n, false);
  std::string why;
  // Pinned vnodes first, then auto ones by decreasing size.
  for (std::size_t v = 0; v < g.vnodes.size(); ++v) {
    NodeId p = g.vnodes[v].pnode;
    if (p == kNoNode) continue;
    auto i = static_cast<std::size_t>(t.index_of(p));
    if (room[i] < g.vnodes[v].memory_bytes)
      return Error{Errc::no_memory, "guest '" + g.name + "': vnode " + std::to_string(v) +
                                        " needs " + mb(g.vnodes[v].memory_bytes) + " on node " +
                                        std::to_string(p) + ", which has " + mb(room[i]) +
                                        " above its watermark"};
    room[i] -= g.vnodes[v].memory_bytes;
    pnode[v] = p;
    used[i] = true;
  }
  std::vector<std::size_t> autos;
  for (std::size_t v = 0; v < g.vnodes.size(); ++v)
    if (pnode[v] == kNoNode) autos.push_back(v);
  std::stable_sort(autos.begin(), autos.end(), [&](std::size_t a, std::size_t b) {
    return g.vnodes[a].memory_bytes > g.vnodes[b].memory_bytes;
  });
  for (std::size_t v : autos) {
    const std::uint64_t need = g.vnodes[v].memory_bytes;
    std::size_t best = c.n;
    double best_cost = kInf;
    for (std::size_t i = 0; i < c.n; ++i) {
      if (!c.eligible[i] || room[i] < need) continue;
      double cost = used[i] ? 1.0 : 0.0;  // one vnode per node where possible
      double d = 0;
      int count = 0;
      for (std::size_t j = 0; j < c.n; ++j)
        if (used[j] && j != i) {
          d += c.dist(i, j);
          ++count;
        }
      if (count) cost += kDistWeight * (d / count / 10.0 - 1.0);
      cost += kDeviceWeight * c.device_term({i});
      if (!c.hints.affinity_nodes.empty()) cost += kAffinityWeight * c.near_term(i, c.hints.affinity_nodes);
      if (c.hints.anti_affinity_nodes.test(t.node_at(i).id)) cost += kAntiWeight;
      cost += kLoadWeight * c.load_term({i});
      cost += kFreeWeight * (1.0 - static_cast<double>(room[i] - need) /
                                       static_cast<double>(t.node_at(i).memory_bytes));
      if (cost < best_cost) {
        best_cost = cost;
        best = i;
      }
    }
    if (best == c.n)
      return Error{Errc::no_memory, "guest '" + g.name + "': no node has " + mb(need) +
                                        " above its watermark for vnode " + std::to_string(v)};
    room[best] -= need;
    used[best] = true;
    pnode[v] = t.node_at(best).id;
  }

  Placement p;
  if (p.vnode_pnodes.reserve(pnode.size())) (void)p.vnode_pnodes.assign(pnode.data(), pnode.size());  // else !ok()
  (void)p.vcpu_nodes.resize(g.vcpus, kNoNode);
  std::vector<std::uint64_t> per_node(c.n, 0);
  std::vector<std::size_t> set;
  for (std::size_t v = 0; v < g.vnodes.size(); ++v) {
    auto i = static_cast<std::size_t>(t.index_of(pnode[v]));
    per_node[i] += g.vnodes[v].memory_bytes;
    for (auto cpu : g.vnodes[v].vcpus) p.vcpu_nodes[cpu] = cpu_home(t, pnode[v]);
    why += (why.empty() ? "" : ", ") + std::string("vnode ") + std::to_string(v) + " -> node " +
           std::to_string(pnode[v]) + (g.vnodes[v].pnode == kNoNode ? " (auto)" : " (pinned)");
  }
  for (std::size_t i = 0; i < c.n; ++i)
    if (per_node[i]) {
      p.nodes.set(t.node_at(i).id);
      p.memory.push_back({t.node_at(i).id, per_node[i]});
      set.push_back(i);
    }
  // The cost of the resulting set, for information (vnodes may share nodes).
  p.cost = c.cost(set);
  p.reason = "vNUMA layout: " + why;
  if (!p.ok()) return Error{Errc::no_memory, "guest '" + g.name + "': out of memory for the placement"};
  return p;
}

}  // namespace

Result<Placement, Error> Placer::place(const GuestSpec& spec, std::span<const NodeUsage> usage,
                                       const PlacementHints& hints) const {
  if (auto ok = validate_guest_spec(spec, *topo_); !ok) return ok.error();
  if (usage.size() != topo_->node_count())
    return Error{Errc::invalid_argument, "usage has " + std::to_string(usage.size()) +
                                             " entries for " +
                                             std::to_string(topo_->node_count()) + " nodes"};
  Ctx c(*topo_, spec, usage, hints, *this);
  if (!spec.vnodes.empty()) return place_vnuma(c);

  std::vector<std::size_t> by_mem, by_cpu;
  std::uint64_t total_usable = 0;
  for (std::size_t i = 0; i < c.n; ++i)
    if (c.eligible[i]) {
      by_mem.push_back(i);
      total_usable += c.usable[i];
    }
  by_cpu = by_mem;
  std::sort(by_mem.begin(), by_mem.end(),
            [&](std::size_t a, std::size_t b) { return c.usable[a] > c.usable[b]; });
  std::sort(by_cpu.begin(), by_cpu.end(),
            [&](std::size_t a, std::size_t b) { return c.cpus[a] > c.cpus[b]; });
  if (total_usable < spec.memory_bytes)
    return Error{Errc::no_memory, "guest '" + spec.name + "' needs " + mb(spec.memory_bytes) +
                                      " but only " + mb(total_usable) +
                                      " is free above the watermarks of the allowed nodes"};
  // Lower bound on the set size: the largest nodes first.
  std::size_t k_min = 1;
  bool cpu_bound = false;  // more nodes needed for the vCPUs than for memory
  {
    std::uint64_t m = 0, cpu = 0;
    std::size_t km = 0, kc = 0;
    for (auto i : by_mem) {
      m += c.usable[i];
      ++km;
      if (m >= spec.memory_bytes) break;
    }
    for (auto i : by_cpu) {
      if (cpu >= c.need_cpus) break;
      cpu += c.cpus[i];
      ++kc;
    }
    k_min = std::max<std::size_t>({1, km, kc});
    cpu_bound = kc > km;
  }
  std::vector<std::size_t> best;
  double best_cost = kInf;
  std::size_t k = k_min;
  for (; k <= by_mem.size() && best.empty(); ++k) {
    for (std::size_t seed : by_mem) {
      auto set = grow(c, seed, k, by_mem, by_cpu);
      if (set.empty()) continue;
      double cost = c.cost(set);
      if (cost < best_cost) {
        best_cost = cost;
        best = std::move(set);
      }
    }
  }
  if (best.empty())
    return Error{Errc::no_memory, "guest '" + spec.name + "': no set of allowed nodes holds " +
                                      mb(spec.memory_bytes)};
  improve(c, best, best_cost);
  std::sort(best.begin(), best.end());

  Placement p;
  p.cost = best_cost;
  auto share = split_memory(c, best);
  std::uint64_t set_cpus = 0;
  for (std::size_t j = 0; j < best.size(); ++j) {
    NodeId id = topo_->node_at(best[j]).id;
    p.nodes.set(id);
    p.memory.push_back({id, share[j]});
    set_cpus += c.cpus[best[j]];
  }
  // vCPUs follow memory: contiguous blocks per node, in proportion to each
  // node's share (largest remainders), only on nodes with CPUs.
  std::vector<std::size_t> cpu_nodes;
  std::uint64_t cpu_mem = 0;
  for (std::size_t j = 0; j < best.size(); ++j)
    if (c.cpus[best[j]] > 0 && share[j] > 0) {
      cpu_nodes.push_back(j);
      cpu_mem += share[j];
    }
  if (cpu_nodes.empty()) {
    NodeId home = cpu_home(*topo_, topo_->node_at(best[0]).id);
    (void)p.vcpu_nodes.resize(spec.vcpus, home);
  } else {
    std::vector<std::uint32_t> count(cpu_nodes.size(), 0);
    std::vector<double> frac(cpu_nodes.size(), 0);
    std::uint32_t given = 0;
    for (std::size_t q = 0; q < cpu_nodes.size(); ++q) {
      double exact = static_cast<double>(spec.vcpus) * static_cast<double>(share[cpu_nodes[q]]) /
                     static_cast<double>(cpu_mem);
      count[q] = static_cast<std::uint32_t>(std::floor(exact));
      frac[q] = exact - count[q];
      given += count[q];
    }
    while (given < spec.vcpus) {
      std::size_t q = static_cast<std::size_t>(
          std::max_element(frac.begin(), frac.end()) - frac.begin());
      ++count[q];
      frac[q] = -1;
      ++given;
    }
    for (std::size_t q = 0; q < cpu_nodes.size(); ++q)
      for (std::uint32_t v = 0; v < count[q]; ++v)
        p.vcpu_nodes.push_back(topo_->node_at(best[cpu_nodes[q]]).id);
  }

  // The reason, for the admin.
  std::string r = best.size() == 1 ? "fits on one node" :
                  std::to_string(best.size()) + " nodes needed for " + mb(spec.memory_bytes) +
                  (cpu_bound ? " and " + std::to_string(spec.vcpus) + " vCPUs" : "");
  r += "; chose " + p.nodes.to_string() + ": ";
  std::uint64_t free_after = 0;
  for (std::size_t j = 0; j < best.size(); ++j) free_after += c.usable[best[j]] - share[j];
  if (best.size() > 1) {
    std::uint32_t worst = 0;
    for (auto a : best)
      for (auto b : best) worst = std::max(worst, c.dist(a, b));
    r += "farthest pair at distance " + std::to_string(worst) + ", ";
  }
  r += std::to_string(spec.vcpus) + (spec.vcpus == 1 ? " vCPU on " : " vCPUs on ") + std::to_string(set_cpus) + " CPUs (load " +
       fmt2(c.load_term(best)) + "), " + mb(free_after) + " left free above watermarks";
  if (!spec.devices.empty()) {
    double dev = c.device_term(best);
    r += dev == 0 ? ", all devices local" : ", devices at extra distance " + fmt2(dev * 10);
  }
  if (!hints.affinity_nodes.empty()) r += ", near affinity group on " + hints.affinity_nodes.to_string();
  if (!hints.anti_affinity_nodes.empty())
    r += (p.nodes.intersects(hints.anti_affinity_nodes) ? ", could not avoid" : ", avoids") +
         std::string(" anti-affinity nodes ") + hints.anti_affinity_nodes.to_string();
  r += "; cost " + fmt2(best_cost);
  p.reason = r;
  if (!p.ok()) return Error{Errc::no_memory, "guest '" + spec.name + "': out of memory for the placement"};
  return p;
}

}  // namespace numaheap
