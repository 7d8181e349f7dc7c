// PageAllocator: offlining, background scrub, statistics, invariant checks.
#include <vector>

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
      if (!hd || mfn - head >= frames_of_order(hd->order)) return Errc::invalid_frame;
      std::uint8_t s = hd->load_state();
      switch (FrameDesc::kind_of(s)) {
        case FrameKind::offline: return OfflineState::offlined;
        case FrameKind::free:
          h.offline_free_frame(mfn, head);
          if (m.claims.active) m.claims.spare.fetch_sub(1, std::memory_order_relaxed);
          NUMAHEAP_DEBUG_CHECK(h.check_invariants());
          return OfflineState::offlined;
        case FrameKind::used: {
          if (d->load_state() & kPendingOffline) return OfflineState::pending;
          const std::uint8_t add = head == mfn ? (kHasPending | kPendingOffline) : kHasPending;
          if (!hd->cas_state(s, static_cast<std::uint8_t>(s | add))) continue;  // freed meanwhile
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

Status check_locked(const PageAllocator::Impl& m, std::vector<std::uint64_t>* cached) {
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
          const FrameDesc* d = m.table.lookup(c.frames[i], &r);
          if (!d || r->node_index != ni || d->kind() != FrameKind::cached || d->order != c.order)
            return Errc::invalid_frame;
        }
        if (cached) (*cached)[ni] += std::uint64_t{c.count} << c.order;
      }
  // Claims: records add up to the counters; spare is what nobody reserved.
  std::uint64_t global = 0;
  std::vector<std::uint64_t> per_node(m.node_count, 0);
  for (std::uint32_t i = 0; i < m.claims.size(); ++i) {
    const ClaimRecord& rec = m.claims.at(i);
    if (rec.node == kNoNode) global += rec.remaining;
    else per_node[static_cast<std::size_t>(m.topo.index_of(rec.node))] += rec.remaining;
  }
  if (global != m.claims.global) return Errc::claim_exceeded;
  std::int64_t spare = -static_cast<std::int64_t>(global);
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni) {
    if (per_node[ni] != m.heap(ni).claimed_) return Errc::claim_exceeded;
    spare += static_cast<std::int64_t>(m.heap(ni).free_frames()) -
             static_cast<std::int64_t>(m.heap(ni).claimed_);
  }
  if (m.claims.active && spare != m.claims.spare.load()) return Errc::claim_exceeded;
  if (!m.claims.active && (m.claims.size() != 0 || global != 0)) return Errc::claim_exceeded;
  return {};
}

}  // namespace

Status PageAllocator::check_invariants() const noexcept {
  StopTheWorld stw(*impl_);
  return check_locked(*impl_, nullptr);
}

Status PageAllocator::check_frames() const noexcept {
  const Impl& m = *impl_;
  StopTheWorld stw(m);
  std::vector<std::uint64_t> cached(m.node_count, 0);
  if (auto st = check_locked(m, &cached); !st) return st;
  std::vector<std::uint64_t> free(m.node_count, 0), used(m.node_count, 0),
      in_cache(m.node_count, 0), offline(m.node_count, 0), pending(m.node_count, 0);
  for (const FrameRangeInfo& r : m.table.ranges()) {
    const std::uint32_t ni = r.node_index;
    for (Mfn mfn = r.first; mfn < r.end;) {
      const FrameDesc& d = m.table.desc(r, mfn);
      const std::uint8_t s = d.load_state();
      const std::uint64_t n = frames_of_order(d.order);
      // bulk_scrub marks live only inside one alloc_bulk call.
      if (FrameDesc::kind_of(s) == FrameKind::tail || d.order > kMaxOrder || (mfn & (n - 1)) ||
          mfn + n > r.end || d.bulk_scrub)
        return Errc::invalid_frame;
      const bool in_use = FrameDesc::kind_of(s) == FrameKind::used;
      if (in_use && (s & kPendingOffline)) ++pending[ni];
      for (std::uint64_t i = 1; i < n; ++i) {
        const FrameDesc& t = m.table.desc(r, mfn + i);
        const std::uint8_t ts = t.load_state();
        if (in_use ? (ts & ~kPendingOffline) != 0 : ts != 0) return Errc::invalid_frame;
        if (t.bulk_scrub) return Errc::invalid_frame;
        if (ts & kPendingOffline) {
          if (!(s & kHasPending)) return Errc::invalid_frame;
          ++pending[ni];
        }
      }
      switch (FrameDesc::kind_of(s)) {
        case FrameKind::free: free[ni] += n; break;
        case FrameKind::used: used[ni] += n; break;
        case FrameKind::cached: in_cache[ni] += n; break;
        case FrameKind::offline: offline[ni] += n; break;
        case FrameKind::tail: break;
      }
      mfn += n;
    }
  }
  for (std::uint32_t ni = 0; ni < m.node_count; ++ni) {
    const NodeHeap& h = m.heap(ni);
    if (free[ni] != h.free_frames() || in_cache[ni] != cached[ni] || offline[ni] != h.offlined_ ||
        pending[ni] != h.pending_offline_ ||
        free[ni] + used[ni] + in_cache[ni] + offline[ni] != h.managed_frames())
      return Errc::invalid_frame;
  }
  return {};
}

Result<BlockInfo> PageAllocator::allocated_block(Mfn mfn) const noexcept {
  const FrameDesc* d = impl_->table.lookup(mfn);
  if (!d || FrameDesc::kind_of(d->load_state()) != FrameKind::used) return Errc::invalid_frame;
  return BlockInfo{d->order, d->owner};
}

std::uint64_t PageAllocator::frames_owned_by(OwnerId owner) const noexcept {
  const Impl& m = *impl_;
  StopTheWorld stw(m);
  std::uint64_t n = 0;
  for (const FrameRangeInfo& r : m.table.ranges())
    for (Mfn mfn = r.first; mfn < r.end;) {  // head to head
      const FrameDesc& d = m.table.desc(r, mfn);
      if (d.order > kMaxOrder) return n;  // corrupt; check_frames says more
      if (FrameDesc::kind_of(d.load_state()) == FrameKind::used && d.owner == owner) n += frames_of_order(d.order);
      mfn += frames_of_order(d.order);
    }
  return n;
}

}  // namespace numaheap
