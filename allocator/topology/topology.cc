// Topology queries and TopologyBuilder validation. Core file: freestanding
// (memory only from the builder's metadata hooks, no library calls).
#include "numaheap/topology.h"

#include <algorithm>

namespace numaheap {

namespace {
constexpr TopologySource kNoSource{};
}  // namespace

std::uint64_t NodeInfo::frame_count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& r : frames) n += r.count;
  return n;
}

const TopologySource& Topology::source() const noexcept {
  return data_ ? data_->source : kNoSource;
}

void Topology::release() noexcept {
  if (data_ && data_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) metadata_destroy(data_);
  data_ = nullptr;
}

std::uint32_t Topology::distance(NodeId from, NodeId to) const noexcept {
  int a = index_of(from), b = index_of(to);
  if (a < 0 || b < 0) return kMaxDistance;
  return data_->distance[static_cast<std::size_t>(a) * data_->nodes.size() +
                         static_cast<std::size_t>(b)];
}

std::uint32_t Topology::raw_distance(NodeId from, NodeId to) const noexcept {
  int a = index_of(from), b = index_of(to);
  if (a < 0 || b < 0) return 0;
  return data_->raw_distance[static_cast<std::size_t>(a) * data_->nodes.size() +
                             static_cast<std::size_t>(b)];
}

std::span<const NodeId> Topology::fallback_order(NodeId from) const noexcept {
  int a = index_of(from);
  if (a < 0) return {};
  const std::size_t m = data_->fallback_stride;
  return std::span<const NodeId>(data_->fallback.data() + static_cast<std::size_t>(a) * m, m);
}

std::uint64_t Topology::total_frames() const noexcept {
  std::uint64_t n = 0;
  for (const auto& node : nodes()) n += node.frame_count();
  return n;
}

NodeId Topology::node_of_mfn(std::uint64_t mfn) const noexcept {
  for (const auto& node : nodes())
    for (const auto& r : node.frames)
      if (mfn >= r.first_mfn && mfn - r.first_mfn < r.count) return node.id;
  return kNoNode;
}

TopologyBuilder::TopologyBuilder(std::string_view source, const MetadataHooks* hooks) noexcept
    : hooks_(hooks), source_(source), nodes_(hooks), distances_(hooks) {}

template <class... Parts>
void TopologyBuilder::fail(Errc code, const Parts&... parts) noexcept {
  if (failed_) return;
  failed_ = true;
  first_error_ = make_error(code, source_, ": ", parts...);
}

TopologyBuilder& TopologyBuilder::add_node(NodeId id, std::span<const CpuId> cpus,
                                           std::uint64_t memory_bytes,
                                           std::uint64_t free_bytes) noexcept {
  if (failed_) return *this;
  if (id >= kMaxNodes) {
    fail(Errc::invalid_argument, "node id ", id, " out of range 0..1023");
    return *this;
  }
  if (ids_.test(id)) {
    fail(Errc::invalid_argument, "node ", id, " listed twice");
    return *this;
  }
  PendingNode p;
  p.info.id = id;
  p.info.cpus = Vector<CpuId>(hooks_);
  p.info.frames = Vector<FrameRange>(hooks_);
  if (!p.info.cpus.assign(cpus)) {
    fail(Errc::no_memory, "out of metadata memory for the cpus of node ", id);
    return *this;
  }
  std::sort(p.info.cpus.begin(), p.info.cpus.end());
  const auto& sorted = p.info.cpus;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i] >= kMaxCpus) {
      fail(Errc::invalid_argument, "node ", id, ": cpu ", sorted[i], " out of range 0..",
           kMaxCpus - 1);
      return *this;
    }
    if (i > 0 && sorted[i] == sorted[i - 1]) {
      fail(Errc::invalid_argument, "node ", id, ": cpu ", sorted[i], " listed twice");
      return *this;
    }
  }
  if (memory_bytes != kUnknownBytes && free_bytes != kUnknownBytes && free_bytes > memory_bytes) {
    fail(Errc::invalid_argument, "node ", id, ": free memory (", free_bytes >> 20,
         " MB) exceeds its size (", memory_bytes >> 20, " MB)");
    return *this;
  }
  p.info.memory_bytes = memory_bytes;
  p.info.free_bytes = free_bytes;
  if (!nodes_.push_back(static_cast<PendingNode&&>(p))) {
    fail(Errc::no_memory, "out of metadata memory adding node ", id);
    return *this;
  }
  ids_.set(id);
  return *this;
}

