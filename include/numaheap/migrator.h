// numaheap: the migrator -- moves guest pages toward the node of the vCPUs
// that touch them, and rehomes whole guests on request.
//
// Contract:
//  * Inputs: record_access(guest, gfn, cpu) / record_vcpu_access(guest, gfn,
//    vcpu) from whatever the embedder samples (hinting faults, A/D scans,
//    PML, dirty logs), set_vcpu_cpu(), and the guest's vNUMA binding. These
//    three are lock-free, never allocate, and may run on any thread at any
//    time, also concurrently with step() and remove_guest().
//  * Policy (per page, evaluated by step()):
//     - pinned and dedup-shared pages never move;
//     - a vNUMA-bound guest's page goes to its vnode's pnode and nowhere
//       else, whatever single accesses say;
//     - otherwise a page moves only after two consecutive samples from the
//       same node (two-stage filter), and never while it was touched from
//       more than one node in the last two epochs ("shared": no ping-pong);
//       except (quick_moves) on its first sample ever, or on a clean switch:
//       at least two earlier samples that had not switched node for three
//       epochs, then samples from one new node only ("quick"); neither
//       while the page's switch memory lasts (after a move, kMovedScore
//       epochs), nor for a 2 MiB block kept whole whose pages not sampled
//       lately were last sampled from a node other than the block's own;
//       history decays every `decay_steps` steps;
//     - vCPU moves are events: when set_vcpu_cpu leaves a node without any
//       vCPU of the guest and all the vCPUs that were on it went to one
//       node, the next step moves every page whose samples came only from
//       the vacated node (its last sample however old, none recent from
//       elsewhere, no switch memory) to that node without waiting for a new sample
//       ("followed"; a 2 MiB block whole when all its sampled pages are
//       such pages; watermark and rate limit apply; cancelled if a vCPU
//       returns first) -- an embedder that calls step() right after moving
//       vCPUs has the memory there before they run; a page on the vacated
//       node whose recent samples came from one node that runs vCPUs of the
//       guest (and from the vacated node) follows on its first sample
//       there; pages sampled from two nodes with vCPUs keep the filter above;
//     - a destination is used only while it keeps more than its watermark
//       free, at most `rate_limit_mb_s` per destination node -- or, when
//       the embedder reports the node's spare memory bandwidth
//       (`spare_bandwidth_mb_s`), up to `spare_bandwidth_share` of it --
//       and a node whose moves failed (no memory) is backed off
//       exponentially.
//  * Broken RAM first: when the mover reports new offline events, step()
//    searches the guest for pages whose frames are pending offline and
//    moves each to a fresh block (its vnode's binding or its current node,
//    else the nearest allowed node with room) before any rehome or policy
//    move, ignoring rate limit and watermark; the allocator then retires
//    the old frame as it is freed. Pinned and dedup-shared pages stay
//    (their owners free them); pages that fail are tried again next step.
//  * step() is deterministic given the inputs and `now_ns` (step_at), so
//    tests and the simulator can drive it; in the host library start()
//    runs it every period on a background thread and stop() wakes and joins
//    that thread promptly (the freestanding core has no threads: its
//    start() returns unsupported).
//  * Rehome: rehome() queues a move of a whole guest (or one vnode) to a
//    node set; step() advances it, guests keep running; progress is
//    readable lock-free; cancel_rehome() stops it between batches. The
//    scope is spread over the targets as placement spreads a guest: a
//    vnode bound to a node stays whole (each goes to the target with most
//    room left), other memory is split evenly in 2 MiB granules, capped by
//    each target's room. The new layout is passed to the mover at once
//    (Mover::relayout: GuestMemory's layout and home, hence its balloon,
//    claims and the cold-store pools made from it, follow; a pool made
//    from a node mask needs ColdStore::set_pool_home).
//    Rehome moves keep the destination's watermark and the rate limit
//    like policy moves, unless rehome_override_limits is given.
//  * Locking: add_guest, remove_guest, bind_vnode, rehome and
//    set_vcpu_advice serialise with step() (they wait out a running step).
//    stats(), sample_share(), vcpu_advice(), vcpu_advice_for() and
//    check_invariants() wait only for the step's bookkeeping between two
//    mover calls, never for a mover call itself (a move_pages of a few
//    thousand pages takes milliseconds): they see counters as of a batch
//    boundary and the last whole step's vCPU advice. Movers are called
//    only by step() (one call at a time), so a mover's hooks may call the
//    inputs and those readers, but nothing else of the Migrator.
//  * A removed guest's tracking memory is freed after a grace period: once
//    no input call that may have seen the guest is still running (inputs
//    announce themselves in a per-guest-id counter; they never lock or
//    allocate for it). remove_guest frees it at once when no input races
//    it, else a later add_guest, remove_guest or step does.
//    MigratorStats::tracking_bytes says how much is held. A removal that
//    fails (no_memory) leaves the guest as it was, visible to the inputs
//    throughout; a successful one also drops the guest's vCPU advice (a new
//    guest may get its id before the next step).
//  * create() refuses NaN, infinite and out-of-range rates and fractions.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "numaheap/metadata.h"
#include "numaheap/vector.h"

