// PageAllocator::split: one allocated block becomes 4 KiB blocks.
#include "allocator/heap/page_allocator_impl.h"

namespace numaheap {

Status PageAllocator::split(Mfn mfn, unsigned order, OwnerId owner) noexcept {
  if (order > kMaxOrder) return Errc::invalid_order;
  if (owner > kMaxOwner) return Errc::invalid_argument;
  Impl& m = *impl_;
  const FrameRangeInfo* r = nullptr;
  FrameDesc* d = m.table.lookup(mfn, &r);
  if (!d) return Errc::invalid_frame;
  // The node lock orders us against offline(), which marks pending frames
  // of used blocks under it.
  NodeHeap& h = m.heap(r->node_index);
  SpinGuard g(h.lock);
  for (;;) {
    FrameWord w = d->load();
    if (const Errc e = check_used_head(w, order, owner); e != Errc::ok) return e;
    const std::uint8_t s = w.state;
    if (order == 0) return {};
    if (mfn + frames_of_order(order) > r->end) return Errc::invalid_frame;
    const std::uint8_t used = static_cast<std::uint8_t>(FrameKind::used);
    // Head first: once it says order 0, its former tails must become heads
    // before anyone can look (they can only look under this lock, or
    // through free() on a frame only the owner -- our caller -- knows).
    const std::uint8_t head_state =
        static_cast<std::uint8_t>(used | ((s & kPendingOffline) ? (kHasPending | kPendingOffline) : 0));
    // One compare-and-swap: the owner's racing free() of the whole block
    // (or offline()) either happened before -- we re-read -- or fails after.
    if (!d->cas(w, FrameWord{owner, head_state, 0, 0, w.gen})) continue;
    for (std::uint64_t i = 1; i < frames_of_order(order); ++i) {
      FrameDesc& t = m.table.desc(*r, mfn + i);
      const FrameWord tw = t.load();
      t.store(FrameWord{owner,
                        static_cast<std::uint8_t>(
                            used | ((tw.state & kPendingOffline) ? (kHasPending | kPendingOffline) : 0)),
                        0, 0, static_cast<std::uint8_t>(tw.gen + 1)});
    }
    return {};
  }
}

}  // namespace numaheap
