// Rehome: move all of a guest (or one vnode) to another node set, a budget
// of pages per step, whole blocks at a time (huge mappings survive).
//
// Progress counts pages: `done` grows as pages are found on a target node
// (moved, or already there) or are permanently skipped (pinned, shared,
// not present). Pages that fail retryably (busy, no memory) are counted in
// `failed` and retried by another pass over the scope, up to
// rehome_max_passes, page by page (splitting blocks). A pass with no
// retryable failure finishes the job.
#include <algorithm>

#include "migrate/migrator_impl.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;

bool in_scope(const RehomeJob& j, const MigrateRange& r) {
  return j.vnode == kAllVnodes || r.vnode == j.vnode;
}

void finish(RehomeJob& j, RehomeState s) {
  j.active = false;
  j.state.store(static_cast<std::uint8_t>(s), std::memory_order_release);
}

}  // namespace

Status Migrator::rehome(GuestId id, const NodeMask& targets, std::uint32_t vnode) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.lock);
  GuestSlot* s = m.slot(id);
  if (!s) return Errc::invalid_argument;
  if (targets.empty() || !m.topo->memory_nodes().contains(targets)) return Errc::invalid_node;
  RehomeJob& j = s->rehome;
  if (j.active) return Errc::busy;
  std::uint64_t total = 0;
  std::size_t first_range = s->ranges.size(), k = 0;
  NodeId next_target = targets.first();
  j.vnode = vnode;
  for (std::size_t i = 0; i < s->ranges.size(); ++i) {
    MigrateRange& r = s->ranges[i];
    if (!in_scope(j, r)) continue;
    first_range = std::min(first_range, i);
    total += r.pages;
    r.allowed = targets;  // the policy may not pull these pages back out
    if (s->options.vnuma_bound && !targets.test(r.pnode)) {
      r.pnode = next_target;  // vnodes spread over the targets in order
      next_target = targets.next(next_target + 1);
      if (next_target == kNoNode) next_target = targets.first();
    }
    ++k;
  }
  if (k == 0) return Errc::invalid_argument;  // no such vnode
  j.active = true;
  j.targets = targets;
  j.range = first_range;
  j.cursor = s->ranges[first_range].first;
  j.retry = false;
  j.cancel.store(false, std::memory_order_relaxed);
  j.total.store(total, std::memory_order_relaxed);
  j.done.store(0, std::memory_order_relaxed);
  j.moved.store(0, std::memory_order_relaxed);
  j.skipped.store(0, std::memory_order_relaxed);
  j.failed.store(0, std::memory_order_relaxed);
  j.pass.store(1, std::memory_order_relaxed);
  j.state.store(static_cast<std::uint8_t>(RehomeState::running), std::memory_order_release);
  return {};
}

Result<RehomeProgress> Migrator::rehome_progress(GuestId id) const noexcept {
  const SlotReader r(*impl_, id, 0);  // lock-free: hold the slot through its grace period
  GuestSlot* s = r.get();
  if (!s) return Errc::invalid_argument;
  const RehomeJob& j = s->rehome;
  RehomeProgress p;
  p.state = static_cast<RehomeState>(j.state.load(std::memory_order_acquire));
  p.total = j.total.load(std::memory_order_relaxed);
  p.done = j.done.load(std::memory_order_relaxed);
  p.moved = j.moved.load(std::memory_order_relaxed);
  p.skipped = j.skipped.load(std::memory_order_relaxed);
  p.failed = j.failed.load(std::memory_order_relaxed);
  p.pass = j.pass.load(std::memory_order_relaxed);
  return p;
}

Status Migrator::cancel_rehome(GuestId id) noexcept {
  const SlotReader r(*impl_, id, 0);
  GuestSlot* s = r.get();
  if (!s) return Errc::invalid_argument;
  if (static_cast<RehomeState>(s->rehome.state.load(std::memory_order_acquire)) != RehomeState::running)
    return Errc::invalid_argument;
  s->rehome.cancel.store(true, std::memory_order_release);  // honoured by the next step
  return {};
}