#include "numaheap/guest_memory.h"
#include "numaheap/mover.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

using GuestId = std::uint32_t;
inline constexpr std::uint32_t kAllVnodes = 0xffffffffu;
// Migrator::rehome flags.
inline constexpr std::uint32_t rehome_override_limits = 1u;  // ignore watermark and rate limit

// Largest rate_limit_mb_s (1 PiB/s): token counts stay exact integers.
inline constexpr double kMaxRateLimitMbS = 1024.0 * 1024 * 1024;

struct MigratorConfig {
  std::uint32_t period_ms = 1000;          // background step period (> 0)
  std::uint64_t scan_pages = 1u << 16;     // pages the policy examines per guest per step
  std::uint32_t decay_steps = 1;           // access history ages one epoch every N steps
  double rate_limit_mb_s = 256;            // per destination node; 0 = unlimited; <= kMaxRateLimitMbS
  // A destination keeps max(watermark_pages, min(watermark_fraction *
  // managed, watermark_max_pages)) frames free.
  std::uint64_t watermark_pages = 0;
  double watermark_fraction = 0.02;        // 0..1 (finite)
  // The fraction's cap: one 2 MiB block's worth. A fraction alone
  // kept hundreds of MiB idle on big nodes -- more than an overcommitted
  // node had left, so hot pages could not follow their vCPUs at all; the
  // simulator's overcommit scenario puts the break-even with filling a node
  // to its last frame at 1..2 MiB (docs/simulator.md).
  std::uint64_t watermark_max_pages = 512;
  std::uint32_t backoff_max_steps = 64;    // cap of the per-node exponential backoff
  std::uint32_t max_guests = 64;           // slots allocated by create()
  std::uint64_t rehome_pages_per_step = 1u << 15;
  // Adaptive rate limit: the embedder's measure of a node's spare memory
  // bandwidth now (MB/s; negative = unknown). When set, a destination may
  // take max(rate_limit_mb_s, spare_bandwidth_share * spare) per second.
  // Called from step() with the migrator's lock held: it must not call the
  // Migrator. Null: the fixed rate_limit_mb_s.
  double (*spare_bandwidth_mb_s)(void* ctx, NodeId node) = nullptr;
  void* spare_bandwidth_ctx = nullptr;
  double spare_bandwidth_share = 0.5;  // 0..1 (finite)
  // Sampling advice (sample_share): the share of a guest's pages worth
  // sampling next period falls by half per quiet step down to this floor
  // (0 < floor <= 1; 1 = always sample everything).
  double min_sample_share = 1.0 / 32;
  std::uint32_t rehome_max_passes = 8;     // passes retrying busy / no_memory pages
  // Quick moves: a page's first sample ever from another node, or a clean
  // switch of a page sampled from one node only, moves it at once (see the
  // policy above); false: the two-stage filter for every page.
  bool quick_moves = true;
  // Huge pages kept whole (page-granular guests, frame swap): a 2 MiB
  // block whose samples come from one node moves as one block; it is split
  // only when two nodes or more give it real weight (two samples each);
  // an aligned 2 MiB range of 4 KiB pages settled on one node is collapsed
  // into one block again (Mover::coalesce). false: every policy move is of
  // a 4 KiB page and splits its block for good (the old behaviour).
  bool keep_huge_pages = true;
  // Time for step() (step_at takes it from the caller): the embedder's
  // monotonic clock in ns. Null: the host library's steady clock; in the
  // freestanding core (no clock) each step() counts as one period_ms.
  std::uint64_t (*clock_ns)(void* ctx) = nullptr;
  void* clock_ctx = nullptr;
  // Where slots, trackers and tables come from; null = the default hooks.
  const MetadataHooks* metadata = nullptr;
};

struct MigrateGuestOptions {
  // Pages follow their vnode's pnode (layout[i].pnode, changed by
  // bind_vnode and rehome), not accesses.
  bool vnuma_bound = false;
  // gfn ranges per vnode with their pnode; empty = one range of all pages.
  Vector<GuestRange> layout;
  NodeMask allowed;          // nodes pages may move to; empty = every memory node
  std::uint32_t vcpus = 0;   // vCPU slots for set_vcpu_cpu / record_vcpu_access
  bool auto_balance = true;  // false: only bindings and rehome move pages
  MoveGranularity granularity = MoveGranularity::pages;  // policy moves
};

