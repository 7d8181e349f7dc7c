// Migrator internals shared by migrator.cc (registration, inputs, thread,
// stats), policy.cc (the per-page policy in step) and rehome.cc.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "numaheap/access_tracker.h"
#include "numaheap/migrator.h"

namespace numaheap {

// A vnode's gfn range and where its pages belong.
struct MigrateRange {
  Gfn first = 0;
  std::uint64_t pages = 0;
  std::uint32_t vnode = 0;
  NodeId pnode = kNoNode;  // binding (vnuma_bound guests); guarded by Impl::lock
  NodeMask allowed;        // where pages may go; guarded by Impl::lock. Invariant: non-empty
};

struct RehomeJob {
  // Written under Impl::lock; progress fields are also read lock-free.
  bool active = false;
  NodeMask targets;
  std::uint32_t vnode = kAllVnodes;
  std::size_t range = 0;  // scope walk: range index and gfn inside it
  Gfn cursor = 0;
  bool retry = false;     // some page of this pass failed retryably
  bool override_limits = false;  // the admin said: ignore watermark and rate limit
  std::atomic<std::uint8_t> state{0};  // RehomeState
  std::atomic<std::uint64_t> total{0}, done{0}, moved{0}, skipped{0}, failed{0};
  std::atomic<std::uint32_t> pass{0};
  std::atomic<bool> cancel{false};  // set lock-free by cancel_rehome
};

struct GuestSlot {
  GuestId id = 0;
  Mover* mover = nullptr;         // immutable after add_guest
  MigrateGuestOptions options;    // immutable after add_guest (layout copied to ranges)
  std::unique_ptr<AccessTracker> tracker;  // lock-free (see AccessTracker)
  // vCPU -> host CPU, written by set_vcpu_cpu, read by record_vcpu_access:
  // relaxed atomics (a stale CPU only misattributes one sample).
  std::unique_ptr<std::atomic<CpuId>[]> vcpu_cpu;
  std::vector<MigrateRange> ranges;  // guarded by Impl::lock; sorted, disjoint, inside the mover
  Gfn scan_cursor = 0;               // guarded by Impl::lock
  bool removed = false;              // guarded by Impl::lock
  // Evacuation of pages on frames pending offline (evacuate.cc), guarded by
  // Impl::lock: the mover's offline_events() at the last full search, and
  // whether some page could not leave yet (search again next step).
  std::uint64_t offline_seen = 0;
  bool evacuate_again = false;
  RehomeJob rehome;
};

struct Migrator::Impl {
  const Topology* topo = nullptr;  // immutable
  MigratorConfig config;           // immutable
  std::size_t nodes = 0;           // dense node count; immutable

  // Serialises step, registration, rehome requests, stats. Movers are only
  // called with it held.
  mutable std::mutex lock;
  // Slot table read lock-free by the inputs (acquire); written under `lock`
  // (release). A slot, once published, lives until the migrator dies, so a
  // racing record_access never touches freed memory.
  std::unique_ptr<std::atomic<GuestSlot*>[]> slots;
  std::vector<std::unique_ptr<GuestSlot>> owned;  // guarded by lock; never shrinks

  // Guarded by lock.
  std::uint64_t step_no = 0;
  std::vector<double> tokens;             // per dense node: rate-limit bytes available
  std::vector<std::uint64_t> last_refill_ns;
  std::vector<std::uint64_t> backoff_until;  // per dense node: step number
  std::vector<std::uint32_t> backoff_len;
  std::vector<std::uint64_t> pair_pages;  // nodes * nodes, [from * nodes + to]
  MigratorStats stats;                    // `moves` left empty here (built from pair_pages)

  // Background thread: `thread_lock` guards stop_requested and the thread
  // handle; `running` is readable lock-free.
  std::mutex thread_lock;
  std::condition_variable wake;
  bool stop_requested = false;
  std::thread thread;
  std::atomic<bool> running{false};

  GuestSlot* slot(GuestId id) const noexcept {
    return id < config.max_guests ? slots[id].load(std::memory_order_acquire) : nullptr;
  }
  int index(NodeId n) const noexcept { return topo->index_of(n); }
  // Policy scan of one guest (policy.cc).
  void scan_guest(GuestSlot& g, std::uint64_t now_ns, StepReport& rep, double& local, double& total);
  // The guest's ranges after a rehome of `vnode` to `targets` (rehome.cc).
  std::vector<MigrateRange> plan_rehome(const GuestSlot& g, const NodeMask& targets, std::uint32_t vnode) const;
  // One step of a guest's rehome (rehome.cc).
  void rehome_step(GuestSlot& g, std::uint64_t now_ns, StepReport& rep);
  // Moves pages off frames pending offline, before any other move of the
  // step (evacuate.cc).
  void evacuate_retiring(GuestSlot& g, StepReport& rep);
  // Moves `gfns` of `g` to `target` and books outcomes and stats; `from`
  // gives each page's state before the move (per-pair counts).
  void do_move(GuestSlot& g, const Gfn* gfns, const PageState* from, std::size_t n, NodeId target,
               MoveGranularity gran, MoveOutcome* out, StepReport& rep);
  // Rate limit: how many of `pages` may go to `target` now (consumes tokens).
  std::uint64_t admit(NodeId target, std::uint64_t pages, std::uint64_t now_ns);
  // Exponential backoff of a destination (doubling up to the cap).
  void back_off(NodeId target) noexcept;
  // Ranges sorted and inside their mover, slot table matches `owned`,
  // counters consistent (caller holds `lock`).
  Status check_locked() const;
  const MigrateRange* range_of(const GuestSlot& g, Gfn gfn) const noexcept;
};

}  // namespace numaheap
