// numaheap: the host's NUMA topology.
//
// A Topology is immutable once built (TopologyBuilder::build validates it),
// so every layer below can read it without locks. Nodes are kept sorted by
// id; `index_of(id)` maps a sparse id to a dense index in O(1), and every
// per-node array in the library is indexed by that dense index.
//
// Distances: the matrix may be asymmetric. A source that gives no distance
// for a pair leaves it "not given" (raw value 0); `distance()` then answers
// the conventional 10 (local) / 20 (remote), while renderers that must match
// numactl byte for byte can still see what was really given (`raw_distance`).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "numaheap/node_mask.h"
#include "numaheap/result.h"

namespace numaheap {

using CpuId = std::uint32_t;
inline constexpr CpuId kMaxCpus = 1u << 16;  // accepted cpu ids are 0..65535
inline constexpr std::uint64_t kUnknownBytes = ~std::uint64_t{0};
inline constexpr std::uint32_t kLocalDistance = 10;
inline constexpr std::uint32_t kRemoteDistance = 20;
inline constexpr std::uint32_t kMaxDistance = 255;  // SLIT entries are bytes
inline constexpr std::uint64_t kFrameShift = 12;       // 4 KiB frames
inline constexpr std::uint64_t kFrameSize = 1ull << kFrameShift;

// A run of machine frames [first_mfn, first_mfn + count) owned by one node.
struct FrameRange {
  std::uint64_t first_mfn = 0;
  std::uint64_t count = 0;
  bool operator==(const FrameRange&) const = default;
};

struct NodeInfo {
  NodeId id = kNoNode;
  std::vector<CpuId> cpus;                   // ascending, no duplicates
  std::uint64_t memory_bytes = kUnknownBytes;  // MemTotal, or unknown
  std::uint64_t free_bytes = kUnknownBytes;    // MemFree, or unknown
  // Machine frames that belong to this node, ascending, non-overlapping, never
  // containing mfn 0. Filled by the source (a hypervisor's e820/SRAT) or, when
  // no node has any, by build(): one range per node, each starting on a 1 GiB
  // boundary so the largest buddy blocks are possible.
  std::vector<FrameRange> frames;

  bool has_cpus() const noexcept { return !cpus.empty(); }
  bool has_memory() const noexcept {
    return memory_bytes != kUnknownBytes && memory_bytes >= kFrameSize;
  }
  std::uint64_t frame_count() const noexcept;
};

class Topology {
 public:
  Topology() = default;  // empty; only useful as a placeholder

  // Where this topology came from, e.g. "sysfs:/sys", "numactl:file.txt".
  const std::string& source() const noexcept { return source_; }

  std::size_t node_count() const noexcept { return nodes_.size(); }
  std::span<const NodeInfo> nodes() const noexcept { return nodes_; }
  const NodeInfo& node_at(std::size_t index) const { return nodes_[index]; }
  // Dense index of a node id, or -1 when the id is not a node.
  int index_of(NodeId id) const noexcept {
    return id < kMaxNodes ? index_of_[id] : -1;
  }
  bool has_node(NodeId id) const noexcept { return index_of(id) >= 0; }
  const NodeInfo* find(NodeId id) const noexcept {
    int i = index_of(id);
    return i < 0 ? nullptr : &nodes_[static_cast<std::size_t>(i)];
  }

  NodeMask node_mask() const noexcept { return all_; }
  NodeMask memory_nodes() const noexcept { return with_memory_; }
  NodeMask cpu_nodes() const noexcept { return with_cpus_; }

  // Effective distance (never 0). Unknown nodes answer kMaxDistance.
  std::uint32_t distance(NodeId from, NodeId to) const noexcept;
  // As given by the source: 0 where nothing was given.
  std::uint32_t raw_distance(NodeId from, NodeId to) const noexcept;
  // True when the source gave any distance at all.
  bool distances_given() const noexcept { return distances_given_; }

  // Node of a CPU, or kNoNode for CPUs no node lists.
  NodeId node_of_cpu(CpuId cpu) const noexcept {
    return cpu < cpu_node_.size() ? cpu_node_[cpu] : kNoNode;
  }
  CpuId max_cpu() const noexcept {  // highest listed cpu id + 1, or 0
    return static_cast<CpuId>(cpu_node_.size());
  }

  // Memory nodes in the order an allocation preferring `from` should try
  // them: `from` first if it has memory, then by increasing distance; nodes
  // at equal distance are spread (different sources start on different
  // members, as Linux's node_load does), ties broken by id. Memoryless
  // nodes are never targets. Empty for unknown ids.
  std::span<const NodeId> fallback_order(NodeId from) const noexcept;

  // Frames managed overall, and the node of an mfn (kNoNode if unmanaged).
  std::uint64_t total_frames() const noexcept;
  NodeId node_of_mfn(std::uint64_t mfn) const noexcept;

 private:
  friend class TopologyBuilder;
  std::string source_;
  std::vector<NodeInfo> nodes_;
  std::vector<std::int16_t> index_of_;       // kMaxNodes entries, -1 = none
  std::vector<std::uint16_t> raw_distance_;  // n*n, row = from, 0 = not given
  std::vector<std::uint16_t> distance_;      // n*n effective
  std::vector<NodeId> cpu_node_;             // cpu id -> node id
  std::vector<std::vector<NodeId>> fallback_;  // per node index
  NodeMask all_, with_memory_, with_cpus_;
  bool distances_given_ = false;
};

// Builds and validates a Topology. Errors found while adding (duplicate id,
// bad id) are remembered and reported by build(), so a loader can add
// everything and check once.
class TopologyBuilder {
 public:
  explicit TopologyBuilder(std::string source = "builder");

  // Adds a node. `cpus` in any order; duplicates are an error.
  TopologyBuilder& add_node(NodeId id, std::vector<CpuId> cpus,
                            std::uint64_t memory_bytes,
                            std::uint64_t free_bytes = kUnknownBytes);
  // Sets one entry of the distance matrix (nodes must be added first).
  TopologyBuilder& set_distance(NodeId from, NodeId to, std::uint32_t d);
  // Sets a whole row: `row[k]` is the distance to the k-th node in id order.
  TopologyBuilder& set_distance_row(NodeId from, std::span<const std::uint32_t> row);
  // Gives a node its machine frame ranges (see NodeInfo::frames).
  TopologyBuilder& set_frames(NodeId id, std::vector<FrameRange> frames);

  // Validates: ids < 1024 and unique; each cpu in at most one node; every
  // given distance in 1..255; self distance the minimum of its row (pairs
  // not given count as 10/20); frame ranges non-overlapping, mfn 0 never
  // managed; at least one node. The message names the node and what is wrong.
  Result<Topology, Error> build() const;

 private:
  struct PendingNode {
    NodeInfo info;
    bool frames_set = false;
  };
  std::string source_;
  std::vector<PendingNode> nodes_;  // in insertion order
  struct Dist { NodeId from, to; std::uint32_t d; };
  std::vector<Dist> distances_;
  std::string first_error_;
};

}  // namespace numaheap
