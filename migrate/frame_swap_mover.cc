// FrameSwapMover: move guest pages by copying them to a new frame on the
// target node and swapping the p2m entry, for hypervisors that own the p2m.
//
// Why this order (per batch, one flush pair shared by the whole batch):
//  1. mark each entry `migrating` by CAS: from here on nothing else may
//     replace the entry (balloon and dedup skip migrating entries), and the
//     embedder's write-fault path knows to wait for the move;
//  2. allocate the new block exactly on the target (no_scrub: the copy
//     overwrites every byte, and only this owner's bytes were there);
//  3. write_protect + flush: only after flush() returns can no vCPU still
//     write through an old writable translation;
//  4. copy every block of the batch;
//  5. with a dirty log (the dirtied hook): flush once more, so a writer
//     that write protection does not stop (a backend, emulated DMA) and
//     that translated before step 1 has finished its write, then ask the
//     dirty log about every block. From that flush on nothing can write an
//     old frame (vCPUs are write-protected, other writers see `migrating`),
//     so a write the answer misses cannot exist: asked any earlier (say,
//     right after each block's copy) a write landing between the answer
//     and the swap would be lost while the page is reported moved. A dirty
//     block keeps its old frame (outcome busy);
//  6. swap the entries (CAS; only flag bits may differ from what we marked:
//     an entry whose frame or order changed means someone ignored
//     `migrating`, and the block's move is undone, outcome busy), then
//     clear `migrating` (a 4 KiB page: in the swapping CAS itself), flush
//     again so no CPU reads the old frame, unprotect, free the old block
//     (4 KiB frames of the batch in one free_bulk). The allocator keeps it dirty;
//     scrubbing happens later, off this path. A free the allocator refuses
//     is counted on the guest (GuestMemory::note_lost_frames), never
//     ignored.
#include <cstring>
// Non-temporal copies only in the host library: a freestanding embedder
// decides itself whether its context may use vector registers (and has
// FrameSwapHooks::copy for its own copy).
#if NUMAHEAP_HOSTED && defined(__SSE2__)
#define NUMAHEAP_STREAM_COPY 1
#include <emmintrin.h>
#else
#define NUMAHEAP_STREAM_COPY 0
#endif

#include "numaheap/guest_memory.h"
#include "numaheap/mover.h"