TopologyBuilder& TopologyBuilder::set_distance(NodeId from, NodeId to, std::uint32_t d) noexcept {
  if (failed_) return *this;
  if (!distances_.push_back({from, to, d}))
    fail(Errc::no_memory, "out of metadata memory for the distance from node ", from,
         " to node ", to);
  return *this;
}

TopologyBuilder& TopologyBuilder::set_distance_row(NodeId from,
                                                   std::span<const std::uint32_t> row) noexcept {
  if (failed_) return *this;
  if (row.size() != nodes_.size()) {
    fail(Errc::invalid_argument, "node ", from, ": distance row has ", row.size(),
         " entries for ", nodes_.size(), " nodes");
    return *this;
  }
  if (!distances_.reserve(distances_.size() + row.size())) {
    fail(Errc::no_memory, "out of metadata memory for the distances of node ", from);
    return *this;
  }
  std::size_t k = 0;
  for (NodeId to : ids_) distances_.push_back({from, to, row[k++]});  // reserved: cannot fail
  return *this;
}

TopologyBuilder& TopologyBuilder::set_frames(NodeId id,
                                             std::span<const FrameRange> frames) noexcept {
  if (failed_) return *this;
  for (auto& n : nodes_)
    if (n.info.id == id) {
      if (!n.info.frames.assign(frames)) {
        fail(Errc::no_memory, "out of metadata memory for the frames of node ", id);
        return *this;
      }
      n.frames_set = true;
      return *this;
    }
  fail(Errc::invalid_argument, "frames given for unknown node ", id);
  return *this;
}

namespace {

// Order the memory nodes for each source node: by distance, ties spread.
// `load[k]` counts how often node k was already put first within its tie
// group; the least-loaded member of a group goes first, so sources that see
// several equally distant nodes do not all pile onto the lowest id.
// `out` holds memory-node-count entries per source node. False when out of
// memory.
bool build_fallback(const Vector<NodeInfo>& nodes, const Vector<std::uint16_t>& dist,
                    const MetadataHooks* hooks, Vector<NodeId>& out) noexcept {
  const std::size_t n = nodes.size();
  Vector<unsigned> load(hooks);
  Vector<std::size_t> cand(hooks);
  if (!load.resize(n, 0u) || !cand.reserve(n)) return false;
  for (std::size_t k = 0; k < n; ++k)
    if (nodes[k].has_memory()) cand.push_back(k);  // reserved: cannot fail
  const std::size_t m = cand.size();
  if (!out.resize(n * m)) return false;
  for (std::size_t s = 0; s < n; ++s) {
    auto d = [&](std::size_t k) -> unsigned {
      return k == s ? 0u : dist[s * n + k];  // self first whatever the SLIT says
    };
    std::sort(cand.begin(), cand.end(), [&](std::size_t a, std::size_t b) {
      if (d(a) != d(b)) return d(a) < d(b);
      if (load[a] != load[b]) return load[a] < load[b];
      return a < b;
    });
    // Charge the first member of every tie group (of size > 1).
    for (std::size_t i = 0; i < m;) {
      std::size_t j = i;
      while (j < m && d(cand[j]) == d(cand[i])) ++j;
      if (j - i > 1) ++load[cand[i]];
      i = j;
    }
    for (std::size_t i = 0; i < m; ++i) out[s * m + i] = nodes[cand[i]].id;
  }
  return true;
}

struct OwnedRange {
  FrameRange range;
  NodeId node;
};

}  // namespace

