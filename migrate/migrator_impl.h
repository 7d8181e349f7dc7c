// Migrator internals shared by migrator.cc (registration, inputs, thread,
// stats), policy.cc (the per-page policy in step) and rehome.cc.
#pragma once

#include <algorithm>
#include <cassert>
#include <atomic>
#include <memory>

#include "allocator/platform/spin_lock.h"
#include "numaheap/metadata.h"
#include "numaheap/vector.h"

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

inline constexpr std::uint32_t kNoVcpuNode = ~std::uint32_t{0};

// The largest item the rate limit admits: a block of kMaxOrder (1 GiB; a
// mover reports orders 0..kMaxOrder), in bytes. The deepest debt of a bucket.
inline constexpr double kMaxRateItemBytes = static_cast<double>(frames_of_order(kMaxOrder) << kFrameShift);

struct GuestSlot {
  NUMAHEAP_METADATA_NEW_DELETE
  GuestId id = 0;
  Mover* mover = nullptr;         // immutable after add_guest
  MigrateGuestOptions options;    // immutable after add_guest (layout copied to ranges)
  std::unique_ptr<AccessTracker> tracker;  // lock-free (see AccessTracker)
  // vCPU -> host CPU, written by set_vcpu_cpu, read by record_vcpu_access:
  // relaxed atomics (a stale CPU only misattributes one sample).
  MetadataArray<std::atomic<CpuId>> vcpu_cpu;
  // Per dense node (allocated with vcpu_cpu), guarded by Impl::lock: the
  // guest's vCPUs on it at the last step (from vcpu_cpu), and the step at
  // which it lost its last one (0 = never). A page on a node without vCPUs
  // may follow its single sampling node at once (policy.cc).
  MetadataArray<std::uint32_t> vcpus_on;
  MetadataArray<std::uint32_t> vcpus_new;  // scratch of update_vcpu_nodes and sample_share
  MetadataArray<std::uint64_t> vacated_step;
  // Per dense node (with vcpus_on), guarded by Impl::lock: the one node
  // (dense index) that every vCPU which left it at its last vacating step
  // went to, kNoVcpuNode if they split up or were unplaced; kept pointing at
  // a node that still runs vCPUs (followed on when that one is vacated).
  // Pages sampled only from a vacated node go there at once (policy.cc).
  MetadataArray<std::uint32_t> vacated_to;
  // Per vCPU, guarded by Impl::lock: its dense node at the last step
  // (kNoVcpuNode: not placed).
  MetadataArray<std::uint32_t> vcpu_node;
  bool vcpus_placed = false;  // some vCPU has a CPU (guarded by Impl::lock)
  // The last step whose recount found a vCPU on another node (guarded by
  // Impl::lock): that step's sampling advice stays 1 (sample_share).
  std::uint64_t vcpus_changed_step = 0;
  // Sampling advice (Migrator::sample_share), guarded by Impl::lock:
  // min_sample_share..1.
  double sample_share = 1.0;
  Vector<MigrateRange> ranges;  // guarded by Impl::lock; sorted, disjoint, inside the mover
  Gfn scan_cursor = 0;               // guarded by Impl::lock
  // The sampled chunk (AccessTracker::take_sampled_chunks) the policy's
  // sampled pass starts at: the first one the last pass that ran out of
  // budget left, so a chunk sampled every step cannot starve the others.
  // Guarded by Impl::lock. Invariant: < 64 * tracker->chunk_words().
  std::uint64_t sampled_chunk = 0;
  // The vacated walk (policy.cc), guarded by Impl::lock: pages of the
  // tracker still to walk since the last node was vacated (a new one
  // restarts it: every page once), and where it goes on. Invariant:
  // vacated_walk_left <= tracker->pages().
  std::uint64_t vacated_walk_left = 0;
  Gfn vacated_walk_at = 0;
  // The step from which the walk runs again (0: none): pages that were to
  // follow vCPUs on old samples were turned away by a full or backed-off
  // destination, and nothing else marks them. The first step after that
  // destination's backoff (the earliest such step when there are several).
  // Invariant: <= step_no + backoff_max_steps + 1.
  std::uint64_t vacated_rewalk_step = 0;
  bool removed = false;              // guarded by Impl::lock
  // Evacuation of pages on frames pending offline (evacuate.cc), guarded by
  // Impl::lock: the mover's offline_events() at the last full search, and
  // whether some page could not leave yet (search again next step).
  std::uint64_t offline_seen = 0;
  bool evacuate_again = false;
  // The mover cannot coalesce (Mover::coalesce said unsupported): the
  // policy stops asking. Guarded by Impl::lock.
  bool coalesce_unsupported = false;
  // This guest's counters (Migrator::guest_stats): written under Impl::lock
  // only (GuestCounters::add: a load and a store, no read-modify-write),
  // read lock-free through a SlotReader, each on its own (relaxed).
  // Invariant (check_locked): the published guests' pages_moved add up to
  // no more than stats.pages_moved (removed guests take theirs with them);
  // a guest's pages_followed + pages_quick <= its pages_moved (they count
  // only frames the mover moved), and the same for stats.
  struct GuestCounters {
    std::atomic<std::uint64_t> pages_scanned{0}, pages_moved{0}, pages_followed{0}, pages_quick{0},
        pages_evacuated{0};
    std::atomic<double> local_access_ratio{-1};
    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  } counters;
  static_assert(std::atomic<double>::is_always_lock_free, "guest_stats reads the ratio lock-free");
  std::uint64_t tracking_bytes = 0;  // immutable after add_guest: what this slot holds
  std::uint8_t grace_seen = 0;       // guarded by Impl::lock: bit p = phase p seen quiet since retired
  RehomeJob rehome;
};