namespace numaheap {

const char* move_outcome_name(MoveOutcome o) noexcept {
  switch (o) {
    case MoveOutcome::moved: return "moved";
    case MoveOutcome::busy: return "busy";
    case MoveOutcome::no_memory: return "no_memory";
    case MoveOutcome::pinned: return "pinned";
    case MoveOutcome::shared: return "shared";
    case MoveOutcome::not_present: return "not_present";
    case MoveOutcome::invalid_node: return "invalid_node";
  }
  return "unknown";
}

namespace {

constexpr std::size_t kNone = ~std::size_t{0};

bool has_copy_path(const PageAllocator& pa, const FrameSwapHooks& h) {
  if (h.copy) return true;
  if (pa.platform().mode() == MemoryMode::host_memory) return true;
  return pa.platform().config().hooks.copy != nullptr;
}

// Blocks of at least this many bytes are copied with non-temporal stores
// when the mover copies host memory itself: the destination is not read
// by this CPU soon (the guest reads it, from its own CPU, or nobody), so
// writing around the caches saves reading every destination line first
// (read-for-ownership) and keeps the caches for the rest. Measured on the
// bench VM (issue 17, numaheap-bench-migrate, 5 alternating runs): 2 MiB
// blocks 110-120% of glibc's memcpy (which for 2 MiB stays below its own
// non-temporal threshold), batches of 4 KiB pages 110-150% (96% when they
// were memcpy'd); so every frame streams, with one fence per batch.
#if NUMAHEAP_STREAM_COPY
constexpr std::size_t kStreamCopyMin = kFrameSize;
#endif

// memcpy of whole frames (page aligned, a multiple of 4 KiB), around the
// caches from kStreamCopyMin bytes on (host library, x86-64). Returns
// true if it streamed: the caller issues one store fence (stream_fence)
// before publishing any of the copies. Compiler intrinsics only.
bool copy_frames(void* dst, const void* src, std::size_t bytes) noexcept {
#if NUMAHEAP_STREAM_COPY
  if (bytes >= kStreamCopyMin) {
    auto* d = static_cast<__m128i*>(dst);
    const auto* s = static_cast<const __m128i*>(src);
    for (std::size_t i = 0; i < bytes / sizeof(__m128i); i += 4) {
      const __m128i a = _mm_load_si128(s + i), b = _mm_load_si128(s + i + 1);
      const __m128i c = _mm_load_si128(s + i + 2), e = _mm_load_si128(s + i + 3);
      _mm_stream_si128(d + i, a);
      _mm_stream_si128(d + i + 1, b);
      _mm_stream_si128(d + i + 2, c);
      _mm_stream_si128(d + i + 3, e);
    }
    return true;
  }
#endif
  std::memcpy(dst, src, bytes);
  return false;
}

// Orders the non-temporal stores before every later store (the swap's CAS
// that publishes the new frame): they are weakly ordered otherwise.
void stream_fence() noexcept {
#if NUMAHEAP_STREAM_COPY
  _mm_sfence();
#endif
}

// Clears `migrating` on the first `count` entries of a block we marked.
void unmark(GuestMemory& g, Gfn head, std::uint64_t count) {
  for (std::uint64_t k = 0; k < count; ++k) (void)g.update_flags(head + k, 0, P2mFlags::migrating);
}

// Marks every entry of the block [head, head + 2^order) migrating, each
// still mapping head_mfn + k with the same order and no blocking flag.
// Entries are first tried as predicted from the head's (one CAS, no extra
// load: 512 of them per 2 MiB block), then read if the guess was wrong.
bool mark_block(GuestMemory& g, Gfn head, Mfn head_mfn, unsigned order, std::uint8_t flags) {
  constexpr std::uint8_t blocking = P2mFlags::migrating | P2mFlags::pinned | P2mFlags::shared;
  const std::uint64_t span = frames_of_order(order);
  const auto ord = static_cast<std::uint8_t>(order);
  const auto marked = static_cast<std::uint8_t>(flags | P2mFlags::migrating);
  for (std::uint64_t k = 0; k < span; ++k) {
    if (!(flags & blocking) && g.compare_exchange(head + k, P2mEntry{head_mfn + k, flags, ord},
                                                  P2mEntry{head_mfn + k, marked, ord}))
      continue;
    P2mEntry cur = g.lookup(head + k);
    P2mEntry want = cur;
    want.flags = static_cast<std::uint8_t>(cur.flags | P2mFlags::migrating);
    if (!cur.present() || cur.mfn != head_mfn + k || cur.order != order || (cur.flags & blocking) ||
        !g.compare_exchange(head + k, cur, want)) {
      unmark(g, head, k);
      return false;
    }
  }
  return true;
}

Result<Mfn> alloc_exact(PageAllocator& pa, NodeId target, unsigned order, OwnerId owner) {
  auto a = pa.alloc(AllocRequest{order, target, AllocFlags::exact_node | AllocFlags::no_scrub, owner, {}});
  if (!a) return a.error();
  return a->mfn;
}

// 4 KiB target frames for a batch, taken from one contiguous block when the
// target has one (one allocation instead of up to 64, and a destination
// the copy streams into); frames left over go back one by one.
struct FramePool {
  Mfn next = 0, end = 0;
  Result<Mfn> take(PageAllocator& pa, NodeId target, OwnerId owner, std::size_t wanted) {
    if (next == end && wanted > 1) {
      unsigned order = 0;
      while (order < 6 && frames_of_order(order) < wanted) ++order;
      auto a = alloc_exact(pa, target, order, owner);
      if (a && pa.split(*a, order, owner)) {
        next = *a;
        end = *a + frames_of_order(order);
      } else if (a && !pa.free(*a, order, owner)) {
        lost += frames_of_order(order);
      }
    }
    if (next != end) return next++;
    return alloc_exact(pa, target, 0, owner);
  }
  void release(PageAllocator& pa, OwnerId owner) {
    for (; next != end; ++next)
      if (!pa.free(next, 0, owner)) ++lost;
  }
  std::uint64_t lost = 0;  // frees the allocator refused (see GuestMemory::note_lost_frames)
};

}  // namespace

struct FrameSwapMover::Batch {
  struct Item {
    Gfn head;
    unsigned order;
    Mfn old_mfn, new_mfn;
    bool live;           // copy verified: swap (true) or roll back (false)
    std::uint8_t flags;  // the entries' flags when marked (migrating included)
    bool vanished;       // an entry was gone when swapped (a 4 KiB page: not_present)
  };
  Item items[kMaxBatch];
  GfnRun runs[kMaxBatch];
  std::size_t count = 0;
};

Result<FrameSwapMover> FrameSwapMover::create(GuestMemory& guest, const FrameSwapHooks& hooks,
                                              const FrameSwapOptions& options) {
  // unprotect is required as in the C API: without it every moved page
  // would stay write-protected (an embedder that restores access lazily
  // passes a hook that does nothing).
  if (!hooks.write_protect || !hooks.flush || !hooks.unprotect) return Errc::invalid_argument;
  if (options.batch == 0 || options.batch > kMaxBatch) return Errc::invalid_argument;
  if (!has_copy_path(guest.allocator(), hooks)) return Errc::invalid_argument;
  FrameSwapMover m;
  m.guest_ = &guest;
  m.hooks_ = hooks;
  m.options_ = options;
  return m;
}

std::uint64_t FrameSwapMover::page_count() const noexcept { return guest_->gfn_limit(); }

Status FrameSwapMover::query(Gfn first, std::span<PageState> out) noexcept {
  if (first > page_count() || out.size() > page_count() - first) return Errc::invalid_argument;
  const PageAllocator& pa = guest_->allocator();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const P2mEntry e = guest_->lookup(first + i);
    out[i] = e.present() ? PageState{pa.node_of(e.mfn), e.flags, e.order, false} : PageState{};
    if (e.present()) {
      const Gfn off = (first + i) & (frames_of_order(e.order) - 1);
      out[i].retiring = pa.offline_pending(e.mfn - off, e.order);
    }
  }
  return {};
}

