// Topology queries and TopologyBuilder validation.
#include "numaheap/topology.h"

#include <algorithm>
#include <numeric>

namespace numaheap {

std::uint64_t NodeInfo::frame_count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& r : frames) n += r.count;
  return n;
}

std::uint32_t Topology::distance(NodeId from, NodeId to) const noexcept {
  int a = index_of(from), b = index_of(to);
  if (a < 0 || b < 0) return kMaxDistance;
  return distance_[static_cast<std::size_t>(a) * nodes_.size() + static_cast<std::size_t>(b)];
}

std::uint32_t Topology::raw_distance(NodeId from, NodeId to) const noexcept {
  int a = index_of(from), b = index_of(to);
  if (a < 0 || b < 0) return 0;
  return raw_distance_[static_cast<std::size_t>(a) * nodes_.size() + static_cast<std::size_t>(b)];
}

std::span<const NodeId> Topology::fallback_order(NodeId from) const noexcept {
  int a = index_of(from);
  if (a < 0) return {};
  return fallback_[static_cast<std::size_t>(a)];
}

std::uint64_t Topology::total_frames() const noexcept {
  std::uint64_t n = 0;
  for (const auto& node : nodes_) n += node.frame_count();
  return n;
}

NodeId Topology::node_of_mfn(std::uint64_t mfn) const noexcept {
  for (const auto& node : nodes_)
    for (const auto& r : node.frames)
      if (mfn >= r.first_mfn && mfn - r.first_mfn < r.count) return node.id;
  return kNoNode;
}

TopologyBuilder::TopologyBuilder(std::string source) : source_(std::move(source)) {}

TopologyBuilder& TopologyBuilder::add_node(NodeId id, std::vector<CpuId> cpus,
                                           std::uint64_t memory_bytes,
                                           std::uint64_t free_bytes) {
  if (!first_error_.empty()) return *this;
  if (id >= kMaxNodes) {
    first_error_ = "node id " + std::to_string(id) + " out of range 0..1023";
    return *this;
  }
  for (const auto& n : nodes_)
    if (n.info.id == id) {
      first_error_ = "node " + std::to_string(id) + " listed twice";
      return *this;
    }
  std::sort(cpus.begin(), cpus.end());
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    if (cpus[i] >= kMaxCpus) {
      first_error_ = "node " + std::to_string(id) + ": cpu " + std::to_string(cpus[i]) +
                     " out of range 0.." + std::to_string(kMaxCpus - 1);
      return *this;
    }
    if (i > 0 && cpus[i] == cpus[i - 1]) {
      first_error_ = "node " + std::to_string(id) + ": cpu " + std::to_string(cpus[i]) +
                     " listed twice";
      return *this;
    }
  }
  if (memory_bytes != kUnknownBytes && free_bytes != kUnknownBytes && free_bytes > memory_bytes) {
    first_error_ = "node " + std::to_string(id) + ": free memory (" +
                   std::to_string(free_bytes >> 20) + " MB) exceeds its size (" +
                   std::to_string(memory_bytes >> 20) + " MB)";
    return *this;
  }
  PendingNode p;
  p.info.id = id;
  p.info.cpus = std::move(cpus);
  p.info.memory_bytes = memory_bytes;
  p.info.free_bytes = free_bytes;
  nodes_.push_back(std::move(p));
  return *this;
}

TopologyBuilder& TopologyBuilder::set_distance(NodeId from, NodeId to, std::uint32_t d) {
  if (!first_error_.empty()) return *this;
  distances_.push_back({from, to, d});
  return *this;
}

TopologyBuilder& TopologyBuilder::set_distance_row(NodeId from,
                                                   std::span<const std::uint32_t> row) {
  if (!first_error_.empty()) return *this;
  std::vector<NodeId> ids;
  for (const auto& n : nodes_) ids.push_back(n.info.id);
  std::sort(ids.begin(), ids.end());
  if (row.size() != ids.size()) {
    first_error_ = "node " + std::to_string(from) + ": distance row has " +
                   std::to_string(row.size()) + " entries for " + std::to_string(ids.size()) +
                   " nodes";
    return *this;
  }
  for (std::size_t k = 0; k < row.size(); ++k) distances_.push_back({from, ids[k], row[k]});
  return *this;
}

TopologyBuilder& TopologyBuilder::set_frames(NodeId id, std::vector<FrameRange> frames) {
  if (!first_error_.empty()) return *this;
  for (auto& n : nodes_)
    if (n.info.id == id) {
      n.info.frames = std::move(frames);
      n.frames_set = true;
      return *this;
    }
  first_error_ = "frames given for unknown node " + std::to_string(id);
  return *this;
}

namespace {

Error topo_error(const std::string& source, const std::string& what) {
  return Error{Errc::invalid_argument, source + ": " + what};
}

// Order the memory nodes for each source node: by distance, ties spread.
// `load[k]` counts how often node k was already put first within its tie
// group; the least-loaded member of a group goes first, so sources that see
// several equally distant nodes do not all pile onto the lowest id.
void build_fallback(Topology& t, const std::vector<std::uint16_t>& dist,
                    std::vector<std::vector<NodeId>>& out) {
  const std::size_t n = t.node_count();
  std::vector<unsigned> load(n, 0);
  out.assign(n, {});
  for (std::size_t s = 0; s < n; ++s) {
    std::vector<std::size_t> cand;
    for (std::size_t k = 0; k < n; ++k)
      if (t.node_at(k).has_memory()) cand.push_back(k);
    auto d = [&](std::size_t k) -> unsigned {
      return k == s ? 0u : dist[s * n + k];  // self first whatever the SLIT says
    };
    std::sort(cand.begin(), cand.end(), [&](std::size_t a, std::size_t b) {
      if (d(a) != d(b)) return d(a) < d(b);
      if (load[a] != load[b]) return load[a] < load[b];
      return a < b;
    });
    // Charge the first member of every tie group (of size > 1).
    for (std::size_t i = 0; i < cand.size();) {
      std::size_t j = i;
      while (j < cand.size() && d(cand[j]) == d(cand[i])) ++j;
      if (j - i > 1) ++load[cand[i]];
      i = j;
    }
    for (auto k : cand) out[s].push_back(t.node_at(k).id);
  }
}

}  // namespace

