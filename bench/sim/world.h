// Internals of the simulator shared by engine.cc and policies.cc: one
// "world" per policy (its own allocator, guests and movers, so policies
// never see each other's moves) and the Policy interface.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/sim/sim.h"
#include "numaheap/guest_memory.h"
#include "numaheap/mover.h"
#include "numaheap/page_allocator.h"

namespace numaheap::sim {

class World;

// Wraps a guest's FrameSwapMover and books every page that really changed
// node (moved more than once = bounced) and every refused move.
class CountingMover final : public Mover {
 public:
  CountingMover(World& world, std::uint32_t guest, FrameSwapMover& inner);
  std::uint64_t page_count() const noexcept override { return inner_.page_count(); }
  Status query(Gfn first, std::span<PageState> out) noexcept override { return inner_.query(first, out); }
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                          std::span<MoveOutcome> out) noexcept override;
  bool node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept override {
    return inner_.node_frames(node, free, managed);
  }
  // Books one move operation, the pages that changed node, and the copy of
  // the rest of the block on its own node.
  Result<MoveTotals> coalesce(Gfn head, unsigned order, NodeId target, MoveOutcome& out) noexcept override;

 private:
  World& world_;
  std::uint32_t guest_;
  FrameSwapMover& inner_;
};

class World {
 public:
  // Builds the allocator (frame-only), the other tenants' filler, and the
  // guests, populated on their boot node and then moved (free, uncounted)
  // to their first-touch nodes.
  static Result<std::unique_ptr<World>, Error> create(const Topology& topo, const Workload& workload);
  ~World();

  const Topology& topo() const { return *topo_; }
  std::size_t guest_count() const { return guests_.size(); }
  GuestMemory& guest(std::uint32_t g) { return *guests_[g]; }
  Mover& mover(std::uint32_t g) { return *movers_[g]; }
  NodeId node_of(std::uint32_t g, Gfn gfn) const;
  // Order of the block mapping the page (0: a 4 KiB mapping).
  unsigned order_of(std::uint32_t g, Gfn gfn) const;
  // Moves pages of guest g to `target` through its counting mover; returns
  // how many moved.
  std::uint64_t move(std::uint32_t g, std::span<const Gfn> gfns, NodeId target);
  // Free frames on node n (buddy + per-CPU caches).
  std::uint64_t free_pages(NodeId n) const;
  std::uint64_t managed_pages(NodeId n) const;
  std::uint64_t lowest_free() const;

  // Bookkeeping, written by CountingMover.
  std::uint64_t moved = 0, bounced = 0, failed = 0;
  std::uint64_t move_ops = 0;  // a 4 KiB page, or a block moved whole
  std::vector<std::uint64_t> moved_from, moved_to;  // per dense node, 4 KiB frames
  std::vector<std::uint64_t> copied_in_place;       // per dense node: frames a coalesce copied there
  std::uint64_t coalesced = 0;                      // blocks rebuilt
  std::uint64_t blocks_whole = 0, blocks_split = 0;  // huge blocks moved whole / split by a page move
  std::vector<std::vector<std::uint8_t>> move_counts;  // per guest, per gfn, saturating
  // What the hypervisor knows about its vCPUs: where each starts and when
  // each moves (the workload's; policies may use them as events).
  std::vector<GuestShape> shapes;
  std::vector<VcpuMove> vcpu_moves;

 private:
  World() = default;
  const Topology* topo_ = nullptr;
  std::unique_ptr<PageAllocator> pa_;
  std::vector<std::unique_ptr<GuestMemory>> guests_;
  std::vector<std::unique_ptr<FrameSwapMover>> swappers_;
  std::vector<std::unique_ptr<CountingMover>> movers_;
  std::vector<Mfn> filler_;
  std::vector<unsigned> filler_order_;
};

// A sample: the first access of a touched page in a period.
struct Sample {
  std::uint32_t guest = 0;
  Gfn gfn = 0;
  NodeId node = kNoNode;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual bool free_moves() const { return false; }
  // Start of period k (time now_s), before its accesses are costed.
  virtual void begin_period(World& w, std::uint64_t k, double now_s, std::span<const Touch> touches) {
    (void)w, (void)k, (void)now_s, (void)touches;
  }
  // The period's samples, in order of arrival.
  virtual void samples(World& w, double now_s, std::span<const Sample> samples) { (void)w, (void)now_s, (void)samples; }
  // End of the period (time now_s).
  virtual void end_period(World& w, double now_s) { (void)w, (void)now_s; }
  // The node an access runs on when the workload puts it on `node`: a
  // policy that moves vCPUs (numaheap-follow) maps the nodes it moved them
  // off; the others run them where the workload says.
  virtual NodeId access_node(std::uint32_t guest, NodeId node) const { (void)guest; return node; }
  std::uint64_t samples_used = 0;
  // vCPU advice (the numaheap lanes): records given, vCPU moves made on it,
  // and their time (charged with the moves).
  std::uint64_t vcpu_advice = 0, vcpus_moved = 0;
  double vcpu_move_seconds = 0;
};

// Errors: invalid_argument for an unknown name.
Result<std::unique_ptr<Policy>, Error> make_policy(std::string_view name, World& world, const SimConfig& config);

}  // namespace numaheap::sim