std::uint64_t FrameSwapMover::offline_events() const noexcept { return guest_->allocator().offline_events(); }

Status FrameSwapMover::relayout(std::span<const GuestRange> layout) noexcept {
  return guest_->relayout(layout);
}

bool FrameSwapMover::node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept {
  auto s = guest_->allocator().stats(node);
  if (!s) return false;
  const std::uint64_t avail = s->free + s->cached;
  free = avail > s->claimed ? avail - s->claimed : 0;  // others' claims are not ours to take
  managed = s->managed;
  return true;
}

Result<MoveTotals> FrameSwapMover::move(std::span<const Gfn> gfns, NodeId target,
                                        MoveGranularity granularity, std::span<MoveOutcome> out) noexcept {
  return move_all(gfns, target, granularity, false, out);
}

Result<MoveTotals> FrameSwapMover::evacuate(std::span<const Gfn> gfns, NodeId target,
                                            std::span<MoveOutcome> out) noexcept {
  return move_all(gfns, target, MoveGranularity::whole_blocks, true, out);
}

Result<MoveTotals> FrameSwapMover::move_all(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                            bool fresh, std::span<MoveOutcome> out) noexcept {
  if (out.size() != gfns.size()) return Errc::invalid_argument;
  const NodeInfo* n = guest_->allocator().topology().find(target);
  if (!n || n->frame_count() == 0) return Errc::invalid_node;
  MoveTotals total;
  for (std::size_t at = 0; at < gfns.size(); at += options_.batch) {
    const std::size_t len = std::min<std::size_t>(options_.batch, gfns.size() - at);
    auto r = move_chunk(gfns.subspan(at, len), target, granularity, fresh, out.subspan(at, len));
    if (!r) return r.error();
    total.frames_moved += r->frames_moved;
    total.flushes += r->flushes;
  }
  return total;
}

