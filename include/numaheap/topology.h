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
//
// Freestanding core types. Memory: a builder and the Topology it builds take
// all their memory from one set of metadata hooks (the builder's; default
// numaheap::default_metadata()). Running out is Errc::no_memory from build(),
// never a crash and never a half-built Topology.
//
// Sharing: a Topology is a handle on one immutable, reference-counted block.
// Copying a Topology (PageAllocator and others keep one) only bumps the
// count: it never allocates and so never fails, and copies may be made and
// dropped from any thread. The block goes back to its hooks with the last
// handle; those hooks must outlive every handle.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "numaheap/fixed_string.h"
#include "numaheap/metadata.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/vector.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

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

// Copying a NodeInfo copies its vectors (which may run out of memory: check
// cpus.ok() and frames.ok() when that matters; a Topology never holds a
// NodeInfo whose copy failed).
struct NodeInfo {
  NodeId id = kNoNode;
  Vector<CpuId> cpus;                          // ascending, no duplicates
  std::uint64_t memory_bytes = kUnknownBytes;  // MemTotal, or unknown
  std::uint64_t free_bytes = kUnknownBytes;    // MemFree, or unknown
  // Machine frames that belong to this node, ascending, non-overlapping, never
  // containing mfn 0. Filled by the source (a hypervisor's e820/SRAT) or, when
  // no node has any, by build(): one range per node, each starting on a 1 GiB
  // boundary so the largest buddy blocks are possible.
  Vector<FrameRange> frames;

  // Host convenience: the CPUs as a std::vector.
  std::vector<CpuId> cpu_vector() const { return std::vector<CpuId>(cpus.begin(), cpus.end()); }

  bool has_cpus() const noexcept { return !cpus.empty(); }
  bool has_memory() const noexcept {
    return memory_bytes != kUnknownBytes && memory_bytes >= kFrameSize;
  }
  std::uint64_t frame_count() const noexcept;
};

// Where a topology came from, e.g. "sysfs:/sys", "numactl:file.txt"
// (longer names are cut).
using TopologySource = FixedString<256>;

class Topology {
 public:
  Topology() noexcept = default;  // empty (no nodes); only useful as a placeholder
  Topology(const Topology& o) noexcept : data_(o.data_) { retain(); }
  Topology(Topology&& o) noexcept : data_(o.data_) { o.data_ = nullptr; }
  Topology& operator=(const Topology& o) noexcept {
    Topology t(o);
    swap(t);
    return *this;
  }
  Topology& operator=(Topology&& o) noexcept {
    Topology t(static_cast<Topology&&>(o));
    swap(t);
    return *this;
  }
  ~Topology() { release(); }
  void swap(Topology& o) noexcept {
    Data* d = data_;
    data_ = o.data_;
    o.data_ = d;
  }

  const TopologySource& source() const noexcept;

  std::size_t node_count() const noexcept { return data_ ? data_->nodes.size() : 0; }
  std::span<const NodeInfo> nodes() const noexcept {
    return data_ ? data_->nodes.span() : std::span<const NodeInfo>();
  }
  const NodeInfo& node_at(std::size_t index) const noexcept { return data_->nodes[index]; }
  // Dense index of a node id, or -1 when the id is not a node.
  int index_of(NodeId id) const noexcept {
    return data_ && id < kMaxNodes ? data_->index_of[id] : -1;
  }
  bool has_node(NodeId id) const noexcept { return index_of(id) >= 0; }
  const NodeInfo* find(NodeId id) const noexcept {
    int i = index_of(id);
    return i < 0 ? nullptr : &data_->nodes[static_cast<std::size_t>(i)];
  }

  NodeMask node_mask() const noexcept { return data_ ? data_->all : NodeMask(); }
  NodeMask memory_nodes() const noexcept { return data_ ? data_->with_memory : NodeMask(); }
  NodeMask cpu_nodes() const noexcept { return data_ ? data_->with_cpus : NodeMask(); }

  // Effective distance (never 0). Unknown nodes answer kMaxDistance.
  std::uint32_t distance(NodeId from, NodeId to) const noexcept;
  // As given by the source: 0 where nothing was given.
  std::uint32_t raw_distance(NodeId from, NodeId to) const noexcept;
  // True when the source gave any distance at all.
  bool distances_given() const noexcept { return data_ && data_->distances_given; }

