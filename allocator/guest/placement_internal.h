// Placer's internals, shared by allocator/guest/placement*.cc: the context
// of one place() call with its cost terms (Ctx), and the helpers the
// set search (placement_flat.cc) and the vNUMA layout
// (placement_vnuma.cc) both use. Internal: not installed.
#pragma once

#include "numaheap/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace numaheap::placement_detail {

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

inline std::string mb(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

inline std::string fmt2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

constexpr double kPinWeight = 1.0;     // mean extra distance from a pinned vCPU's nodes / 10

inline const char* mode_name(MemoryPolicy m) {
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

// Split of `bytes` over the dense `nodes`, exact to the byte
// (placement_flat.cc).
std::vector<std::uint64_t> spread(std::uint64_t bytes, const std::vector<std::size_t>& nodes,
                                  const std::vector<std::uint64_t>& room);
// Nearest node with CPUs to a node, itself if it has some
// (placement_flat.cc).
NodeId cpu_home(const Topology& t, NodeId node);

// A guest without vnodes: one node set, memory spread over it
// (placement_flat.cc).
Result<Placement, Error> place_flat(const Ctx& c);
// A guest with vnodes: a host node (or several, interleaved) per vnode
// (placement_vnuma.cc).
Result<Placement, Error> place_vnuma(const Ctx& c);

}  // namespace numaheap::placement_detail