// `fresh`: a page already on `target` moves too (to a new block there).
Result<MoveTotals> FrameSwapMover::move_chunk(std::span<const Gfn> gfns, NodeId target,
                                              MoveGranularity granularity, bool fresh,
                                              std::span<MoveOutcome> out) noexcept {
  GuestMemory& g = *guest_;
  PageAllocator& pa = g.allocator();
  Batch b;
  FramePool pool;
  std::size_t item_of[kMaxBatch];
  MoveTotals totals;

  // 1-2. Claim the entries and the target frames.
  for (std::size_t i = 0; i < gfns.size(); ++i) {
    item_of[i] = kNone;
    const Gfn gfn = gfns[i];
    P2mEntry e = gfn < page_count() ? g.lookup(gfn) : P2mEntry{};
    if (e.present() && e.order > 0 && granularity == MoveGranularity::pages &&
        !(e.flags & (P2mFlags::pinned | P2mFlags::shared | P2mFlags::migrating)) &&
        pa.node_of(e.mfn) != target) {
      if (!g.split_to_pages(gfn)) {
        out[i] = MoveOutcome::busy;
        continue;
      }
      e = g.lookup(gfn);
    }
    if (!e.present()) { out[i] = MoveOutcome::not_present; continue; }
    if (e.flags & P2mFlags::pinned) { out[i] = MoveOutcome::pinned; continue; }
    if (e.flags & P2mFlags::shared) { out[i] = MoveOutcome::shared; continue; }
    const std::uint64_t span = frames_of_order(e.order);
    const Gfn head = gfn & ~(span - 1);
    const Mfn head_mfn = e.mfn - (gfn - head);
    // Another page of a block already queued by this batch, or the same
    // page twice? Such entries are ours (migrating); search only then.
    auto queued = [&] {
      for (std::size_t k = 0; k < b.count; ++k)
        if (b.items[k].head == head) return k;
      return kNone;
    };
    if (e.flags & P2mFlags::migrating) {
      if ((item_of[i] = queued()) == kNone) out[i] = MoveOutcome::busy;
      continue;
    }
    if (!fresh && pa.node_of(e.mfn) == target) { out[i] = MoveOutcome::moved; continue; }
    if (!mark_block(g, head, head_mfn, e.order, e.flags)) {
      if ((item_of[i] = queued()) == kNone) out[i] = MoveOutcome::busy;
      continue;
    }
    Result<Mfn> dst = e.order == 0 ? pool.take(pa, target, g.owner(), gfns.size() - i)
                                   : alloc_exact(pa, target, e.order, g.owner());
    if (!dst) {
      unmark(g, head, span);
      out[i] = dst.error() == Errc::invalid_node ? MoveOutcome::invalid_node : MoveOutcome::no_memory;
      continue;
    }
    item_of[i] = b.count;
    b.items[b.count] = {head, e.order, head_mfn, *dst, true,
                       static_cast<std::uint8_t>(e.flags | P2mFlags::migrating), false};
    b.runs[b.count] = {head, span};
    ++b.count;
  }
  if (b.count == 0) {
    pool.release(pa, g.owner());
    if (pool.lost) g.note_lost_frames(pool.lost);
    return totals;
  }

  // 3-4. Writes stop counting only once the flush has returned; then copy.
  // (options_.unsafe_copy_before_protect: the deliberately broken order,
  // for the negative tests only.)
  auto copy_all = [&] {
    bool streamed = false;
    for (std::size_t k = 0; k < b.count; ++k) {
      const auto& it = b.items[k];
      const std::uint64_t frames = frames_of_order(it.order);
      if (hooks_.copy) {
        hooks_.copy(hooks_.ctx, it.new_mfn, it.old_mfn, frames);
      } else if (void* dst = pa.frame_address(it.new_mfn)) {
        streamed |= copy_frames(dst, pa.frame_address(it.old_mfn), frames << kFrameShift);
      } else {
        for (std::uint64_t f = 0; f < frames; ++f) (void)pa.platform().copy_frame(it.new_mfn + f, it.old_mfn + f);
      }
    }
    if (streamed) stream_fence();  // one fence for the batch, before any swap
  };
  if (options_.unsafe_copy_before_protect) copy_all();
  hooks_.write_protect(hooks_.ctx, b.runs, b.count);
  hooks_.flush(hooks_.ctx);
  ++totals.flushes;
  if (!options_.unsafe_copy_before_protect) copy_all();

  // 5. Drain writers the protection does not stop, then ask the dirty log.
  if (hooks_.dirtied) {
    hooks_.flush(hooks_.ctx);
    ++totals.flushes;
    for (std::size_t k = 0; k < b.count; ++k)
      if (hooks_.dirtied(hooks_.ctx, b.runs[k])) b.items[k].live = false;
  }

  // 6. Swap (or roll back), clear `migrating`, flush, unprotect, free.
  for (std::size_t k = 0; k < b.count; ++k) {
    auto& it = b.items[k];
    const std::uint64_t span = frames_of_order(it.order);
    if (!it.live) {
      unmark(g, it.head, span);
      continue;
    }
    const auto ord = static_cast<std::uint8_t>(it.order);
    // A 4 KiB page is swapped and released (migrating cleared) by one CAS:
    // with nothing else of its block to roll back, no one can see the new
    // frame unmarked before the move is final. A larger block keeps every
    // entry marked until all are swapped (a failure midway is undone).
    const auto done_flags = static_cast<std::uint8_t>(span == 1 ? it.flags & ~P2mFlags::migrating : it.flags);
    std::uint64_t swapped = 0;
    for (; swapped < span; ++swapped) {
      const Gfn gfn = it.head + swapped;
      if (g.compare_exchange(gfn, P2mEntry{it.old_mfn + swapped, it.flags, ord},
                             P2mEntry{it.new_mfn + swapped, done_flags, ord}))
        continue;  // as marked
      bool ok = false;
      for (;;) {  // only flag bits may change under us (migrating blocks the rest)
        const P2mEntry cur = g.lookup(gfn);
        if (!cur.present() || cur.mfn != it.old_mfn + swapped || cur.order != it.order ||
            !(cur.flags & P2mFlags::migrating)) {
          it.vanished = !cur.present();
          break;
        }
        P2mEntry next = cur;
        next.mfn = it.new_mfn + swapped;
        if (span == 1) next.flags = static_cast<std::uint8_t>(cur.flags & ~P2mFlags::migrating);
        if ((ok = g.compare_exchange(gfn, cur, next))) break;
      }
      if (!ok) break;
    }
    if (swapped < span) {
      // Someone ignored `migrating` and changed an entry (a split, a
      // balloon): the old block is not ours to free as one unit any more.
      // Put back what we swapped; nothing but readers saw the new frames
      // (vCPUs are write-protected, other writers wait on `migrating`).
      it.live = false;
      for (std::uint64_t f = 0; f < swapped; ++f)
        for (;;) {
          const P2mEntry cur = g.lookup(it.head + f);
          if (!cur.present() || cur.mfn != it.new_mfn + f) break;
          P2mEntry back = cur;
          back.mfn = it.old_mfn + f;
          if (g.compare_exchange(it.head + f, cur, back)) break;
        }
      for (std::uint64_t f = 0; f < span; ++f)
        if (const P2mEntry cur = g.lookup(it.head + f); cur.present() && cur.mfn == it.old_mfn + f)
          (void)g.update_flags(it.head + f, 0, P2mFlags::migrating);
      continue;
    }
    // Moved: writers that wait on `migrating` may go on. Each entry is as
    // swapped unless a flag changed since (then read and retried).
    if (span > 1)
      for (std::uint64_t f = 0; f < span; ++f) {
        const P2mEntry as_swapped{it.new_mfn + f, it.flags, ord};
        P2mEntry released = as_swapped;
        released.flags = static_cast<std::uint8_t>(it.flags & ~P2mFlags::migrating);
        if (!g.compare_exchange(it.head + f, as_swapped, released))
          (void)g.update_flags(it.head + f, 0, P2mFlags::migrating);
      }
  }
  hooks_.flush(hooks_.ctx);
  ++totals.flushes;
  hooks_.unprotect(hooks_.ctx, b.runs, b.count);
  pool.release(pa, g.owner());
  std::uint64_t lost = pool.lost;
  // Moved: the old block goes; not moved: the new one (never mapped for
  // writing, no longer mapped at all after the flush). 4 KiB frames go back
  // in one free_bulk (runs merged into whole blocks); if it refuses them
  // (all or nothing), one by one, so only the refused ones count as lost.
  Mfn single[kMaxBatch];
  std::size_t singles = 0;
  for (std::size_t k = 0; k < b.count; ++k) {
    const auto& it = b.items[k];
    const Mfn gone = it.live ? it.old_mfn : it.new_mfn;
    if (it.live) totals.frames_moved += frames_of_order(it.order);
    if (it.order == 0) single[singles++] = gone;
    else if (!pa.free(gone, it.order, g.owner())) lost += frames_of_order(it.order);
  }
  if (singles && !pa.free_bulk(std::span<const Mfn>(single, singles), g.owner()))
    for (std::size_t k = 0; k < singles; ++k)
      if (!pa.free(single[k], 0, g.owner())) ++lost;
  if (lost) g.note_lost_frames(lost);
  for (std::size_t i = 0; i < gfns.size(); ++i)
    if (item_of[i] != kNone)
      out[i] = b.items[item_of[i]].live                                    ? MoveOutcome::moved
               : b.items[item_of[i]].vanished && b.items[item_of[i]].order == 0 ? MoveOutcome::not_present
                                                                                : MoveOutcome::busy;
  return totals;
}

