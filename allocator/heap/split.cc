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
    std::uint8_t s = d->load_state();
    if (const Errc e = check_used_head(*d, s, order, owner); e != Errc::ok) return e;
    if (order == 0) return {};
    if (mfn + frames_of_order(order) > r->end) return Errc::invalid_frame;
    const std::uint8_t used = static_cast<std::uint8_t>(FrameKind::used);
    // Head first: once it says order 0, its former tails must become heads
    // before anyone can look (they can only look under this lock, or
    // through free() on a frame only the owner -- our caller -- knows).
    const std::uint8_t head_state =
        static_cast<std::uint8_t>(used | ((s & kPendingOffline) ? (kHasPending | kPendingOffline) : 0));
    if (!d->cas_state(s, head_state)) continue;  // a flag changed meanwhile: re-read
    d->order = 0;
    for (std::uint64_t i = 1; i < frames_of_order(order); ++i) {
      FrameDesc& t = m.table.desc(*r, mfn + i);
      const std::uint8_t ts = t.load_state();
      t.owner = owner;
      t.order = 0;
      t.store_state(static_cast<std::uint8_t>(
          used | ((ts & kPendingOffline) ? (kHasPending | kPendingOffline) : 0)));
    }
    return {};
  }
}

}  // namespace numaheap
