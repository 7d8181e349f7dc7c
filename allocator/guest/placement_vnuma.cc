// Placer's vNUMA layout: a host node (or an interleaved set) per vnode,
// matching the guest's declared distances (see include/numaheap/placement.h).
#include "allocator/guest/placement_internal.h"

namespace numaheap::placement_detail {

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

}  // namespace

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

}  // namespace numaheap::placement_detail