void Migrator::Impl::rehome_step(GuestSlot& g, StepReport& rep) {
  RehomeJob& j = g.rehome;
  std::uint64_t budget = config.rehome_pages_per_step;
  PageState st[kChunk];
  Gfn list[kChunk];
  PageState from[kChunk];
  MoveOutcome out[kChunk];
  std::size_t owner[kChunk];
  const bool first_pass = j.pass.load(std::memory_order_relaxed) == 1;
  // Later passes go page by page: a block that failed whole may hold a
  // pinned or shared page; its other pages still move (the block is split).
  const MoveGranularity gran = first_pass ? MoveGranularity::whole_blocks : MoveGranularity::pages;
  while (budget > 0) {
    if (j.cancel.load(std::memory_order_acquire)) return finish(j, RehomeState::cancelled);
    while (j.range < g.ranges.size() &&
           (!in_scope(j, g.ranges[j.range]) || j.cursor >= g.ranges[j.range].first + g.ranges[j.range].pages)) {
      if (++j.range < g.ranges.size()) j.cursor = g.ranges[j.range].first;
    }
    if (j.range >= g.ranges.size()) {  // end of a pass
      if (!j.retry) {
        j.done.store(j.total.load(std::memory_order_relaxed), std::memory_order_relaxed);
        j.failed.store(0, std::memory_order_relaxed);
        return finish(j, RehomeState::done);
      }
      if (j.pass.load(std::memory_order_relaxed) >= config.rehome_max_passes) return finish(j, RehomeState::failed);
      j.pass.fetch_add(1, std::memory_order_relaxed);
      j.retry = false;
      j.range = 0;
      j.cursor = g.ranges.empty() ? 0 : g.ranges[0].first;
      return;  // next pass on the next step (lets busy pages settle)
    }
    const MigrateRange& r = g.ranges[j.range];
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>({kChunk, budget, r.first + r.pages - j.cursor}));
    if (!g.mover->query(j.cursor, std::span<PageState>(st, n))) return finish(j, RehomeState::failed);
    // Where the chunk goes: the vnode's binding, or the target with most room.
    NodeId target = g.options.vnuma_bound && j.targets.test(r.pnode) ? r.pnode : kNoNode;
    if (target == kNoNode) {
      std::uint64_t best = 0;
      for (NodeId t : j.targets) {
        std::uint64_t free = 0, managed = 0;
        const std::uint64_t room = g.mover->node_frames(t, free, managed) ? free : 1;
        if (target == kNoNode || room > best) target = t, best = room;
      }
    }
    // One mover entry per block touched by the chunk.
    std::size_t count = 0;
    std::uint64_t settled = 0, skipped = 0;
    for (std::size_t i = 0; i < n; ++i) {
      owner[i] = kChunk;
      const Gfn gfn = j.cursor + i;
      const PageState& p = st[i];
      if (p.node == kNoNode || (p.flags & (P2mFlags::pinned | P2mFlags::shared))) {
        ++skipped;
        continue;
      }
      if (j.targets.test(p.node)) {
        ++settled;
        continue;
      }
      const Gfn head = gfn & ~(frames_of_order(p.order) - 1);
      if (gran == MoveGranularity::whole_blocks && count && (list[count - 1] & ~(frames_of_order(from[count - 1].order) - 1)) == head &&
          from[count - 1].order == p.order) {
        owner[i] = count - 1;
        continue;
      }
      owner[i] = count;
      list[count] = gfn;
      from[count] = p;
      ++count;
    }
    const std::uint64_t moved_before = rep.moved;
    if (count) do_move(g, list, from, count, target, gran, out, rep);
    j.moved.fetch_add(rep.moved - moved_before, std::memory_order_relaxed);
    std::uint64_t now_moved = 0, now_failed = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (owner[i] == kChunk) continue;
      const MoveOutcome o = out[owner[i]];
      if (o == MoveOutcome::moved) ++now_moved;
      else if (o == MoveOutcome::busy || o == MoveOutcome::no_memory) ++now_failed;
      else ++skipped;  // pinned / shared / not present found by the mover
    }
    if (now_failed) j.retry = true;
    if (first_pass) {
      j.done.fetch_add(settled + skipped + now_moved, std::memory_order_relaxed);
      j.skipped.fetch_add(skipped, std::memory_order_relaxed);
      j.failed.fetch_add(now_failed, std::memory_order_relaxed);
    } else {  // only pages that failed before can change state now
      const std::uint64_t fixed = std::min(now_moved, j.failed.load(std::memory_order_relaxed));
      j.done.fetch_add(fixed, std::memory_order_relaxed);
      j.failed.fetch_sub(fixed, std::memory_order_relaxed);
    }
    j.cursor += n;
    budget -= n;
  }
}

}  // namespace numaheap
