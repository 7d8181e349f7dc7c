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

// Split of the guest's memory over the set, exact to the byte: shares sum
// to spec.memory_bytes. Water-filling in granules, coarse first: 2 MiB
// granules (so populate can use large pages), smaller nodes first, each
// taking an even share of what is left, capped by its usable memory rounded
// down to the granule; what does not fit in 2 MiB granules goes in 1 MiB,
// then 4 KiB ones, biggest room first. So every share is a whole number of
// MiB when the total is and the nodes' MiB-rounded room holds it; only the
// last (finest) pass can leave a share off the MiB grid.
std::vector<std::uint64_t> split_memory(const Ctx& c, const std::vector<std::size_t>& set) {
  std::vector<std::size_t> order(set.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return c.usable[set[a]] != c.usable[set[b]] ? c.usable[set[a]] < c.usable[set[b]] : a < b;
  });
  std::vector<std::uint64_t> share(set.size(), 0);
  std::uint64_t rest = c.spec.memory_bytes;
  // Even water-filling in 2 MiB granules over the granule-rounded room.
  {
    std::uint64_t granules = rest / k2M;
    for (std::size_t k = 0; k < order.size() && granules > 0; ++k) {
      const std::size_t j = order[k];
      const std::uint64_t cap = c.usable[set[j]] / k2M;
      const std::uint64_t left = order.size() - k;
      const std::uint64_t fair = granules / left;  // the last (biggest) node takes the remainder
      const std::uint64_t take = std::min({fair, cap, granules});
      share[j] = take * k2M;
      granules -= take;
      rest -= take * k2M;
    }
  }
  // The rest (granules that did not fit, and the total's tail) in 2 MiB,
  // 1 MiB, then 4 KiB pieces, biggest room first.
  for (std::uint64_t g : {k2M, std::uint64_t{1} << 20, kPage}) {
    for (std::size_t k = order.size(); rest >= g && k-- > 0;) {
      const std::size_t j = order[k];
      const std::uint64_t room = (c.usable[set[j]] - share[j]) / g * g;
      const std::uint64_t add = std::min(room, rest / g * g);
      share[j] += add;
      rest -= add;
    }
  }
  return share;  // rest == 0: the set's usable memory >= the guest's (cost() checked it)
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

struct VnumaCtx {
  const Ctx& c;
  std::size_t v_count = 0;
  std::vector<std::uint32_t> vdist;     // v_count^2 declared (or 10 / 20) distances
  std::vector<std::uint64_t> mem;       // per vnode
  std::vector<std::uint32_t> vcpus;     // per vnode, vCPU count
  std::vector<std::size_t> cpu_home;    // per node: where its vCPUs run (dense index)
  std::vector<bool> pinned;

