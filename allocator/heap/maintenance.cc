// PageAllocator: offlining, background scrub, statistics, invariant checks.
#include <algorithm>

#include "allocator/heap/page_allocator_impl.h"

namespace numaheap {

Result<OfflineState> PageAllocator::offline(Mfn mfn) noexcept {
  Impl& m = *impl_;
  const FrameRangeInfo* r = nullptr;
  FrameDesc* d = m.table.lookup(mfn, &r);
  if (!d) return Errc::invalid_frame;
  NodeHeap& h = m.heap(r->node_index);
  for (int attempt = 0; attempt < 8; ++attempt) {
    {
      SpinGuard g(h.lock);
      // The first non-tail descriptor at mfn aligned down to 2^k, k = 0, 1,
      // ..., is the head of the block holding mfn (blocks are aligned).
      Mfn head = kInvalidMfn;
      FrameDesc* hd = nullptr;
      for (unsigned k = 0; k <= kMaxOrder; ++k) {
        const Mfn cand = mfn & ~(frames_of_order(k) - 1);
        if (cand < r->first) break;
        FrameDesc& cd = m.table.desc(*r, cand);
        if (cd.kind() != FrameKind::tail) {
          head = cand;
          hd = &cd;
          break;
        }
      }
      if (!hd) return Errc::invalid_frame;
      FrameWord hw = hd->load();
      if (mfn - head >= frames_of_order(hw.order)) return Errc::invalid_frame;
      const std::uint8_t s = hw.state;
      switch (hw.kind()) {
        case FrameKind::offline: return OfflineState::offlined;
        case FrameKind::free:
          h.offline_free_frame(mfn, head);
          if (m.claims.active) m.claims.spare.fetch_sub(1, std::memory_order_relaxed);
          NUMAHEAP_DEBUG_CHECK(h.check_invariants());
          return OfflineState::offlined;
        case FrameKind::used: {
          if (d->load_state() & kPendingOffline) return OfflineState::pending;
          const std::uint8_t add = head == mfn ? (kHasPending | kPendingOffline) : kHasPending;
          FrameWord marked = hw;
          marked.state = static_cast<std::uint8_t>(s | add);
          if (!hd->cas(hw, marked)) continue;  // freed (or split) meanwhile
          if (head != mfn) d->fetch_or_state(kPendingOffline);
          ++h.pending_offline_;
          return OfflineState::pending;
        }
        case FrameKind::cached:
        case FrameKind::tail: break;  // in a per-CPU cache: drain, retry
      }
    }
    m.drain_node_index(r->node_index);
  }
  return Errc::busy;
}

std::uint64_t PageAllocator::offline_events() const noexcept {
  const Impl& m = *impl_;
  std::uint64_t n = 0;
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni) {
    NodeHeap& h = m.heap(ni);
    SpinGuard g(h.lock);
    n += h.offlined_ + h.pending_offline_;  // a pending frame moves from one to the other
  }
  return n;
}

bool PageAllocator::offline_pending(Mfn mfn, unsigned order) const noexcept {
  const FrameDesc* d = impl_->table.lookup(mfn, nullptr);
  if (!d || order > kMaxOrder) return false;
  const FrameWord w = d->load();
  return w.order == order && w.kind() == FrameKind::used &&
         (w.state & (kHasPending | kPendingOffline)) != 0;
}

std::uint64_t PageAllocator::scrub_some(NodeId node, std::uint64_t budget) noexcept {
  const int ni = impl_->topo.index_of(node);
  if (ni < 0 || budget == 0) return 0;
  NodeHeap& h = impl_->heap(static_cast<std::uint32_t>(ni));
  const std::uint64_t done = h.scrub_some(budget);
#if defined(NUMAHEAP_CHECK_INVARIANTS) && NUMAHEAP_CHECK_INVARIANTS
  {
    SpinGuard g(h.lock);
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
  }
#endif
  return done;
}

Result<NodeStats> PageAllocator::stats(NodeId node) const noexcept {
  const Impl& m = *impl_;
  const int idx = m.topo.index_of(node);
  if (idx < 0) return Errc::invalid_node;
  const auto ni = static_cast<std::uint32_t>(idx);
  NodeStats st;
  st.node = node;
  for (std::uint32_t cpu = 0; cpu < m.pcp.cpus(); ++cpu)
    for (int slot = 0; slot < static_cast<int>(PerCpuCaches::kSlots); ++slot) {
      // Unlocked: a snapshot either way, and locking would fence every CPU.
      const CpuCache& c = m.pcp.at(cpu, ni, slot);
      st.cached += std::uint64_t{peek_count(c)} << c.order;
    }
  NodeHeap& h = m.heap(ni);
  SpinGuard g(h.lock);
  st.managed = h.managed_frames();
  st.free = h.free_frames();
  st.dirty = h.dirty_frames();
  st.claimed = h.claimed_;
  st.offlined = h.offlined_;
  st.pending_offline = h.pending_offline_;
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    st.free_blocks[o] = h.free_blocks(o);
    st.dirty_blocks[o] = h.dirty_blocks(o);
  }
  st.largest_free_order = h.largest_free_order();
  const std::uint64_t not_used = st.free + st.cached + st.offlined;
  st.used = st.managed >= not_used ? st.managed - not_used : 0;
  return st;
}