  // Node of a CPU, or kNoNode for CPUs no node lists.
  NodeId node_of_cpu(CpuId cpu) const noexcept {
    return data_ && cpu < data_->cpu_node.size() ? data_->cpu_node[cpu] : kNoNode;
  }
  CpuId max_cpu() const noexcept {  // highest listed cpu id + 1, or 0
    return data_ ? static_cast<CpuId>(data_->cpu_node.size()) : 0;
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

  // The hooks the shared block came from (null for an empty Topology).
  const MetadataHooks* hooks() const noexcept { return data_ ? data_->hooks : nullptr; }

 private:
  friend class TopologyBuilder;
  // The shared block. Written only by TopologyBuilder::build() before the
  // first handle exists; immutable afterwards, so readers need no lock.
  // Every Vector here uses `hooks`.
  struct Data {
    explicit Data(const MetadataHooks* h) noexcept
        : hooks(h), nodes(h), raw_distance(h), distance(h), cpu_node(h), fallback(h) {}
    std::atomic<std::uint32_t> refs{1};  // handles alive; the last one frees
    const MetadataHooks* hooks;
    TopologySource source;
    Vector<NodeInfo> nodes;                  // sorted by id
    std::int16_t index_of[kMaxNodes];        // node id -> index in nodes, -1 = none
    Vector<std::uint16_t> raw_distance;      // n*n, row = from, 0 = not given
    Vector<std::uint16_t> distance;          // n*n effective
    Vector<NodeId> cpu_node;                 // cpu id -> node id
    // Fallback order per node index, flattened: node s owns
    // [s * fallback_stride, (s + 1) * fallback_stride).
    Vector<NodeId> fallback;
    std::size_t fallback_stride = 0;         // == with_memory.count()
    NodeMask all, with_memory, with_cpus;
    bool distances_given = false;
  };
  explicit Topology(Data* d) noexcept : data_(d) {}
  void retain() noexcept {
    if (data_) data_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept;

  Data* data_ = nullptr;
};

// Builds and validates a Topology. Errors found while adding (duplicate id,
// bad id, out of memory) are remembered and reported by build(), so a loader
// can add everything and check once. All memory (the builder's own and the
// Topology's) comes from `hooks`; when they run out build() returns
// Errc::no_memory and nothing is leaked. Not thread safe.
class TopologyBuilder {
 public:
  TopologyBuilder() noexcept : TopologyBuilder(std::string_view("builder", 7)) {}
  explicit TopologyBuilder(std::string_view source,
                           const MetadataHooks* hooks = default_metadata()) noexcept;
  explicit TopologyBuilder(const MetadataHooks* hooks) noexcept
      : TopologyBuilder(std::string_view("builder", 7), hooks) {}
  // A literal or char array: its length is counted here (the core has no
  // strlen, and std::string_view(const char*) calls it).
  template <std::size_t N>
  explicit TopologyBuilder(const char (&source)[N],
                           const MetadataHooks* hooks = default_metadata()) noexcept
      : TopologyBuilder(std::string_view(source, counted_length(source, N)), hooks) {}

  // Adds a node. `cpus` in any order; duplicates are an error.
  TopologyBuilder& add_node(NodeId id, std::span<const CpuId> cpus, std::uint64_t memory_bytes,
                            std::uint64_t free_bytes = kUnknownBytes) noexcept;
  TopologyBuilder& add_node(NodeId id, std::initializer_list<CpuId> cpus,
                            std::uint64_t memory_bytes,
                            std::uint64_t free_bytes = kUnknownBytes) noexcept {
    return add_node(id, std::span<const CpuId>(cpus.begin(), cpus.size()), memory_bytes,
                    free_bytes);
  }
  // Host convenience.
  TopologyBuilder& add_node(NodeId id, const std::vector<CpuId>& cpus, std::uint64_t memory_bytes,
                            std::uint64_t free_bytes = kUnknownBytes) noexcept {
    return add_node(id, std::span<const CpuId>(cpus), memory_bytes, free_bytes);
  }
  // Sets one entry of the distance matrix (nodes must be added first).
  TopologyBuilder& set_distance(NodeId from, NodeId to, std::uint32_t d) noexcept;
  // Sets a whole row: `row[k]` is the distance to the k-th node in id order.
  TopologyBuilder& set_distance_row(NodeId from, std::span<const std::uint32_t> row) noexcept;
  // Gives a node its machine frame ranges (see NodeInfo::frames).
  TopologyBuilder& set_frames(NodeId id, std::span<const FrameRange> frames) noexcept;
  TopologyBuilder& set_frames(NodeId id, std::initializer_list<FrameRange> frames) noexcept {
    return set_frames(id, std::span<const FrameRange>(frames.begin(), frames.size()));
  }
  TopologyBuilder& set_frames(NodeId id, const std::vector<FrameRange>& frames) noexcept {
    return set_frames(id, std::span<const FrameRange>(frames));
  }

  // Validates: ids < 1024 and unique; each cpu in at most one node; every
  // given distance in 1..255; self distance the minimum of its row (pairs
  // not given count as 10/20); frame ranges non-overlapping, mfn 0 never
  // managed; at least one node. The message names the node and what is
  // wrong (Errc::invalid_argument), or says what ran out (Errc::no_memory).
  Result<Topology, Error> build() const noexcept;

 private:
  struct PendingNode {
    NodeInfo info;
    bool frames_set = false;
  };
  struct Dist { NodeId from, to; std::uint32_t d; };
  static constexpr std::size_t counted_length(const char* s, std::size_t max) noexcept {
    std::size_t n = 0;
    while (n < max && s[n]) ++n;
    return n;
  }
  // Remembers the first error only.
  template <class... Parts>
  void fail(Errc code, const Parts&... parts) noexcept;

  const MetadataHooks* hooks_;
  TopologySource source_;
  Vector<PendingNode> nodes_;  // in insertion order
  NodeMask ids_;               // ids in nodes_
  Vector<Dist> distances_;
  bool failed_ = false;
  Error first_error_;          // meaningful when failed_
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
