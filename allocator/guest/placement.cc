// Placer: node-set choice for new guests (see include/numaheap/placement.h).
#include "numaheap/placement.h"

#include "numaheap/page_allocator.h"

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

constexpr double kPinWeight = 1.0;     // mean extra distance from a pinned vCPU's nodes / 10

const char* mode_name(MemoryPolicy m) {
  switch (m) {
    case MemoryPolicy::prefer: return "prefer";
    case MemoryPolicy::interleave: return "interleave";
    default: return "bind";
  }
}

// Everything one place() call needs, by dense node index.
struct Ctx {
  const Topology& topo;
  const GuestSpec& spec;
  std::span<const NodeUsage> usage;
  const PlacementHints& hints;
  std::size_t n = 0;
  bool relaxed = false;  // a "prefer" guest's second try: allowed_nodes ignored
  std::vector<std::uint64_t> usable;  // free above the watermark, 4 KiB multiple
  std::vector<std::uint32_t> cpus;
  std::vector<std::uint32_t> free_cpus;  // CPUs minus vCPUs already placed there
  // CPUs the guest's unpinned vCPUs may count on per node: free_cpus when
  // the allowed nodes have enough of them, else cpus.
  std::vector<std::uint32_t> cap;
  std::vector<bool> eligible;
  std::uint32_t need_cpus = 0;  // 0 when the machine cannot fit the vCPUs anyway
  // vCPU pins per vCPU: the pin's nodes (dense, with CPUs), most pinned
  // CPUs first, lowest id on ties; empty = none. Hard pins win over soft.
  std::vector<std::vector<std::size_t>> pin;
  std::vector<bool> pin_hard;
  std::uint32_t hard_pinned = 0;
  // Distinct pins for the cost: extra distance (/ 10 - 1) from every node
  // to the pin's nearest node, and how many vCPUs carry it.
  std::vector<std::pair<std::vector<double>, std::uint32_t>> pin_rows;
  // Precomputed once per call so the search's inner loops are array reads.
  std::vector<std::uint32_t> dmat;   // n*n effective distances by dense index
  std::vector<double> aff_node;      // near_term(i, affinity nodes)
  std::vector<double> dev_node;      // sum over devices of their extra distance to i alone
  std::vector<std::vector<std::uint32_t>> dev_dist;  // [device][i]
  std::vector<bool> anti;