namespace {

// Holds every lock of the allocator, in the lock order, for a consistent view.
class StopTheWorld {
 public:
  explicit StopTheWorld(const PageAllocator::Impl& m) : m_(m) {
    for (std::uint32_t cpu = 0; cpu < m.pcp.cpus(); ++cpu) {
      for (std::uint32_t ni = 0; ni < m.node_count; ++ni)
        for (int s = 0; s < static_cast<int>(PerCpuCaches::kSlots); ++s) m.pcp.at(cpu, ni, s).lock.lock();
      if (m.use_rseq) rseq::fence_cpu(cpu);  // one fence covers the CPU's caches
    }
    m.lock_all_heaps();
    m.claims.lock.lock();
  }
  ~StopTheWorld() {
    m_.claims.lock.unlock();
    m_.unlock_all_heaps();
    for (std::uint32_t cpu = 0; cpu < m_.pcp.cpus(); ++cpu)
      for (std::uint32_t ni = 0; ni < m_.node_count; ++ni)
        for (int s = 0; s < static_cast<int>(PerCpuCaches::kSlots); ++s) m_.pcp.at(cpu, ni, s).lock.unlock();
  }

 private:
  const PageAllocator::Impl& m_;
};

// Scratch of check_locked/check_frames: per node counters, carved from
// memory create() reserved (nothing allocates after create()). Used only
// while a StopTheWorld holds every lock, so one set serves every caller.
struct CheckCounts {
  std::uint64_t* cached;    // frames the per-CPU caches list
  std::uint64_t* claimed;   // node claims recounted from the records
  std::uint64_t* free;      // the descriptor walk's counts, by kind
  std::uint64_t* used;
  std::uint64_t* in_cache;  // heads of kind `cached` (in a cache or in transit)
  std::uint64_t* offline;
  std::uint64_t* pending;
  explicit CheckCounts(const PageAllocator::Impl& m) noexcept {
    std::uint64_t* p = m.check_scratch.get();
    std::uint64_t** fields[] = {&cached, &claimed, &free, &used, &in_cache, &offline, &pending};
    for (std::uint64_t** f : fields) {
      *f = p;
      p += m.node_count;
    }
    std::fill(m.check_scratch.get(), p, 0);
  }
};

Status check_locked(const PageAllocator::Impl& m, CheckCounts& cc) noexcept {
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni)
    if (!m.heap(ni).check_invariants()) return Errc::invalid_frame;
  // Per-CPU caches: bounded, and hold cached heads of their node and order.
  for (std::uint32_t cpu = 0; cpu < m.pcp.cpus(); ++cpu)
    for (std::uint32_t ni = 0; ni < m.node_count; ++ni)
      for (int s = 0; s < static_cast<int>(PerCpuCaches::kSlots); ++s) {
        const CpuCache& c = m.pcp.at(cpu, ni, s);
        if (c.count > c.high) return Errc::invalid_frame;
        for (std::uint32_t i = 0; i < c.count; ++i) {
          const FrameRangeInfo* r = nullptr;
          const FrameDesc* d = m.table.lookup(entry_mfn(c.entries[i]), &r);
          if (!d || r->node_index != ni) return Errc::invalid_frame;
          // Cached, this order, and what the entry says (CpuCache).
          if (!entry_matches(c.entries[i], d->load_packed(), c.order)) return Errc::invalid_frame;
        }
        cc.cached[ni] += std::uint64_t{c.count} << c.order;
      }
  // Claims: records add up to the counters; spare is what nobody reserved.
  std::uint64_t global = 0;
  for (std::uint32_t i = 0; i < m.claims.size(); ++i) {
    const ClaimRecord& rec = m.claims.at(i);
    if (rec.node == kNoNode) global += rec.remaining;
    else cc.claimed[static_cast<std::size_t>(m.topo.index_of(rec.node))] += rec.remaining;
  }
  if (global != m.claims.global) return Errc::claim_exceeded;
  std::int64_t spare = -static_cast<std::int64_t>(global);
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni) {
    if (cc.claimed[ni] != m.heap(ni).claimed_) return Errc::claim_exceeded;
    spare += static_cast<std::int64_t>(m.heap(ni).free_frames()) -
             static_cast<std::int64_t>(m.heap(ni).claimed_);
  }
  if (m.claims.active && spare != m.claims.spare.load()) return Errc::claim_exceeded;
  if (!m.claims.active && (m.claims.size() != 0 || global != 0)) return Errc::claim_exceeded;
  return {};
}

