// NodeHeap: buddy split/merge, offlining of free frames, background scrub.
#include "allocator/heap/node_heap.h"
#include "allocator/platform/fault_injection.h"

#include <algorithm>
#include <bit>

namespace numaheap {

namespace {
constexpr std::uint8_t kFreeState = static_cast<std::uint8_t>(FrameKind::free);
constexpr std::uint8_t kOfflineState = static_cast<std::uint8_t>(FrameKind::offline);
constexpr std::uint64_t kScrubChunk = 16;  // frames between abort checks
}  // namespace

void NodeHeap::init(const FrameTable* table, const Platform* platform,
                    std::uint32_t node_index) noexcept {
  table_ = table;
  platform_ = platform;
  node_index_ = node_index;
  managed_ = 0;
  for (const FrameRangeInfo& r : table->ranges())
    if (r.node_index == node_index) managed_ += r.end - r.first;
}

void NodeHeap::seed(bool dirty) noexcept {
  for (const FrameRangeInfo& r : table_->ranges()) {
    if (r.node_index != node_index_) continue;
    for (Mfn m = r.first; m < r.end;) {
      unsigned k = std::min<unsigned>(static_cast<unsigned>(std::countr_zero(m)), kMaxOrder);
      while (m + frames_of_order(k) > r.end) --k;
      link(table_->desc(r, m), m, k, dirty, kMixedOwner);
      m += frames_of_order(k);
    }
  }
}

void NodeHeap::link(FrameDesc& d, Mfn /*head*/, unsigned order, bool dirty,
                    OwnerId owner) noexcept {
  FrameWord w = d.load(std::memory_order_relaxed);  // keeps the generation
  w.owner = dirty ? owner : kNoOwner;
  w.state = static_cast<std::uint8_t>(kFreeState | (dirty ? kDirty : 0));
  w.order = static_cast<std::uint8_t>(order);
  w.bulk_scrub = 0;
  d.store(w);
  lists_[dirty][order].push_front(d);
  ++free_blocks_[order];
  free_frames_ += frames_of_order(order);
  if (dirty) {
    ++dirty_blocks_[order];
    dirty_frames_ += frames_of_order(order);
  }
}

void NodeHeap::unlink(FrameDesc& d, unsigned order) noexcept {
  const bool dirty = (d.load_state() & kDirty) != 0;
  lists_[dirty][order].erase(lists_[dirty][order].iterator_to(d));
  --free_blocks_[order];
  free_frames_ -= frames_of_order(order);
  if (dirty) {
    --dirty_blocks_[order];
    dirty_frames_ -= frames_of_order(order);
  }
}

void NodeHeap::abort_scrub_if(FrameDesc& d) noexcept {
  if (!(d.load_state() & kScrubbing)) return;
  scrub_abort_.store(true, std::memory_order_release);
  while (scrub_running_.load(std::memory_order_acquire)) platform_->relax();
  scrub_head_ = kInvalidMfn;  // tells the scrubber its block was taken
  FrameWord w = d.load();
  w.state = static_cast<std::uint8_t>(w.state & ~kScrubbing);
  d.store(w);
}

bool NodeHeap::take(unsigned order, Block& out) noexcept {
  for (unsigned j = order; j <= kMaxOrder; ++j) {
    FrameList* list = nullptr;
    if (!lists_[0][j].empty()) list = &lists_[0][j];
    else if (!lists_[1][j].empty()) list = &lists_[1][j];
    if (!list) continue;
    // Prefer a block the scrubber is not working on.
    FrameDesc* d = &list->front();
    if ((d->load_state() & kScrubbing) && ++list->begin() != list->end()) d = &*++list->begin();
    abort_scrub_if(*d);
    carve(*d, table_->mfn_of(d), j, order, out);
    return true;
  }
  return false;
}

bool NodeHeap::take_at(Mfn head, unsigned order, Block& out) noexcept {
  const FrameRangeInfo* r = table_->find_range(head);
  if (!r || r->node_index != node_index_) return false;
  FrameDesc& d = table_->desc(*r, head);
  const FrameWord w = d.load();
  // A listed free head (kind free is only ever that while the lock is
  // free, and we hold it), of `order` or more, not being scrubbed.
  if (w.kind() != FrameKind::free || w.order < order || (w.state & kScrubbing)) return false;
  carve(d, head, w.order, order, out);
  return true;
}

void NodeHeap::carve(FrameDesc& d, Mfn head, unsigned j, unsigned order, Block& out) noexcept {
  FrameWord w = d.load();
  const bool dirty = (w.state & kDirty) != 0;
  const OwnerId owner = w.owner;
  unlink(d, j);
  const FrameRangeInfo* r = &table_->known_range(head);
  while (j > order) {  // split: the upper halves go back on the lists
    --j;
    const Mfn upper = head + frames_of_order(j);
    link(table_->desc(*r, upper), upper, j, dirty, owner);
  }
  // Still `free` (off the lists): the caller makes it used or cached.
  w.order = static_cast<std::uint8_t>(order);
  d.store(w);
  out = Block{head, order, dirty, dirty ? owner : kNoOwner};
}

std::uint64_t NodeHeap::take_frames(std::uint64_t n, Mfn* out, OwnerId owner,
                                    bool no_scrub) noexcept {
  constexpr std::uint8_t kUsedState = static_cast<std::uint8_t>(FrameKind::used);
  std::uint64_t done = 0, to_scrub = 0;
  while (done < n) {
    const std::uint64_t rem = n - done;
    FrameList* list = nullptr;
    unsigned j = 0;
    for (; j <= kMaxOrder && !list; ++j) {
      if (!lists_[0][j].empty()) list = &lists_[0][j];
      else if (!lists_[1][j].empty()) list = &lists_[1][j];
    }
    if (!list) [[unlikely]] __builtin_trap();  // the caller checked free_frames()
    --j;
    FrameDesc* d = &list->front();
    if ((d->load_state() & kScrubbing) && ++list->begin() != list->end()) d = &*++list->begin();
    abort_scrub_if(*d);
    const Mfn head = table_->mfn_of(d);
    const FrameWord hw = d->load();
    const bool dirty = (hw.state & kDirty) != 0;
    const OwnerId dirty_owner = hw.owner;
    unlink(*d, j);
    const FrameRangeInfo& r = table_->known_range(head);
    while (frames_of_order(j) > rem) {  // only what is asked: upper halves go back
      --j;
      const Mfn upper = head + frames_of_order(j);
      link(table_->desc(r, upper), upper, j, dirty, dirty_owner);
    }
    // [head, head + 2^j) becomes 2^j used 4 KiB blocks. Tails were all-zero
    // descriptors; nobody else can reach them while we hold the lock.
    const std::uint64_t count = frames_of_order(j);
    FrameDesc* fd = &table_->desc(r, head);
    Mfn* o = out + done;
    const bool scrub = dirty && !(no_scrub && dirty_owner == owner);
    for (std::uint64_t i = 0; i < count; ++i) {
      // One store: a racing free() sees a tail/free word or this whole one.
      const FrameWord old = fd[i].load(std::memory_order_relaxed);
      fd[i].store(FrameWord{owner, kUsedState, 0,
                            static_cast<std::uint8_t>(i == 0 && scrub ? j + 1 : 0),
                            static_cast<std::uint8_t>(old.gen + 1)},
                  std::memory_order_release);
      o[i] = head + i;
    }
    if (scrub) to_scrub += count;
    done += count;
  }
  return to_scrub;
}

std::uint64_t NodeHeap::put_frames(const Mfn* frames, std::size_t n, OwnerId owner) noexcept {
  constexpr std::uint8_t kPending = kHasPending | kPendingOffline;
  std::uint64_t back = 0;
  const FrameRangeInfo* r = nullptr;
  for (std::size_t i = 0; i < n;) {
    const Mfn m = frames[i];
    if (!r || !r->contains(m)) r = &table_->known_range(m);
    FrameDesc* d = &table_->desc(*r, m);
    if (d->load_state() & kPending) {  // rare: retire it, free nothing else with it
      const std::uint64_t before = offlined_;
      put_with_pending(m, 0, true, owner);
      back += 1 - (offlined_ - before);
      ++i;
      continue;
    }
    // The longest run m, m+1, ... of the list that is an aligned block.
    unsigned k = 0;
    for (; k < kMaxOrder; ++k) {
      const std::uint64_t half = frames_of_order(k), size = 2 * half;
      if ((m & (size - 1)) || n - i < size || m + size > r->end) break;
      bool run = true;
      for (std::uint64_t j = half; j < size && run; ++j)
        run = frames[i + j] == m + j && !(d[j].load_state(std::memory_order_relaxed) & kPending);
      if (!run) break;
    }
    const std::uint64_t count = frames_of_order(k);
    for (std::uint64_t j = 1; j < count; ++j)  // tails of the block
      d[j].store(FrameWord{}, std::memory_order_relaxed);
    put(m, k, true, owner);
    back += count;
    i += count;
  }
  return back;
}

void NodeHeap::put(Mfn head, unsigned order, bool dirty, OwnerId dirty_owner) noexcept {
  const FrameRangeInfo* r = &table_->known_range(head);
  while (order < kMaxOrder) {
    const std::uint64_t size = frames_of_order(order);
    const Mfn parent = head & ~(2 * size - 1);
    if (parent < r->first || parent + 2 * size > r->end) break;  // never across ranges
    const Mfn buddy = head ^ size;
    FrameDesc& bd = table_->desc(*r, buddy);
    const FrameWord bw = bd.load();
    const std::uint8_t s = bw.state;
    if (bw.kind() != FrameKind::free || bw.order != order || (s & kScrubbing)) break;
    if (s & kDirty) {
      if (dirty && dirty_owner != bw.owner) dirty_owner = kMixedOwner;
      else if (!dirty) dirty_owner = bw.owner;
      dirty = true;
    }
    unlink(bd, order);
    // The higher of the pair becomes a tail of the merged block.
    table_->desc(*r, std::max(head, buddy)).store(FrameWord{});
    head = parent;
    ++order;
  }
  link(table_->desc(*r, head), head, order, dirty, dirty_owner);
}

void NodeHeap::put_with_pending(Mfn head, unsigned order, bool dirty,
                                OwnerId dirty_owner) noexcept {
  const FrameRangeInfo* r = &table_->known_range(head);
  const std::uint64_t n = frames_of_order(order);
  // First turn every frame into a standalone order-0 piece, remembering
  // which are pending (the head's own bit is in its state).
  for (std::uint64_t i = 0; i < n; ++i) {
    FrameDesc& d = table_->desc(*r, head + i);
    const bool pending = (d.load_state() & kPendingOffline) != 0;
    if (pending) {
      d.store(FrameWord{kNoOwner, kOfflineState, 0, 0, 0});
      ++offlined_;
      --pending_offline_;
    } else {
      d.store(FrameWord{});
    }
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    FrameDesc& d = table_->desc(*r, head + i);
    if (d.kind() != FrameKind::offline) put(head + i, 0, dirty, dirty_owner);
  }
}

void NodeHeap::offline_free_frame(Mfn mfn, Mfn head) noexcept {
  const FrameRangeInfo* r = &table_->known_range(head);
  FrameDesc& hd = table_->desc(*r, head);
  abort_scrub_if(hd);
  const FrameWord hw = hd.load();
  unsigned order = hw.order;
  const bool dirty = (hw.state & kDirty) != 0;
  const OwnerId owner = hw.owner;
  unlink(hd, order);
  while (order > 0) {  // halve toward mfn; the other half goes back
    --order;
    const Mfn half = head + frames_of_order(order);
    if (mfn >= half) {
      link(table_->desc(*r, head), head, order, dirty, owner);
      head = half;
    } else {
      link(table_->desc(*r, half), half, order, dirty, owner);
    }
  }
  table_->desc(*r, mfn).store(FrameWord{kNoOwner, kOfflineState, 0, 0, 0});
  ++offlined_;
}

int NodeHeap::largest_free_order() const noexcept {
  for (int o = kMaxOrder; o >= 0; --o)
    if (free_blocks_[o]) return o;
  return -1;
}

bool NodeHeap::check_invariants() const noexcept {
  std::uint64_t frames = 0, dirty_frames = 0;
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    std::uint64_t blocks[2] = {0, 0};
    for (unsigned d = 0; d < 2; ++d)
      for (const FrameDesc& fd : lists_[d][o]) {
        const FrameWord fw = fd.load();
        const std::uint8_t s = fw.state;
        if (fw.kind() != FrameKind::free || fw.order != o || fw.bulk_scrub) return false;
        if (((s & kDirty) != 0) != (d == 1)) return false;
        const Mfn head = table_->mfn_of(&fd);
        const FrameRangeInfo* r = &table_->known_range(head);
        if (!r || r->node_index != node_index_) return false;
        if (head & (frames_of_order(o) - 1)) return false;
        if (head + frames_of_order(o) > r->end) return false;
        // Maximal: the buddy is not a free block of the same order.
        if (o < kMaxOrder && !(s & kScrubbing)) {
          const std::uint64_t size = frames_of_order(o);
          const Mfn parent = head & ~(2 * size - 1);
          if (parent >= r->first && parent + 2 * size <= r->end) {
            const FrameWord bw = table_->desc(*r, head ^ size).load();
            if (bw.kind() == FrameKind::free && bw.order == o && !(bw.state & kScrubbing))
              return false;
          }
        }
        ++blocks[d];
        frames += frames_of_order(o);
        if (d) dirty_frames += frames_of_order(o);
      }
    if (blocks[1] != dirty_blocks_[o] || blocks[0] + blocks[1] != free_blocks_[o]) return false;
  }
  return frames == free_frames_ && dirty_frames == dirty_frames_ &&
         free_frames_ + offlined_ <= managed_;
}

