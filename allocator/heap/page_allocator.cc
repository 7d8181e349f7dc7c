// PageAllocator: creation, alloc/free, per-CPU cache refill and drain.
#include <algorithm>
#include <cstring>

#include "allocator/heap/page_allocator_impl.h"
#include "allocator/platform/fault_injection.h"

#if NUMAHEAP_HOSTED
#include "allocator/platform/host/host_memory.h"
#endif

namespace numaheap {

namespace {
constexpr std::uint8_t kUsed = static_cast<std::uint8_t>(FrameKind::used);
constexpr std::uint8_t kCached = static_cast<std::uint8_t>(FrameKind::cached);
using cache_entry::kGenMask;
// Added to a packed `used` word (no flags): the same word, cached + dirty.
constexpr std::uint64_t kUsedToCachedDirty = std::uint64_t{(kCached | kDirty) - kUsed} << 32;
static_assert(FrameWord{5, kUsed, 3, 0, 7}.pack() + kUsedToCachedDirty ==
              FrameWord{5, static_cast<std::uint8_t>(kCached | kDirty), 3, 0, 7}.pack());
}  // namespace

Result<std::unique_ptr<PageAllocator>, Error> PageAllocator::create(const Topology& topo,
                                                                    const PlatformConfig& pcfg,
                                                                    const HeapConfig& hcfg) {
  if (topo.node_count() == 0) return Error{Errc::invalid_argument, "page allocator: empty topology"};
  if (hcfg.pcp_high > 65536 || hcfg.pcp9_high > 4096 || hcfg.cpus > 65536)
    return Error{Errc::invalid_argument, "page allocator: per-CPU cache limits too large"};
  auto platform = Platform::create(topo, pcfg);
  if (!platform) return std::move(platform).error();
  const MetadataHooks* meta = platform.value()->metadata();
  std::unique_ptr<Impl> impl(new (meta) Impl());
  if (!impl) return Error{Errc::no_memory, "page allocator: out of metadata memory"};
  impl->platform = std::move(platform.value());
  impl->topo = topo;
  impl->config = hcfg;
  if (auto st = impl->table.init(impl->topo, meta); !st) return st.error();

  impl->node_count = static_cast<std::uint32_t>(impl->topo.node_count());
  if (!impl->check_scratch.allocate(meta, 7 * std::size_t{impl->node_count}) ||
      !impl->heaps.allocate(meta, impl->node_count))
    return Error{Errc::no_memory, "page allocator: out of metadata memory"};
  for (std::uint32_t i = 0; i < impl->node_count; ++i) {
    impl->heaps[i].init(&impl->table, impl->platform.get(), i);
    impl->heaps[i].seed(pcfg.boot_memory_dirty);
  }

  // Per-CPU caches: one per CPU the host or the topology knows.
  std::uint32_t cpus = hcfg.cpus;
#if NUMAHEAP_HOSTED
  const std::uint32_t host_cpus = host::configured_cpus();
#else
  const std::uint32_t host_cpus = 1;  // a hypervisor says HeapConfig::cpus
#endif
  if (cpus == 0) {
    cpus = std::max<std::uint32_t>(impl->topo.max_cpu(), host_cpus);
    cpus = std::min<std::uint32_t>(cpus, 4096);
  }
  if (!impl->pcp.init(meta, cpus, impl->node_count, hcfg.pcp_batch, hcfg.pcp_high, hcfg.pcp9_batch,
                      hcfg.pcp9_high) ||
      !impl->claims.init(meta, hcfg.max_claims))
    return Error{Errc::no_memory, "page allocator: out of memory for caches"};

  // Preferred node of each cache slot: the CPU's node; CPUs the topology does
  // not list (a host with other CPU ids) map round-robin onto listed ones.
  NodeId fallback = impl->topo.memory_nodes().empty() ? impl->topo.node_at(0).id
                                                      : impl->topo.memory_nodes().first();
  if (!impl->cpu_node.allocate(meta, cpus) || !impl->cpu_node_index.allocate(meta, cpus) ||
      !impl->home.allocate(meta, cpus))
    return Error{Errc::no_memory, "page allocator: out of metadata memory for caches"};
  for (std::uint32_t c = 0; c < cpus; ++c) impl->cpu_node[c] = fallback;
  for (std::uint32_t c = 0; c < cpus; ++c) {
    NodeId n = impl->topo.node_of_cpu(c);
    if (n == kNoNode && impl->topo.max_cpu() > 0) n = impl->topo.node_of_cpu(c % impl->topo.max_cpu());
    if (n != kNoNode) impl->cpu_node[c] = n;
  }
  impl->use_rseq = hcfg.use_rseq && !pcfg.hooks.current_cpu && host_cpus <= cpus && rseq::init();
  impl->fast_cpus = impl->use_rseq ? cpus : 0;
  for (std::uint32_t c = 0; c < cpus; ++c) {
    const auto ni = static_cast<std::uint32_t>(impl->topo.index_of(impl->cpu_node[c]));
    impl->cpu_node_index[c] = ni;
    impl->home[c].node = impl->cpu_node[c];
    if (impl->heap(ni).managed_frames()) impl->home[c].caches = &impl->pcp.at(c, ni, 0);
  }
  std::unique_ptr<PageAllocator> pa(new (meta) PageAllocator(impl.get()));
  if (!pa) return Error{Errc::no_memory, "page allocator: out of metadata memory"};
  impl.release();
  return pa;
}

PageAllocator::~PageAllocator() { delete impl_; }

// The fast path: a cached block (orders 0..4 and 9) from the calling CPU's
// cache of its own node, with no lock and no atomic read-modify-write (the
// rseq pop makes the block ours alone). It serves a request for no node or
// for this CPU's own node, preferred or exact (what a hypervisor asks for
// "this vCPU's node"): for each of them alloc_slow would first pop this
// same cache (try_node on the CPU's node), so the result is the same; an
// excluded home node, other flags and other nodes go to alloc_slow. The
// common case calls nothing; everything else -- other requests, an empty
// cache, no rseq, a block holding another owner's bytes -- leaves through
// one call (alloc_slow checks the request in full). docs/fast-path.md
// counts its instructions.
Result<Allocation> PageAllocator::alloc(const AllocRequest& req) noexcept {
  constexpr std::uint32_t kFastFlags = AllocFlags::no_scrub | AllocFlags::exact_node;
  Impl& m = *impl_;
  const std::ptrdiff_t area = rseq::offset();
  const std::uint32_t cpu = rseq::cpu(area);
  const int slot = m.pcp.slot_of(req.order);
  if (cpu < m.fast_cpus && slot >= 0 && !(req.flags & ~kFastFlags) && req.owner <= kMaxOwner) {
    const Impl::CpuHome& home = m.home[cpu];
    if (home.caches && (req.node == kNoNode || req.node == home.node) && !req.exclude.test(home.node)) {
      if (CacheEntry e; rseq::pop(area, home.caches + slot, cpu, e)) [[likely]] {
        // Ours alone once popped: nobody else may change the word, and the
        // entry says what it holds (CpuCache), so the new word is stored
        // without loading the old one.
        // Every freed block is dirty; skipping the scrub is safe only when
        // every dirty byte is the requester's own (checked inline from the
        // entry's tag: it is the common case of an owner's own churn).
        if (entry_needs_scrub(e, (req.flags & AllocFlags::no_scrub) != 0, req.owner)) [[unlikely]]
          return m.alloc_dirty(e, home.node, req);
        // Several frame ranges: the descriptor is found out of line, so
        // that this path calls nothing and saves no register.
        FrameDesc* const d = m.table.single_known_desc(entry_mfn(e));
        if (!d) [[unlikely]] return m.alloc_popped(e, home.node, req);
        NUMAHEAP_DEBUG_CHECK(entry_matches(e, d->load_packed(std::memory_order_relaxed), req.order));
        d->store_packed(entry_allocated_word(e, req.order, req.owner));
        return Allocation{entry_mfn(e), home.node};
      }
    }
  }
  return m.alloc_slow(req);
}

Result<Allocation> PageAllocator::Impl::alloc_popped(CacheEntry e, NodeId node,
                                                     const AllocRequest& req) noexcept {
  const Mfn mfn = entry_mfn(e);
  FrameDesc& d = table.known_desc(mfn);
  NUMAHEAP_DEBUG_CHECK(entry_matches(e, d.load_packed(std::memory_order_relaxed), req.order));
  d.store_packed(entry_allocated_word(e, req.order, req.owner));
  return Allocation{mfn, node};
}

Result<Allocation> PageAllocator::Impl::alloc_dirty(CacheEntry e, NodeId node,
                                                    const AllocRequest& req) noexcept {
  const Mfn mfn = entry_mfn(e);
  FrameDesc& d = table.known_desc(mfn);
  // An owner the tag cannot name: the word says whose bytes they are.
  bool own = false;
  if ((req.flags & AllocFlags::no_scrub) && entry_tag(e) == cache_entry::kTagDirtyUnknown)
    own = d.load(std::memory_order_relaxed).owner == req.owner;
  d.store_packed(entry_allocated_word(e, req.order, req.owner));
  if (!own && !NUMAHEAP_FAULT(fast_path_skips_scrub)) platform->zero_frames(mfn, frames_of_order(req.order));
  return Allocation{mfn, node};
}

Result<Allocation> PageAllocator::Impl::alloc_slow(const AllocRequest& req) noexcept {
  if (req.order > kMaxOrder) return Errc::invalid_order;
  if (req.owner > kMaxOwner || (req.flags & ~AllocFlags::all)) return Errc::invalid_argument;
  Impl& m = *this;
  const std::uint32_t cpu = m.cpu_slot();
  // Fast path: the calling CPU's node, when it has memory, is tried first.
  if (req.node == kNoNode && !(req.flags & AllocFlags::exact_node)) {
    const std::uint32_t ni = m.cpu_node_index[cpu];
    const NodeId n = m.cpu_node[cpu];
    if (m.heap(ni).managed_frames() && !req.exclude.test(n))
      if (Mfn mfn = m.try_node(ni, req, cpu); mfn != kInvalidMfn) return Allocation{mfn, n};
  }
  const NodeId pref = req.node == kNoNode ? m.cpu_node[cpu] : req.node;
  const int pi = m.topo.index_of(pref);
  if (pi < 0) return Errc::invalid_node;

  if (req.flags & AllocFlags::exact_node) {
    if (req.exclude.test(pref)) return Errc::invalid_argument;
    const auto ni = static_cast<std::uint32_t>(pi);
    Mfn mfn = m.try_node(ni, req, cpu);
    if (mfn == kInvalidMfn) {  // frames may sit in other CPUs' caches
      m.drain_node_index(ni);
      mfn = m.try_node(ni, req, cpu);
    }
    if (mfn == kInvalidMfn && m.reclaim(ni, frames_of_order(req.order)))
      mfn = m.try_node(ni, req, cpu);
    if (mfn == kInvalidMfn) return Errc::no_memory;
    return Allocation{mfn, pref};
  }
  const auto order = m.topo.fallback_order(pref);
  for (int pass = 0; pass < 2; ++pass) {
    for (NodeId n : order) {
      if (req.exclude.test(n)) continue;
      const auto ni = static_cast<std::uint32_t>(m.topo.index_of(n));
      if (Mfn mfn = m.try_node(ni, req, cpu); mfn != kInvalidMfn) return Allocation{mfn, n};
      // The preferred node is full: let the reclaim hook make room there
      // before the allocation goes remote.
      if (pass == 0 && n == order.front() && m.reclaim(ni, frames_of_order(req.order)))
        if (Mfn mfn = m.try_node(ni, req, cpu); mfn != kInvalidMfn) return Allocation{mfn, n};
    }
    if (pass == 0)
      for (NodeId n : order)
        if (!req.exclude.test(n)) m.drain_node_index(static_cast<std::uint32_t>(m.topo.index_of(n)));
  }
  // Nothing anywhere: every allowed node gets a chance to reclaim.
  for (NodeId n : order) {
    if (req.exclude.test(n)) continue;
    const auto ni = static_cast<std::uint32_t>(m.topo.index_of(n));
    if (m.reclaim(ni, frames_of_order(req.order)))
      if (Mfn mfn = m.try_node(ni, req, cpu); mfn != kInvalidMfn) return Allocation{mfn, n};
  }
  return Errc::no_memory;
}

Mfn PageAllocator::Impl::try_node(std::uint32_t ni, const AllocRequest& req,
                                  std::uint32_t cpu) noexcept {
  const int slot = pcp.slot_of(req.order);
  if (slot < 0 || (req.flags & AllocFlags::use_claim)) return alloc_buddy(ni, req);
  CpuCache& c = pcp.at(cpu, ni, slot);
  if (use_rseq) {
    if (CacheEntry e; rseq::pop(rseq::offset(), &c, cpu, e)) {
      // Ours alone once popped: nobody else may change the word.
      const Mfn mfn = entry_mfn(e);
      FrameDesc& d = table.known_desc(mfn);
      const FrameWord w = d.load(std::memory_order_relaxed);
      NUMAHEAP_DEBUG_CHECK(entry_matches(e, w.pack(), req.order));
      d.store(w.allocated_to(req.owner));
      scrub_if_needed(mfn, req.order, (w.state & kDirty) != 0, w.owner, req);
      return mfn;
    }
  }
  lock_cache(c, cpu);
  if (c.count == 0) refill(c, ni);
  if (c.count == 0) {
    c.lock.unlock();
    return kInvalidMfn;
  }
  const CacheEntry e = c.entries[c.count - 1];
  const Mfn mfn = entry_mfn(e);
  set_count(c, c.count - 1);
  FrameDesc& d = table.known_desc(mfn);
  const FrameWord w = d.load(std::memory_order_relaxed);
  NUMAHEAP_DEBUG_CHECK(entry_matches(e, w.pack(), req.order));
  d.store(w.allocated_to(req.owner));
  c.lock.unlock();
  scrub_if_needed(mfn, req.order, (w.state & kDirty) != 0, w.owner, req);
  return mfn;
}

Mfn PageAllocator::Impl::alloc_buddy(std::uint32_t ni, const AllocRequest& req) noexcept {
  NodeHeap& h = heap(ni);
  Block b;
  {
    SpinGuard g(h.lock);
    if (h.largest_free_order() < static_cast<int>(req.order)) return kInvalidMfn;
    if (!charge(ni, frames_of_order(req.order), req)) return kInvalidMfn;
    if (!h.take(req.order, b)) return kInvalidMfn;  // cannot happen: a block fits
    FrameDesc& d = table.known_desc(b.head);
    d.store(d.load(std::memory_order_relaxed).allocated_to(req.owner));
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
  }
  scrub_if_needed(b.head, req.order, b.dirty, b.dirty_owner, req);
  return b.head;
}

void PageAllocator::Impl::scrub_if_needed(Mfn mfn, unsigned order, bool dirty,
                                          OwnerId dirty_owner,
                                          const AllocRequest& req) const noexcept {
  if (!dirty) return;
  // Skipping is safe only when every dirty byte is the requester's own.
  if ((req.flags & AllocFlags::no_scrub) && dirty_owner == req.owner) return;
  platform->zero_frames(mfn, frames_of_order(order));
}

void PageAllocator::Impl::refill(CpuCache& c, std::uint32_t ni, std::uint32_t need) noexcept {
  NodeHeap& h = heap(ni);
  SpinGuard g(h.lock);
  // A batch, or `need` when more, within what the cache has room for; with
  // each block of order 0..2, the rest of its 8-frame group (below), so up
  // to per_group - 1 blocks more than that.
  const std::uint32_t room = c.high - c.count;
  const std::uint32_t base = std::min(room, std::max(c.batch, need));
  const std::uint32_t per_group = c.order < kLineGroupOrder ? 1u << (kLineGroupOrder - c.order) : 1;
  const std::uint64_t want = charge_upto(ni, std::min(room, base + per_group - 1), c.order);
  std::uint64_t got = 0;
  auto push = [&](const Block& b) {
    FrameDesc& d = table.known_desc(b.head);
    FrameWord w = d.load(std::memory_order_relaxed);
    w.owner = b.dirty ? b.dirty_owner : kNoOwner;
    w.state = static_cast<std::uint8_t>(kCached | (b.dirty ? kDirty : 0));
    d.store(w);
    c.entries[c.count] = make_cache_entry(b.head, w.pack());
    set_count(c, c.count + 1);
    ++got;
  };
  while (got < base && got < want) {
    Block b;
    if (!h.take(c.order, b)) break;
    push(b);
    // Descriptors are 24 bytes: an aligned group of 8 frames fills 3 cache
    // lines (FrameTable lays them out so). A refill that left the rest of
    // a group on the heap would hand it to the next refill, often another
    // CPU's, and two CPUs whose hot frames share a line bounce it on every
    // alloc and free (3.6x the pair's cost: neighbour_cpus in
    // numaheap_bench.cc). So the group's other free blocks come too.
    if (per_group == 1) continue;
    const Mfn group = b.head & ~((Mfn{1} << kLineGroupOrder) - 1);
    for (std::uint32_t i = 0; i < per_group && got < want; ++i) {
      Block more;  // cached or in use already (b itself too): not taken
      if (h.take_at(group + (Mfn{i} << c.order), c.order, more)) push(more);
    }
  }
  if (got < want) credit((want - got) << c.order);
  NUMAHEAP_DEBUG_CHECK(h.check_invariants());
}

void PageAllocator::Impl::drain(CpuCache& c, std::uint32_t ni, std::uint32_t n) noexcept {
  n = std::min(n, c.count);
  if (n == 0) return;
  NodeHeap& h = heap(ni);
  {
    SpinGuard g(h.lock);
    for (std::uint32_t i = 0; i < n; ++i) {  // the coldest (bottom) frames go
      // The word, not the entry: its owner is exact where the tag is not.
      const Mfn mfn = entry_mfn(c.entries[i]);
      const FrameWord w = table.known_desc(mfn).load();
      NUMAHEAP_DEBUG_CHECK(entry_matches(c.entries[i], w.pack(), c.order));
      const bool dirty = (w.state & kDirty) != 0;
      h.put(mfn, c.order, dirty, dirty ? w.owner : kNoOwner);
    }
    credit(std::uint64_t{n} << c.order);
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
  }
  std::memmove(c.entries, c.entries + n, (c.count - n) * sizeof(CacheEntry));
  set_count(c, c.count - n);
}

void PageAllocator::Impl::drain_node_index(std::uint32_t ni) noexcept {
  for (std::uint32_t cpu = 0; cpu < pcp.cpus(); ++cpu)
    for (int slot = 0; slot < static_cast<int>(PerCpuCaches::kSlots); ++slot) {
      CpuCache& c = pcp.at(cpu, ni, slot);
      // An empty cache has nothing to give back: no lock, and above all no
      // rseq fence (a membarrier syscall per CPU) -- a caller that keeps
      // asking a full node would otherwise fence every CPU on every call.
      if (peek_count(c) == 0) continue;
      lock_cache(c, cpu);
      drain(c, ni, c.count);
      c.lock.unlock();
    }
}

// The fast path: an allocated block of a cached order, of `owner`, with
// nothing pending, goes to the calling CPU's cache lock-free. One
// compare-and-swap of the whole descriptor word -- from exactly "used by
// `owner`, this order, no flags, this generation" as loaded -- decides
// between racing frees, a re-allocation to someone else and offline(), as
// on every path; it is the one atomic read-modify-write of an alloc/free
// pair (docs/fast-path.md). Anything unusual takes free_slow, which checks
// the request in full.
//
// The check and the compare-and-swap, shared by free() and free_ranges:
// true when the word of `d` was "used by `owner`, `order`, no flag" and is
// now cached + dirty, with `e` its cache entry; false (nothing changed)
// otherwise. `order` must be a cached one (its slot >= 0: it fits its byte).
[[gnu::always_inline]] inline bool PageAllocator::Impl::take_for_cache(FrameDesc& d, Mfn mfn, unsigned order,
                                                                       OwnerId owner, CacheEntry& e) noexcept {
  // On the packed word: "used by owner, this order, no flag, no bulk
  // mark" is the word with the loaded generation; cached + dirty differs
  // from it only in the state byte.
  const std::uint64_t w = d.load_packed(std::memory_order_relaxed);
  const std::uint64_t used = (w & kGenMask) | FrameWord{owner, kUsed, static_cast<std::uint8_t>(order), 0, 0}.pack();
  if (w != used || !d.cas_packed(used, used + kUsedToCachedDirty)) [[unlikely]] return false;
  // make_cache_entry(mfn, used + kUsedToCachedDirty), without unpacking.
  e = mfn | std::uint64_t{cache_dirty_tag(true, owner)} << cache_entry::kTagShift | (w & kGenMask);
  return true;
}

Status PageAllocator::free(Mfn mfn, unsigned order, OwnerId owner) noexcept {
  Impl& m = *impl_;
  // One range (else free_ranges): caller input, bounds-checked.
  FrameDesc* const d = m.table.single_lookup(mfn);
  if (!d) [[unlikely]] return m.free_ranges(mfn, order, owner);
  const int slot = m.pcp.slot_of(order);
  if (slot >= 0) [[likely]] {
    // The cache is found *before* the compare-and-swap: loads after a
    // locked instruction wait for it, so the chain rseq area -> CPU id ->
    // cache address would otherwise follow its latency (docs/fast-path.md).
    // The push checks the CPU again in its restartable sequence.
    const std::uint32_t ni = m.table.single_node_index();
    const std::ptrdiff_t area = rseq::offset();
    const std::uint32_t cpu = rseq::cpu(area);
    // No rseq (fast_cpus 0) or another CPU id: push_here's locked push.
    CpuCache* const c = cpu < m.fast_cpus ? &m.pcp.at(cpu, ni, slot) : nullptr;
    if (CacheEntry e; m.take_for_cache(*d, mfn, order, owner, e)) [[likely]] {
      if (c && rseq::push(area, c, cpu, e)) [[likely]] return {};
      return m.push_here(ni, slot, e);
    }
  }
  return m.free_slow(mfn, order, owner);
}

// free() with several frame ranges (or a frame outside the single one).
Status PageAllocator::Impl::free_ranges(Mfn mfn, unsigned order, OwnerId owner) noexcept {
  const FrameRangeInfo* r = nullptr;
  FrameDesc* const d = table.single_range() ? nullptr : table.lookup(mfn, &r);
  const int slot = pcp.slot_of(order);
  if (CacheEntry e; d && slot >= 0 && take_for_cache(*d, mfn, order, owner, e)) {
    const std::ptrdiff_t area = rseq::offset();
    const std::uint32_t cpu = rseq::cpu(area);
    if (cpu < fast_cpus && rseq::push(area, &pcp.at(cpu, r->node_index, slot), cpu, e)) return {};
    return push_here(r->node_index, slot, e);
  }
  return free_slow(mfn, order, owner);
}

Status PageAllocator::Impl::push_here(std::uint32_t ni, int slot, CacheEntry e) noexcept {
  return push_locked(cpu_slot(), ni, slot, e);
}

Status PageAllocator::Impl::push_locked(std::uint32_t cpu, std::uint32_t ni, int slot,
                                        CacheEntry e) noexcept {
  CpuCache& c = pcp.at(cpu, ni, slot);
  if (use_rseq && rseq::push(rseq::offset(), &c, cpu, e)) return {};
  lock_cache(c, cpu);
  if (c.count == c.high) drain(c, ni, c.batch);
  c.entries[c.count] = e;
  set_count(c, c.count + 1);
  c.lock.unlock();
  return {};
}

Status PageAllocator::Impl::free_slow(Mfn mfn, unsigned order, OwnerId owner) noexcept {
  if (order > kMaxOrder) return Errc::invalid_order;
  if (owner > kMaxOwner) return Errc::invalid_argument;
  Impl& m = *this;
  const FrameRangeInfo* r = nullptr;
  FrameDesc* d = m.table.lookup(mfn, &r);
  if (!d) return Errc::invalid_frame;
  for (;;) {
    FrameWord w = d->load();
    if (const Errc e = check_used_head(w, order, owner); e != Errc::ok) return e;
    const std::uint8_t s = w.state;
    const std::uint32_t ni = r->node_index;
    const int slot = m.pcp.slot_of(order);
    if (slot >= 0 && !(s & (kHasPending | kPendingOffline))) {
      // The compare-and-swap of the whole word decides between racing
      // frees, a re-allocation and offline().
      const FrameWord cached{owner, static_cast<std::uint8_t>(kCached | kDirty), w.order, 0, w.gen};
      if (!d->cas(w, cached)) continue;
      return m.push_here(ni, slot, make_cache_entry(mfn, cached.pack()));
    }
    NodeHeap& h = m.heap(ni);
    SpinGuard g(h.lock);
    // Off `used`, still this owner's bytes: put() makes it a free block.
    if (!d->cas(w, FrameWord{owner, static_cast<std::uint8_t>(s & kPendingOffline), w.order, 0, w.gen}))
      continue;
    const std::uint64_t pages = frames_of_order(order);
    if (s & kHasPending) {
      const std::uint64_t before = h.offlined_;
      h.put_with_pending(mfn, order, true, owner);
      m.credit(pages - (h.offlined_ - before));
    } else {
      h.put(mfn, order, true, owner);
      m.credit(pages);
    }
    NUMAHEAP_DEBUG_CHECK(h.check_invariants());
    return {};
  }
}

void PageAllocator::drain_all() noexcept {
  for (std::uint32_t ni = 0; ni < impl_->node_count; ++ni) impl_->drain_node_index(ni);
}

void PageAllocator::drain_node(NodeId node) noexcept {
  const int ni = impl_->topo.index_of(node);
  if (ni >= 0) impl_->drain_node_index(static_cast<std::uint32_t>(ni));
}

void* PageAllocator::frame_address(Mfn mfn) const noexcept {
  return impl_->platform->frame_address(mfn);
}

NodeId PageAllocator::node_of(Mfn mfn) const noexcept {
  const FrameRangeInfo* r = impl_->table.find_range(mfn);
  return r ? impl_->topo.node_at(r->node_index).id : kNoNode;
}

const Topology& PageAllocator::topology() const noexcept { return impl_->topo; }
const Platform& PageAllocator::platform() const noexcept { return *impl_->platform; }

bool PageAllocator::lockless_cpu_caches() const noexcept { return impl_->use_rseq; }

double PageAllocator::metadata_bytes_per_frame() const noexcept {
  return impl_->table.bytes_per_frame();
}

}  // namespace numaheap

namespace numaheap {

void PageAllocator::set_reclaim_hook(const ReclaimHook& hook) noexcept {
  impl_->reclaim_fn.store(nullptr, std::memory_order_release);
  impl_->reclaim_ctx.store(hook.ctx, std::memory_order_release);
  impl_->reclaim_fn.store(hook.fn, std::memory_order_release);
}

}  // namespace numaheap