  explicit VnumaCtx(const Ctx& ctx) : c(ctx), v_count(ctx.spec.vnodes.size()) {
    const GuestSpec& g = c.spec;
    vdist.assign(v_count * v_count, 0);
    mem.assign(v_count, 0);
    vcpus.assign(v_count, 0);
    pinned.assign(v_count, false);
    for (std::size_t v = 0; v < v_count; ++v) {
      const VNodeSpec& vn = g.vnodes[v];
      mem[v] = vn.memory_bytes;
      vcpus[v] = static_cast<std::uint32_t>(vn.vcpus.size());
      pinned[v] = vn.pnode != kNoNode;
      for (std::size_t w = 0; w < v_count; ++w)
        vdist[v * v_count + w] = vn.distances.size() == v_count ? vn.distances[w]
                                 : v == w ? kLocalDistance : 20u;
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

  // Cost of an assignment (dense node per vnode, c.n = not placed yet).
  double cost(const std::vector<std::size_t>& at) const {
    std::vector<std::uint32_t> per_node(c.n, 0), vcpu_load(c.n, 0);
    std::vector<std::size_t> set;
    for (std::size_t v = 0; v < v_count; ++v) {
      if (at[v] == c.n) continue;
      if (per_node[at[v]]++ == 0) set.push_back(at[v]);
      vcpu_load[cpu_home[at[v]]] += vcpus[v];
    }
    if (set.empty()) return 0;
    double total = 0;
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
  // Pinned vnodes first: where the admin said.
  for (std::size_t v = 0; v < vc.v_count; ++v) {
    NodeId p = g.vnodes[v].pnode;
    if (p == kNoNode) continue;
    auto i = static_cast<std::size_t>(t.index_of(p));
    if (room[i] < vc.mem[v])
      return Error{Errc::no_memory, "guest '" + g.name + "': vnode " + std::to_string(v) +
                                        " needs " + mb(vc.mem[v]) + " on node " +
                                        std::to_string(p) + ", which has " + mb(room[i]) +
                                        " above its watermark"};
    room[i] -= vc.mem[v];
    at[v] = i;
  }
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
      if (!c.eligible[i] || room[i] < vc.mem[v]) continue;
      at[v] = i;
      const double cost = vc.cost(at) + kFreeWeight * (1.0 - static_cast<double>(room[i] - vc.mem[v]) /
                                                                 static_cast<double>(t.node_at(i).memory_bytes));
      if (cost < best_cost - 1e-12) {
        best_cost = cost;
        best = i;
      }
    }
    at[v] = none;
    if (best == none)
      return Error{Errc::no_memory, "guest '" + g.name + "': no node has " + mb(vc.mem[v]) +
                                        " above its watermark for vnode " + std::to_string(v)};
    room[best] -= vc.mem[v];
    at[v] = best;
  }
  // Improve: move one auto vnode to another node, or swap two auto vnodes.
  double cost = vc.cost(at);
  const int passes = autos.size() > 16 ? 2 : 16;
  for (int pass = 0; pass < passes; ++pass) {
    bool changed = false;
    for (std::size_t v : autos)
      for (std::size_t i = 0; i < c.n; ++i) {
        const std::size_t from = at[v];
        if (i == from || !c.eligible[i] || room[i] < vc.mem[v]) continue;
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
        if (a == b || room[a] + vc.mem[v] < vc.mem[w] || room[b] + vc.mem[w] < vc.mem[v]) continue;
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

  Placement p;
  (void)p.vnode_pnodes.reserve(vc.v_count);
  for (std::size_t v = 0; v < vc.v_count; ++v) (void)p.vnode_pnodes.push_back(t.node_at(at[v]).id);
  (void)p.vcpu_nodes.resize(g.vcpus, kNoNode);
  std::vector<std::uint64_t> per_node(c.n, 0);
  std::vector<std::uint32_t> vnodes_on(c.n, 0), vcpus_on(c.n, 0);
  std::vector<std::size_t> set;
  std::string why;
  for (std::size_t v = 0; v < vc.v_count; ++v) {
    const std::size_t i = at[v];
    per_node[i] += vc.mem[v];
    ++vnodes_on[i];
    vcpus_on[vc.cpu_home[i]] += vc.vcpus[v];
    for (auto cpu : g.vnodes[v].vcpus) p.vcpu_nodes[cpu] = t.node_at(vc.cpu_home[i]).id;
    why += (why.empty() ? "" : ", ") + std::string("vnode ") + std::to_string(v) + " -> node " +
           std::to_string(t.node_at(i).id) + (vc.pinned[v] ? " (pinned)" : " (auto)");
  }
  for (std::size_t i = 0; i < c.n; ++i)
    if (per_node[i]) {
      p.nodes.set(t.node_at(i).id);
      (void)p.memory.push_back({t.node_at(i).id, per_node[i]});
      set.push_back(i);
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
  // Compromises, for the admin.
  for (std::size_t i = 0; i < c.n; ++i) {
    if (vnodes_on[i] > 1) {
      std::string list;
      bool all_pinned = true;
      for (std::size_t v = 0; v < vc.v_count; ++v)
        if (at[v] == i) {
          list += (list.empty() ? "" : ",") + std::to_string(v);
          all_pinned = all_pinned && vc.pinned[v];
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

}  // namespace

Result<Placement, Error> Placer::place(const GuestSpec& spec, std::span<const NodeUsage> usage,
                                       const PlacementHints& hints) const {
  if (auto ok = validate_guest_spec(spec, topo_); !ok) return ok.error();
  if (usage.size() != topo_.node_count())
    return Error{Errc::invalid_argument, "usage has " + std::to_string(usage.size()) +
                                             " entries for " +
                                             std::to_string(topo_.node_count()) + " nodes"};
  Ctx c(topo_, spec, usage, hints, *this);
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
    NodeId id = topo_.node_at(best[j]).id;
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
    NodeId home = cpu_home(topo_, topo_.node_at(best[0]).id);
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
        p.vcpu_nodes.push_back(topo_.node_at(best[cpu_nodes[q]]).id);
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
