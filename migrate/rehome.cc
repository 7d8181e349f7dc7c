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

// Where each in-scope range goes, as placement spreads a guest: a bound
// vnode stays whole and goes to the target with most room left (unless it
// is on a target already); other memory is split over the targets in
// water-filling shares (smallest room first, an even share of what is
// left in 2 MiB granules, capped by room; the remainder spills to the
// targets with most room). Room: free frames above the migrator's
// watermark as the mover sees them, else the topology's free memory,
// else equal; plus the scope's pages planned on that node already.
Vector<MigrateRange> Migrator::Impl::plan_rehome(const GuestSlot& g, const NodeMask& targets,
                                                 std::uint32_t vnode) const {
  auto scoped = [&](const MigrateRange& r) { return vnode == kAllVnodes || r.vnode == vnode; };
  // Out of metadata memory: an empty plan (rehome then says no_memory).
  Vector<NodeId> tv(meta);
  Vector<std::uint64_t> room(meta);
  for (NodeId t : targets) {
    std::uint64_t free = 0, managed = 0, r = ~std::uint64_t{0} >> 2;
    if (g.mover->node_frames(t, free, managed)) {
      const std::uint64_t wm = watermark(managed);
      r = free > wm ? free - wm : 0;
    } else if (const NodeInfo* n = topo->find(t); n && n->free_bytes != kUnknownBytes) {
      r = n->free_bytes >> kFrameShift;
    }
    // Pages of the scope planned there already need no new room.
    for (const MigrateRange& x : g.ranges)
      if (scoped(x) && x.pnode == t) r += x.pages;
    if (!tv.push_back(t) || !room.push_back(r)) return Vector<MigrateRange>(meta);
  }
  Vector<MigrateRange> out(meta);
  if (g.options.vnuma_bound) {
    Vector<std::uint64_t> taken(meta);
    if (!taken.resize(tv.size(), 0)) return out;
    for (const MigrateRange& r : g.ranges)
      if (scoped(r) && targets.test(r.pnode)) taken[static_cast<std::size_t>(std::find(tv.begin(), tv.end(), r.pnode) - tv.begin())] += r.pages;
    for (MigrateRange r : g.ranges) {
      if (scoped(r)) {
        r.allowed = targets;  // the policy may not pull these pages back out
        if (!targets.test(r.pnode)) {
          std::size_t best = 0;
          auto left = [&](std::size_t k) { return room[k] > taken[k] ? room[k] - taken[k] : 0; };
          for (std::size_t k = 1; k < tv.size(); ++k)
            if (left(k) > left(best)) best = k;
          r.pnode = tv[best];
          taken[best] += r.pages;
        }
      }
      if (!out.push_back(r)) return Vector<MigrateRange>(meta);
    }
    return out;
  }
  std::uint64_t total = 0;
  for (const MigrateRange& r : g.ranges)
    if (scoped(r)) total += r.pages;
  constexpr std::uint64_t k2M = frames_of_order(9);
  Vector<std::size_t> order(meta);
  Vector<std::uint64_t> share(meta);
  if (!order.resize(tv.size()) || !share.resize(tv.size(), 0)) return out;
  // Stable insertion sort by room (targets are few; std::stable_sort
  // would allocate).
  for (std::size_t k = 0; k < order.size(); ++k) {
    std::size_t j = k;
    for (; j > 0 && room[order[j - 1]] > room[k]; --j) order[j] = order[j - 1];
    order[j] = k;
  }
  std::uint64_t rest = total;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t left = order.size() - k;
    std::uint64_t fair = rest / left;
    if (left > 1) fair = fair / k2M * k2M;
    share[order[k]] = std::min(fair, room[order[k]]);
    rest -= share[order[k]];
  }
  for (std::size_t k = order.size(); rest > 0 && k-- > 0;) {  // spill, most room first
    const std::size_t i = order[k];
    const std::uint64_t add = std::min(rest, room[i] - share[i]);
    share[i] += add;
    rest -= add;
  }
  if (rest) share[order.back()] += rest;  // short of room everywhere: moves will fail and say so
  std::size_t t = 0;
  for (const MigrateRange& r : g.ranges) {
    if (!scoped(r)) {
      if (!out.push_back(r)) return Vector<MigrateRange>(meta);
      continue;
    }
    for (Gfn at = r.first; at < r.first + r.pages;) {
      while (t + 1 < tv.size() && share[t] == 0) ++t;
      const std::uint64_t len = std::min(r.first + r.pages - at, share[t] ? share[t] : r.first + r.pages - at);
      if (!out.push_back({at, len, r.vnode, tv[t], targets})) return Vector<MigrateRange>(meta);
      share[t] -= std::min(share[t], len);
      at += len;
    }
  }
  return out;
}