Result<Topology, Error> TopologyBuilder::build() const {
  if (!first_error_.empty()) return topo_error(source_, first_error_);
  if (nodes_.empty()) return topo_error(source_, "no NUMA nodes");

  Topology t;
  t.source_ = source_;
  std::vector<const PendingNode*> sorted;
  for (const auto& p : nodes_) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(),
            [](const PendingNode* a, const PendingNode* b) { return a->info.id < b->info.id; });
  t.index_of_.assign(kMaxNodes, -1);
  for (const auto* p : sorted) {
    t.index_of_[p->info.id] = static_cast<std::int16_t>(t.nodes_.size());
    t.nodes_.push_back(p->info);
    t.all_.set(p->info.id);
    if (p->info.has_memory()) t.with_memory_.set(p->info.id);
    if (p->info.has_cpus()) t.with_cpus_.set(p->info.id);
  }
  const std::size_t n = t.nodes_.size();

  // CPUs: each in at most one node.
  CpuId max_cpu = 0;
  for (const auto& node : t.nodes_)
    if (!node.cpus.empty()) max_cpu = std::max(max_cpu, node.cpus.back() + 1);
  t.cpu_node_.assign(max_cpu, kNoNode);
  for (const auto& node : t.nodes_)
    for (CpuId c : node.cpus) {
      if (t.cpu_node_[c] != kNoNode)
        return topo_error(source_, "cpu " + std::to_string(c) + " listed in node " +
                                       std::to_string(t.cpu_node_[c]) + " and node " +
                                       std::to_string(node.id));
      t.cpu_node_[c] = node.id;
    }

  // Distances.
  t.raw_distance_.assign(n * n, 0);
  for (const auto& d : distances_) {
    int a = t.index_of(d.from), b = t.index_of(d.to);
    if (a < 0 || b < 0)
      return topo_error(source_, "distance given for unknown node " +
                                     std::to_string(a < 0 ? d.from : d.to));
    if (d.d == 0 || d.d > kMaxDistance)
      return topo_error(source_, "distance from node " + std::to_string(d.from) + " to node " +
                                     std::to_string(d.to) + " is " + std::to_string(d.d) +
                                     ", outside 1..255");
    t.raw_distance_[static_cast<std::size_t>(a) * n + static_cast<std::size_t>(b)] =
        static_cast<std::uint16_t>(d.d);
    t.distances_given_ = true;
  }
  t.distance_ = t.raw_distance_;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b)
      if (t.distance_[a * n + b] == 0)
        t.distance_[a * n + b] = a == b ? kLocalDistance : kRemoteDistance;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b)
      if (t.distance_[a * n + b] < t.distance_[a * n + a])
        return topo_error(source_, "node " + std::to_string(t.nodes_[a].id) +
                                       ": distance to itself (" +
                                       std::to_string(t.distance_[a * n + a]) +
                                       ") exceeds its distance to node " +
                                       std::to_string(t.nodes_[b].id) + " (" +
                                       std::to_string(t.distance_[a * n + b]) + ")");

  // Frames: given by the source, or laid out one range per node.
  bool any_frames = false;
  for (const auto& p : nodes_) any_frames |= p.frames_set;
  if (!any_frames) {
    std::uint64_t next = 1ull << 18;  // start at 1 GiB: mfn 0 is never managed
    for (auto& node : t.nodes_) {
      if (!node.has_memory()) continue;
      std::uint64_t count = node.memory_bytes >> kFrameShift;
      node.frames = {FrameRange{next, count}};
      next += (count + (1ull << 18) - 1) & ~((1ull << 18) - 1);
    }
  } else {
    std::vector<std::pair<FrameRange, NodeId>> all;
    for (const auto& node : t.nodes_)
      for (const auto& r : node.frames) {
        if (r.count == 0)
          return topo_error(source_, "node " + std::to_string(node.id) + ": empty frame range");
        if (r.first_mfn == 0)
          return topo_error(source_, "node " + std::to_string(node.id) +
                                         ": frame range includes mfn 0");
        if (r.first_mfn + r.count < r.first_mfn || r.first_mfn + r.count > (1ull << 52))
          return topo_error(source_, "node " + std::to_string(node.id) +
                                         ": frame range beyond 2^52 frames");
        all.push_back({r, node.id});
      }
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.first.first_mfn < b.first.first_mfn; });
    for (std::size_t i = 1; i < all.size(); ++i)
      if (all[i - 1].first.first_mfn + all[i - 1].first.count > all[i].first.first_mfn)
        return topo_error(source_, "frame ranges of node " + std::to_string(all[i - 1].second) +
                                       " and node " + std::to_string(all[i].second) + " overlap");
    for (auto& node : t.nodes_)
      std::sort(node.frames.begin(), node.frames.end(),
                [](const FrameRange& a, const FrameRange& b) { return a.first_mfn < b.first_mfn; });
  }

  build_fallback(t, t.distance_, t.fallback_);
  return t;
}

}  // namespace numaheap