  Ctx(const Topology& t, const GuestSpec& s, std::span<const NodeUsage> u,
      const PlacementHints& h, const Placer& placer, bool relax = false)
      : topo(t), spec(s), usage(u), hints(h), n(t.node_count()), relaxed(relax) {
    usable.assign(n, 0);
    cpus.assign(n, 0);
    free_cpus.assign(n, 0);
    eligible.assign(n, false);
    dmat.assign(n * n, 0);
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b)
        dmat[a * n + b] = t.distance(t.node_at(a).id, t.node_at(b).id);
    resolve_pins();
    std::uint64_t all_cpus = 0, all_free = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const NodeInfo& node = t.node_at(i);
      cpus[i] = static_cast<std::uint32_t>(node.cpus.size());
      free_cpus[i] = cpus[i] > u[i].vcpus ? cpus[i] - u[i].vcpus : 0;
      std::uint64_t wm = placer.watermark(node.id);
      std::uint64_t f = u[i].free_bytes;
      usable[i] = f > wm ? (f - wm) / kPage * kPage : 0;
      bool allowed = relax || s.allowed_nodes.empty() || s.allowed_nodes.test(node.id);
      eligible[i] = allowed && node.has_memory() && usable[i] > 0;
      if (allowed) {
        all_cpus += cpus[i];
        all_free += free_cpus[i];
      }
    }
    const std::uint32_t unpinned = s.vcpus - hard_pinned;
    cap = all_free >= unpinned ? free_cpus : cpus;
    need_cpus = all_cpus >= unpinned ? unpinned : 0;
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

  // Each vCPU's pin: a pin naming the vCPU wins over one for all vCPUs,
  // a later one over an earlier one, a hard one over a soft one.
  void resolve_pins() {
    pin.assign(spec.vcpus, {});
    pin_hard.assign(spec.vcpus, false);
    std::vector<int> hard(spec.vcpus, -1), soft(spec.vcpus, -1);
    for (std::size_t k = 0; k < spec.vcpu_pins.size(); ++k) {
      const VcpuPin& p = spec.vcpu_pins[k];
      auto& slot = p.soft ? soft : hard;
      if (p.vcpu == kAllVcpus) {
        for (std::uint32_t v = 0; v < spec.vcpus; ++v)
          if (slot[v] < 0 || spec.vcpu_pins[static_cast<std::size_t>(slot[v])].vcpu == kAllVcpus)
            slot[v] = static_cast<int>(k);
      } else if (p.vcpu < spec.vcpus) {
        slot[p.vcpu] = static_cast<int>(k);
      }
    }
    std::vector<std::pair<int, std::vector<std::size_t>>> nodes_of_pin;  // memo by pin index
    auto nodes_for = [&](int k) -> const std::vector<std::size_t>& {
      for (const auto& [idx, list] : nodes_of_pin)
        if (idx == k) return list;
      const VcpuPin& p = spec.vcpu_pins[static_cast<std::size_t>(k)];
      std::vector<std::uint32_t> count(n, 0);
      for (CpuId cpu : p.cpus) {
        const int i = topo.index_of(topo.node_of_cpu(cpu));
        if (i >= 0) ++count[static_cast<std::size_t>(i)];
      }
      for (NodeId id : p.nodes) {
        const int i = topo.index_of(id);
        if (i >= 0) count[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(topo.node_at(static_cast<std::size_t>(i)).cpus.size());
      }
      std::vector<std::size_t> list;
      for (std::size_t i = 0; i < n; ++i)
        if (count[i] > 0) list.push_back(i);
      std::stable_sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) { return count[a] > count[b]; });
      nodes_of_pin.emplace_back(k, std::move(list));
      return nodes_of_pin.back().second;
    };
    std::vector<std::pair<int, std::size_t>> row_of_pin;  // pin index -> pin_rows entry
    for (std::uint32_t v = 0; v < spec.vcpus; ++v) {
      const int k = hard[v] >= 0 ? hard[v] : soft[v];
      if (k < 0) continue;
      const std::vector<std::size_t>& list = nodes_for(k);
      if (list.empty()) continue;  // no CPU of the pin exists here: no constraint
      pin[v] = list;
      pin_hard[v] = hard[v] >= 0;
      if (pin_hard[v]) ++hard_pinned;
      auto it = std::find_if(row_of_pin.begin(), row_of_pin.end(), [&](const auto& e) { return e.first == k; });
      if (it != row_of_pin.end()) {
        ++pin_rows[it->second].second;
        continue;
      }
      std::vector<double> row(n, 0.0);
      for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t best = kMaxDistance;
        for (std::size_t j : list) best = std::min(best, dist(i, j));
        row[i] = m_or_zero(best);
      }
      row_of_pin.emplace_back(k, pin_rows.size());
      pin_rows.emplace_back(std::move(row), 1);
    }
  }

  // Where a pinned vCPU runs when its memory is on `home` (dense): home
  // when the pin includes it, else the pin's node with most pinned CPUs.
  std::size_t pinned_node(std::uint32_t vcpu, std::size_t home) const {
    const auto& list = pin[vcpu];
    return std::find(list.begin(), list.end(), home) != list.end() ? home : list.front();
  }

  // Mean extra distance from the pinned vCPUs to the set, per vCPU.
  double pin_term(const std::vector<std::size_t>& set) const {
    if (pin_rows.empty() || spec.vcpus == 0) return 0;
    double total = 0;
    for (const auto& [row, count] : pin_rows) {
      double best = kInf;
      for (auto i : set) best = std::min(best, row[i]);
      total += best * count;
    }
    return total / spec.vcpus;
  }

  // " (nodeset 0-1, memory mode bind)" for errors naming the constraint.
  std::string constraint() const {
    if (spec.allowed_nodes.empty() || relaxed) return "";
    return std::string(" (nodeset ") + spec.allowed_nodes.to_string() + ", memory mode " +
           mode_name(spec.memory_mode) + ")";
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
      c += cap[i];
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
           kAffinityWeight * aff + kLoadWeight * load_term(set) + kFreeWeight * used_after +
           kPinWeight * pin_term(set);
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
  std::uint64_t mem = c.usable[seed], cpu = c.cap[seed];
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
    top(by_cpu, [&](std::size_t i) { return std::uint64_t{c.cap[i]}; }, cpu_m, cpu_m1, cpu_rank);
    std::size_t best = c.n;
    std::uint64_t best_d = 0;
    for (std::size_t i = 0; i < c.n; ++i) {
      if (in[i] || !c.eligible[i]) continue;
      std::uint64_t mem_rest = mem_rank[i] < m ? mem_m1 - c.usable[i] : mem_m;
      std::uint64_t cpu_rest = cpu_rank[i] < m ? cpu_m1 - c.cap[i] : cpu_m;
      if (mem + c.usable[i] + mem_rest < c.spec.memory_bytes) continue;
      if (cpu + c.cap[i] + cpu_rest < c.need_cpus) continue;
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
    cpu += c.cap[best];
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

// Split of `bytes` over the nodes (dense), exact to the byte: the shares
// sum to `bytes` (the caller checked that the room holds it). Water-filling
// in granules, coarse first: 2 MiB granules (so populate can use large
// pages), smaller room first, each node taking an even share of what is
// left, capped by its room rounded down to the granule; what does not fit
// in 2 MiB granules goes in 1 MiB, then 4 KiB ones, biggest room first. So
// every share is a whole number of MiB when the total is and the nodes'
// MiB-rounded room holds it; only the last (finest) pass can leave a share
// off the MiB grid. Used for a guest's set and for an interleaved vnode.
std::vector<std::uint64_t> spread(std::uint64_t bytes, const std::vector<std::size_t>& nodes,
                                  const std::vector<std::uint64_t>& room) {
  std::vector<std::size_t> order(nodes.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return room[nodes[a]] != room[nodes[b]] ? room[nodes[a]] < room[nodes[b]] : a < b;
  });
  std::vector<std::uint64_t> share(nodes.size(), 0);
  std::uint64_t rest = bytes;
  {
    std::uint64_t granules = rest / k2M;
    for (std::size_t k = 0; k < order.size() && granules > 0; ++k) {
      const std::size_t j = order[k];
      const std::uint64_t take = std::min({granules / (order.size() - k), room[nodes[j]] / k2M, granules});
      share[j] = take * k2M;
      granules -= take;
      rest -= take * k2M;
    }
  }
  for (std::uint64_t g : {k2M, std::uint64_t{1} << 20, kPage})
    for (std::size_t k = order.size(); rest >= g && k-- > 0;) {
      const std::size_t j = order[k];
      const std::uint64_t add = std::min((room[nodes[j]] - share[j]) / g * g, rest / g * g);
      share[j] += add;
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

Placer::Placer(const Topology& topo, PlacementOptions options) : topo_(topo), options_(options) {}

std::vector<NodeUsage> Placer::idle_usage() const {
  std::vector<NodeUsage> u(topo_.node_count());
  for (std::size_t i = 0; i < u.size(); ++i) {
    const NodeInfo& n = topo_.node_at(i);
    if (!n.has_memory()) continue;
    u[i].free_bytes = n.free_bytes == kUnknownBytes ? n.memory_bytes : n.free_bytes;
  }
  return u;
}

std::uint64_t Placer::watermark(NodeId node) const noexcept {
  const NodeInfo* n = topo_.find(node);
  if (!n || !n->has_memory()) return 0;
  auto frac = static_cast<std::uint64_t>(static_cast<double>(n->memory_bytes) *
                                         options_.watermark_fraction);
  return std::max(options_.watermark_bytes, frac);
}

double Placer::set_cost(const GuestSpec& spec, const NodeMask& set,
                        std::span<const NodeUsage> usage, const PlacementHints& hints) const {
  if (usage.size() != topo_.node_count()) return kInf;
  Ctx c(topo_, spec, usage, hints, *this);
  std::vector<std::size_t> idx;
  for (NodeId id : set) {
    if (!topo_.has_node(id)) return kInf;
    idx.push_back(static_cast<std::size_t>(topo_.index_of(id)));
  }
  return c.cost(idx);
}

void Placer::release(const Placement& p, std::span<NodeUsage> usage) const {
  for (const auto& s : p.memory) {
    int i = topo_.index_of(s.node);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    usage[static_cast<std::size_t>(i)].free_bytes += s.bytes;
  }
  for (NodeId n : p.vcpu_nodes) {
    int i = topo_.index_of(n);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    auto& v = usage[static_cast<std::size_t>(i)].vcpus;
    if (v > 0) --v;
  }
}

void Placer::commit(const Placement& p, std::span<NodeUsage> usage) const {
  for (const auto& s : p.memory) {
    int i = topo_.index_of(s.node);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    auto& u = usage[static_cast<std::size_t>(i)];
    u.free_bytes = u.free_bytes > s.bytes ? u.free_bytes - s.bytes : 0;
  }
  for (NodeId n : p.vcpu_nodes) {
    int i = topo_.index_of(n);
    if (i >= 0 && static_cast<std::size_t>(i) < usage.size()) ++usage[static_cast<std::size_t>(i)].vcpus;
  }
}

namespace {

// vNUMA: one host node per vnode where memory and CPUs allow, the guest's
// vdistances matched to host distances. A greedy start (pinned vnodes, then
// auto ones by decreasing size, each where the cost grows least) improved
// by single moves and pairwise swaps of auto vnodes. Memory is a hard limit;
// everything else is a cost, weighted in this order: anti-affinity nodes,
// vnodes sharing a node, vCPUs beyond a node's CPUs, vdistance mismatch,
// then the set terms of cost_with (devices, affinity, load, free memory).
constexpr double kShareWeight = 20.0;      // per vnode beyond the first on a node
constexpr double kOvercommitWeight = 10.0; // per node: vCPUs beyond its CPUs / its CPUs
constexpr double kVdistWeight = 2.0;       // mean |host - declared| distance / 10, per pair
constexpr double kPreferWeight = 50.0;     // per vnode outside its preferred nodes

// How each vnode's memory is tied to host nodes, from its own mode and
// nodes or else the guest's.
enum class VKind : std::uint8_t {
  free,        // any eligible node (the guest's allowed nodes)
  pinned,      // exactly `pnode` (bind)
  bound,       // one node of `allow` (bind)
  preferred,   // one node, `allow` first (prefer); a pnode is a preference
  interleave,  // spread over the eligible nodes of `allow`
};

struct VnumaCtx {
  const Ctx& c;
  std::size_t v_count = 0;
  std::vector<std::uint32_t> vdist;     // v_count^2 declared (or 10 / 20) distances
  std::vector<std::uint64_t> mem;       // per vnode
  std::vector<std::uint32_t> vcpus;     // per vnode, count of its vCPUs without a hard pin
  std::vector<std::size_t> cpu_home;    // per node: where its vCPUs run (dense index)
  std::vector<VKind> kind;              // per vnode
  std::vector<std::vector<bool>> allow; // per vnode: its node set (dense), empty = none given
  std::vector<NodeMask> allow_mask;     // the same as a mask, for messages
  std::vector<std::vector<std::uint32_t>> hard;  // per vnode: its hard-pinned vCPUs
  std::vector<std::vector<double>> pin_row;      // per vnode: pinned vCPUs' extra distance from node i

  explicit VnumaCtx(const Ctx& ctx) : c(ctx), v_count(ctx.spec.vnodes.size()) {
    const GuestSpec& g = c.spec;
    vdist.assign(v_count * v_count, 0);
    mem.assign(v_count, 0);
    vcpus.assign(v_count, 0);
    kind.assign(v_count, VKind::free);
    allow.assign(v_count, {});
    allow_mask.assign(v_count, NodeMask());
    hard.assign(v_count, {});
    pin_row.assign(v_count, std::vector<double>(c.n, 0.0));
    for (std::size_t v = 0; v < v_count; ++v) {
      const VNodeSpec& vn = g.vnodes[v];
      mem[v] = vn.memory_bytes;
      for (std::size_t w = 0; w < v_count; ++w)
        vdist[v * v_count + w] = vn.distances.size() == v_count ? vn.distances[w]
                                 : v == w ? kLocalDistance : 20u;
      const MemoryPolicy mode = vn.memory_mode != MemoryPolicy::unset ? vn.memory_mode : g.memory_mode;
      NodeMask set = vn.nodes;
      if (vn.pnode != kNoNode) set.set(vn.pnode);
      if (set.empty() && mode == MemoryPolicy::interleave && !c.relaxed) set = g.allowed_nodes;
      allow_mask[v] = set;
      if (!set.empty()) {
        allow[v].assign(c.n, false);
        for (NodeId id : set)
          if (int i = c.topo.index_of(id); i >= 0) allow[v][static_cast<std::size_t>(i)] = true;
      }
      if (set.empty()) kind[v] = VKind::free;
      else if (mode == MemoryPolicy::prefer) kind[v] = VKind::preferred;
      else if (mode == MemoryPolicy::interleave && set.count() > 1) kind[v] = VKind::interleave;
      else if (vn.pnode != kNoNode || set.count() == 1) kind[v] = VKind::pinned;
      else kind[v] = VKind::bound;
      for (std::uint32_t cpu : vn.vcpus) {
        if (cpu < c.pin.size() && !c.pin[cpu].empty()) {
          if (c.pin_hard[cpu]) hard[v].push_back(cpu);
          for (std::size_t i = 0; i < c.n; ++i) {
            std::uint32_t best = kMaxDistance;
            for (std::size_t j : c.pin[cpu]) best = std::min(best, c.dist(i, j));
            pin_row[v][i] += Ctx::m_or_zero(best);
          }
        }
        if (cpu >= c.pin.size() || c.pin[cpu].empty() || !c.pin_hard[cpu]) ++vcpus[v];
      }
    }
    cpu_home.assign(c.n, 0);
    for (std::size_t i = 0; i < c.n; ++i) {
      cpu_home[i] = i;
      if (c.cpus[i] > 0) continue;
      std::uint32_t best = ~0u;
      for (std::size_t j = 0; j < c.n; ++j)
        if (c.cpus[j] > 0 && c.dist(i, j) < best) {
          best = c.dist(i, j);
          cpu_home[i] = j;
        }
    }
  }

  std::string pin_text(std::size_t v) const {
    return kind[v] == VKind::preferred ? "prefers " + allow_mask[v].to_string()
                                       : "bound to " + allow_mask[v].to_string();
  }

  // May vnode v's memory go on node i (hard limits only)?
  bool may_use(std::size_t v, std::size_t i) const {
    if (!c.eligible[i]) return false;
    if (kind[v] == VKind::bound || kind[v] == VKind::pinned) return allow[v][i];
    return true;
  }

  // Cost of an assignment (dense node per vnode, c.n = not placed yet).
  double cost(const std::vector<std::size_t>& at) const {
    std::vector<std::uint32_t> per_node(c.n, 0), vcpu_load(c.n, 0);
    std::vector<std::size_t> set;
    double pins = 0, outside = 0;
    for (std::size_t v = 0; v < v_count; ++v) {
      if (at[v] == c.n) continue;
      if (per_node[at[v]]++ == 0) set.push_back(at[v]);
      const std::size_t home = cpu_home[at[v]];
      vcpu_load[home] += vcpus[v];
      for (std::uint32_t cpu : hard[v]) ++vcpu_load[c.pinned_node(cpu, home)];
      pins += pin_row[v][at[v]];
      if (kind[v] == VKind::preferred && !allow[v][at[v]]) outside += 1;
    }
    if (set.empty()) return 0;
    double total = kPreferWeight * outside;
    if (c.spec.vcpus > 0) total += kPinWeight * pins / c.spec.vcpus;
    for (std::size_t i = 0; i < c.n; ++i) {
      if (per_node[i] > 1) total += kShareWeight * (per_node[i] - 1);
      if (vcpu_load[i] == 0 || c.cpus[i] == 0) continue;
      const std::uint64_t load = std::uint64_t{c.usage[i].vcpus} + vcpu_load[i];
      const std::uint64_t before = std::max<std::uint64_t>(c.usage[i].vcpus, c.cpus[i]);
      if (load > before)  // only what this guest adds beyond the CPUs
        total += kOvercommitWeight * static_cast<double>(load - before) / c.cpus[i];
    }
    if (v_count > 1) {
      double mismatch = 0;
      for (std::size_t v = 0; v < v_count; ++v)
        for (std::size_t w = 0; w < v_count; ++w)
          if (v != w && at[v] != c.n && at[w] != c.n) {
            const double h = c.dist(at[v], at[w]), d = vdist[v * v_count + w];
            mismatch += h > d ? h - d : d - h;
          }
      total += kVdistWeight * mismatch / 10.0 / static_cast<double>(v_count * (v_count - 1));
    }
    double anti = 0, aff = 0;
    for (auto i : set) {
      if (c.anti[i]) anti += 1;
      aff += c.aff_node[i];
    }
    total += kAntiWeight * anti + kAffinityWeight * aff / static_cast<double>(set.size());
    total += kDeviceWeight * c.device_term(set) + kLoadWeight * c.load_term(set);
    return total;
  }
};

Result<Placement, Error> place_vnuma(const Ctx& c) {
  const Topology& t = c.topo;
  const GuestSpec& g = c.spec;
  VnumaCtx vc(c);
  const std::size_t none = c.n;
  std::vector<std::uint64_t> room = c.usable;
  std::vector<std::size_t> at(vc.v_count, none);
  // Interleaved vnodes: pieces on every eligible node of their set.
  std::vector<std::vector<std::pair<std::size_t, std::uint64_t>>> pieces(vc.v_count);
  std::string notes;  // warnings gathered on the way
  auto vtext = [](std::size_t v) { return "vnode " + std::to_string(v); };
  // The nodes of vnode v's set that can take memory now, and their room.
  auto set_room = [&](std::size_t v, std::vector<std::size_t>& nodes) {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < c.n; ++i)
      if (vc.allow[v][i] && c.eligible[i] && room[i] > 0) {
        nodes.push_back(i);
        total += room[i];
      }
    return total;
  };
  for (std::size_t v = 0; v < vc.v_count; ++v) {
    if (vc.kind[v] != VKind::interleave) continue;
    std::vector<std::size_t> nodes;
    const std::uint64_t total = set_room(v, nodes);
    if (total < vc.mem[v])
      return Error{Errc::no_memory, "guest '" + g.name + "': " + vtext(v) + " interleaves " + mb(vc.mem[v]) +
                                        " over nodes " + vc.allow_mask[v].to_string() + " (memory mode interleave), which have " +
                                        mb(total) + " above their watermarks" + c.constraint()};
    const auto share = spread(vc.mem[v], nodes, room);
    std::size_t home = none;
    std::uint64_t home_bytes = 0;
    for (std::size_t k = 0; k < nodes.size(); ++k) {
      if (share[k] == 0) continue;
      room[nodes[k]] -= share[k];
      pieces[v].emplace_back(nodes[k], share[k]);
      if (share[k] > home_bytes) {  // the node holding most of it (lowest id on ties)
        home = nodes[k];
        home_bytes = share[k];
      }
    }
    at[v] = home;
    if (nodes.size() < vc.allow_mask[v].count())
      notes += "; warning: " + vtext(v) + " interleaves over " + std::to_string(nodes.size()) + " of nodes " +
               vc.allow_mask[v].to_string() + " (the others have no room or are not allowed)";
  }
  // Pinned vnodes: where the admin said.
  for (std::size_t v = 0; v < vc.v_count; ++v) {
    if (vc.kind[v] != VKind::pinned && !(vc.kind[v] == VKind::preferred && g.vnodes[v].pnode != kNoNode)) continue;
    NodeId p = g.vnodes[v].pnode;
    if (p == kNoNode) p = *vc.allow_mask[v].begin();
    auto i = static_cast<std::size_t>(t.index_of(p));
    if (room[i] < vc.mem[v] || !c.eligible[i]) {
      if (vc.kind[v] == VKind::preferred) continue;  // placed below, preferring p
      return Error{Errc::no_memory, "guest '" + g.name + "': " + vtext(v) + " needs " + mb(vc.mem[v]) +
                                        " on node " + std::to_string(p) + " (pinned, memory mode bind), which has " +
                                        mb(c.eligible[i] ? room[i] : 0) + " above its watermark" + c.constraint()};
    }
    room[i] -= vc.mem[v];
    at[v] = i;
  }
  // Bound to several nodes and no single one has room: like the kernel's
  // MPOL_BIND, the vnode takes memory from several nodes of its set, the
  // ones with most room first. False when even they together lack room.
  auto spill = [&](std::size_t v) {
    std::vector<std::size_t> nodes;
    if (set_room(v, nodes) < vc.mem[v]) return false;
    std::stable_sort(nodes.begin(), nodes.end(), [&](std::size_t a, std::size_t b) { return room[a] > room[b]; });
    std::uint64_t left = vc.mem[v];
    for (std::size_t i : nodes) {
      if (left == 0) break;
      const std::uint64_t take = std::min(left, room[i]);
      room[i] -= take;
      left -= take;
      pieces[v].emplace_back(i, take);
      if (at[v] == none) at[v] = i;  // the first takes most: the home
    }
    return true;
  };
  std::vector<std::size_t> autos;
  for (std::size_t v = 0; v < vc.v_count; ++v)
    if (at[v] == none) autos.push_back(v);
  std::sort(autos.begin(), autos.end(), [&](std::size_t a, std::size_t b) {
    return vc.mem[a] != vc.mem[b] ? vc.mem[a] > vc.mem[b] : a < b;
  });
  // Greedy start: each auto vnode where the partial cost grows least.
  for (std::size_t v : autos) {
    std::size_t best = none;
    double best_cost = kInf;
    for (std::size_t i = 0; i < c.n; ++i) {
      if (!vc.may_use(v, i) || room[i] < vc.mem[v]) continue;
      at[v] = i;
      const double cost = vc.cost(at) + kFreeWeight * (1.0 - static_cast<double>(room[i] - vc.mem[v]) /
                                                                 static_cast<double>(t.node_at(i).memory_bytes));
      if (cost < best_cost - 1e-12) {
        best_cost = cost;
        best = i;
      }
    }
    at[v] = none;
    if (best == none && vc.kind[v] == VKind::bound && spill(v)) continue;
    if (best == none) {
      if (vc.kind[v] == VKind::bound)
        return Error{Errc::no_memory, "guest '" + g.name + "': " + vtext(v) + " is bound to nodes " +
                                          vc.allow_mask[v].to_string() + " (memory mode bind), none of which has " +
                                          mb(vc.mem[v]) + " above its watermark" + c.constraint()};
      return Error{Errc::no_memory, "guest '" + g.name + "': no node has " + mb(vc.mem[v]) +
                                        " above its watermark for " + vtext(v) + c.constraint()};
    }
    room[best] -= vc.mem[v];
    at[v] = best;
  }
  // Improve: move one auto vnode to another node, or swap two auto vnodes.
  double cost = vc.cost(at);
  const int passes = autos.size() > 16 ? 2 : 16;
  for (int pass = 0; pass < passes; ++pass) {
    bool changed = false;
    for (std::size_t v : autos)
      for (std::size_t i = 0; i < c.n && pieces[v].empty(); ++i) {  // spilled vnodes stay
        const std::size_t from = at[v];
        if (i == from || !vc.may_use(v, i) || room[i] < vc.mem[v]) continue;
        at[v] = i;
        const double tc = vc.cost(at);
        if (tc < cost - 1e-9) {
          room[i] -= vc.mem[v];
          room[from] += vc.mem[v];
          cost = tc;
          changed = true;
        } else {
          at[v] = from;
        }
      }
    for (std::size_t x = 0; x < autos.size(); ++x)
      for (std::size_t y = x + 1; y < autos.size(); ++y) {
        const std::size_t v = autos[x], w = autos[y], a = at[v], b = at[w];
        if (!pieces[v].empty() || !pieces[w].empty()) continue;
        if (a == b || room[a] + vc.mem[v] < vc.mem[w] || room[b] + vc.mem[w] < vc.mem[v]) continue;
        if (!vc.may_use(v, b) || !vc.may_use(w, a)) continue;
        std::swap(at[v], at[w]);
        const double tc = vc.cost(at);
        if (tc < cost - 1e-9) {
          room[a] = room[a] + vc.mem[v] - vc.mem[w];
          room[b] = room[b] + vc.mem[w] - vc.mem[v];
          cost = tc;
          changed = true;
        } else {
          std::swap(at[v], at[w]);
        }
      }
    if (!changed) break;
  }
  for (std::size_t v = 0; v < vc.v_count; ++v)
    if (pieces[v].empty()) pieces[v].emplace_back(at[v], vc.mem[v]);

  Placement p;
  (void)p.vnode_pnodes.reserve(vc.v_count);
  for (std::size_t v = 0; v < vc.v_count; ++v) (void)p.vnode_pnodes.push_back(t.node_at(at[v]).id);
  (void)p.vcpu_nodes.resize(g.vcpus, kNoNode);
  std::vector<std::uint64_t> per_node(c.n, 0);
  std::vector<std::uint32_t> vnodes_on(c.n, 0), vcpus_on(c.n, 0);
  std::string why;
  for (std::size_t v = 0; v < vc.v_count; ++v) {
    const std::size_t i = at[v], home = vc.cpu_home[i];
    std::sort(pieces[v].begin(), pieces[v].end());
    for (const auto& [node, bytes] : pieces[v]) {
      per_node[node] += bytes;
      (void)p.vnode_memory.push_back({static_cast<std::uint32_t>(v), t.node_at(node).id, bytes});
    }
    ++vnodes_on[i];
    std::string away;
    for (auto cpu : g.vnodes[v].vcpus) {
      std::size_t run = home;
      if (cpu < c.pin.size() && !c.pin[cpu].empty() && c.pin_hard[cpu]) {
        run = c.pinned_node(cpu, home);
        if (run != home) away += (away.empty() ? "" : ",") + std::to_string(cpu);
      }
      p.vcpu_nodes[cpu] = t.node_at(run).id;
      ++vcpus_on[run];
    }
    why += (why.empty() ? "" : ", ") + vtext(v) + " -> node";
    if (pieces[v].size() > 1) {
      NodeMask m;
      for (const auto& pc : pieces[v]) m.set(t.node_at(pc.first).id);
      why += "s " + m.to_string() +
             (vc.kind[v] == VKind::interleave ? " (interleaved)"
                                              : " (bound to " + vc.allow_mask[v].to_string() +
                                                    ", spread: no single node of them holds it)");
    } else {
      why += " " + std::to_string(t.node_at(i).id) +
             (vc.kind[v] == VKind::pinned ? " (pinned)"
              : vc.kind[v] == VKind::bound ? " (bound to " + vc.allow_mask[v].to_string() + ")"
              : vc.kind[v] == VKind::preferred ? " (prefers " + vc.allow_mask[v].to_string() + ")"
                                               : " (auto)");
      if (vc.kind[v] == VKind::preferred && !vc.allow[v][i])
        notes += "; warning: " + vtext(v) + "'s preferred nodes " + vc.allow_mask[v].to_string() +
                 " had no room: placed on node " + std::to_string(t.node_at(i).id);
    }
    if (!away.empty())
      notes += "; warning: " + vtext(v) + "'s vCPUs " + away + " are pinned away from its memory";
  }
  for (std::size_t i = 0; i < c.n; ++i)
    if (per_node[i]) {
      p.nodes.set(t.node_at(i).id);
      (void)p.memory.push_back({t.node_at(i).id, per_node[i]});
    }
  bool declared = false;
  for (const VNodeSpec& vn : g.vnodes) declared = declared || !vn.distances.empty();
  if (vc.v_count > 1 && declared) {
    std::uint32_t worst = 0;
    for (std::size_t v = 0; v < vc.v_count; ++v)
      for (std::size_t w = 0; w < vc.v_count; ++w) {
        const std::uint32_t h = c.dist(at[v], at[w]), d = vc.vdist[v * vc.v_count + w];
        worst = std::max(worst, h > d ? h - d : d - h);
      }
    why += "; vdistances matched within " + std::to_string(worst);
  }
  why += notes;
  // Compromises, for the admin.
  for (std::size_t i = 0; i < c.n; ++i) {
    if (vnodes_on[i] > 1) {
      std::string list;
      bool all_pinned = true;
      for (std::size_t v = 0; v < vc.v_count; ++v)
        if (at[v] == i) {
          list += (list.empty() ? "" : ",") + std::to_string(v);
          all_pinned = all_pinned && vc.kind[v] == VKind::pinned;
        }
      why += "; warning: vnodes " + list + " share node " + std::to_string(t.node_at(i).id) +
             (all_pinned ? " (pinned there)" : " (no other allowed node had room for them)");
    }
    const std::uint64_t load = std::uint64_t{c.usage[i].vcpus} + vcpus_on[i];
    if (vcpus_on[i] > 0 && c.cpus[i] > 0 && load > c.cpus[i])
      why += "; warning: node " + std::to_string(t.node_at(i).id) + " runs " + std::to_string(load) +
             " vCPUs on " + std::to_string(c.cpus[i]) + " CPUs";
  }
  // The cost of the resulting layout, for information and comparisons.
  p.cost = cost;
  p.reason = "vNUMA layout: " + why;
  if (!p.ok()) return Error{Errc::no_memory, "guest '" + g.name + "': out of memory for the placement"};
  return p;
}

// vCPUs of a guest without vNUMA: hard-pinned ones on their pin's node
// (the set's node when the pin includes one), soft-pinned ones on their
// soft node when it is in the set and has a free CPU, the rest in
// proportion to each node's memory share (largest remainders), moved off
// nodes with no free CPU left to nodes of the set with one, in contiguous
// blocks by node. `load` gets the vCPUs per dense node.
std::vector<NodeId> place_vcpus(const Ctx& c, const std::vector<std::size_t>& best,
                                const std::vector<std::uint64_t>& share, std::vector<std::uint32_t>& load) {
  const Topology& t = c.topo;
  const GuestSpec& spec = c.spec;
  std::vector<NodeId> out(spec.vcpus, kNoNode);
  load.assign(c.n, 0);
  std::vector<bool> in_set(c.n, false);
  for (auto i : best) in_set[i] = true;
  auto first_in_set = [&](std::uint32_t v) -> std::size_t {
    for (std::size_t i : c.pin[v])
      if (in_set[i]) return i;
    return c.n;
  };
  std::vector<std::uint32_t> rest;
  for (std::uint32_t v = 0; v < spec.vcpus; ++v) {
    if (c.pin[v].empty()) {
      rest.push_back(v);
      continue;
    }
    if (c.pin_hard[v]) {
      const std::size_t i = first_in_set(v) != c.n ? first_in_set(v) : c.pin[v].front();
      out[v] = t.node_at(i).id;
      ++load[i];
    }
  }
  for (std::uint32_t v = 0; v < spec.vcpus; ++v) {  // soft pins after the hard ones took their CPUs
    if (c.pin[v].empty() || c.pin_hard[v]) continue;
    const std::size_t i = first_in_set(v);
    if (i != c.n && c.free_cpus[i] > load[i]) {
      out[v] = t.node_at(i).id;
      ++load[i];
    } else {
      rest.push_back(v);
    }
  }
  std::sort(rest.begin(), rest.end());
  std::vector<std::size_t> cpu_nodes;  // positions in best
  std::uint64_t cpu_mem = 0;
  for (std::size_t j = 0; j < best.size(); ++j)
    if (c.cpus[best[j]] > 0 && share[j] > 0) {
      cpu_nodes.push_back(j);
      cpu_mem += share[j];
    }
  if (rest.empty()) return out;
  if (cpu_nodes.empty()) {
    const NodeId home = cpu_home(t, t.node_at(best[0]).id);
    for (auto v : rest) out[v] = home;
    if (int i = t.index_of(home); i >= 0) load[static_cast<std::size_t>(i)] += static_cast<std::uint32_t>(rest.size());
    return out;
  }
  const auto total = static_cast<std::uint32_t>(rest.size());
  std::vector<std::uint32_t> count(cpu_nodes.size(), 0);
  std::vector<double> frac(cpu_nodes.size(), 0);
  std::uint32_t given = 0;
  for (std::size_t q = 0; q < cpu_nodes.size(); ++q) {
    const double exact = static_cast<double>(total) * static_cast<double>(share[cpu_nodes[q]]) /
                         static_cast<double>(cpu_mem);
    count[q] = static_cast<std::uint32_t>(std::floor(exact));
    frac[q] = exact - count[q];
    given += count[q];
  }
  while (given < total) {
    const auto q = static_cast<std::size_t>(std::max_element(frac.begin(), frac.end()) - frac.begin());
    ++count[q];
    frac[q] = -1;
    ++given;
  }
  // Per-node capacity: a vCPU moves from a node beyond its free CPUs to the
  // set's node with the most free CPUs left, while one has any.
  auto spare = [&](std::size_t q) -> long {
    const std::size_t i = best[cpu_nodes[q]];
    return static_cast<long>(c.free_cpus[i]) - static_cast<long>(load[i]) - static_cast<long>(count[q]);
  };
  for (bool moved = true; moved;) {
    moved = false;
    for (std::size_t q = 0; q < cpu_nodes.size(); ++q) {
      if (spare(q) >= 0 || count[q] == 0) continue;
      std::size_t to = cpu_nodes.size();
      for (std::size_t r = 0; r < cpu_nodes.size(); ++r)
        if (spare(r) > 0 && (to == cpu_nodes.size() || spare(r) > spare(to))) to = r;
      if (to == cpu_nodes.size()) break;
      --count[q];
      ++count[to];
      moved = true;
    }
  }
  std::size_t k = 0;
  for (std::size_t q = 0; q < cpu_nodes.size(); ++q) {
    const std::size_t i = best[cpu_nodes[q]];
    for (std::uint32_t x = 0; x < count[q]; ++x) out[rest[k++]] = t.node_at(i).id;
    load[i] += count[q];
  }
  return out;
}

Result<Placement, Error> place_flat(const Ctx& c) {
  const Topology& topo_ = c.topo;
  const GuestSpec& spec = c.spec;
  const PlacementHints& hints = c.hints;
  const bool interleave = spec.memory_mode == MemoryPolicy::interleave;
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
            [&](std::size_t a, std::size_t b) { return c.cap[a] > c.cap[b]; });
  if (total_usable < spec.memory_bytes)
    return Error{Errc::no_memory, "guest '" + spec.name + "' needs " + mb(spec.memory_bytes) +
                                      " but only " + mb(total_usable) +
                                      " is free above the watermarks of the allowed nodes" + c.constraint()};
  std::vector<std::size_t> best;
  double best_cost = kInf;
  bool cpu_bound = false;  // more nodes needed for the vCPUs than for memory
  if (interleave && !spec.allowed_nodes.empty() && !c.relaxed) {
    // Interleave over a nodeset: every node of it that can take memory.
    best = by_mem;
    std::sort(best.begin(), best.end());
    best_cost = c.cost(best);
  } else {
    // Lower bound on the set size: the largest nodes first.
    std::size_t k_min = 1;
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
        cpu += c.cap[i];
        ++kc;
      }
      k_min = std::max<std::size_t>({1, km, kc});
      cpu_bound = kc > km;
    }
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
                                        mb(spec.memory_bytes) + c.constraint()};
    improve(c, best, best_cost);
    std::sort(best.begin(), best.end());
  }

  Placement p;
  p.cost = best_cost;
  auto share = spread(spec.memory_bytes, best, c.usable);
  std::uint64_t set_cpus = 0;
  for (std::size_t j = 0; j < best.size(); ++j) {
    if (share[j] == 0) continue;  // an interleave node left without memory
    NodeId id = topo_.node_at(best[j]).id;
    p.nodes.set(id);
    p.memory.push_back({id, share[j]});
    set_cpus += c.cpus[best[j]];
  }
  std::vector<std::uint32_t> load;
  for (NodeId n : place_vcpus(c, best, share, load)) (void)p.vcpu_nodes.push_back(n);

  // The reason, for the admin.
  std::string r = interleave ? "interleaved over " + std::to_string(p.memory.size()) + " nodes"
                  : best.size() == 1 ? "fits on one node" :
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
  if (c.hard_pinned > 0) r += ", " + std::to_string(c.hard_pinned) + " vCPUs pinned";
  if (!spec.devices.empty()) {
    double dev = c.device_term(best);
    r += dev == 0 ? ", all devices local" : ", devices at extra distance " + fmt2(dev * 10);
  }
  if (!hints.affinity_nodes.empty()) r += ", near affinity group on " + hints.affinity_nodes.to_string();
  if (!hints.anti_affinity_nodes.empty())
    r += (p.nodes.intersects(hints.anti_affinity_nodes) ? ", could not avoid" : ", avoids") +
         std::string(" anti-affinity nodes ") + hints.anti_affinity_nodes.to_string();
  r += "; cost " + fmt2(best_cost);
  for (std::size_t i = 0; i < c.n; ++i) {
    const std::uint64_t on = std::uint64_t{c.usage[i].vcpus} + load[i];
    if (load[i] > 0 && c.cpus[i] > 0 && on > c.cpus[i])
      r += "; warning: node " + std::to_string(topo_.node_at(i).id) + " runs " + std::to_string(on) +
           " vCPUs on " + std::to_string(c.cpus[i]) + " CPUs";
  }
  p.reason = r;
  if (!p.ok()) return Error{Errc::no_memory, "guest '" + spec.name + "': out of memory for the placement"};
  return p;
}

}  // namespace

