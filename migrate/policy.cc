// The per-page policy of Migrator::step: which pages of a guest move where.
//
// A guest is scanned in windows of `scan_pages` (a cursor wraps around), in
// chunks of 64 pages queried from the mover; candidates for one
// destination are gathered into a batch of up to 64 and moved together (one
// flush pair). Nothing here allocates: every buffer is on the stack.
//
// vCPU moves (set_vcpu_cpu) are events: once a node has no vCPU of the
// guest left, nobody there wants its pages. A page on such a node whose
// recent samples came only from it and from one node that does run vCPUs
// of the guest is private to the vCPUs that left: it follows on its first
// sample from their new node, without the two-stage filter or the
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
// once moved its switch memory keeps it (see kMovedScore).
#include <algorithm>

#include "migrate/migrator_impl.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 64;
constexpr std::uint8_t kWhyFollow = 1, kWhyQuick = 2;

// A first sample from another node that may move the page at once (top):
// the tracker marked it quick, and since then only that node sampled it.
bool quick_move(const PageHeat& h) noexcept {
  if (!h.sampled() || !h.quick || h.streak == 0) return false;
  const auto bit = static_cast<std::uint16_t>(1u << (h.last_index % 16));
  return ((h.seen | h.prev_seen) & ~bit) == 0;
}

struct Batch {
  Gfn gfns[kChunk];
  PageState from[kChunk];
  MoveOutcome out[kChunk];
  std::uint8_t why[kChunk];  // kWhyFollow, kWhyQuick or 0
  std::size_t count = 0;
  NodeId target = kNoNode;
};

}  // namespace

void Migrator::Impl::update_vcpu_nodes(GuestSlot& g) noexcept {
  if (g.options.vcpus == 0 || !g.vcpus_on) return;
  for (std::size_t i = 0; i < nodes; ++i) g.vcpus_new[i] = 0;
  bool placed = false;
  for (std::uint32_t v = 0; v < g.options.vcpus; ++v) {
    const CpuId cpu = g.vcpu_cpu[v].load(std::memory_order_relaxed);
    const int i = index(topo->node_of_cpu(cpu));
    if (i < 0) continue;
    ++g.vcpus_new[static_cast<std::size_t>(i)];
    placed = true;
  }
  for (std::size_t i = 0; i < nodes; ++i) {
    if (g.vcpus_placed && g.vcpus_on[i] > 0 && g.vcpus_new[i] == 0) g.vacated_step[i] = step_no;
    g.vcpus_on[i] = g.vcpus_new[i];
  }
  g.vcpus_placed = placed;
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
  PageState st[kChunk];
  Batch b;
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

  auto flush = [&] {
    if (b.count == 0) return;
    std::size_t n = b.count;
    auto frames_of = [&](std::size_t i) {
      return g.options.granularity == MoveGranularity::whole_blocks ? frames_of_order(b.from[i].order) : 1;
    };
    // Destination watermark: never take it below watermark().
    std::uint64_t free = 0, managed = 0;
    if (g.mover->node_frames(b.target, free, managed)) {
      const std::uint64_t wm = watermark(managed);
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
    if (n) {
      do_move(g, b.gfns, b.from, n, b.target, g.options.granularity, b.out, rep);
      for (std::size_t i = 0; i < n; ++i) {
        if (b.out[i] != MoveOutcome::moved) continue;
        if (b.why[i] == kWhyFollow) stats.pages_followed += frames_of(i);
        if (b.why[i] == kWhyQuick) stats.pages_quick += frames_of(i);
      }
    }
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
      if (h.sampled()) {  // for the sampling advice: pages whose last sample came from
        ++sampled;        // elsewhere, unless they keep alternating (shared: never moving)
        if (last != p.node && h.switches <= 3) ++remote;
      }
      if (h.hits) {  // local-access estimate: the last sampler stands for the epoch's samples
        total += h.hits;
        if (last == p.node) local += h.hits;
      }
      NodeId target = kNoNode;
      std::uint8_t why = 0;
      if (g.options.vnuma_bound) {
        target = r->pnode;  // the binding, not single accesses
      } else if (g.options.auto_balance && h.streak >= 1 && last != p.node && follows(p.node, h)) {
        target = last;  // private to vCPUs that left its node: follow now
        why = kWhyFollow;
      } else if (g.options.auto_balance && last != p.node && config.quick_moves && quick_move(h)) {
        target = last;
        why = kWhyQuick;
      } else if (g.options.auto_balance && h.streak >= 2 && last != p.node) {
        // A single switch from a clean history, at least two epochs ago
        // (score 3 faded to 1 or less), and since then samples only from
        // the new node, two in a row: its user moved once -- it need not
        // sit out the rest of the switch memory. Pages that alternate have
        // scores of 5 and up.
        const int li = index(last);
        const bool moved_once = li >= 0 && h.switches <= 1 &&
                                (h.seen | h.prev_seen) == static_cast<std::uint16_t>(1u << (static_cast<unsigned>(li) % 16));
        if (h.shared() && !moved_once) {  // touched from several nodes: leave it where it is
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
      b.why[b.count] = why;
      if (++b.count == kChunk) flush();
    }
  }
  flush();
  all_local += local;
  all_total += total;
  // Sampling advice: look at everything while pages move or wait for the
  // rate limit, or while pages are remote and could move; back off by half
  // per quiet step otherwise. Pages held back by a full destination
  // (watermark, backoff) cannot move: sampling them is pure cost.
  const bool blocked = stats.skipped_watermark + stats.skipped_backoff != blocked_before;
  const bool busy = rep.moved != moved_before || stats.skipped_rate_limit != limited_before ||
                    (!blocked && static_cast<double>(remote) > 0.02 * static_cast<double>(sampled));
  if (busy)
    g.sample_share = 1.0;
  else if (sampled > 0)
    g.sample_share = std::max(config.min_sample_share, g.sample_share / 2);
}

}  // namespace numaheap
