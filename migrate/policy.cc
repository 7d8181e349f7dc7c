// The per-page policy of Migrator::step: which pages of a guest move where.
//
// A guest is scanned in windows of `scan_pages` (a cursor wraps around), in
// chunks of 64 pages queried from the mover; candidates for one
// destination are gathered into a batch of up to 64 and moved together (one
// flush pair). Nothing here allocates: every buffer is on the stack.
#include <algorithm>

#include "migrate/migrator_impl.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;

struct Batch {
  Gfn gfns[kChunk];
  PageState from[kChunk];
  MoveOutcome out[kChunk];
  std::size_t count = 0;
  NodeId target = kNoNode;
};

}  // namespace

void Migrator::Impl::scan_guest(GuestSlot& g, std::uint64_t now_ns, StepReport& rep, double& local,
                                double& total) {
  const std::uint64_t pages = g.mover->page_count();
  std::uint64_t budget = std::min(config.scan_pages, pages);
  PageState st[kChunk];
  Batch b;

  auto flush = [&] {
    if (b.count == 0) return;
    std::size_t n = b.count;
    auto frames_of = [&](std::size_t i) {
      return g.options.granularity == MoveGranularity::whole_blocks ? frames_of_order(b.from[i].order) : 1;
    };
    // Destination watermark: never take it below max(pages, fraction).
    std::uint64_t free = 0, managed = 0;
    if (g.mover->node_frames(b.target, free, managed)) {
      const std::uint64_t wm = std::max(config.watermark_pages,
                                        static_cast<std::uint64_t>(config.watermark_fraction *
                                                                   static_cast<double>(managed)));
      std::uint64_t room = free > wm ? free - wm : 0, used = 0;
      std::size_t fit = 0;
      while (fit < n && used + frames_of(fit) <= room) used += frames_of(fit++);
      stats.skipped_watermark += n - fit;
      if (fit < n) back_off(b.target);  // full: stop scanning for it for a while
      n = fit;
    }
    // Per-destination rate limit (frames).
    std::uint64_t want = 0;
    for (std::size_t i = 0; i < n; ++i) want += frames_of(i);
    const std::uint64_t granted = admit(b.target, want, now_ns);
    if (granted < want) {
      std::uint64_t used = 0;
      std::size_t fit = 0;
      while (fit < n && used + frames_of(fit) <= granted) used += frames_of(fit++);
      stats.skipped_rate_limit += n - fit;
      n = fit;
    }
    if (n) do_move(g, b.gfns, b.from, n, b.target, g.options.granularity, b.out, rep);
    b.count = 0;
  };

  while (budget > 0) {
    const Gfn first = g.scan_cursor < pages ? g.scan_cursor : 0;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>({kChunk, budget, pages - first}));
    if (!g.mover->query(first, std::span<PageState>(st, n))) break;
    g.scan_cursor = first + n;
    budget -= n;
    stats.pages_scanned += n;
    rep.scanned += n;
    for (std::size_t i = 0; i < n; ++i) {
      const Gfn gfn = first + i;
      const PageState& p = st[i];
      if (p.node == kNoNode) continue;
      const MigrateRange* r = range_of(g, gfn);
      if (!r) continue;  // outside RAM ranges (device region)
      const PageHeat h = g.tracker->heat(gfn);
      const NodeId last = h.sampled() && h.last_index < nodes ? topo->node_at(h.last_index).id : kNoNode;
      if (h.hits) {  // local-access estimate: the last sampler stands for the epoch's samples
        total += h.hits;
        if (last == p.node) local += h.hits;
      }
      NodeId target = kNoNode;
      if (g.options.vnuma_bound) {
        target = r->pnode;  // the binding, not single accesses
      } else if (g.options.auto_balance && h.streak >= 2 && last != p.node) {
        if (h.shared()) {  // touched from several nodes: leave it where it is
          ++stats.skipped_shared_access;
          continue;
        }
        target = last;
      }
      if (target == kNoNode || target == p.node) continue;
      if (p.flags & P2mFlags::pinned) { ++stats.skipped_pinned; continue; }
      if (p.flags & P2mFlags::shared) { ++stats.skipped_shared; continue; }
      if (p.flags & P2mFlags::migrating) continue;
      if (!r->allowed.test(target)) continue;
      const int ti = index(target);
      if (ti < 0) continue;
      if (backoff_until[static_cast<std::size_t>(ti)] >= step_no) { ++stats.skipped_backoff; continue; }
      if (b.count && b.target != target) flush();
      b.target = target;
      b.gfns[b.count] = gfn;
      b.from[b.count] = p;
      if (++b.count == kChunk) flush();
    }
  }
  flush();
}

}  // namespace numaheap
