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
// vNUMA guests: every vnode gets a whole host node where capacity allows
// (memory above the watermark, and CPUs: vCPUs already placed there plus
// this guest's vs the node's CPUs), and the guest's own vdistances are
// matched to host distances (vnodes declared near land on near nodes). When
// vnodes must share a node, or a node runs more vCPUs than it has CPUs, the
// reason says so ("warning: ...").
//
// Memory split (guests without vNUMA): the shares sum to the guest's memory
// exactly (to the 4 KiB frame); each is a multiple of 2 MiB where the
// nodes' room allows, else of 1 MiB, else of 4 KiB: a total of whole MiB
// gets shares of whole MiB whenever the set's whole-MiB room holds it; what
// is off the grid goes to the nodes with the most room first.
//
// Constraints from the spec (see docs/guests.md, "Constraints"):
// - memory mode bind (or unset) with a node set (GuestSpec::allowed_nodes,
//   VNodeSpec::nodes / pnode): only those nodes; when they cannot hold the
//   memory place() fails with no_memory naming the constraint, never
//   places elsewhere;
// - prefer: those nodes first (a vnode outside its preferred nodes costs
//   more than sharing one); when they cannot hold it, elsewhere, with a
//   "warning: preferred ..." in the reason;
// - interleave: the memory is spread evenly (where the nodes' room allows)
//   over every node of the set (the guest's allowed nodes, or the vnode's
//   nodes); for vNUMA guests the pieces are in Placement::vnode_memory;
// - hard vCPU pins: the vCPU runs on its pinned CPUs' node (a pin across
//   nodes: the node of its memory when the pin includes it, else the pin's
//   node with most pinned CPUs, the lowest id on ties) and counts against
//   that node's CPUs; memory is drawn toward pinned vCPUs (a cost term);
// - soft pins (xl cpus_soft): the same pull on memory; a soft-pinned vCPU
//   of a guest without vNUMA runs on its soft node when that node is in the
//   set and has a free CPU, otherwise where it would without the pin;
// - devices (libvirt <hostdev>, resolved by the reader): memory near them.
// Guests without vNUMA count CPUs per node: the set must have free CPUs
// (CPUs minus vCPUs already placed) for the guest's unpinned vCPUs when the
// machine has them, and each node gets no more vCPUs than it has free CPUs
// while another node of the set has one spare.
//
// Groups: a PlacementSession places a list of guests in order and keeps
// the nodes of every affinity / anti-affinity group (GuestSpec's
// affinity_group / anti_affinity_group), so library users get the same
// grouping the `numaheap place` command applies.
//
// Load: measure_node_utilization() reads per-CPU busy time from /proc/stat
// twice and fills NodeUsage::utilization.
//
// Two worlds: the Placer is host code (the toolstack's job, as libxl's
// placement is); a Placement is read by the core (GuestMemory::create), so
// its lists are numaheap::Vector and its reason a FixedString.
//
// Threading: a Placer is immutable after construction (place() may run on
// many threads); a PlacementSession is not synchronised (one caller at a
// time). Errors are returned, never thrown; bad input changes nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
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

class PageAllocator;

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

// One piece of a vnode's memory on one host node (vNUMA guests).
struct VNodeShare {
  std::uint32_t vnode = 0;
  NodeId node = kNoNode;
  std::uint64_t bytes = 0;
};

struct Placement {
  NodeMask nodes;
  Vector<NodeShare> memory;     // per node in the set, ascending node id
  Vector<NodeId> vcpu_nodes;    // host node for each vCPU (a hard pin's node when pinned)
  Vector<NodeId> vnode_pnodes;  // home node of each vnode (vNUMA guests): where its
                                // memory is, or for an interleaved vnode the node
                                // holding most of it
  // vNUMA guests: every vnode's memory per host node, in vnode order then
  // ascending node id; one piece per vnode, several for a vnode whose
  // memory is interleaved over a node set. Pieces of a vnode sum to its size.
  Vector<VNodeShare> vnode_memory;
  double cost = 0;              // lower is better; for comparisons and tests
  FixedString<512> reason;      // why these nodes, for the admin (cut when longer);
                                // "warning: " marks a compromise (shared node, CPUs overcommitted)
  // False when a list ran out of memory (place() then fails with no_memory).
  bool ok() const noexcept {
    return memory.ok() && vcpu_nodes.ok() && vnode_pnodes.ok() && vnode_memory.ok();
  }
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

  // Gives a placement's memory and vCPUs back to `usage` (the guest is
  // gone): the inverse of commit().
  void release(const Placement& p, std::span<NodeUsage> usage) const;