// Options for a GuestMemory: its layout and vCPU count.
MigrateGuestOptions migrate_options_for(const GuestMemory& guest, bool vnuma_bound);

struct NodePairMoves {
  NodeId from = kNoNode, to = kNoNode;
  std::uint64_t pages = 0, bytes = 0;
};

struct MigratorStats {
  std::uint64_t steps = 0;
  std::uint64_t pages_scanned = 0;
  // Of pages_scanned: pages looked at because they were sampled since the
  // last look, outside the cursor's window (MigratorConfig::scan_pages).
  std::uint64_t pages_scanned_sampled = 0;
  std::uint64_t pages_moved = 0, bytes_moved = 0;  // 4 KiB frames that changed node
  std::uint64_t outcomes[kMoveOutcomeCount] = {};  // per page asked, by MoveOutcome
  std::uint64_t skipped_pinned = 0, skipped_shared = 0;  // p2m flags
  std::uint64_t skipped_shared_access = 0;  // touched from several nodes
  std::uint64_t skipped_rate_limit = 0, skipped_watermark = 0, skipped_backoff = 0;
  std::uint64_t flushes = 0;
  std::uint64_t pages_evacuated = 0;  // 4 KiB frames moved off frames pending offline
  // Pages moved on their first sample after their node lost its last vCPU.
  std::uint64_t pages_followed = 0;
  // Pages moved on their first sample from another node without an event:
  // their first sample ever, or a clean switch (MigratorConfig::quick_moves).
  std::uint64_t pages_quick = 0;
  // Huge pages (MigratorConfig::keep_huge_pages): 2 MiB blocks the policy
  // moved whole, split by a page move (truly shared, or no room for a
  // block), and collapsed back from 4 KiB pages.
  std::uint64_t blocks_moved_whole = 0, blocks_split = 0, blocks_coalesced = 0;
  std::uint64_t ns_stepping = 0, ns_moving = 0;
  // Share of recent samples that came from the node the page is on (last
  // step that saw samples), -1 before any.
  double local_access_ratio = -1;
  Vector<NodePairMoves> moves;  // non-zero pairs, by (from, to)
  // Per-guest tracking memory held now (access words, vCPU table, slot),
  // including removed guests still in their grace period (retired_guests).
  std::uint64_t tracking_bytes = 0;
  std::uint64_t retired_guests = 0;
  // vCPU advice records given (Migrator::vcpu_advice; one per vCPU per step
  // the advice stands).
  std::uint64_t advice_given = 0;
  // Pages a step left in place because the embedder followed the advice
  // for their vCPUs (VcpuAdviceConfig::on_advice returned nonzero).
  std::uint64_t advice_held = 0;
};

// One guest's share of MigratorStats (Migrator::guest_stats), since its
// add_guest. A VMM sharing one migrator between guests reads its own
// guest's progress here (e.g. "did my pages move since I last looked")
// without taking the migrator's lock.
struct MigrateGuestStats {
  std::uint64_t pages_scanned = 0;  // looked at by the policy
  // 4 KiB frames of this guest that changed node, whatever moved them:
  // the policy, rehome, evacuation of failing frames, coalescing.
  std::uint64_t pages_moved = 0, bytes_moved = 0;
  std::uint64_t pages_followed = 0, pages_quick = 0;  // as in MigratorStats
  std::uint64_t pages_evacuated = 0;                  // as in MigratorStats
  // This guest's samples from the node their page was on, at the last
  // step that saw samples of it; -1 before any.
  double local_access_ratio = -1;
  std::uint32_t vcpus = 0;  // its vCPU slots (MigrateGuestOptions::vcpus, fixed at add_guest)
};

enum class RehomeState : std::uint8_t { idle = 0, running = 1, done = 2, cancelled = 3, failed = 4 };

struct RehomeProgress {
  RehomeState state = RehomeState::idle;
  std::uint64_t total = 0;    // pages in scope
  std::uint64_t done = 0;     // pages on a target node or permanently skipped
  std::uint64_t moved = 0;    // frames moved by this rehome
  std::uint64_t skipped = 0;  // pinned / shared / not present (count as done)
  std::uint64_t failed = 0;   // still elsewhere after the last pass
  std::uint32_t pass = 0;
};

struct StepReport {
  std::uint64_t scanned = 0, moved = 0, failed = 0;
};