// Grace period for removed guests (a polled, SRCU-like scheme). Every
// lock-free reader of a slot (the inputs, rehome_progress, cancel_rehome)
// reads its guest id's phase, increments one stripe of that phase's
// counters, then loads the slot pointer, and decrements the same stripe
// after its last use of the slot. remove_guest unpublishes the slot
// (seq_cst store) and retires it; it is freed once each phase's counters
// have been read as all zero (seq_cst loads) at some moment after the
// unpublish: a reader that incremented before such a read was counted, or
// was already done (its decrement is a release the read acquires); one
// that increments after it loads the slot after the unpublish and sees
// null (or a newer guest). Phases are for progress only: a poll that finds
// the inactive phase quiet flips to it, so the other phase stops taking new
// readers and drains even while a newer guest under the same id is busy.
// Stripes (picked by the input's CPU or vCPU) keep vCPU threads of one
// guest off one cache line. No reader locks, allocates or retries.
inline constexpr std::uint32_t kReaderStripes = 8;
struct alignas(64) ReaderStripe {
  std::atomic<std::uint32_t> n{0};
};
struct GuestReaders {
  alignas(64) std::atomic<std::uint32_t> phase{0};  // 0 or 1; written under Impl::lock
  ReaderStripe stripes[2][kReaderStripes];
};


struct Migrator::Impl {
  NUMAHEAP_METADATA_NEW_DELETE
  const Topology* topo = nullptr;  // immutable
  const MetadataHooks* meta = nullptr;  // immutable: where slots, tables and trackers come from
  MigratorConfig config;           // immutable
  std::size_t nodes = 0;           // dense node count; immutable

  // Two locks, always taken in this order: step_lock, then lock.
  //
  // step_lock serialises the step with everything that changes a slot's
  // shape or the set of slots: add_guest, remove_guest, bind_vnode,
  // rehome(), set_vcpu_advice. Movers are only called with it held (one
  // mover call at a time), so while it is held no slot is retired or freed
  // and no range, binding or advice setting changes.
  mutable SpinLock step_lock;
  // The data lock: guards every field marked "guarded by lock" below and in
  // GuestSlot. The step holds it except across mover calls (call_mover):
  // a move_pages of a few thousand pages takes milliseconds, and stats(),
  // sample_share(), vcpu_advice() and check_invariants(), which take only
  // this lock, must not wait a whole step for it. Whatever the step leaves
  // half done across a mover call is its own (step_lock): those readers
  // only read, and see every counter at a value between two batches.
  mutable SpinLock lock;
  // Slot table read lock-free by the inputs (acquire); written under `lock`
  // (release). A slot, once published, lives until the migrator dies, so a
  // racing record_access never touches freed memory.
  MetadataArray<std::atomic<GuestSlot*>> slots;
  // Reader counts per guest id (see GuestReaders), max_guests of them.
  MetadataArray<GuestReaders> readers;
  Vector<std::unique_ptr<GuestSlot>> owned;    // guarded by lock; the published slots
  Vector<std::unique_ptr<GuestSlot>> retired;  // guarded by lock; removed, in their grace period
  std::uint64_t tracking_bytes = 0;                 // guarded by lock: sum over owned and retired
  // Test switch for the negative grace-period test: frees retired slots
  // without waiting for readers (a deliberately broken variant). Guarded by lock.
  bool skip_grace_for_test = false;
  // Test switch for the negative lock test: keeps `lock` held across mover
  // calls (the old behaviour: a reader waits out every move_pages). Guarded by step_lock.
  bool hold_lock_across_movers_for_test = false;

