// Evacuation: pages whose frames are pending offline (broken RAM) leave
// them before any other move of a step.
//
// The allocator cannot retire an in-use frame; it marks it pending and
// retires it when its block is freed. So the migrator moves each such page
// to a fresh block and frees the old one. The mover's offline_events()
// grows whenever a frame is marked; a guest is searched only when it has
// grown since the last search (read before searching, so a frame marked
// during a search is found by the next one), or when a page could not
// leave last time. Nothing here allocates: buffers are on the stack.
#include <algorithm>

#include "allocator/platform/fault_injection.h"
#include "migrate/migrator_impl.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;

}  // namespace

void Migrator::Impl::evacuate_retiring(GuestSlot& g, StepReport& rep) {
  if (NUMAHEAP_FAULT(evacuation_skipped)) return;  // negative tests only
  const std::uint64_t events = g.mover->offline_events();
  if (events == g.offline_seen && !g.evacuate_again) return;
  g.offline_seen = events;
  g.evacuate_again = false;
  const std::uint64_t pages = g.mover->page_count();
  PageState st[kChunk];
  // Pages below this were handled with their block (a 2 MiB block spans 8
  // chunks, a 1 GiB one 4096): each block is tried once per search, at its
  // first retiring page, whatever chunk its later pages fall in.
  Gfn handled_end = 0;
  for (Gfn first = 0; first < pages;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, pages - first));
    if (!call_mover([&] { return g.mover->query(first, std::span<PageState>(st, n)); })) {
      g.evacuate_again = true;
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const PageState& p = st[i];
      const Gfn gfn = first + i;
      if (!p.retiring || p.node == kNoNode) continue;
      if (gfn < handled_end) continue;  // its block was handled at an earlier page
      const Gfn head = gfn & ~(frames_of_order(p.order) - 1);
      handled_end = head + frames_of_order(p.order);
      if (p.flags & (P2mFlags::pinned | P2mFlags::shared)) continue;  // their owners free them
      // Where: the vnode's binding or the page's node; then the nearest
      // allowed node (fallback order) until one has a block.
      const MigrateRange* r = range_of(g, gfn);
      const NodeId want = g.options.vnuma_bound && r && r->allowed.test(r->pnode) ? r->pnode : p.node;
      MoveOutcome out = MoveOutcome::no_memory;
      auto try_node = [&](NodeId t) {
        if (r && !r->allowed.test(t) && t != p.node) return false;
        Gfn one = gfn;
        auto res = call_mover(
            [&] { return g.mover->evacuate(std::span<const Gfn>(&one, 1), t, std::span<MoveOutcome>(&out, 1)); });
        if (!res) {
          out = res.error() == Errc::invalid_node ? MoveOutcome::invalid_node : MoveOutcome::busy;
          return false;
        }
        stats.flushes += res->flushes;
        if (static_cast<std::size_t>(out) >= kMoveOutcomeCount) out = MoveOutcome::busy;  // as book_move
        ++stats.outcomes[static_cast<std::size_t>(out)];
        if (out != MoveOutcome::moved) return false;
        stats.pages_evacuated += res->frames_moved;
        GuestSlot::GuestCounters::add(g.counters.pages_evacuated, res->frames_moved);
        rep.moved += res->frames_moved;
        g.tracker->reset_streak(gfn);
        const int fi = index(p.node), ti = index(t);
        if (fi >= 0 && ti >= 0 && fi != ti) {
          pair_pages[static_cast<std::size_t>(fi) * nodes + static_cast<std::size_t>(ti)] += res->frames_moved;
          count_moved(g, res->frames_moved);
        }
        return true;
      };
      bool done = try_node(want);
      if (!done && (out == MoveOutcome::no_memory || out == MoveOutcome::invalid_node))
        for (NodeId t : topo->fallback_order(want)) {
          if (t == want || !topo->memory_nodes().test(t)) continue;
          if ((done = try_node(t)) || (out != MoveOutcome::no_memory && out != MoveOutcome::invalid_node)) break;
        }
      if (!done && out != MoveOutcome::pinned && out != MoveOutcome::shared && out != MoveOutcome::not_present) {
        g.evacuate_again = true;  // busy or no room anywhere: next step
        ++rep.failed;
      }
    }
    first += n;
  }
}

}  // namespace numaheap
