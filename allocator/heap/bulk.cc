// PageAllocator::alloc_bulk / free_bulk: many 4 KiB frames with one lock
// hold per node, for populating and tearing down guests. Per frame, only
// its descriptor is written (and, freeing, checked with one compare-and-
// swap); free-list work is per block, not per frame. A cache's worth for
// the calling CPU's node goes through its per-CPU cache instead (one cache
// lock, no heap lock in the common case), as Linux's bulk page allocator
// uses its per-CPU lists: small batches from many CPUs of one node would
// otherwise all queue on that node's lock.
#include <algorithm>

#include "allocator/heap/page_allocator_impl.h"
#include "allocator/platform/prefetch.h"

namespace numaheap {

namespace {
constexpr std::uint8_t kUsed = static_cast<std::uint8_t>(FrameKind::used);
constexpr std::uint8_t kCached = static_cast<std::uint8_t>(FrameKind::cached);
constexpr std::uint8_t kPendingBits = kHasPending | kPendingOffline;

// The nodes a bulk request may take from, in the order it takes: the
// preferred node alone (exact_node) or its fallback order minus `exclude`.
template <class Fn>
void for_each_allowed(const Topology& topo, const AllocRequest& req, const NodeId& pref, Fn fn) {
  if (req.flags & AllocFlags::exact_node) {
    fn(static_cast<std::uint32_t>(topo.index_of(pref)));
    return;
  }
  for (NodeId n : topo.fallback_order(pref))
    if (!req.exclude.test(n)) fn(static_cast<std::uint32_t>(topo.index_of(n)));
}
}  // namespace

PageAllocator::Impl::BulkTry PageAllocator::Impl::bulk_try(const AllocRequest& req, NodeId pref,
                                                           std::span<Mfn> out,
                                                           bool whole_from_first) noexcept {
  const std::uint64_t n = out.size();
  const bool no_scrub = (req.flags & AllocFlags::no_scrub) != 0;
  std::uint32_t allowed = 0, first = 0;
  for_each_allowed(topo, req, pref, [&](std::uint32_t ni) {
    if (allowed++ == 0) first = ni;
  });
  BulkTry t;
  if (allowed == 0) return t;
  if (allowed == 1) {  // one node: its lock alone; charge() decides atomically
    NodeHeap& h = heap(first);
    SpinGuard g(h.lock);
    Quote q = begin_quote(req);
    t.first = t.total = quote(first, n, req, q);
    if (t.total < n || !charge(first, n, req)) return t;
    t.to_scrub = h.take_frames(n, out.data(), req.owner, no_scrub);
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
    t.done = true;
    return t;
  }
  // Several nodes: all or nothing across them needs every free counter and
  // the spare count (changed under any node lock) to hold still, so every
  // node lock is taken, in index order, as claim() does.
  lock_all_heaps();
  {
    Quote q = begin_quote(req);
    for_each_allowed(topo, req, pref, [&](std::uint32_t ni) {
      const std::uint64_t got = quote(ni, n - t.total, req, q);
      if (ni == first) t.first = got;
      t.total += got;
    });
  }
  if (t.total < n || (whole_from_first && t.first < n)) {
    unlock_all_heaps();
    return t;
  }
  // Nothing else moves while every lock is held, so each node gives what
  // the quote above said; quoting again from the live counters after each
  // node's charge gives the same shares.
  std::uint64_t done = 0;
  for_each_allowed(topo, req, pref, [&](std::uint32_t ni) {
    if (done == n) return;
    Quote q = begin_quote(req);
    const std::uint64_t share = quote(ni, n - done, req, q);
    if (share == 0) return;
    if (!charge(ni, share, req)) [[unlikely]] __builtin_trap();  // quote() disagrees with charge()
    t.to_scrub += heap(ni).take_frames(share, out.data() + done, req.owner, no_scrub);
    NUMAHEAP_DEBUG_CHECK(heap(ni).check_invariants());
    done += share;
  });
  if (done != n) [[unlikely]] __builtin_trap();
  unlock_all_heaps();
  t.done = true;
  return t;
}

bool PageAllocator::Impl::bulk_from_cache(const AllocRequest& req, NodeId pref, std::span<Mfn> out) noexcept {
  constexpr std::uint32_t kCacheFlags = AllocFlags::no_scrub | AllocFlags::exact_node;
  const int slot = pcp.slot_of(0);
  if (slot < 0 || (req.flags & ~kCacheFlags)) return false;
  const std::uint32_t cpu = cpu_slot();
  const std::uint32_t ni = cpu_node_index[cpu];
  // home[cpu].caches: the node has memory (a read-only line; the heap's
  // own count shares a line with its lock).
  if (cpu_node[cpu] != pref || req.exclude.test(pref) || !home[cpu].caches) return false;
  CpuCache& c = pcp.at(cpu, ni, slot);
  if (out.size() > c.high) return false;
  const auto n = static_cast<std::uint32_t>(out.size());
  const bool no_scrub = (req.flags & AllocFlags::no_scrub) != 0;
  lock_cache(c, cpu);
  if (c.count < n) refill(c, ni, n - c.count);
  if (c.count < n) {  // the node is short: the heaps' way decides (drains, reclaim, fallback)
    c.lock.unlock();
    return false;
  }
  // Frames to scrub go to the front of `out`, the others to the back (the
  // caller gets them in no particular order), so that the scrubbing is
  // done after the lock is let go without remembering anything else.
  std::uint32_t front = 0, back = n;
  for (std::uint32_t k = 0; k < n; ++k) {
    const CacheEntry e = c.entries[c.count - 1 - k];
    const Mfn mfn = entry_mfn(e);
    FrameDesc& d = table.known_desc(mfn);
    // The word, as try_node: its owner is exact where the entry's tag is not.
    const FrameWord w = d.load(std::memory_order_relaxed);
    NUMAHEAP_DEBUG_CHECK(entry_matches(e, w.pack(), 0));
    d.store(w.allocated_to(req.owner));
    const bool scrub = (w.state & kDirty) && !(no_scrub && w.owner == req.owner);
    out[scrub ? front++ : --back] = mfn;
  }
  set_count(c, c.count - n);
  c.lock.unlock();
  if (front && !NUMAHEAP_FAULT(bulk_cache_skips_scrub)) {
    std::sort(out.begin(), out.begin() + front);
    for (std::uint32_t k = 0; k < front;) {  // consecutive frames in one call
      std::uint32_t run = 1;
      while (k + run < front && out[k + run] == out[k] + run) ++run;
      platform->zero_frames(out[k], run);
      k += run;
    }
  }
  return true;
}

bool PageAllocator::Impl::bulk_to_cache(std::span<const Mfn> frames, std::uint32_t ni) noexcept {
  const int slot = pcp.slot_of(0);
  const std::uint32_t cpu = cpu_slot();
  CpuCache& c = pcp.at(cpu, ni, slot);
  const auto n = static_cast<std::uint32_t>(frames.size());
  lock_cache(c, cpu);
  if (c.count + n > c.high) {  // no room: the heap takes them (see bulk_to_cache's comment)
    c.lock.unlock();
    return false;
  }
  for (const Mfn mfn : frames) {
    // Taken by free_bulk's step 1 and in no cache: nobody else changes it.
    const std::uint64_t word = table.known_desc(mfn).load_packed(std::memory_order_relaxed);
    c.entries[c.count] = make_cache_entry(mfn, word);
    NUMAHEAP_DEBUG_CHECK(entry_matches(c.entries[c.count], word, 0));
    set_count(c, c.count + 1);
  }
  c.lock.unlock();
  return true;
}

void PageAllocator::Impl::scrub_bulk(std::span<const Mfn> out) noexcept {
  // Consecutive marked runs of one range go to the platform as one call.
  Mfn start = kInvalidMfn;
  std::uint64_t len = 0;
  const FrameRangeInfo* range = nullptr;
  for (std::size_t i = 0; i < out.size();) {
    const FrameRangeInfo& r = table.known_range(out[i]);
    FrameDesc& d = table.desc(r, out[i]);
    const std::uint8_t mark = d.load(std::memory_order_relaxed).bulk_scrub;
    if (!mark) {
      ++i;
      continue;
    }
    const std::uint64_t count = frames_of_order(mark - 1u);
    d.clear_bulk_scrub();  // atomically: the word is the owner's already
    if (len && &r == range && start + len == out[i]) {
      len += count;
    } else {
      if (len) platform->zero_frames(start, len);
      start = out[i];
      len = count;
      range = &r;
    }
    i += count;
  }
  if (len) platform->zero_frames(start, len);
}

Status PageAllocator::alloc_bulk(const AllocRequest& req, std::span<Mfn> out) noexcept {
  if (req.order != 0) return Errc::invalid_order;
  if (req.owner > kMaxOwner || (req.flags & ~AllocFlags::all)) return Errc::invalid_argument;
  Impl& m = *impl_;
  const NodeId pref = req.node == kNoNode ? m.cpu_node[m.cpu_slot()] : req.node;
  if (m.topo.index_of(pref) < 0) return Errc::invalid_node;
  const bool exact = (req.flags & AllocFlags::exact_node) != 0;
  if (exact && req.exclude.test(pref)) return Errc::invalid_argument;
  if (out.empty()) return {};
  const std::uint64_t n = out.size();
  // A cache's worth for the calling CPU's node: its per-CPU cache, as
  // alloc() would serve each frame (no heap lock in the common case).
  if (m.bulk_from_cache(req, pref, out)) return {};
  // Else the heaps. As alloc(): the preferred node may reclaim before the
  // request goes remote; per-CPU caches are drained, then every allowed
  // node may reclaim, before no_memory.
  const bool hook = m.reclaim_fn.load(std::memory_order_acquire) != nullptr;
  Impl::BulkTry t = m.bulk_try(req, pref, out, !exact && hook);
  if (!t.done) {
    bool first = true;
    for_each_allowed(m.topo, req, pref, [&](std::uint32_t ni) {
      if (first && !exact && hook && t.first < n) (void)m.reclaim(ni, n - t.first);
      first = false;
      m.drain_node_index(ni);
    });
    t = m.bulk_try(req, pref, out, false);
  }
  if (!t.done && hook) {
    std::uint64_t missing = n - std::min(n, t.total);
    for_each_allowed(m.topo, req, pref, [&](std::uint32_t ni) {
      if (missing) missing -= std::min(missing, m.reclaim(ni, missing));
    });
    // What the hook gave back may sit in per-CPU caches (its free() or a
    // small free_bulk put it there): back to the heaps first.
    for_each_allowed(m.topo, req, pref, [&](std::uint32_t ni) { m.drain_node_index(ni); });
    t = m.bulk_try(req, pref, out, false);
  }
  if (!t.done) return Errc::no_memory;
  if (t.to_scrub) m.scrub_bulk(out);
  return {};
}

Status PageAllocator::free_bulk(std::span<const Mfn> frames, OwnerId owner) noexcept {
  if (owner > kMaxOwner) return Errc::invalid_argument;
  Impl& m = *impl_;
  const std::size_t n = frames.size();
  // Puts back the frames checked so far (still ours: a cached frame that
  // is in no cache is touched by nobody else). Owner, order and generation
  // were left as they were, so the word is exactly what it was before.
  auto undo = [&m, frames](std::size_t upto) {
    for (std::size_t i = 0; i < upto; ++i) {
      FrameDesc& d = m.table.known_desc(frames[i]);
      FrameWord w = d.load();
      w.state = static_cast<std::uint8_t>(kUsed | (w.state & kPendingBits));
      d.store(w);
    }
  };
  // 1. Check every frame and take it from its owner with free()'s
  //    compare-and-swap (used -> cached), so a frame listed twice, or freed
  //    by another thread meanwhile, is a double free. Pending-offline bits
  //    stay with the frame.
  const FrameRangeInfo* r = nullptr;
  // A cache's worth goes to the calling CPU's caches, as free() would put
  // each frame, unless a frame has an offline pending (the heap retires it).
  const int slot0 = m.pcp.slot_of(0);
  bool to_cache = slot0 >= 0 && n <= m.pcp.high(slot0);
  // In chunks, two passes: (a) look the frames up and ask for their
  // descriptors, to be written (prefetch.h) -- frames freed on another CPU
  // than the one that allocated them sit on that CPU's cache lines, and
  // the compare-and-swaps, each a full barrier, would fetch them one at a
  // time; asked for together, the fetches overlap -- then (b) check and
  // take each, in order: a frame with no descriptor is reported when every
  // frame before it has been taken (and is put back), as in one pass.
  constexpr std::size_t kChunk = 64;
  FrameDesc* descs[kChunk];
  for (std::size_t at = 0; at < n; at += kChunk) {
    const std::size_t len = std::min(n - at, kChunk);
    std::size_t found = 0;
    for (; found < len; ++found) {
      const Mfn mfn = frames[at + found];
      if (!r || !r->contains(mfn)) {
        r = m.table.find_range(mfn);
        if (!r) break;
      }
      descs[found] = &m.table.desc(*r, mfn);
      prefetch_for_write(descs[found]);
    }
    for (std::size_t k = 0; k < len; ++k) {
      if (k == found) {
        undo(at + k);
        return Errc::invalid_frame;
      }
      FrameDesc& d = *descs[k];
      FrameWord w = d.load();
      for (;;) {
        if (const Errc e = check_used_head(w, 0, owner); e != Errc::ok) {
          undo(at + k);
          return e;
        }
        FrameWord taken = w;
        taken.state = static_cast<std::uint8_t>(kCached | kDirty | (w.state & kPendingBits));
        if (d.cas(w, taken)) break;  // w reloaded on failure
      }
      if (w.state & kPendingBits) to_cache = false;
    }
  }
  // 2. Back to the heaps: each stretch of the list on one node under one
  //    hold of that node's lock (a cache's worth: that node's cache of
  //    the calling CPU, under the cache's lock).
  for (std::size_t i = 0; i < n;) {
    r = &m.table.known_range(frames[i]);
    const std::uint32_t ni = r->node_index;
    std::size_t j = i + 1;
    for (; j < n; ++j) {
      if (!r->contains(frames[j])) r = &m.table.known_range(frames[j]);
      if (r->node_index != ni) break;
    }
    if (to_cache && m.bulk_to_cache(frames.subspan(i, j - i), ni)) {
      i = j;
      continue;
    }
    NodeHeap& h = m.heap(ni);
    SpinGuard g(h.lock);
    m.credit(h.put_frames(frames.data() + i, j - i, owner));
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
    i = j;
  }
  return {};
}

}  // namespace numaheap