// ---- vCPU advice: move the vCPU instead of the memory (migrate/vcpu_advice.cc) ----
//
// When a guest's vCPUs on one node (a "group": the tracker knows the node a
// sample came from, not the vCPU) have most of their hot memory on another
// node, moving the group there can be cheaper than moving the memory here.
// Each step (when enabled) weighs, per group, the pages sampled in the last
// two epochs only from that node (or from it and nodes with no vCPU of the
// guest): moving them to the group (copy + per-page cost, plus the group
// running remote while the rate limit drips them over) against moving the
// group's vCPUs to the node holding the largest share (a fixed cost per
// vCPU, plus moving what is not there yet). Advice is only reported: the
// migrator's own moves are unchanged, scheduling stays the embedder's --
// unless the embedder's on_advice says it follows (see there).
// Hot pages are counted from samples, so an embedder sampling a share of
// the pages sees about that share of them: the memory cost is a lower bound.
struct VcpuAdvice {
  GuestId guest = 0;
  std::uint32_t vcpu = 0;
  NodeId from_node = kNoNode;  // where the vCPU runs now
  NodeId to_node = kNoNode;    // where its group's hot memory is
  std::uint32_t group = 0;     // the guest's vCPUs on from_node: the advice is for all of them together
  std::uint64_t pages = 0;        // hot pages that would otherwise move to from_node
  std::uint64_t pages_after = 0;  // hot pages not on to_node (they would still move, to to_node)
  double memory_cost_us = 0;      // moving `pages` (whole group)
  double vcpu_cost_us = 0;        // moving the group's vCPUs and then `pages_after`
  double saving_us = 0;           // memory_cost_us - vcpu_cost_us (> 0)
};

struct VcpuAdviceConfig {
  bool enabled = false;
  // The cost model (defaults as the simulator's: docs/simulator.md).
  double copy_gb_s = 8;           // copy bandwidth of one move, 1e9 B/s; > 0
  double page_overhead_us = 3.7;  // fixed cost of one 4 KiB move (page tables, TLB shoot-down)
  double vcpu_move_us = 1000;     // moving one vCPU to another node (caches, TLB refilled remotely)
  // Share of a vCPU's time that waits on memory: a vCPU whose memory is
  // remote at distance d runs share x (d/10 - 1) slower while it waits
  // for the rate limit to let the pages over. 0..1.
  double memory_bound_share = 0.5;
  double margin = 2;              // advise when memory cost >= margin x vCPU cost; >= 1
  double min_share = 0.75;        // to_node holds at least this share of the group's hot pages; 0..1
  std::uint64_t min_pages = 512;  // and at least this many (2 MiB)
  // CPU room, from the embedder (a hypervisor's affinity masks and free
  // CPUs). vcpu_allowed: nonzero if the vCPU may run on the node (null:
  // any node with CPUs). free_cpus: CPUs of the node free for more vCPUs
  // now, negative = unknown (null or unknown: the node's CPUs less the
  // guest's vCPUs already there -- other guests not counted). Called from
  // step() with the migrator's lock held: they must not call the Migrator.
  int (*vcpu_allowed)(void* ctx, GuestId guest, std::uint32_t vcpu, NodeId node) = nullptr;
  std::int64_t (*free_cpus)(void* ctx, NodeId node) = nullptr;
  void* room_ctx = nullptr;
  // Called from step() for each advice given, lock held: it must not call
  // the Migrator, except the lock-free inputs. Return nonzero when the
  // embedder follows it -- it moves the vCPU to to_node now
  // (set_vcpu_cpu, from here or before the next step): then this step
  // leaves the group's hot pages where they are (their sample streaks are
  // reset, so the samples taken on the node the vCPUs leave do not move
  // them there). Return 0 (or no callback): nothing changes.
  int (*on_advice)(void* ctx, const VcpuAdvice* advice) = nullptr;
  void* on_advice_ctx = nullptr;
};

class VcpuAdvisor;

class Migrator {
 public:
  NUMAHEAP_METADATA_NEW_DELETE
  // The topology must outlive the migrator. Errors: invalid_argument (a
  // zero period, max_guests, decay_steps, scan_pages; a rate or fraction
  // out of range).
  static Result<std::unique_ptr<Migrator>> create(const Topology& topo, const MigratorConfig& config = {});
  ~Migrator();  // stop()s
  Migrator(const Migrator&) = delete;
  Migrator& operator=(const Migrator&) = delete;

