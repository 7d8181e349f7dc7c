// The per-page policy of Migrator::step: which pages of a guest move where.
//
// Each step looks at two sets of pages of a guest, up to `scan_pages` each,
// in chunks of 64 pages queried from the mover. First the chunks sampled
// since they were last looked at (the tracker marks a chunk when a sample
// changes one of its pages), round robin, leaving out the second set; then
// a window from a cursor that wraps around, which sees the pages no sample
// points at (coalescing, pages whose mark a race lost). A sampled page of a
// big guest is so looked at in the next step, not when the cursor comes by
// (pages / scan_pages steps). Pages that follow vCPUs off a vacated node on
// their old samples alone (below) have no new sample to mark them: after
// such a vCPU move a walk of the tracker's words marks their chunks, up to
// 64 x scan_pages pages a step. Candidates for one
// destination are gathered into a batch of up to 64 and moved together (one
// flush pair). Nothing here allocates: every buffer is on the stack.
//
// vCPU moves (set_vcpu_cpu) are events: once a node has no vCPU of the
// guest left, nobody there wants its pages. The vacated node: when the
// vCPUs that were on node A at the last step have all gone to one node B
// (update_vcpu_nodes notes it), a page whose samples came only from A --
// its last sample, however old (the tracker's long memory), nothing recent
// from any other node, and no switch memory left (a page whose sampling
// node changed lately is shared, or was just moved, and sparse sampling
// may have missed its other user) -- was private to them: it goes to B at the
// first step after the move, without waiting for a sample from B (an
// embedder that steps right after moving vCPUs moves it before the guest
// runs there). Its 2 MiB block goes whole when every sampled page of it is
// such a page. It is queued like any move (watermark, rate limit: what
// does not fit goes at later steps) and dropped as soon as a vCPU is back
// on A or none is left on B (the vCPUs are recounted at the scan: vCPU
// advice followed in the same step cancels it). When B is vacated in turn,
// A leads to where B's vCPUs went. If the vCPUs of A split up over several
// nodes, or a page does not qualify, a page on A whose recent samples came
// only from A and from one node that does run vCPUs of the guest follows
// on its first sample from there, without the two-stage filter or the
// switch memory (which would make it wait three epochs). A page sampled
// from two nodes that run vCPUs is shared and keeps the normal rules.
//
// Quick moves (no event needed): a page's first sample from another node
// moves it at once when nothing says the page is shared -- its first sample
// ever (first touched elsewhere; Linux's NUMA balancing likewise migrates a
// page that has no last CPU yet on its first fault), or a clean switch: a
// run of at least two samples from one node, however old (the tracker's
// long memory survives sparse sampling), no switch score left, and since
// the switch samples from the new node only. A working set that changes
// hands (a phase change) moves in one period instead of three; a shared
// page needs a run of same-node samples before it can switch cleanly, and
// once moved its switch memory keeps it (see kMovedScore) -- the pages of a
// block moved whole too, the never-sampled ones included (their first
// sample is not quick while it lasts).
//
// Huge pages kept whole (MigratorConfig::keep_huge_pages, page-granular
// guests): a page in a 2 MiB block is judged with its whole block. The
// samples of all the block's pages are pooled: a node has "real weight"
// when it gave the block two samples or more (two pages, or a run of two
// on one page: the two-stage filter's idea). Real weight from one node
// only (stray single samples elsewhere do not count; without any real
// weight, samples from that node only), and some page of the block that
// the rules above would move there, moves the block whole (one order-9
// move: blocks_moved_whole) -- but not for a quick reason alone when the
// block's older history (the last samples, however old, of its pages not
// sampled lately) names a node other than its own: a block used from
// elsewhere before is shared, whatever two epochs of sparse samples say. Real
// weight from two nodes or more: truly shared, so the pages are judged one
// by one as before, and the first move splits the block (blocks_split).
// A node without room for a whole block above its watermark also gets
// single pages. The reverse: an aligned 2 MiB range of 4 KiB pages on one
// node (at most kStragglers elsewhere), with no switch memory and no
// recent sample from any other node, is collapsed into one new block there
// (Mover::coalesce, which copies the stragglers along; blocks_coalesced).
#include <algorithm>
#include <bit>

#include "migrate/migrator_impl.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;
constexpr std::uint8_t kWhyFollow = 1, kWhyQuick = 2;
constexpr unsigned kHugeOrder = 9;  // the blocks kept whole and coalesced: 2 MiB
constexpr std::uint64_t kHugeSpan = frames_of_order(kHugeOrder);
// Pages of a range off its node that a coalesce still brings along.
constexpr std::uint64_t kStragglers = 32;
// Tracker words a step walks for vacated pages, in units of scan_pages: at
// the default 65536, 4 Mi pages (16 GiB of guest) in ~10 ms
// (bench/migrate_bench.cc, vacated_walk).
constexpr std::uint64_t kVacatedWalk = 64;

// Samples of a block's pages pooled per node bit (dense index mod 16, as
// the tracker's node sets): weight = pages with a recent sample from the
// node, plus one for a run of two (streak) on a page.
struct BlockWeights {
  std::uint32_t weight[16] = {};
  std::uint16_t bits = 0;
  void add(const PageHeat& h) noexcept {
    if (!h.sampled()) return;
    const auto b = static_cast<std::uint16_t>(h.seen | h.prev_seen);
    bits = static_cast<std::uint16_t>(bits | b);
    for (unsigned k = 0; k < 16; ++k)
      if (b & (1u << k)) ++weight[k];
    if (h.streak >= 2) ++weight[h.last_index % 16];
  }
  unsigned heavy() const noexcept {  // nodes with real weight
    unsigned n = 0;
    for (unsigned k = 0; k < 16; ++k) n += weight[k] >= 2 ? 1 : 0;
    return n;
  }
};