std::uint64_t NodeHeap::scrub_some(std::uint64_t budget) noexcept {
  std::uint64_t done = 0;
  while (done < budget) {
    Mfn head = kInvalidMfn;
    unsigned order = 0;
    {
      SpinGuard g(lock);
      if (scrub_head_ != kInvalidMfn) break;  // another thread scrubs this node
      for (unsigned o = 0; o <= kMaxOrder && head == kInvalidMfn; ++o) {
        if (lists_[1][o].empty()) continue;
        FrameDesc& d = lists_[1][o].front();
        head = table_->mfn_of(&d);
        order = o;
        d.fetch_or_state(kScrubbing);
      }
      if (head == kInvalidMfn) break;
      scrub_head_ = head;
      scrub_abort_.store(false, std::memory_order_relaxed);
      scrub_running_.store(true, std::memory_order_release);
    }
    // Chunks keep an abort quick; large chunks let the platform drop pages.
    const std::uint64_t n = frames_of_order(order);
    const std::uint64_t chunk = n >= 512 ? 512 : kScrubChunk;
    bool told_to_stop = false;
    for (std::uint64_t i = 0; i < n; i += chunk) {
      if (scrub_abort_.load(std::memory_order_acquire)) {
        told_to_stop = true;
        if (!NUMAHEAP_FAULT(scrub_ignores_stop)) break;
        scrub_running_.store(false, std::memory_order_release);  // claims it stopped
      }
      platform_->zero_frames(head + i, std::min(chunk, n - i));
    }
    if (!told_to_stop || !NUMAHEAP_FAULT(scrub_ignores_stop))
      scrub_running_.store(false, std::memory_order_release);
    SpinGuard g(lock);
    if (scrub_head_ != head) break;  // an allocation took the block
    scrub_head_ = kInvalidMfn;
    FrameDesc& d = table_->known_desc(head);
    unlink(d, order);
    put(head, order, false, kNoOwner);
    done += n;
  }
  return done;
}

}  // namespace numaheap