  // Runs a mover call (the step's query, move, coalesce, evacuate,
  // node_frames) with `lock` let go and `step_lock` still held; returns
  // what the call returned. Caller holds both locks.
  template <class F>
  auto call_mover(F&& f) {
    return without_lock(f);
  }
  // The same for a step's long walk of lock-free data (the vacated walk of
  // the tracker, policy.cc) that reads only fields the step alone writes.
  template <class F>
  auto without_lock(F&& f) {
#if NUMAHEAP_CHECK_INVARIANTS
    assert(step_lock.is_locked() && lock.is_locked());
#endif
    if (hold_lock_across_movers_for_test) return f();
    lock.unlock();
    auto r = f();
    lock.lock();
    return r;
  }

  // Guarded by lock.
  std::uint64_t step_no = 0;
  // The rate limit (admit, refund): per dense node, a token bucket of bytes
  // one second of rate_mb_s(node) deep, refilled at that rate up to that
  // depth at admit() (last_refill_ns: when). It goes negative -- a debt --
  // only when an item larger than the whole bucket is admitted into a full
  // one. Invariant (check_locked): -kMaxRateItemBytes <= tokens[k] <= the
  // deepest bucket the config allows (rate_limit_mb_s, or with a
  // spare-bandwidth hook max(rate_limit_mb_s, spare_bandwidth_share x
  // kMaxRateLimitMbS), in bytes).
  Vector<double> tokens;
  Vector<std::uint64_t> last_refill_ns;
  Vector<std::uint64_t> backoff_until;  // per dense node: step number
  Vector<std::uint32_t> backoff_len;
  Vector<std::uint64_t> pair_pages;  // nodes * nodes, [from * nodes + to]
  MigratorStats stats;                    // `moves` left empty here (built from pair_pages)

  // The host library's background thread (migrate/host/background.cc), if
  // one was started: the core has no threads; it only asks the host to
  // stop it when the migrator dies. All guarded by the host's control
  // mutex (g_control), which every write takes; the atomics are also read
  // lock-free (running(), and tests watching the control state).
  void* background = nullptr;  // the thread's state: from start() until the stop() that joined it
  void (*stop_background)(Migrator& m) = nullptr;  // set by the first start(); ~Migrator reads it
  std::atomic<bool> running{false};   // a thread exists: from start() until its stop() joined it
  std::atomic<bool> stopping{false};  // a stop() is joining the thread (g_control let go meanwhile)
  std::atomic<std::uint32_t> control_waiters{0};  // start()/stop() calls waiting for that join

  // The embedder's clock for step(), or one period per step without one.
  std::uint64_t now_ns() const noexcept {
    if (config.clock_ns) return config.clock_ns(config.clock_ctx);
    return step_no * std::uint64_t{config.period_ms} * 1000000u;
  }