Status Migrator::rehome(GuestId id, const NodeMask& targets, std::uint32_t vnode, std::uint32_t flags) {
  Impl& m = *impl_;
  SpinGuard sg(m.step_lock);  // changes the ranges the step reads across mover calls
  SpinGuard g(m.lock);
  GuestSlot* s = m.slot(id);
  if (!s || (flags & ~rehome_override_limits)) return Errc::invalid_argument;
  if (targets.empty() || !m.topo->memory_nodes().contains(targets)) return Errc::invalid_node;
  RehomeJob& j = s->rehome;
  if (j.active) return Errc::busy;
  j.vnode = vnode;
  if (std::none_of(s->ranges.begin(), s->ranges.end(), [&](const MigrateRange& r) { return in_scope(j, r); }))
    return Errc::invalid_argument;  // no such vnode
  Vector<MigrateRange> plan = m.plan_rehome(*s, targets, vnode);
  if (plan.empty()) return Errc::no_memory;  // a scope is never empty (checked above)
  // The guest's own layout follows first; if its keeper refuses, nothing changed.
  Vector<GuestRange> layout(m.meta);
  for (const MigrateRange& r : plan)
    if (!layout.push_back({r.first, r.pages, r.pnode, r.vnode})) return Errc::no_memory;
  if (Status st = s->mover->relayout(layout); !st) return st;
  s->ranges = std::move(plan);
  std::uint64_t total = 0;
  std::size_t first_range = s->ranges.size();
  for (std::size_t i = 0; i < s->ranges.size(); ++i)
    if (in_scope(j, s->ranges[i])) {
      first_range = std::min(first_range, i);
      total += s->ranges[i].pages;
    }
  j.active = true;
  j.override_limits = flags & rehome_override_limits;
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

void Migrator::Impl::rehome_step(GuestSlot& g, std::uint64_t now_ns, StepReport& rep) {
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
    std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>({kChunk, budget, r.first + r.pages - j.cursor}));
    if (!call_mover([&] { return g.mover->query(j.cursor, std::span<PageState>(st, n)); }))
      return finish(j, RehomeState::failed);
    const NodeId target = r.pnode;  // rehome() planned every range in scope onto a target
    // One mover entry per block touched by the chunk.
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i) {
      owner[i] = kChunk;
      const Gfn gfn = j.cursor + i;
      const PageState& p = st[i];
      if (p.node == kNoNode || (p.flags & (P2mFlags::pinned | P2mFlags::shared)) || p.node == target) continue;
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
    // Destination watermark and rate limit, as for policy moves, unless
    // the admin overrode them. Entries past the watermark fail (retried by
    // a later pass); past the rate limit the step ends before them.
    std::size_t fit = count, granted_fit = count;
    bool rate_limited = false;
    if (count && !j.override_limits) {
      auto frames_of = [&](std::size_t k) { return gran == MoveGranularity::whole_blocks ? frames_of_order(from[k].order) : 1; };
      std::uint64_t free = 0, managed = 0;
      if (call_mover([&] { return g.mover->node_frames(target, free, managed); })) {
        const std::uint64_t wm = watermark(managed);
        const std::uint64_t room = free > wm ? free - wm : 0;
        std::uint64_t used = 0;
        fit = 0;
        while (fit < count && used + frames_of(fit) <= room) used += frames_of(fit++);
        stats.skipped_watermark += count - fit;
      }
      // Entry by entry (a block larger than the whole bucket goes when it is full).
      std::uint64_t sizes[kChunk], taken = 0;
      for (std::size_t k = 0; k < fit; ++k) sizes[k] = frames_of(k);
      granted_fit = admit(target, std::span<const std::uint64_t>(sizes, fit), now_ns, taken);
      if (granted_fit < fit) {
        rate_limited = true;
        stats.skipped_rate_limit += fit - granted_fit;
        for (std::size_t i = 0; i < n; ++i)
          if (owner[i] != kChunk && owner[i] >= granted_fit) {
            n = i;  // this chunk ends before the first entry not admitted
            break;
          }
      }
    }
    const std::uint64_t moved_before = rep.moved;
    if (granted_fit) do_move(g, list, from, granted_fit, target, gran, out, rep);
    for (std::size_t k = fit; k < count; ++k) out[k] = MoveOutcome::no_memory;  // watermark
    j.moved.fetch_add(rep.moved - moved_before, std::memory_order_relaxed);
    std::uint64_t settled = 0, skipped = 0, now_moved = 0, now_failed = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (owner[i] == kChunk) {
        if (st[i].node == target) ++settled;
        else ++skipped;  // not present, pinned, shared
        continue;
      }
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
    if (rate_limited) return;  // the rest waits for tokens
  }
}

}  // namespace numaheap