  // The watermark of a node (bytes kept free).
  std::uint64_t watermark(NodeId node) const noexcept;

  // The cost place() minimises, for a given set (exposed so tests can
  // compare against an exhaustive search). Infinity when the set cannot
  // hold the guest.
  double set_cost(const GuestSpec& spec, const NodeMask& set, std::span<const NodeUsage> usage,
                  const PlacementHints& hints = {}) const;

 private:
  Topology topo_;  // a reference-counted handle: a Placer may outlive the caller's copy
  PlacementOptions options_;
};

// Places guests one after another on one host: keeps the usage (each guest
// sees what the earlier ones took) and the nodes of every affinity and
// anti-affinity group, so a guest of group "web" goes near the other "web"
// guests and a guest of anti-affinity group "db" away from the other "db"
// guests. Invariant: usage().size() == topology node count; a group's node
// counts are the number of placed guests of that group with memory or vCPUs
// on each node (dense index), all zero groups are dropped.
class PlacementSession {
 public:
  // An idle host (Placer::idle_usage).
  explicit PlacementSession(const Topology& topo, PlacementOptions options = {});
  // A host already in use: `usage` has one entry per node (dense index).
  // A wrong size is refused without a crash: the session starts idle and
  // valid() is false.
  PlacementSession(const Topology& topo, std::vector<NodeUsage> usage,
                   PlacementOptions options = {});

  // False when the usage given at construction had the wrong size (the
  // session then starts idle).
  bool valid() const noexcept { return valid_; }

  // Places `spec` with its groups' hints and, on success, takes its memory
  // and vCPUs out of the usage and records its nodes in its groups.
  Result<Placement, Error> place(const GuestSpec& spec);
  // The hints place() uses for `spec` (its groups' nodes so far).
  PlacementHints hints_for(const GuestSpec& spec) const;
  // The guest is gone: gives back its memory and vCPUs and leaves its groups.
  void release(const GuestSpec& spec, const Placement& p);

  std::span<const NodeUsage> usage() const noexcept { return usage_; }
  // Replace the utilization figures (e.g. from measure_node_utilization).
  std::span<NodeUsage> mutable_usage() noexcept { return usage_; }
  const Placer& placer() const noexcept { return placer_; }

 private:
  void count(const std::string& group, std::map<std::string, std::vector<std::uint32_t>>& groups,
             const Placement& p, bool add);
  NodeMask nodes_of(const std::map<std::string, std::vector<std::uint32_t>>& groups,
                    const std::string& group) const;

  Topology topo_;  // a reference-counted handle
  Placer placer_;
  std::vector<NodeUsage> usage_;
  std::map<std::string, std::vector<std::uint32_t>> affinity_, anti_;
  bool valid_ = true;
};

// Usage from a page allocator's counters: free + cached - claimed frames
// per node (what a new guest could still get), no vCPUs, utilization unknown.
std::vector<NodeUsage> heap_usage(const PageAllocator& pa);

// A control-domain layout (see control_domain_spec in guest_spec.h) from the
// allocator's current free memory above each node's watermark (as a Placer
// with `options` counts it), not the topology's load-time figures.
Result<GuestSpec, Error> control_domain_spec(const PageAllocator& pa, std::uint64_t total_bytes,
                                             std::string name = "dom0",
                                             const PlacementOptions& options = {});

// CPU time per CPU from /proc/stat (the cpuN lines, in USER_HZ ticks):
// busy = user + nice + system + irq + softirq + steal; total adds idle and
// iowait. Index = CPU id; CPUs missing from the file have present = false.
struct CpuTimes {
  std::vector<std::uint64_t> busy, total;
  std::vector<bool> present;
};
// Parses /proc/stat text; `source` names it in errors ("file:line: ...").
Result<CpuTimes, Error> parse_proc_stat(std::string_view text, std::string_view source);
// Reads `proc_root`/proc/stat ("" or "/" = this machine's).
Result<CpuTimes, Error> read_cpu_times(const std::string& proc_root = "");
// Per node (dense index), the fraction 0..1 of its CPUs' time spent busy
// between two samples; -1 for a node without CPUs, whose CPUs are missing
// from a sample, or when no time passed.
std::vector<double> node_utilization(const Topology& topo, const CpuTimes& before,
                                     const CpuTimes& after);
// Two samples `interval` apart, written into usage[i].utilization. Errors:
// invalid_argument (usage size), io_error / parse_error from /proc/stat.
Result<void, Error> measure_node_utilization(const Topology& topo, std::span<NodeUsage> usage,
                                             std::chrono::milliseconds interval,
                                             const std::string& proc_root = "");

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