  // The slot of `id` for callers holding `lock` (lock-free readers use SlotReader).
  GuestSlot* slot(GuestId id) const noexcept {
    return id < config.max_guests ? slots[id].load(std::memory_order_acquire) : nullptr;
  }
  // Frees retired slots whose grace period is over (lock held).
  void reclaim_retired() noexcept;
  int index(NodeId n) const noexcept { return topo->index_of(n); }
  // Frames a destination of `managed` frames keeps free: watermark_fraction
  // of it, at most watermark_max_pages, and at least watermark_pages.
  std::uint64_t watermark(std::uint64_t managed) const noexcept {
    const auto share = static_cast<std::uint64_t>(config.watermark_fraction * static_cast<double>(managed));
    return std::max(config.watermark_pages, std::min(share, config.watermark_max_pages));
  }
  // Dense node of vCPU v's CPU now (kNoVcpuNode: not placed).
  std::uint32_t vcpu_index(const GuestSlot& g, std::uint32_t v) const noexcept;
  // Counts the guest's vCPUs per node now into g.vcpus_new (scratch);
  // whether any is placed (policy.cc; lock held).
  bool count_vcpus(GuestSlot& g) const noexcept;
  // Recounts the guest's vCPUs per node from vcpu_cpu and notes the nodes
  // they all left and where to (policy.cc).
  void update_vcpu_nodes(GuestSlot& g) noexcept;
  // The vacated-node rule (policy.cc; lock held). begin_vacated recounts
  // the guest's vCPUs now (into vcpus_new: an embedder may have moved some
  // back since the step's recount) and says whether some node's vCPUs all
  // left it for one node that still runs them. Then, until vcpus_new is
  // reused, vacated_index(g, h) is that node's dense index for a page whose
  // samples came only from such a node (its last sample, however old,
  // nothing recent from elsewhere, no switch memory), kNoVcpuNode for any
  // other page.
  bool begin_vacated(GuestSlot& g) const noexcept;
  std::uint32_t vacated_index(const GuestSlot& g, const PageHeat& h) const noexcept;
  // Policy scan of one guest (policy.cc).
  void scan_guest(GuestSlot& g, std::uint64_t now_ns, StepReport& rep, double& local, double& total);
  // The guest's ranges after a rehome of `vnode` to `targets` (rehome.cc).
  Vector<MigrateRange> plan_rehome(const GuestSlot& g, const NodeMask& targets, std::uint32_t vnode) const;
  // One step of a guest's rehome (rehome.cc).
  void rehome_step(GuestSlot& g, std::uint64_t now_ns, StepReport& rep);
  // Moves pages off frames pending offline, before any other move of the
  // step (evacuate.cc).
  void evacuate_retiring(GuestSlot& g, StepReport& rep);
  // Moves `gfns` of `g` to `target` and books outcomes and stats; `from`
  // gives each page's state before the move (per-pair counts).
  void do_move(GuestSlot& g, const Gfn* gfns, const PageState* from, std::size_t n, NodeId target,
               MoveGranularity gran, MoveOutcome* out, StepReport& rep);
  // do_move's booking of a move the mover has made (`r` its result; out
  // rewritten on an error).
  void book_move(GuestSlot& g, const Gfn* gfns, const PageState* from, std::size_t n, NodeId target,
                 MoveGranularity gran, MoveOutcome* out, const Result<MoveTotals>& r, StepReport& rep);
  // The rate limit into `target` now, MB/s (0 = unlimited):
  // rate_limit_mb_s, lifted to spare_bandwidth_share x the embedder's spare
  // bandwidth when it reports one (NaN, negative: unknown; capped at
  // kMaxRateLimitMbS). Calls the embedder's hook (lock held).
  double rate_mb_s(NodeId target) const noexcept {
    double rate = config.rate_limit_mb_s;
    if (config.spare_bandwidth_mb_s) {
      const double spare = config.spare_bandwidth_mb_s(config.spare_bandwidth_ctx, target);
      if (spare >= 0) rate = std::max(rate, config.spare_bandwidth_share * std::min(spare, kMaxRateLimitMbS));
    }
    return rate;
  }
  // `frames` of guest g changed node: the migrator's and the guest's counts.
  void count_moved(GuestSlot& g, std::uint64_t frames) noexcept {
    stats.pages_moved += frames;
    stats.bytes_moved += frames << kFrameShift;
    GuestSlot::GuestCounters::add(g.counters.pages_moved, frames);
  }
  // Rate limit: how many of the items whose sizes (frames) are listed in
  // `frames`, taken in order, may go to `target` now (the first that may
  // not, and all after it, wait). An item goes when the bucket holds its
  // bytes; an item larger than the whole bucket goes when the bucket is
  // full, and leaves it in debt (negative) until the rate has paid it back:
  // over any T seconds at most rate x T + one second's burst + one item goes
  // to a node, whatever the items' sizes, and a big item is not refused for
  // ever. Consumes the admitted items' tokens; `taken` is set to them in
  // frames (0 when the rate is unlimited): what refund() may give back.
  std::size_t admit(NodeId target, std::span<const std::uint64_t> frames, std::uint64_t now_ns,
                    std::uint64_t& taken);
  // Gives back `taken` frames' worth of tokens that admit() took (its
  // `taken`) for a move that did not happen (a coalesce the mover refused).
  void refund(NodeId target, std::uint64_t taken) noexcept;
  // Exponential backoff of a destination (doubling up to the cap).
  void back_off(NodeId target) noexcept;
  // Ranges sorted and inside their mover, slot table matches `owned`,
  // counters consistent (caller holds `lock`).
  Status check_locked() const;
  const MigrateRange* range_of(const GuestSlot& g, Gfn gfn) const noexcept;
};

// A lock-free reader's hold on one guest id's slot (see ReaderStripe):
// get() is the slot or nullptr; the slot stays alive until destruction.
class SlotReader {
 public:
  SlotReader(const Migrator::Impl& m, GuestId id, std::uint32_t hint) noexcept {
    if (id >= m.config.max_guests) return;
    GuestReaders& r = m.readers[id];
    stripe_ = &r.stripes[r.phase.load(std::memory_order_seq_cst) & 1][hint % kReaderStripes].n;
    stripe_->fetch_add(1, std::memory_order_seq_cst);
    slot_ = m.slots[id].load(std::memory_order_seq_cst);
  }
  ~SlotReader() {
    if (stripe_) stripe_->fetch_sub(1, std::memory_order_release);
  }
  SlotReader(const SlotReader&) = delete;
  SlotReader& operator=(const SlotReader&) = delete;
  GuestSlot* get() const noexcept { return slot_; }

 private:
  std::atomic<std::uint32_t>* stripe_ = nullptr;
  GuestSlot* slot_ = nullptr;
};

}  // namespace numaheap
