// Placer's node-set search for a guest without vnodes: grow a set from
// each seed, improve it by swaps, spread the memory over it and place the
// vCPUs (see include/numaheap/placement.h). spread() and cpu_home() serve
// the vNUMA layout too (placement_vnuma.cc).
#include "allocator/guest/placement_internal.h"

namespace numaheap::placement_detail {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace numaheap::placement_detail