Result<Topology, Error> TopologyBuilder::build() const noexcept {
  if (failed_) return first_error_;
  if (nodes_.empty()) return make_error(Errc::invalid_argument, source_, ": no NUMA nodes");
  auto no_memory = [&](const char* what) {
    return make_error(Errc::no_memory, source_, ": out of metadata memory for ", what);
  };
  auto invalid = [&](const auto&... parts) {
    return make_error(Errc::invalid_argument, source_, ": ", parts...);
  };

  // The handle owns the block from here on: every early return frees it.
  Topology t(metadata_create<Topology::Data>(hooks_, hooks_));
  if (!t.data_) return no_memory("the topology");
  Topology::Data& data = *t.data_;
  data.source = source_;

  // Nodes, sorted by id (ids_ iterates in id order).
  if (!data.nodes.reserve(nodes_.size())) return no_memory("the node table");
  for (auto& slot : data.index_of) slot = -1;
  for (NodeId id : ids_) {
    const PendingNode* p = nullptr;
    for (const auto& q : nodes_)
      if (q.info.id == id) p = &q;
    data.index_of[id] = static_cast<std::int16_t>(data.nodes.size());
    data.nodes.push_back(p->info);  // reserved: the copy's vectors may still fail
    const NodeInfo& copy = data.nodes.back();
    if (!copy.cpus.ok() || !copy.frames.ok()) return no_memory("the node table");
    data.all.set(id);
    if (copy.has_memory()) data.with_memory.set(id);
    if (copy.has_cpus()) data.with_cpus.set(id);
  }
  const std::size_t n = data.nodes.size();

  // CPUs: each in at most one node.
  CpuId max_cpu = 0;
  for (const auto& node : data.nodes)
    if (!node.cpus.empty()) max_cpu = std::max(max_cpu, node.cpus.back() + 1);
  if (!data.cpu_node.resize(max_cpu, kNoNode)) return no_memory("the cpu table");
  for (const auto& node : data.nodes)
    for (CpuId c : node.cpus) {
      if (data.cpu_node[c] != kNoNode)
        return invalid("cpu ", c, " listed in node ", data.cpu_node[c], " and node ", node.id);
      data.cpu_node[c] = node.id;
    }

  // Distances.
  if (!data.raw_distance.resize(n * n, 0)) return no_memory("the distance matrix");
  for (const auto& d : distances_) {
    int a = t.index_of(d.from), b = t.index_of(d.to);
    if (a < 0 || b < 0) return invalid("distance given for unknown node ", a < 0 ? d.from : d.to);
    if (d.d == 0 || d.d > kMaxDistance)
      return invalid("distance from node ", d.from, " to node ", d.to, " is ", d.d,
                     ", outside 1..255");
    data.raw_distance[static_cast<std::size_t>(a) * n + static_cast<std::size_t>(b)] =
        static_cast<std::uint16_t>(d.d);
    data.distances_given = true;
  }
  if (!data.distance.assign(data.raw_distance.span())) return no_memory("the distance matrix");
  auto& dist = data.distance;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b)
      if (dist[a * n + b] == 0) dist[a * n + b] = a == b ? kLocalDistance : kRemoteDistance;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b)
      if (dist[a * n + b] < dist[a * n + a])
        return invalid("node ", data.nodes[a].id, ": distance to itself (", dist[a * n + a],
                       ") exceeds its distance to node ", data.nodes[b].id, " (",
                       dist[a * n + b], ")");

  // Frames: given by the source, or laid out one range per node.
  bool any_frames = false;
  for (const auto& p : nodes_) any_frames |= p.frames_set;
  if (!any_frames) {
    std::uint64_t next = 1ull << 18;  // start at 1 GiB: mfn 0 is never managed
    for (auto& node : data.nodes) {
      if (!node.has_memory()) continue;
      std::uint64_t count = node.memory_bytes >> kFrameShift;
      node.frames.clear();
      if (!node.frames.push_back(FrameRange{next, count})) return no_memory("the frame ranges");
      next += (count + (1ull << 18) - 1) & ~((1ull << 18) - 1);
    }
  } else {
    Vector<OwnedRange> all(hooks_);
    for (const auto& node : data.nodes)
      for (const auto& r : node.frames) {
        if (r.count == 0) return invalid("node ", node.id, ": empty frame range");
        if (r.first_mfn == 0) return invalid("node ", node.id, ": frame range includes mfn 0");
        if (r.first_mfn + r.count < r.first_mfn || r.first_mfn + r.count > (1ull << 52))
          return invalid("node ", node.id, ": frame range beyond 2^52 frames");
        if (!all.push_back({r, node.id})) return no_memory("the frame ranges");
      }
    std::sort(all.begin(), all.end(), [](const OwnedRange& a, const OwnedRange& b) {
      return a.range.first_mfn < b.range.first_mfn;
    });
    for (std::size_t i = 1; i < all.size(); ++i)
      if (all[i - 1].range.first_mfn + all[i - 1].range.count > all[i].range.first_mfn)
        return invalid("frame ranges of node ", all[i - 1].node, " and node ", all[i].node,
                       " overlap");
    for (auto& node : data.nodes)
      std::sort(node.frames.begin(), node.frames.end(),
                [](const FrameRange& a, const FrameRange& b) { return a.first_mfn < b.first_mfn; });
  }

  if (!build_fallback(data.nodes, data.distance, hooks_, data.fallback))
    return no_memory("the fallback order");
  data.fallback_stride = data.with_memory.count();
  return t;
}

}  // namespace numaheap
