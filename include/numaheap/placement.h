// numaheap: choosing the host nodes for a new guest.
//
// The placer picks the smallest node set that holds the guest's memory
// (keeping each node above its watermark) and, where the machine allows,
// has at least as many CPUs as the guest has vCPUs. Among sets of that size
// it minimises a cost that prefers, in this order of weight: no nodes shared
// with the guest's anti-affinity group, short distances inside the set and
// to the guest's devices and affinity group, low load (vCPUs per CPU, or the
// embedder's utilization figures), and much free memory left.
//
// Unlike an exhaustive k-combination search (libxl's, disabled above 16
// nodes) it grows one candidate set from every seed node, adding the
// nearest node that keeps the set able to fit, then improves the best set
// by single swaps: O(nodes^2 * k) per guest, well under 1 ms on 64 nodes.
//
// place() only decides. Making the decision stick against concurrent
// creations is the caller's job: claim the memory from the PageAllocator
// (GuestMemory does so) and place again on claim_exceeded.
//
// Two worlds: the Placer is host code (the toolstack's job, as libxl's
// placement is); a Placement is read by the core (GuestMemory::create), so
// its lists are numaheap::Vector and its reason a FixedString.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "numaheap/fixed_string.h"
#include "numaheap/guest_spec.h"
#include "numaheap/vector.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// What is in use on a node right now; index = dense node index.
struct NodeUsage {
  std::uint64_t free_bytes = 0;
  std::uint32_t vcpus = 0;           // vCPUs of guests already placed there
  double utilization = -1.0;         // 0..1 CPU utilization from the embedder, <0 = unknown
};

struct PlacementOptions {
  // Memory kept free on every node: max(watermark_bytes, watermark_fraction
  // of the node's size).
  std::uint64_t watermark_bytes = 64ull << 20;
  double watermark_fraction = 0.02;
};

// Nodes that other guests of this guest's groups occupy.
struct PlacementHints {
  NodeMask affinity_nodes;       // place near these
  NodeMask anti_affinity_nodes;  // keep away from these
};

struct NodeShare {
  NodeId node = kNoNode;
  std::uint64_t bytes = 0;
};

struct Placement {
  NodeMask nodes;
  Vector<NodeShare> memory;     // per node in the set, ascending node id
  Vector<NodeId> vcpu_nodes;    // host node for each vCPU
  Vector<NodeId> vnode_pnodes;  // host node for each vnode (vNUMA guests)
  double cost = 0;              // lower is better; for comparisons and tests
  FixedString<512> reason;      // why these nodes, for the admin (cut when longer)
  // False when a list ran out of memory (place() then fails with no_memory).
  bool ok() const noexcept { return memory.ok() && vcpu_nodes.ok() && vnode_pnodes.ok(); }
};

class Placer {
 public:
  explicit Placer(const Topology& topo, PlacementOptions options = {});

  // Usage of an idle host: each node's free memory as the topology says
  // (its size when unknown), no vCPUs.
  std::vector<NodeUsage> idle_usage() const;

  // Chooses nodes for `spec` (validated here). `usage` has one entry per
  // node (dense index). Errors: invalid_argument (bad spec or usage size),
  // no_memory (no node set can hold the guest; the message says how much
  // is missing).
  Result<Placement, Error> place(const GuestSpec& spec, std::span<const NodeUsage> usage,
                                 const PlacementHints& hints = {}) const;

  // Takes a placement's memory and vCPUs out of `usage` (for placing a
  // list of guests in order, each seeing what the earlier ones took).
  void commit(const Placement& p, std::span<NodeUsage> usage) const;

  // The watermark of a node (bytes kept free).
  std::uint64_t watermark(NodeId node) const noexcept;

  // The cost place() minimises, for a given set (exposed so tests can
  // compare against an exhaustive search). Infinity when the set cannot
  // hold the guest.
  double set_cost(const GuestSpec& spec, const NodeMask& set, std::span<const NodeUsage> usage,
                  const PlacementHints& hints = {}) const;

 private:
  const Topology* topo_;
  PlacementOptions options_;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
