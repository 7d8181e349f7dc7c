// numaheap's workload simulator: how well placement policies keep guest
// memory next to the vCPUs that use it, in simulated time, on real numaheap
// code (PageAllocator in frame-only mode, GuestMemory, FrameSwapMover, and
// for the `numaheap` policy the Migrator driven by step_at()).
//
// Model (docs/simulator.md says it in prose):
//  * Time runs in periods (`period_ms`, default 1 s). In each period every
//    guest page gets a number of accesses from each node (a Workload says
//    how many); a page's placement during a period is the one it had when
//    the period began, and moves made during a period count from the next.
//  * Cost of an access from node a to a page on node b: distance(a, b) / 10
//    local accesses (a local one costs 1). Everything else is converted to
//    local accesses of `local_ns` each:
//     - a move costs its copy time (4 KiB per page at `bandwidth_gb_s`) plus
//       `page_overhead_us` per move operation (a 4 KiB page, or a 2 MiB
//       block moved whole: page-table update, TLB shoot-down, fault);
//     - each sample a policy consumes costs one hinting fault (`sample_us`);
//     - while a period's copies flow (they start with the next period),
//       they take `bandwidth_gb_s` of their source's and destination's
//       `node_bandwidth_gb_s`: accesses to pages on those nodes in that
//       time cost (1 + bandwidth_gb_s / node_bandwidth_gb_s) times more.
//     - an access to a page mapped by a 4 KiB entry (its 2 MiB block split)
//       costs `split_page_cost` local accesses more than one through a
//       2 MiB mapping (TLB misses and the longer nested page walk); a
//       coalesce (4 KiB pages collapsed into a 2 MiB block) costs one move
//       operation and the copy of the whole block, on its node.
//    The oracle's moves and samples are free; every other policy pays
//    (the split-page cost included: its moves split blocks too).
//  * Samples: all policies see the same stream -- per period, the first
//    access to each touched page and the node it came from (what per-vCPU
//    hinting faults or PML give a hypervisor). autonuma only hears the ones
//    its own scanner armed, as Linux does.
//  * Everything is deterministic given the workload, the config and `seed`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numaheap/frame.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap::sim {

struct SimConfig {
  double seconds = 60;           // simulated time
  double period_ms = 1000;       // sampling and policy period
  double access_rate = 5e6;      // memory accesses per vCPU per second (synthetic scenarios)
  double local_ns = 100;         // time of one local access
  double bandwidth_gb_s = 8;     // copy bandwidth of a migration (1e9 bytes/s)
  double page_overhead_us = 3.7; // fixed cost of one move operation (4 KiB page or whole 2 MiB block)
  double sample_us = 1.0;        // cost of one sample (a hinting fault)
  double node_bandwidth_gb_s = 40;  // memory bandwidth of a node, shared by guests and copies
  double split_page_cost = 0.05;    // extra local accesses per access to a 4 KiB-mapped page (docs/simulator.md)
  double trace_weight = 1;       // real accesses one trace line stands for
  double guest_scale = 1;        // scales the synthetic guests' sizes (0 < s <= 1)
  double vcpu_move_us = 1000;    // cost of moving one vCPU to another node (numaheap-follow; the advice's model)
  std::uint64_t seed = 1;
  std::uint64_t periods() const;
};

// Empty when every field is in range, else what is wrong.
std::string validate(const SimConfig& config);

// One simulated guest at time 0.
struct GuestShape {
  std::string name;
  std::uint64_t pages = 0;             // RAM in 4 KiB pages
  std::vector<NodeId> vcpu_nodes;      // where each vCPU runs at first
  NodeId boot_node = kNoNode;          // where populate puts its memory
};

// Accesses of one page from one node during one period.
struct Touch {
  std::uint32_t guest = 0;
  Gfn gfn = 0;
  NodeId node = kNoNode;
  double count = 0;   // accesses
  double first = 0;   // when the first of them came (smaller = earlier)
};

// A vCPU changed node (reported, so the text output can say when).
struct VcpuMove {
  double at_s = 0;
  std::uint32_t guest = 0, vcpu = 0;
  NodeId node = kNoNode;
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string name() const = 0;
  virtual const std::vector<GuestShape>& guests() const = 0;
  // Frames other tenants hold on a node for the whole run.
  virtual std::uint64_t filler_pages(NodeId node) const { (void)node; return 0; }
  // Where a page was first touched, when not on its guest's boot node
  // (traces); kNoNode = the boot node.
  virtual NodeId first_touch_node(std::uint32_t guest, Gfn gfn) const { (void)guest, (void)gfn; return kNoNode; }
  // The accesses of period k, sorted by (guest, gfn, node), one entry per
  // (guest, gfn, node).
  virtual void period(std::uint64_t k, std::vector<Touch>& out) = 0;
  virtual std::vector<VcpuMove> vcpu_moves() const { return {}; }
};