  // The mover must outlive the registration. Errors: busy (no free slot),
  // invalid_argument (layout outside the mover's pages), invalid_node
  // (`allowed` not memory nodes; vnuma_bound with a pnode unknown or not in
  // `allowed`), no_memory (also: `options.layout` is !ok(), its builder ran
  // out).
  Result<GuestId> add_guest(Mover& mover, const MigrateGuestOptions& options = {});
  Status remove_guest(GuestId id);

  // ---- inputs (hot, lock-free) ----
  void record_access(GuestId id, Gfn gfn, CpuId cpu) noexcept;
  void record_vcpu_access(GuestId id, Gfn gfn, std::uint32_t vcpu) noexcept;
  Status set_vcpu_cpu(GuestId id, std::uint32_t vcpu, CpuId cpu) noexcept;
  // Sampling advice: the share (min_sample_share..1) of the guest's pages
  // worth arming for samples (hinting faults) next period -- every sample
  // costs the guest a fault. 1 after a step that saw remote samples or
  // moved pages, and at once after set_vcpu_cpu moved a vCPU to another
  // node (and after the step that found it); halved per quiet step
  // otherwise. Errors: invalid_argument (unknown guest).
  Result<double> sample_share(GuestId id) const;
  // Pages of vnode `vnode` now belong on `pnode` (vnuma_bound guests).
  Status bind_vnode(GuestId id, std::uint32_t vnode, NodeId pnode);

  // ---- running ----
  // start/stop: a thread calling step() every period, in the host library;
  // in the freestanding core start() returns unsupported and stop() and
  // request_step() do nothing -- a hypervisor calls step() from its own
  // timer instead.
  // start, stop, running and request_step may be called from any threads,
  // also at the same time (not from the migrator's own hooks):
  //  * start() while a stop() is joining the thread (waiting out its
  //    step) waits until that thread has exited, then starts a new one:
  //    the last call wins, as if they had come one after the other.
  //    Errors: busy (a thread runs and no stop() is ending it),
  //    no_memory (no memory for the thread's state, or the system refused
  //    a thread -- RLIMIT_NPROC, a cgroup's pids.max, no address space for
  //    its stack); nothing changed then.
  //  * stop() returns once the thread it found has exited, also when
  //    another stop() is already joining it; idempotent. Called from the
  //    thread itself (a mover hook, which must not call it): does nothing.
  //  * running(): a thread exists -- true from a successful start() until
  //    the stop() that joins it returns.
  Status start();
  void stop();
  bool running() const noexcept;
  // The background thread steps at once instead of waiting out the rest of
  // its period (e.g. the sampler saw a moved vCPU's pages: they may follow
  // now). Nothing without start(). Safe from any thread.
  void request_step() noexcept;
  StepReport step();                        // now = steady clock
  StepReport step_at(std::uint64_t now_ns);  // deterministic time for tests

  // ---- rehome ----
  // Errors: invalid_argument (unknown guest / vnode / flags, or the mover
  // refused the new layout), invalid_node (empty or memoryless targets),
  // busy (a rehome of this guest is running).
  Status rehome(GuestId id, const NodeMask& targets, std::uint32_t vnode = kAllVnodes, std::uint32_t flags = 0);
  Result<RehomeProgress> rehome_progress(GuestId id) const noexcept;
  Status cancel_rehome(GuestId id) noexcept;

  MigratorStats stats() const;
  // This guest's counters, lock-free (never waits for a step: callable
  // from a fault handler). Error: invalid_argument (no such guest).
  Result<MigrateGuestStats> guest_stats(GuestId id) const noexcept;
  Status check_invariants() const;

  // ---- vCPU advice (see VcpuAdvice) ----
  // Replaces the advice settings; takes effect at the next step. Errors:
  // invalid_argument (NaN, infinite or out-of-range numbers; nothing
  // changed), no_memory.
  Status set_vcpu_advice(const VcpuAdviceConfig& config);
  // The last step's advice, all guests, by guest then vCPU: writes the
  // first out.size() and returns how many there are.
  std::size_t vcpu_advice(std::span<VcpuAdvice> out) const;
  // The last step's advice for one vCPU: true and `out` filled, or false.
  // Errors: invalid_argument (unknown guest or vCPU; `out` untouched).
  Result<bool> vcpu_advice_for(GuestId id, std::uint32_t vcpu, VcpuAdvice& out) const;

  struct NUMAHEAP_INTERNAL Impl;

 private:
  friend struct MigratorTestPeer;  // tests only: holds an input's grace-period guard
  explicit Migrator(Impl* impl) noexcept : impl_(impl) {}
  Impl* impl_;
  VcpuAdvisor* advisor_ = nullptr;  // set_vcpu_advice; guarded by Impl::lock
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