Result<Placement, Error> Placer::place(const GuestSpec& spec, std::span<const NodeUsage> usage,
                                       const PlacementHints& hints) const {
  if (auto ok = validate_guest_spec(spec, topo_); !ok) return ok.error();
  if (usage.size() != topo_.node_count())
    return Error{Errc::invalid_argument, "usage has " + std::to_string(usage.size()) +
                                             " entries for " +
                                             std::to_string(topo_.node_count()) + " nodes"};
  auto attempt = [&](bool relax) {
    Ctx c(topo_, spec, usage, hints, *this, relax);
    return spec.vnodes.empty() ? place_flat(c) : place_vnuma(c);
  };
  auto p = attempt(false);
  // prefer: the allowed nodes first; when they cannot hold the guest, any.
  if (p || p.error().code != Errc::no_memory || spec.memory_mode != MemoryPolicy::prefer ||
      spec.allowed_nodes.empty())
    return p;
  auto again = attempt(true);
  if (!again) return again;
  std::string why = "warning: preferred nodes " + spec.allowed_nodes.to_string() +
                    " could not hold it, placed elsewhere; " + std::string(again->reason.str());
  again->reason = why;
  return again;
}

}  // namespace numaheap

namespace numaheap {

std::vector<NodeUsage> heap_usage(const PageAllocator& pa) {
  const Topology& topo = pa.topology();
  std::vector<NodeUsage> usage = Placer(topo).idle_usage();
  for (std::size_t i = 0; i < usage.size(); ++i) {
    auto st = pa.stats(topo.node_at(i).id);
    if (!st) continue;
    std::uint64_t avail = st->free + st->cached;
    avail = avail > st->claimed ? avail - st->claimed : 0;
    usage[i].free_bytes = avail << kFrameShift;
  }
  return usage;
}

// ---- PlacementSession -------------------------------------------------------

PlacementSession::PlacementSession(const Topology& topo, PlacementOptions options)
    : topo_(topo), placer_(topo_, options), usage_(placer_.idle_usage()) {}

PlacementSession::PlacementSession(const Topology& topo, std::vector<NodeUsage> usage,
                                   PlacementOptions options)
    : topo_(topo), placer_(topo_, options), usage_(std::move(usage)) {
  if (usage_.size() != topo_.node_count()) {
    usage_ = placer_.idle_usage();
    valid_ = false;
  }
}

NodeMask PlacementSession::nodes_of(const std::map<std::string, std::vector<std::uint32_t>>& groups,
                                    const std::string& group) const {
  NodeMask m;
  if (group.empty()) return m;
  auto it = groups.find(group);
  if (it == groups.end()) return m;
  for (std::size_t i = 0; i < it->second.size(); ++i)
    if (it->second[i] > 0) m.set(topo_.node_at(i).id);
  return m;
}

PlacementHints PlacementSession::hints_for(const GuestSpec& spec) const {
  PlacementHints h;
  h.affinity_nodes = nodes_of(affinity_, spec.affinity_group.str());
  h.anti_affinity_nodes = nodes_of(anti_, spec.anti_affinity_group.str());
  return h;
}

// A guest's nodes: where its memory is and where its vCPUs run.
void PlacementSession::count(const std::string& group,
                             std::map<std::string, std::vector<std::uint32_t>>& groups,
                             const Placement& p, bool add) {
  if (group.empty()) return;
  NodeMask nodes = p.nodes;
  for (NodeId n : p.vcpu_nodes)
    if (n != kNoNode) nodes.set(n);
  auto it = groups.find(group);
  if (it == groups.end()) {
    if (!add) return;
    it = groups.emplace(group, std::vector<std::uint32_t>(topo_.node_count(), 0)).first;
  }
  bool any = false;
  for (NodeId n : nodes) {
    int i = topo_.index_of(n);
    if (i < 0) continue;
    auto& c = it->second[static_cast<std::size_t>(i)];
    if (add) ++c;
    else if (c > 0) --c;
  }
  for (auto c : it->second) any = any || c > 0;
  if (!any) groups.erase(it);
}

Result<Placement, Error> PlacementSession::place(const GuestSpec& spec) {
  auto p = placer_.place(spec, usage_, hints_for(spec));
  if (!p) return p;
  placer_.commit(*p, usage_);
  count(spec.affinity_group.str(), affinity_, *p, true);
  count(spec.anti_affinity_group.str(), anti_, *p, true);
  return p;
}

void PlacementSession::release(const GuestSpec& spec, const Placement& p) {
  placer_.release(p, usage_);
  count(spec.affinity_group.str(), affinity_, p, false);
  count(spec.anti_affinity_group.str(), anti_, p, false);
}

}  // namespace numaheap