// Sorts touches by (guest, gfn, node) and merges duplicates (counts add,
// `first` is the earliest), in linear time: counting sort by page.
void normalize_touches(std::vector<Touch>& touches, const std::vector<GuestShape>& guests);

// Synthetic scenarios: vcpu-move, mixed, overcommit, phases.
std::vector<std::string> scenario_names();
std::string scenario_description(std::string_view name);
Result<std::unique_ptr<Workload>, Error> make_scenario(std::string_view name, const Topology& topo,
                                                       const SimConfig& config);

// ---- traces (trace.cc; docs/simulator.md has the format) ----

struct TraceAccess {
  std::uint64_t seq = 0;
  std::uint32_t vcpu = 0;
  std::uint64_t page = 0;  // address >> 12
  bool write = false;
};
struct TracePlacement {
  std::uint32_t vcpu = 0;
  NodeId node = kNoNode;
  std::uint64_t at = 0;  // from this seq on (0: from the start)
  std::size_t line = 0;
};
struct Trace {
  std::string source;
  std::vector<TraceAccess> accesses;        // in file order, seq non-decreasing
  std::vector<TracePlacement> placements;   // in file order
};

// Syntax and self-consistency only. Errors: parse_error "SOURCE:LINE: what".
Result<Trace, Error> parse_trace(std::string_view text, std::string_view source);
Result<Trace, Error> load_trace(std::string_view path);
// Checks the trace against the topology (nodes exist and have CPUs, every
// vCPU is placed before its first access) and builds its workload: one
// guest whose pages are the trace's distinct pages in address order, each
// first placed on the node of its first access.
Result<std::unique_ptr<Workload>, Error> make_trace_workload(Trace trace, const Topology& topo,
                                                             const SimConfig& config);

// ---- the run (engine.cc, policies.cc) ----

std::vector<std::string> policy_names();  // none, naive, autonuma, numaheap, oracle
// Also accepted by run(), not run by default: numaheap-follow, the
// numaheap lane whose embedder moves vCPUs when the migrator advises it
// (Migrator::set_vcpu_advice) instead of letting the memory move.
inline constexpr const char* kFollowPolicy = "numaheap-follow";

struct PolicyResult {
  std::string name;
  double local_ratio_final = 0;   // last period
  double local_ratio_mean = 0;    // mean over periods
  double access_cost_mean = 0;    // per access, migrations included; 1 = all local, no moves
  std::uint64_t pages_migrated = 0, bytes_migrated = 0;
  std::uint64_t pages_bounced = 0;  // pages moved more than once
  std::uint64_t moves_failed = 0;   // asked for but refused (no memory, busy)
  std::uint64_t samples_used = 0;   // samples the policy consumed
  double migration_seconds = 0;     // copy + per-page time charged
  std::uint64_t move_ops = 0;       // move operations (a page, or a 2 MiB block moved whole)
  // Mean cost per access split by cause (they add up to access_cost_mean):
  // placement (distance), moves (copy + overhead), samples (hinting faults),
  // contention (accesses slowed while copies flow), split pages (accesses
  // through 4 KiB mappings).
  double cost_placement = 0, cost_moves = 0, cost_samples = 0, cost_contention = 0, cost_split = 0;
  std::uint64_t blocks_moved_whole = 0;  // huge blocks moved as one block
  std::uint64_t blocks_split = 0;        // huge blocks split by a page move
  std::uint64_t blocks_coalesced = 0;    // 2 MiB blocks rebuilt from 4 KiB pages
  std::uint64_t split_pages_final = 0; // guest pages mapped 4 KiB at the end
  std::vector<double> mib_moved;    // per period, cumulative
  std::uint64_t min_free_pages = 0; // lowest free frames seen on any guest node
  std::vector<double> local_ratio;  // per period
  std::vector<double> access_cost;  // per period
  // vCPU advice (numaheap lanes): records the migrator gave, and vCPU
  // moves the embedder made on it (numaheap-follow only; each charged
  // `vcpu_move_us` with the moves).
  std::uint64_t vcpu_advice = 0, vcpus_moved = 0;
};

struct SimReport {
  std::string topology;
  std::string workload;
  SimConfig config;
  std::uint64_t periods = 0;
  std::uint64_t guest_pages = 0;
  std::vector<VcpuMove> vcpu_moves;
  std::vector<PolicyResult> policies;  // in the order asked
};

// Called after each period with (done, total) periods.
using Progress = std::function<void(std::uint64_t, std::uint64_t)>;

// Errors: invalid_argument (unknown policy, bad config), no_memory (the
// guests do not fit), with a message.
Result<SimReport, Error> run(const Topology& topo, Workload& workload, const SimConfig& config,
                             const std::vector<std::string>& policies, const Progress& progress = {});

}  // namespace numaheap::sim