// Coalescing (see mover.h): the block move above in reverse -- 2^order
// single pages in, one block out. The old frames are kept on the stack
// (at most 512: 4 KiB) so a swap that fails midway can be undone.
Result<MoveTotals> FrameSwapMover::coalesce(Gfn head, unsigned order, NodeId target, MoveOutcome& out) noexcept {
  out = MoveOutcome::busy;
  if (order == 0 || order > kMaxCoalesceOrder) return Errc::invalid_argument;
  const std::uint64_t span = frames_of_order(order);
  if (head % span != 0 || head > page_count() || span > page_count() - head) return Errc::invalid_argument;
  const NodeInfo* n = guest_->allocator().topology().find(target);
  if (!n || n->frame_count() == 0) return Errc::invalid_node;
  GuestMemory& g = *guest_;
  PageAllocator& pa = g.allocator();
  MoveTotals totals;
  Mfn old[frames_of_order(kMaxCoalesceOrder)];
  std::uint8_t flags[frames_of_order(kMaxCoalesceOrder)];
  constexpr std::uint8_t blocking = P2mFlags::migrating | P2mFlags::pinned | P2mFlags::shared;
  // 1. Claim every entry: present, a 4 KiB block, nothing blocking.
  for (std::uint64_t k = 0; k < span; ++k) {
    const P2mEntry cur = g.lookup(head + k);
    P2mEntry want = cur;
    want.flags = static_cast<std::uint8_t>(cur.flags | P2mFlags::migrating);
    const MoveOutcome why = !cur.present()                      ? MoveOutcome::not_present
                            : (cur.flags & P2mFlags::pinned)    ? MoveOutcome::pinned
                            : (cur.flags & P2mFlags::shared)    ? MoveOutcome::shared
                                                                : MoveOutcome::busy;
    if (!cur.present() || cur.order != 0 || (cur.flags & blocking) || !g.compare_exchange(head + k, cur, want)) {
      unmark(g, head, k);
      out = why;
      return totals;
    }
    old[k] = cur.mfn;
    flags[k] = want.flags;
  }
  // 2. The block, exactly on the target.
  Result<Mfn> dst = alloc_exact(pa, target, order, g.owner());
  if (!dst) {
    unmark(g, head, span);
    out = dst.error() == Errc::invalid_node ? MoveOutcome::invalid_node : MoveOutcome::no_memory;
    return totals;
  }
  // 3-4. Writes stop counting once the flush has returned; then copy.
  const GfnRun run{head, span};
  hooks_.write_protect(hooks_.ctx, &run, 1);
  hooks_.flush(hooks_.ctx);
  ++totals.flushes;
  bool streamed = false;
  for (std::uint64_t k = 0; k < span; ++k) {
    if (hooks_.copy) {
      hooks_.copy(hooks_.ctx, *dst + k, old[k], 1);
    } else if (void* to = pa.frame_address(*dst + k)) {
      streamed |= copy_frames(to, pa.frame_address(old[k]), kFrameSize);
    } else {
      (void)pa.platform().copy_frame(*dst + k, old[k]);
    }
  }
  if (streamed) stream_fence();
  // 5. Writers the protection does not stop (see move_chunk).
  bool live = true;
  if (hooks_.dirtied) {
    hooks_.flush(hooks_.ctx);
    ++totals.flushes;
    live = !hooks_.dirtied(hooks_.ctx, run);
  }
  // 6. Swap every entry to the block (only flag bits may change under us).
  const auto ord = static_cast<std::uint8_t>(order);
  std::uint64_t swapped = 0;
  for (; live && swapped < span; ++swapped) {
    const Gfn gfn = head + swapped;
    if (g.compare_exchange(gfn, P2mEntry{old[swapped], flags[swapped], 0},
                           P2mEntry{*dst + swapped, flags[swapped], ord}))
      continue;
    bool ok = false;
    for (;;) {
      const P2mEntry cur = g.lookup(gfn);
      if (!cur.present() || cur.mfn != old[swapped] || cur.order != 0 || !(cur.flags & P2mFlags::migrating)) break;
      flags[swapped] = cur.flags;
      if ((ok = g.compare_exchange(gfn, cur, P2mEntry{*dst + swapped, cur.flags, ord}))) break;
    }
    if (!ok) live = false;
  }
  if (!live) {
    // Someone ignored `migrating` (or a dirty log said no): put back what
    // was swapped, release the rest; the new block goes.
    for (std::uint64_t f = 0; f < swapped; ++f)
      for (;;) {
        const P2mEntry cur = g.lookup(head + f);
        if (!cur.present() || cur.mfn != *dst + f) break;
        if (g.compare_exchange(head + f, cur, P2mEntry{old[f], cur.flags, 0})) break;
      }
    for (std::uint64_t f = 0; f < span; ++f)
      if (const P2mEntry cur = g.lookup(head + f); cur.present() && cur.mfn == old[f])
        (void)g.update_flags(head + f, 0, P2mFlags::migrating);
  } else {
    for (std::uint64_t f = 0; f < span; ++f) {
      const P2mEntry as_swapped{*dst + f, flags[f], ord};
      P2mEntry released = as_swapped;
      released.flags = static_cast<std::uint8_t>(flags[f] & ~P2mFlags::migrating);
      if (!g.compare_exchange(head + f, as_swapped, released)) (void)g.update_flags(head + f, 0, P2mFlags::migrating);
    }
  }
  hooks_.flush(hooks_.ctx);
  ++totals.flushes;
  hooks_.unprotect(hooks_.ctx, &run, 1);
  // 7. Free what is no longer mapped: the old frames, or the new block.
  std::uint64_t lost = 0;
  if (!live) {
    if (!pa.free(*dst, order, g.owner())) lost += span;
    if (lost) g.note_lost_frames(lost);
    return totals;
  }
  for (std::uint64_t k = 0; k < span; ++k)
    if (pa.node_of(old[k]) != target) ++totals.frames_moved;
  for (std::uint64_t at = 0; at < span; at += kMaxBatch) {
    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxBatch, span - at));
    if (!pa.free_bulk(std::span<const Mfn>(old + at, len), g.owner()))
      for (std::size_t k = 0; k < len; ++k)
        if (!pa.free(old[at + k], 0, g.owner())) ++lost;
  }
  if (lost) g.note_lost_frames(lost);
  out = MoveOutcome::moved;
  return totals;
}

}  // namespace numaheap