// A first sample from another node that may move the page at once (top):
// the tracker marked it quick, and since then only that node sampled it.
bool quick_move(const PageHeat& h) noexcept {
  if (!h.sampled() || !h.quick || h.streak == 0) return false;
  const auto bit = static_cast<std::uint16_t>(1u << (h.last_index % 16));
  return ((h.seen | h.prev_seen) & ~bit) == 0;
}

// Destinations whose moves wait to be made together (Batch: ~1 KiB each,
// on the step's stack).
constexpr std::size_t kBatches = 8;

struct Batch {
  Gfn gfns[kChunk];
  PageState from[kChunk];
  MoveOutcome out[kChunk];
  std::uint8_t why[kChunk];  // kWhyFollow, kWhyQuick or 0
  std::size_t count = 0;
  NodeId target = kNoNode;
  MoveGranularity gran = MoveGranularity::pages;  // of every item
};

}  // namespace

std::uint32_t Migrator::Impl::vcpu_index(const GuestSlot& g, std::uint32_t v) const noexcept {
  const int i = index(topo->node_of_cpu(g.vcpu_cpu[v].load(std::memory_order_relaxed)));
  return i < 0 ? kNoVcpuNode : static_cast<std::uint32_t>(i);
}

bool Migrator::Impl::count_vcpus(GuestSlot& g) const noexcept {
  for (std::size_t i = 0; i < nodes; ++i) g.vcpus_new[i] = 0;
  bool placed = false;
  for (std::uint32_t v = 0; v < g.options.vcpus; ++v) {
    const std::uint32_t i = vcpu_index(g, v);
    if (i == kNoVcpuNode) continue;
    ++g.vcpus_new[i];
    placed = true;
  }
  return placed;
}

void Migrator::Impl::update_vcpu_nodes(GuestSlot& g) noexcept {
  if (g.options.vcpus == 0 || !g.vcpus_on) return;
  const bool placed = count_vcpus(g);
  for (std::size_t i = 0; i < nodes; ++i) {
    if (g.vcpus_placed && g.vcpus_on[i] > 0 && g.vcpus_new[i] == 0) {
      g.vacated_step[i] = step_no;
      g.vacated_walk_left = g.tracker->pages();  // its pages may be anywhere: walk them all
      // Where the vCPUs that were on it at the last step went: one node for
      // all of them, or none (split up, or unplaced).
      std::uint32_t to = kNoVcpuNode;
      bool one = true;
      for (std::uint32_t v = 0; v < g.options.vcpus && one; ++v) {
        if (g.vcpu_node[v] != i) continue;
        const std::uint32_t now = vcpu_index(g, v);
        one = now != kNoVcpuNode && (to == kNoVcpuNode || to == now);
        to = now;
      }
      g.vacated_to[i] = one ? to : kNoVcpuNode;
      // Nodes vacated earlier toward this one now lead where it leads.
      for (std::size_t j = 0; j < nodes; ++j)
        if (g.vacated_to[j] == i) g.vacated_to[j] = g.vacated_to[i];
    }
  }
  for (std::size_t i = 0; i < nodes; ++i) {
    if (g.vcpus_on[i] != g.vcpus_new[i]) g.vcpus_changed_step = step_no;
    g.vcpus_on[i] = g.vcpus_new[i];
  }
  for (std::uint32_t v = 0; v < g.options.vcpus; ++v) g.vcpu_node[v] = vcpu_index(g, v);
  g.vcpus_placed = placed;
}

bool Migrator::Impl::begin_vacated(GuestSlot& g) const noexcept {
  if (!g.vcpus_placed || !g.vcpus_on) return false;
  for (std::size_t i = 0; i < nodes; ++i)
    if (g.vacated_to[i] != kNoVcpuNode && g.vcpus_on[i] == 0) return count_vcpus(g);
  return false;
}

std::uint32_t Migrator::Impl::vacated_index(const GuestSlot& g, const PageHeat& h) const noexcept {
  const std::uint32_t a = h.old_index;  // the last sample, however old
  if (h.switches > 0 || a >= nodes || g.vcpus_on[a] != 0 || g.vcpus_new[a] != 0 || g.vacated_step[a] == 0)
    return kNoVcpuNode;
  const std::uint32_t to = g.vacated_to[a];
  if (to == kNoVcpuNode || g.vcpus_on[to] == 0 || g.vcpus_new[to] == 0) return kNoVcpuNode;
  if ((h.seen | h.prev_seen) & ~static_cast<std::uint16_t>(1u << (a % 16))) return kNoVcpuNode;  // shared
  return to;
}