// One walk over every descriptor under a StopTheWorld. Errc::busy: all is
// consistent except that some heads are `cached` yet in no cache -- frames
// in transit between a free()'s compare-and-swap and its push, a lock-free
// pop and its store, or held by a free_bulk call waiting for a node lock
// (or a used head still marked by an alloc_bulk call that is scrubbing).
// Those threads cannot finish while every lock is held, so the caller lets
// go and looks again.
Status walk_frames(const PageAllocator::Impl& m) noexcept {
  CheckCounts cc(m);
  if (auto st = check_locked(m, cc); !st) return st;
  bool in_transit = false;
  for (const FrameRangeInfo& r : m.table.ranges()) {
    const std::uint32_t ni = r.node_index;
    for (Mfn mfn = r.first; mfn < r.end;) {
      // One load per head: a used block may become cached (a lock-free
      // free) or a cached one used (a pop in transit) while we walk; either
      // word is counted consistently.
      const FrameWord w = m.table.desc(r, mfn).load();
      const std::uint8_t s = w.state;
      const std::uint64_t n = frames_of_order(w.order);
      if (w.kind() == FrameKind::tail || w.order > kMaxOrder || (mfn & (n - 1)) ||
          mfn + n > r.end)
        return Errc::invalid_frame;
      const bool in_use = w.kind() == FrameKind::used;
      // A bulk_scrub mark lives on a used head only inside the alloc_bulk
      // call that carved it, which scrubs without a lock: in transit too.
      if (w.bulk_scrub) {
        if (!in_use) return Errc::invalid_frame;
        in_transit = true;
      }
      if (in_use && (s & kPendingOffline)) ++cc.pending[ni];
      for (std::uint64_t i = 1; i < n; ++i) {
        const FrameWord t = m.table.desc(r, mfn + i).load();
        if (in_use ? (t.state & ~kPendingOffline) != 0 : t.state != 0) return Errc::invalid_frame;
        if (t.bulk_scrub) return Errc::invalid_frame;
        if (t.state & kPendingOffline) {
          if (!(s & kHasPending)) return Errc::invalid_frame;
          ++cc.pending[ni];
        }
      }
      switch (w.kind()) {
        case FrameKind::free: cc.free[ni] += n; break;
        case FrameKind::used: cc.used[ni] += n; break;
        case FrameKind::cached: cc.in_cache[ni] += n; break;
        case FrameKind::offline: cc.offline[ni] += n; break;
        case FrameKind::tail: break;
      }
      mfn += n;
    }
  }
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni) {
    const NodeHeap& h = m.heap(ni);
    if (cc.free[ni] != h.free_frames() || cc.offline[ni] != h.offlined_ ||
        cc.pending[ni] != h.pending_offline_ || cc.in_cache[ni] < cc.cached[ni] ||
        cc.free[ni] + cc.used[ni] + cc.in_cache[ni] + cc.offline[ni] != h.managed_frames())
      return Errc::invalid_frame;
    if (cc.in_cache[ni] != cc.cached[ni]) in_transit = true;
  }
  return in_transit ? Status(Errc::busy) : Status();
}

}  // namespace

Status PageAllocator::check_invariants() const noexcept {
  StopTheWorld stw(*impl_);
  CheckCounts cc(*impl_);
  return check_locked(*impl_, cc);
}

Status PageAllocator::check_frames() const noexcept {
  // Frames in transit settle as soon as their threads get the locks back;
  // a quiescent allocator answers on the first walk. A `cached` head that
  // stays in no cache across every walk is reported as busy (never as
  // corruption, which it may not be).
  constexpr int kWalks = 64;
  Status st;
  for (int i = 0; i < kWalks; ++i) {
    {
      StopTheWorld stw(*impl_);
      st = walk_frames(*impl_);
    }
    if (st || st.error() != Errc::busy) return st;
    backoff(static_cast<unsigned>(i));
  }
  return st;
}

Result<BlockInfo> PageAllocator::allocated_block(Mfn mfn) const noexcept {
  const FrameDesc* d = impl_->table.lookup(mfn);
  if (!d) return Errc::invalid_frame;
  const FrameWord w = d->load();  // one snapshot: order and owner of the same block
  if (w.kind() != FrameKind::used) return Errc::invalid_frame;
  return BlockInfo{w.order, w.owner};
}

std::uint64_t PageAllocator::frames_owned_by(OwnerId owner) const noexcept {
  const Impl& m = *impl_;
  StopTheWorld stw(m);
  std::uint64_t n = 0;
  for (const FrameRangeInfo& r : m.table.ranges())
    for (Mfn mfn = r.first; mfn < r.end;) {  // head to head
      const FrameWord w = m.table.desc(r, mfn).load();
      if (w.order > kMaxOrder) return n;  // corrupt; check_frames says more
      if (w.kind() == FrameKind::used && w.owner == owner) n += frames_of_order(w.order);
      mfn += frames_of_order(w.order);
    }
  return n;
}

}  // namespace numaheap