void Migrator::Impl::scan_guest(GuestSlot& g, std::uint64_t now_ns, StepReport& rep, double& all_local,
                                double& all_total) {
  double local = 0, total = 0;
  std::uint64_t sampled = 0, remote = 0;  // pages with a recent sample, and those wanting to move
  const std::uint64_t moved_before = rep.moved;
  const std::uint64_t limited_before = stats.skipped_rate_limit;
  const std::uint64_t blocked_before = stats.skipped_watermark + stats.skipped_backoff;
  const std::uint64_t pages = g.mover->page_count();
  std::uint64_t budget = std::min(config.scan_pages, pages);
  PageState st[kChunk];  // the chunk examine() queried: gfns [st_first, st_first + st_n) while it runs
  Gfn st_first = 0;
  std::size_t st_n = 0;
  Batch bs[kBatches];  // pending, one per (target, granularity)
  std::size_t nb = 0;
  // A page on a node its guest's vCPUs have all left, sampled recently only
  // there and from one node that runs vCPUs of the guest (see the top).
  const bool any_vacated = [&] {
    if (!g.vcpus_placed || !g.vcpus_on) return false;
    for (std::size_t i = 0; i < nodes; ++i)
      if (g.vacated_step[i] != 0 && g.vcpus_on[i] == 0) return true;
    return false;
  }();
  auto follows = [&](NodeId here, const PageHeat& h) {
    if (!any_vacated) return false;
    const int pi = index(here);
    const std::uint32_t li = h.last_index;
    if (pi < 0 || li >= nodes) return false;
    const auto k = static_cast<std::size_t>(pi);
    if (g.vcpus_on[k] != 0 || g.vacated_step[k] == 0 || g.vcpus_on[li] == 0) return false;
    const auto mask = static_cast<std::uint16_t>((1u << (k % 16)) | (1u << (li % 16)));
    return ((h.seen | h.prev_seen) & ~mask) == 0;
  };

  // Pages sampled only where the guest's vCPUs all left from (see the top).
  const bool any_vacated_to = any_vacated && begin_vacated(g);
  auto vacated_target = [&](const PageHeat& h) {
    const std::uint32_t to = any_vacated_to ? vacated_index(g, h) : kNoVcpuNode;
    return to == kNoVcpuNode ? kNoNode : topo->node_at(to).id;
  };

  // A page that was to follow vCPUs on old samples was turned away by
  // `target`, full or backed off: no new sample will mark it, so the
  // vacated walk runs again once the backoff is over (a destination still
  // full then turns it away again, and backs off for longer).
  auto retry_after_backoff = [&](NodeId target) {
    const int ti = index(target);
    if (ti < 0) return;
    const std::uint64_t at = backoff_until[static_cast<std::size_t>(ti)] + 1;
    if (g.vacated_rewalk_step == 0 || at < g.vacated_rewalk_step) g.vacated_rewalk_step = at;
  };
  // How many of batch b's pages may move now (watermark, rate limit);
  // `planned`: frames this flush already lets into b.target.
  auto admit_batch = [&](Batch& b, std::uint64_t planned) {
    std::size_t n = b.count;
    auto frames_of = [&](std::size_t i) {
      return b.gran == MoveGranularity::whole_blocks ? frames_of_order(b.from[i].order) : 1;
    };
    // Destination watermark: never take it below watermark().
    std::uint64_t free = 0, managed = 0;
    if (call_mover([&] { return g.mover->node_frames(b.target, free, managed); })) {
      const std::uint64_t wm = watermark(managed);
      std::uint64_t room = free > wm ? free - wm : 0, used = 0;
      room = room > planned ? room - planned : 0;
      std::size_t fit = 0;
      while (fit < n && used + frames_of(fit) <= room) used += frames_of(fit++);
      stats.skipped_watermark += n - fit;
      if (fit < n) back_off(b.target);  // full: stop scanning for it for a while
      for (std::size_t i = fit; i < n; ++i)
        if (b.why[i] == kWhyFollow) {
          retry_after_backoff(b.target);
          break;
        }
      n = fit;
    }
    // Per-destination rate limit, item by item (a block larger than the
    // whole bucket goes when it is full).
    std::uint64_t sizes[kChunk], taken = 0;
    for (std::size_t i = 0; i < n; ++i) sizes[i] = frames_of(i);
    const std::size_t fit = admit(b.target, std::span<const std::uint64_t>(sizes, n), now_ns, taken);
    if (fit < n) {
      stats.skipped_rate_limit += n - fit;
      // Looked at again next step, wherever the cursor is (a page moved on
      // old samples has no new sample to mark it).
      for (std::size_t i = fit; i < n; ++i) {
        const std::uint64_t c = b.gfns[i] >> AccessTracker::kChunkShift;
        g.tracker->mark_sampled_chunks(c / 64, std::uint64_t{1} << (c % 64));
      }
      n = fit;
    }
    return n;
  };
  // The block item i of batch b split, if it did (~0 otherwise): a page
  // moved alone out of a block -- the mover splits the whole block into
  // 4 KiB pages first.
  auto split_by = [&](const Batch& b, std::size_t i) {
    if (b.gran != MoveGranularity::pages || b.out[i] != MoveOutcome::moved || b.from[i].order == 0 ||
        b.from[i].node == b.target)
      return ~Gfn{0};
    return b.gfns[i] & ~(frames_of_order(b.from[i].order) - 1);
  };
  // Whether a move of this flush before item i of batch bs[bi] split
  // `head` (n: each batch's admitted items). Every page of the flush was
  // queried before it, so later pages of a split block still say order 9.
  auto split_before = [&](Gfn head, std::size_t bi, std::size_t i, const std::size_t* n) {
    for (std::size_t j = 0; j <= bi; ++j)
      for (std::size_t k = 0, e = j == bi ? i : n[j]; k < e; ++k)
        if (split_by(bs[j], k) == head) return true;
    return false;
  };
  // After the move of batch bs[bi]'s first n[bi] pages: what they were
  // moved for. `moved`: the frames the mover says changed node for them.
  // The flush books its batches in order.
  auto book_batch = [&](std::size_t bi, const std::size_t* n, std::uint64_t moved) {
    Batch& b = bs[bi];
    auto frames_of = [&](std::size_t i) {
      return b.gran == MoveGranularity::whole_blocks ? frames_of_order(b.from[i].order) : 1;
    };
    // A block may be split (balloon, sharing) between the query that gave
    // from[i].order and the move, which then moves only the page: as the
    // pair counts (book_move), what the pages were moved for counts no
    // more frames than the mover says changed node, in the same order.
    std::uint64_t unbooked = moved;
    Gfn last_split = ~Gfn{0};
    for (std::size_t i = 0; i < n[bi]; ++i) {
      // A page following its vCPUs that the move refused has no sample to
      // bring it back: a full node (backed off by book_move) is tried again
      // after its backoff, a busy page at the next step.
      if (b.why[i] == kWhyFollow && b.out[i] != MoveOutcome::moved) {
        if (b.out[i] == MoveOutcome::no_memory || b.out[i] == MoveOutcome::invalid_node) {
          retry_after_backoff(b.target);
        } else if (b.out[i] == MoveOutcome::busy) {
          const std::uint64_t c = b.gfns[i] >> AccessTracker::kChunkShift;
          g.tracker->mark_sampled_chunks(c / 64, std::uint64_t{1} << (c % 64));
        }
      }
      if (b.out[i] != MoveOutcome::moved || b.from[i].node == b.target) continue;
      const std::uint64_t frames = std::min(unbooked, frames_of(i));
      unbooked -= frames;
      if (b.why[i] == kWhyFollow) {
        stats.pages_followed += frames;
        GuestSlot::GuestCounters::add(g.counters.pages_followed, frames);
      }
      if (b.why[i] == kWhyQuick) {
        stats.pages_quick += frames;
        GuestSlot::GuestCounters::add(g.counters.pages_quick, frames);
      }
      if (b.from[i].order == 0) continue;
      const std::uint64_t span = frames_of_order(b.from[i].order);
      const Gfn head = b.gfns[i] & ~(span - 1);
      if (b.gran == MoveGranularity::whole_blocks) {
        if (g.options.granularity != MoveGranularity::pages) continue;  // whole-block guests: not counted
        if (frames < span) continue;  // split before the move: the page went alone (book_move marked it)
        ++stats.blocks_moved_whole;
        // Every page moved: none may pull the block back at once.
        for (std::uint64_t k = 0; k < span; ++k) g.tracker->moved(head + k);
      } else if (head != last_split) {  // further pages of it in a row: the same split
        last_split = head;
        if (!split_before(head, bi, i, n)) ++stats.blocks_split;  // the move split it
      }
    }
  };
  // Every pending batch moves in one mover call (Mover::move_each): a
  // mover with a fixed cost per call -- the kernel's, a round trip to every
  // CPU -- pays it once for all destinations.
  auto flush = [&] {
    if (nb == 0) return;
    std::size_t n[kBatches];
    MoveRequest req[kBatches];
    std::size_t which[kBatches], nr = 0;
    for (std::size_t i = 0; i < nb; ++i) {
      std::uint64_t planned = 0;
      for (std::size_t j = 0; j < i; ++j)
        if (bs[j].target == bs[i].target)
          for (std::size_t k = 0; k < n[j]; ++k)
            planned += bs[j].gran == MoveGranularity::whole_blocks ? frames_of_order(bs[j].from[k].order) : 1;
      n[i] = admit_batch(bs[i], planned);
      if (n[i] == 0) continue;
      req[nr].gfns = std::span<const Gfn>(bs[i].gfns, n[i]);
      req[nr].target = bs[i].target;
      req[nr].granularity = bs[i].gran;
      req[nr].out = std::span<MoveOutcome>(bs[i].out, n[i]);
      which[nr++] = i;
    }
    std::uint64_t moved[kBatches] = {};  // frames each batch's move changed node
    if (nr == 1) {
      Batch& b = bs[which[0]];
      const std::uint64_t before = rep.moved;
      do_move(g, b.gfns, b.from, n[which[0]], b.target, b.gran, b.out, rep);
      moved[which[0]] = rep.moved - before;
    } else if (nr > 1) {
      const std::uint64_t t0 = config.clock_ns ? config.clock_ns(config.clock_ctx) : 0;
      call_mover([&] {
        g.mover->move_each(std::span<MoveRequest>(req, nr));
        return true;
      });
      if (config.clock_ns) stats.ns_moving += config.clock_ns(config.clock_ctx) - t0;
      for (std::size_t j = 0; j < nr; ++j) {
        Batch& b = bs[which[j]];
        book_move(g, b.gfns, b.from, n[which[j]], b.target, b.gran, b.out, req[j].result, rep);
        if (req[j].result) moved[which[j]] = req[j].result->frames_moved;
      }
    }
    for (std::size_t i = 0; i < nb; ++i)
      if (n[i]) book_batch(i, n, moved[i]);
    // The chunk being examined was queried before this flush: its pages in
    // a block a page move split are 4 KiB pages now (split whole), and
    // moving one of them later splits nothing (blocks_split).
    Gfn head = ~Gfn{0};
    bool split = false;
    for (std::size_t k = 0; k < st_n; ++k) {
      if (st[k].order == 0) continue;
      const Gfn h = (st_first + k) & ~(frames_of_order(st[k].order) - 1);
      if (h != head) {
        head = h;
        split = split_before(h, nb - 1, n[nb - 1], n);  // by any move of the flush
      }
      if (split) st[k].order = 0;
    }
    for (std::size_t i = 0; i < nb; ++i) bs[i].count = 0;
    nb = 0;
  };
  auto enqueue = [&](Gfn gfn, const PageState& p, NodeId target, std::uint8_t why, MoveGranularity gran) {
    Batch* b = nullptr;
    for (std::size_t i = 0; i < nb && !b; ++i)
      if (bs[i].target == target && bs[i].gran == gran) b = &bs[i];
    if (!b) {
      if (nb == kBatches) flush();
      b = &bs[nb++];
      b->count = 0;
      b->target = target;
      b->gran = gran;
    }
    b->gfns[b->count] = gfn;
    b->from[b->count] = p;
    b->why[b->count] = why;
    if (++b->count == kChunk) flush();
  };
  // Room on `target` for `frames` more above its watermark (unknown: yes).
  auto has_room = [&](NodeId target, std::uint64_t frames) {
    std::uint64_t free = 0, managed = 0;
    if (!call_mover([&] { return g.mover->node_frames(target, free, managed); })) return true;
    const std::uint64_t wm = watermark(managed);
    return free > wm && free - wm >= frames;
  };
  // The per-page rules (see the top): where the page should go (kNoNode:
  // stay) and why; `shared` says the filter held it back as shared.
  auto decide = [&](const PageState& p, const MigrateRange& r, const PageHeat& h, NodeId last, std::uint8_t& why,
                    bool& shared) {
    why = 0;
    shared = false;
    if (g.options.vnuma_bound) return r.pnode;  // the binding, not single accesses
    if (!g.options.auto_balance) return kNoNode;
    if (const NodeId t = vacated_target(h); t != kNoNode) {
      why = kWhyFollow;  // sampled only where its vCPUs all left from: after them now
      return t;
    }
    if (last == p.node) return kNoNode;
    if (h.streak >= 1 && follows(p.node, h)) {
      why = kWhyFollow;  // private to vCPUs that left its node: follow now
      return last;
    }
    if (config.quick_moves && quick_move(h)) {
      why = kWhyQuick;
      return last;
    }
    if (h.streak >= 2) {
      // A single switch from a clean history, at least two epochs ago
      // (score 3 faded to 1 or less), and since then samples only from
      // the new node, two in a row: its user moved once -- it need not
      // sit out the rest of the switch memory. Pages that alternate have
      // scores of 5 and up.
      const int li = index(last);
      const bool moved_once = li >= 0 && h.switches <= 1 &&
                              (h.seen | h.prev_seen) == static_cast<std::uint16_t>(1u << (static_cast<unsigned>(li) % 16));
      if (h.shared() && !moved_once) {  // touched from several nodes: leave it where it is
        shared = true;
        return kNoNode;
      }
      return last;
    }
    return kNoNode;
  };
  auto last_of = [&](const PageHeat& h) {
    return h.sampled() && h.last_index < nodes ? topo->node_at(h.last_index).id : kNoNode;
  };
  // A page may move to `target` at all (flags, allowed nodes, backoff).
  auto backed_off = [&](NodeId target) {
    const int ti = index(target);
    return ti >= 0 && backoff_until[static_cast<std::size_t>(ti)] >= step_no;
  };
  auto movable = [&](const PageState& p, const MigrateRange& r, NodeId target, bool count) {
    if (p.flags & P2mFlags::pinned) { if (count) ++stats.skipped_pinned; return false; }
    if (p.flags & P2mFlags::shared) { if (count) ++stats.skipped_shared; return false; }
    if (p.flags & P2mFlags::migrating) return false;
    if (!r.allowed.test(target)) return false;
    const int ti = index(target);
    if (ti < 0) return false;
    if (backoff_until[static_cast<std::size_t>(ti)] >= step_no) { if (count) ++stats.skipped_backoff; return false; }
    return true;
  };
  const bool keep_huge = config.keep_huge_pages && g.options.granularity == MoveGranularity::pages;
  // The 2 MiB block (or coalesce range) the scan is in, once judged.
  Gfn blk_head = ~Gfn{0};
  bool blk_whole = false;  // judged as a whole: its pages take no decision of their own
  // A huge block's fate (see the top): moved whole (true), or judged page
  // by page (false: truly shared, no room for a block, or larger than 2 MiB).
  auto judge_block = [&](const PageState& p, Gfn head, const MigrateRange& r) {
    if (p.order != kHugeOrder || range_of(g, head + kHugeSpan - 1) != &r) return false;
    NodeId target = kNoNode;
    std::uint8_t why = 0;
    if (g.options.vnuma_bound) {
      if (r.pnode == p.node) return true;  // where it belongs
      target = r.pnode;
    } else {
      // One pass: the pooled weights, and per node bit the first page the
      // per-page rules would send there.
      BlockWeights bw;
      NodeId want[16];
      std::uint8_t want_why[16] = {};
      for (NodeId& w : want) w = kNoNode;
      // The block's older history: node bits of the last samples of its
      // pages not sampled in the last two epochs (PageHeat::old_index).
      std::uint16_t old_bits = 0;
      // Every page ever sampled was sampled only from one vacated node:
      // the block follows its vCPUs whole (vac_to), as its pages would.
      NodeId vac_to = kNoNode;
      bool vac_all = true;
      for (std::uint64_t k = 0; k < kHugeSpan; ++k) {
        const PageHeat h = g.tracker->heat(head + k);
        if (h.old_index != PageHeat::kNoIndex && vac_all) {
          const NodeId t = vacated_target(h);
          vac_all = t != kNoNode && (vac_to == kNoNode || vac_to == t);
          vac_to = t;
        }
        if (!h.sampled()) {
          if (h.old_index != PageHeat::kNoIndex) old_bits = static_cast<std::uint16_t>(old_bits | 1u << (h.old_index % 16));
          continue;
        }
        bw.add(h);
        std::uint8_t w = 0;
        bool shared = false;
        const NodeId t = decide(p, r, h, last_of(h), w, shared);
        const int ti = t == kNoNode ? -1 : index(t);
        if (ti < 0 || t == p.node) continue;
        const auto bit = static_cast<unsigned>(ti) % 16;
        // A page's quick reason is the weakest: another page's follow or
        // two-stage reason for the same node replaces it.
        if (want[bit] == kNoNode || (want_why[bit] == kWhyQuick && w != kWhyQuick)) want[bit] = t, want_why[bit] = w;
      }
      if (vac_all && vac_to != kNoNode) {
        if (vac_to == p.node) return true;
        target = vac_to;
        why = kWhyFollow;
      } else {
        // On a node its vCPUs all left, sampled lately only there and from
        // the node a page of it follows: the old node's weight is history,
        // not sharing -- the block follows whole (kernel mover's THPs).
        unsigned follow = 16;
        const int here = index(p.node);
        for (unsigned k = 0; k < 16; ++k)
          if (want[k] != kNoNode && want_why[k] == kWhyFollow && here >= 0 &&
              (bw.bits & ~((1u << k) | (1u << (static_cast<unsigned>(here) % 16)))) == 0)
            follow = k;
        const unsigned heavy = follow < 16 ? 1 : bw.heavy();
        if (heavy >= 2) return false;  // truly shared: page by page (the first move splits it)
        // The block's one owner: its one real weight, else its only sampler;
        // stray single samples from several nodes say nothing.
        unsigned owner = follow;
        for (unsigned k = 0; k < 16 && follow == 16; ++k)
          if (heavy == 1 ? bw.weight[k] >= 2 : bw.bits == (1u << k)) owner = k;
        if (owner == 16 || want[owner] == kNoNode) return true;  // stays whole where it is
        // A quick move is for a block first touched there or whose user
        // changed node: its older history names no node but its own. Any
        // other -- the target (it came from there: on two nodes a shared
        // block would go back and forth each time its switch memory ran
        // out) or a third node -- means the block is shared in the long
        // run, and two epochs of sparse samples from one node say nothing
        // (the VM's shared workload bounced such blocks). It stays whole
        // for now; the two-stage filter can still move it.
        const auto own = static_cast<std::uint16_t>(here >= 0 ? 1u << (static_cast<unsigned>(here) % 16) : 0u);
        if (want_why[owner] == kWhyQuick && (old_bits & ~own) != 0) return true;
        target = want[owner];
        why = want_why[owner];
      }
    }
    if (!movable(p, r, target, true)) {
      if (why == kWhyFollow && backed_off(target)) retry_after_backoff(target);
      return true;
    }
    if (!has_room(target, kHugeSpan)) return false;  // a full node still takes single pages
    enqueue(head, p, target, why, MoveGranularity::whole_blocks);
    return true;
  };
  // Coalescing an aligned range of 4 KiB pages at `head` (see the top).
  auto try_coalesce = [&](Gfn head, const MigrateRange& r) {
    if (g.coalesce_unsupported || head + kHugeSpan > pages || range_of(g, head + kHugeSpan - 1) != &r) return;
    // Cheap first, the tracker: settled = no switch memory, recent samples
    // from one node only, with real weight (a quiet range stays as it is).
    BlockWeights bw;
    for (std::uint64_t k = 0; k < kHugeSpan; ++k) {
      const PageHeat h = g.tracker->heat(head + k);
      if (h.switches > 0) return;
      bw.add(h);
      if (bw.bits & (bw.bits - 1)) return;
    }
    if (bw.bits == 0 || bw.heavy() != 1) return;
    // Then the pages: 4 KiB each, all on the sampling node but a few.
    PageState q[kChunk];
    Gfn strag_gfn[kStragglers];
    NodeId strag_node[kStragglers];
    std::size_t strags = 0;
    NodeId home = kNoNode;
    for (std::size_t i = 0; i < nodes && home == kNoNode; ++i)
      if (bw.bits == static_cast<std::uint16_t>(1u << (i % 16))) home = topo->node_at(i).id;
    if (home == kNoNode || (g.options.vnuma_bound && home != r.pnode)) return;
    for (std::uint64_t at = 0; at < kHugeSpan; at += kChunk) {
      if (!call_mover([&] { return g.mover->query(head + at, std::span<PageState>(q, kChunk)); })) return;
      for (std::size_t i = 0; i < kChunk; ++i) {
        const PageState& x = q[i];
        if (x.node == kNoNode || x.order != 0 || (x.flags & (P2mFlags::pinned | P2mFlags::shared | P2mFlags::migrating)))
          return;
        if (x.node == home) continue;
        if (strags == kStragglers) return;
        strag_gfn[strags] = head + at + i;
        strag_node[strags++] = x.node;
      }
    }
    if (!r.allowed.test(home) || !has_room(home, kHugeSpan)) return;
    const int ti = index(home);
    if (ti < 0 || backoff_until[static_cast<std::size_t>(ti)] >= step_no) return;
    // The copy uses the destination's bandwidth as a move does: all or
    // nothing, one item of kHugeSpan frames.
    const std::uint64_t span = kHugeSpan;
    std::uint64_t taken = 0;
    if (admit(home, std::span<const std::uint64_t>(&span, 1), now_ns, taken) == 0) {
      ++stats.skipped_rate_limit;
      return;
    }
    flush();  // moves queued before this one go first
    MoveOutcome out = MoveOutcome::busy;
    const std::uint64_t t0 = config.clock_ns ? config.clock_ns(config.clock_ctx) : 0;
    auto res = call_mover([&] { return g.mover->coalesce(head, kHugeOrder, home, out); });
    if (config.clock_ns) stats.ns_moving += config.clock_ns(config.clock_ctx) - t0;
    if (!res) {
      if (res.error() == Errc::unsupported) g.coalesce_unsupported = true;
      refund(home, taken);
      return;
    }
    stats.flushes += res->flushes;
    if (out != MoveOutcome::moved) {
      refund(home, taken);
      if (out == MoveOutcome::no_memory) back_off(home);
      return;
    }
    ++stats.blocks_coalesced;
    count_moved(g, res->frames_moved);
    rep.moved += res->frames_moved;
    // The stragglers changed node: by pair, and their switch memory.
    std::uint64_t unpaired = res->frames_moved;
    for (std::size_t k = 0; k < strags && unpaired; ++k) {
      const int fi = index(strag_node[k]);
      if (fi >= 0) pair_pages[static_cast<std::size_t>(fi) * nodes + static_cast<std::size_t>(ti)] += 1, --unpaired;
      g.tracker->moved(strag_gfn[k]);
    }
  };

  // Pages [first, first + n), n <= kChunk: queried, judged, queued. False
  // when the mover could not say where they are.
  auto examine = [&](Gfn first, std::size_t n) {
    if (!call_mover([&] { return g.mover->query(first, std::span<PageState>(st, n)); })) return false;
    st_first = first;  // a flush from here on brings st up to date (split blocks)
    st_n = n;
    stats.pages_scanned += n;
    GuestSlot::GuestCounters::add(g.counters.pages_scanned, n);
    rep.scanned += n;
    for (std::size_t i = 0; i < n; ++i) {
      const Gfn gfn = first + i;
      const PageState& p = st[i];
      if (p.node == kNoNode) continue;
      const MigrateRange* r = range_of(g, gfn);
      if (!r) continue;  // outside RAM ranges (device region)
      const PageHeat h = g.tracker->heat(gfn);
      const NodeId last = last_of(h);
      if (h.sampled()) {  // for the sampling advice: pages whose last sample came from
        ++sampled;        // elsewhere, unless they keep alternating (shared: never moving)
        if (last != p.node && h.switches <= 3) ++remote;
      }
      if (h.hits) {  // local-access estimate: the last sampler stands for the epoch's samples
        total += h.hits;
        if (last == p.node) local += h.hits;
      }
      if (keep_huge) {
        // A 2 MiB block is judged whole, once per scan; an aligned range of
        // 4 KiB pages may be coalesced (at its first page).
        const Gfn head = gfn & ~(kHugeSpan - 1);
        if (head != blk_head) {
          blk_head = head;
          blk_whole = false;
          if (p.order > 0) {
            blk_whole = judge_block(p, head, *r);
          } else if (gfn == head) {
            const std::uint64_t coalesced = stats.blocks_coalesced;
            try_coalesce(head, *r);
            blk_whole = stats.blocks_coalesced != coalesced;  // its pages' states above are stale
          }
        }
        if (blk_whole) continue;
      }
      std::uint8_t why = 0;
      bool shared = false;
      const NodeId target = decide(p, *r, h, last, why, shared);
      if (shared) ++stats.skipped_shared_access;
      if (target == kNoNode || target == p.node) continue;
      if (!movable(p, *r, target, true)) {
        if (why == kWhyFollow && backed_off(target)) retry_after_backoff(target);
        continue;
      }
      enqueue(gfn, p, target, why, g.options.granularity);
    }
    st_n = 0;
    return true;
  };

  // This step's cursor window: [w0, w0 + budget), wrapping at `pages`.
  const Gfn w0 = g.scan_cursor < pages ? g.scan_cursor : 0;
  auto in_window = [&](Gfn x) { return (x >= w0 ? x - w0 : x + (pages - w0)) < budget; };
  // After a node was vacated (see the top) the pages that follow its vCPUs
  // on their old samples alone are anywhere in the guest: unless the window
  // covers it all, the tracker's words (no mover query, a load and a
  // compare for most pages) are walked for them, kVacatedWalk x scan_pages
  // pages a step, and their chunks marked for the pass below.
  if (g.vacated_rewalk_step != 0 && step_no >= g.vacated_rewalk_step) {
    g.vacated_rewalk_step = 0;
    g.vacated_walk_left = g.tracker->pages();  // every page once more, from where the walk is
  }
  if (g.vacated_walk_left > 0 && (!any_vacated_to || budget >= pages)) g.vacated_walk_left = 0;
  if (g.vacated_walk_left > 0) {
    std::uint64_t n = std::min(g.vacated_walk_left, kVacatedWalk * config.scan_pages);
    g.vacated_walk_left -= n;
    Gfn x = g.vacated_walk_at < pages ? g.vacated_walk_at : 0;
    // Milliseconds for a big guest: without the data lock (the vCPU counts
    // and vacated fields it reads change only in a step: this one).
    without_lock([&] {
      while (n > 0) {
        const std::uint32_t a = g.tracker->old_index(x);
        if (a < nodes && g.vacated_step[a] != 0 && g.vcpus_on[a] == 0 && !in_window(x) &&
            vacated_index(g, g.tracker->heat(x)) != kNoVcpuNode) {
          const std::uint64_t c = x >> AccessTracker::kChunkShift;
          g.tracker->mark_sampled_chunks(c / 64, std::uint64_t{1} << (c % 64));
          const Gfn next = (c + 1) << AccessTracker::kChunkShift;  // the rest of the chunk: marked
          n -= std::min<std::uint64_t>(n, next - x);
          x = next;
        } else {
          --n;
          ++x;
        }
        if (x >= pages) x = 0;
      }
      return true;
    });
    g.vacated_walk_at = x;
  }

  // First the chunks sampled since they were last looked at (see the top),
  // but not what the window covers anyway: up to scan_pages pages (one
  // chunk more at most), round robin from where the last pass that ran out
  // stopped (the start word is visited twice: its chunks from the start
  // on, then those before it).
  const std::uint64_t words = g.tracker->chunk_words();
  const std::uint64_t start_word = g.sampled_chunk / 64;
  const unsigned start_bit = static_cast<unsigned>(g.sampled_chunk % 64);
  const std::uint64_t before_start = (std::uint64_t{1} << start_bit) - 1;
  std::uint64_t sampled_budget = budget;
  for (std::uint64_t k = 0; k <= words && sampled_budget > 0; ++k) {
    const std::uint64_t wi = (start_word + k) % words;
    const std::uint64_t mask = k == 0 ? ~before_start : k == words ? before_start : ~std::uint64_t{0};
    std::uint64_t bits = mask ? g.tracker->take_sampled_chunks(wi, mask) : 0;
    if (k == words && bits) {  // wrapped: a block across the start may be judged again, after its move
      flush();
      blk_head = ~Gfn{0};
    }
    bool failed = false;
    while (bits && sampled_budget > 0 && !failed) {
      const Gfn c0 = (wi * 64 + static_cast<unsigned>(std::countr_zero(bits))) << AccessTracker::kChunkShift;
      const Gfn c1 = std::min<Gfn>(c0 + AccessTracker::kChunkPages, pages);
      // The runs of the chunk outside the window.
      for (Gfn x = c0; x < c1 && !failed;) {
        if (in_window(x)) {
          ++x;
          continue;
        }
        Gfn y = x + 1;
        while (y < c1 && !in_window(y)) ++y;
        failed = !examine(x, static_cast<std::size_t>(y - x));
        if (!failed) {
          stats.pages_scanned_sampled += y - x;
          sampled_budget -= std::min<std::uint64_t>(sampled_budget, y - x);
        }
        x = y;
      }
      if (!failed) bits &= bits - 1;
    }
    if (bits) {  // out of budget (or the mover failed): the rest next step, from here
      g.tracker->mark_sampled_chunks(wi, bits);
      g.sampled_chunk = wi * 64 + static_cast<unsigned>(std::countr_zero(bits));
      break;
    }
    if (failed) break;
  }
  flush();  // the window below queries afresh: moves queued above are done
  blk_head = ~Gfn{0};

  while (budget > 0) {
    const Gfn first = g.scan_cursor < pages ? g.scan_cursor : 0;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>({kChunk, budget, pages - first}));
    if (!examine(first, n)) break;
    g.scan_cursor = first + n;
    budget -= n;
  }
  flush();
  all_local += local;
  all_total += total;
  if (total > 0) g.counters.local_access_ratio.store(local / total, std::memory_order_relaxed);
  // Sampling advice: look at everything while pages move or wait for the
  // rate limit, or while pages are remote and could move; back off by half
  // per quiet step otherwise. Pages held back by a full destination
  // (watermark, backoff) cannot move: sampling them is pure cost.
  const bool blocked = stats.skipped_watermark + stats.skipped_backoff != blocked_before;
  // A step that found vCPUs moved keeps it at 1 too: sample_share says 1 at
  // once after set_vcpu_cpu, and an embedder that steps right after the move
  // must still see it for the period that follows.
  const bool busy = rep.moved != moved_before || stats.skipped_rate_limit != limited_before ||
                    g.vcpus_changed_step == step_no ||
                    (!blocked && static_cast<double>(remote) > 0.02 * static_cast<double>(sampled));
  if (busy)
    g.sample_share = 1.0;
  else if (sampled > 0)
    g.sample_share = std::max(config.min_sample_share, g.sample_share / 2);
}

}  // namespace numaheap
