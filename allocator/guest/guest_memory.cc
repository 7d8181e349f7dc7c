// GuestMemory: layout, populate, balloon, device buffers, destroy.
#include "numaheap/guest_memory.h"

#include <algorithm>
#include <array>
#include <span>
#include <string_view>

#include "allocator/guest/p2m.h"
#include "allocator/guest/spec_text.h"
#include "allocator/platform/fault_injection.h"
#include "allocator/platform/spin_lock.h"

namespace numaheap {

using namespace std::string_view_literals;

// The home record behind GuestHomeRef: reference counted, from the
// guest's metadata hooks (metadata_create), freed with the last reference.
class GuestHome {
 public:
  std::atomic<std::uint32_t> refs{1};  // GuestHomeRefs holding it
  mutable SpinLock lock;               // guards nodes (and orders it with generation)
  NodeMask nodes;
  std::atomic<std::uint64_t> generation{0};
};

GuestHomeRef::GuestHomeRef(const GuestHomeRef& o) noexcept : home_(o.home_) {
  if (home_) home_->refs.fetch_add(1, std::memory_order_relaxed);
}
GuestHomeRef& GuestHomeRef::operator=(const GuestHomeRef& o) noexcept {
  if (o.home_) o.home_->refs.fetch_add(1, std::memory_order_relaxed);
  reset();
  home_ = o.home_;
  return *this;
}
GuestHomeRef& GuestHomeRef::operator=(GuestHomeRef&& o) noexcept {
  if (this != &o) {
    reset();
    home_ = o.home_;
    o.home_ = nullptr;
  }
  return *this;
}
void GuestHomeRef::reset() noexcept {
  if (home_ && home_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) metadata_destroy(home_);
  home_ = nullptr;
}
std::uint64_t GuestHomeRef::generation() const noexcept {
  return home_ ? home_->generation.load(std::memory_order_acquire) : 0;
}
NodeMask GuestHomeRef::nodes(std::uint64_t* generation) const noexcept {
  if (!home_) {
    if (generation) *generation = 0;
    return {};
  }
  SpinGuard g(home_->lock);
  if (generation) *generation = home_->generation.load(std::memory_order_relaxed);
  return home_->nodes;
}

namespace {

constexpr unsigned kOrder2M = 9;
constexpr unsigned kOrder1G = 18;

// "N MB" as two message parts.
struct Mb {
  std::uint64_t pages;
};
std::uint64_t mb_of(Mb m) { return (m.pages << kFrameShift) >> 20; }

template <class... Parts>
Error guest_error(const GuestSpec& g, Errc code, const Parts&... parts) {
  return make_error(code, "guest '"sv, g.name, "': "sv, parts...);
}

const MetadataHooks* hooks_of(const GuestOptions& o) noexcept {
  return o.metadata ? o.metadata : default_metadata();
}

// Adds `pages` to `node`'s share in `v` (within its capacity; false when
// full).
bool add_share(Vector<NodeShare>& v, NodeId node, std::uint64_t pages) noexcept {
  for (NodeShare& s : v)
    if (s.node == node) {
      s.bytes += pages;
      return true;
    }
  return v.push_back(NodeShare{node, pages});
}

}  // namespace

struct GuestMemory::Impl {
  NUMAHEAP_METADATA_NEW_DELETE
  explicit Impl(const MetadataHooks* h) noexcept : hooks(h), buffers(h) {}

  const MetadataHooks* hooks;  // the guest's metadata memory
  // `lock` serialises populate, balloon, device buffers, split and destroy.
  // The p2m is read without it; entries change under it or by CAS.
  SpinLock lock;
  P2m p2m;
  std::atomic<std::uint64_t> present{0};  // present RAM + device pages
  // Frames the p2m referenced that the allocator refused to free (a
  // disagreement between the p2m and the frame table: a bug). Only grows;
  // check_invariants() fails while it is non-zero.
  std::atomic<std::uint64_t> lost{0};
  bool populated = false;  // guarded by lock
  bool destroyed = false;  // guarded by lock
  Vector<DeviceBuffer> buffers;  // guarded by lock
  // With `lock`, guards GuestMemory::layout_ and home_ against relayout();
  // taken after `lock` (public readers take only this one). The home
  // record's own lock is taken after this one.
  mutable SpinLock layout_lock;
};

GuestMemory::~GuestMemory() {
  if (impl_) (void)destroy();
}

Result<std::unique_ptr<GuestMemory>, Error> GuestMemory::create(PageAllocator& pa, const GuestSpec& spec,
                                                                const Placement& placement, OwnerId owner,
                                                                const GuestOptions& options) {
  const Topology& topo = pa.topology();
  if (auto ok = validate_guest_spec(spec, topo); !ok) return ok.error();
  if (owner > kMaxOwner) return guest_error(spec, Errc::invalid_argument, "owner id is reserved"sv);
  const MetadataHooks* hooks = hooks_of(options);
  std::unique_ptr<GuestMemory> g(new (hooks) GuestMemory());
  if (!g) return guest_error(spec, Errc::no_memory, "cannot allocate the guest"sv);
  g->pa_ = &pa;
  g->spec_ = spec;
  if (!g->spec_.ok()) return guest_error(spec, Errc::no_memory, "cannot copy the spec"sv);
  g->owner_ = owner;
  g->options_ = options;
  g->layout_ = Vector<GuestRange>(hooks);
  Gfn next = 0;
  auto add_range = [&](std::uint64_t bytes, NodeId pnode, std::uint32_t vnode) -> Result<void, Error> {
    const NodeInfo* n = topo.find(pnode);
    if (!n || !n->has_memory())
      return guest_error(spec, Errc::invalid_node, "placement uses node "sv, pnode, ", which has no memory here"sv);
    std::uint64_t pages = bytes >> kFrameShift;
    if (pages == 0) return {};
    if (pages > kMaxGuestFrames - next)  // next <= kMaxGuestFrames: no wrap
      return guest_error(spec, Errc::invalid_argument, "placement covers more than the largest guest"sv);
    if (!g->layout_.push_back({next, pages, pnode, vnode}))
      return guest_error(spec, Errc::no_memory, "cannot allocate the layout"sv);
    g->home_.set(pnode);
    next += pages;
    return {};
  };
  if (!spec.vnodes.empty()) {
    if (placement.vnode_pnodes.size() != spec.vnodes.size())
      return guest_error(spec, Errc::invalid_argument, "placement has no pnode for every vnode"sv);
    if (!placement.vnode_memory.empty()) {
      // Per-node pieces (an interleaved vnode has several): in vnode order,
      // each vnode's pieces summing to its size.
      std::size_t k = 0;
      for (std::size_t v = 0; v < spec.vnodes.size(); ++v) {
        std::uint64_t sum = 0;
        for (; k < placement.vnode_memory.size() && placement.vnode_memory[k].vnode == v; ++k) {
          sum += placement.vnode_memory[k].bytes;
          if (auto r = add_range(placement.vnode_memory[k].bytes, placement.vnode_memory[k].node,
                                 static_cast<std::uint32_t>(v));
              !r)
            return r.error();
        }
        if (sum != spec.vnodes[v].memory_bytes)
          return guest_error(spec, Errc::invalid_argument, "placement's pieces of vnode "sv, v,
                             " do not sum to its size"sv);
      }
      if (k != placement.vnode_memory.size())
        return guest_error(spec, Errc::invalid_argument, "placement's vnode pieces are out of vnode order"sv);
    } else {
      for (std::size_t v = 0; v < spec.vnodes.size(); ++v)
        if (auto r = add_range(spec.vnodes[v].memory_bytes, placement.vnode_pnodes[v],
                               static_cast<std::uint32_t>(v));
            !r)
          return r.error();
    }
  } else {
    for (const auto& share : placement.memory)
      if (auto r = add_range(share.bytes, share.node, 0); !r) return r.error();
  }
  g->ram_pages_ = next;
  if ((g->ram_pages_ << kFrameShift) != spec.memory_bytes)
    return guest_error(spec, Errc::invalid_argument, "placement covers "sv, mb_of({g->ram_pages_}),
                       " MB of the guest's "sv, spec.memory_bytes >> 20, " MB"sv);
  // Device buffers are naturally aligned blocks no larger than the region,
  // so aligning the region to its own (power-of-two) size is enough.
  // ram_pages_ <= kMaxGuestFrames = 2^40 and align <= 2^18: no sum wraps.
  std::uint64_t align = 1;
  while (align < options.device_region_pages && align < frames_of_order(kMaxOrder)) align <<= 1;
  g->device_base_ = (g->ram_pages_ + align - 1) / align * align;
  if (g->device_base_ > kMaxGuestFrames || options.device_region_pages > kMaxGuestFrames - g->device_base_)
    return guest_error(spec, Errc::invalid_argument, "device region of "sv, options.device_region_pages,
                       " pages above "sv, mb_of({g->ram_pages_}), " MB of RAM exceeds the largest guest (2^40 frames)"sv);
  if (!g->layout_.reserve(std::max(g->layout_.size(), kMaxLayoutRanges)))  // relayout never allocates
    return guest_error(spec, Errc::no_memory, "cannot allocate the layout"sv);
  GuestHome* home = metadata_create<GuestHome>(hooks);
  if (!home) return guest_error(spec, Errc::no_memory, "cannot allocate the home record"sv);
  home->nodes = g->home_;
  g->home_record_ = GuestHomeRef(home);
  // The p2m lives on the node that holds most of the guest.
  const GuestRange* biggest = &g->layout_[0];
  for (const GuestRange& r : g->layout_)
    if (r.pages > biggest->pages) biggest = &r;
  std::unique_ptr<Impl> impl(new (hooks) Impl(hooks));
  if (!impl || !impl->p2m.init(hooks, g->device_base_ + options.device_region_pages, biggest->pnode))
    return guest_error(spec, Errc::no_memory, "cannot allocate the p2m"sv);  // g has no impl_: no destroy()
  g->impl_ = std::move(impl);
  return g;
}

std::uint64_t GuestMemory::gfn_limit() const noexcept { return impl_->p2m.size(); }

P2mEntry GuestMemory::lookup(Gfn gfn) const noexcept { return impl_->p2m.get(gfn); }

bool GuestMemory::compare_exchange(Gfn gfn, P2mEntry expected, P2mEntry desired) noexcept {
  if (desired.present() && desired.mfn > P2m::kMaxMfn) return false;
  return impl_->p2m.cas(gfn, expected, desired);
}

bool GuestMemory::update_flags(Gfn gfn, std::uint8_t set, std::uint8_t clear) noexcept {
  for (;;) {
    P2mEntry e = impl_->p2m.get(gfn);
    if (!e.present()) return false;
    P2mEntry d = e;
    d.flags = static_cast<std::uint8_t>((e.flags | set) & ~clear) | P2mFlags::present;
    if (impl_->p2m.cas(gfn, e, d)) return true;
  }
}

Vector<GuestRange> GuestMemory::layout() const {
  Vector<GuestRange> out(impl_->hooks);
  if (!out.reserve(layout_.capacity())) return out;  // empty, !ok()
  SpinGuard g(impl_->layout_lock);
  (void)out.assign(layout_.data(), layout_.size());  // within capacity: cannot fail
  return out;
}

NodeMask GuestMemory::home_nodes() const noexcept {
  SpinGuard g(impl_->layout_lock);
  return home_;
}

NodeId GuestMemory::home_node_of(Gfn gfn) const noexcept {
  SpinGuard g(impl_->layout_lock);
  for (const auto& r : layout_)
    if (gfn >= r.first && gfn - r.first < r.pages) return r.pnode;
  return kNoNode;
}

std::uint64_t GuestMemory::present_pages() const noexcept {
  return impl_->present.load(std::memory_order_relaxed);
}

bool GuestMemory::populated() const noexcept {
  SpinGuard g(impl_->lock);
  return impl_->populated;
}

namespace {

// Present pages per node of `p2m` into `out` (`bytes` holds pages),
// ascending node id. `out` must have room for one entry per topology node
// (reserved by the caller), so nothing here allocates.
void count_per_node(const PageAllocator& pa, const P2m& p2m, Vector<NodeShare>& out) noexcept {
  for (Gfn gfn = 0; gfn < p2m.size(); ++gfn) {
    P2mEntry e = p2m.get(gfn);
    if (!e.present()) continue;
    (void)add_share(out, pa.node_of(e.mfn), 1);
  }
  std::sort(out.begin(), out.end(), [](const NodeShare& a, const NodeShare& b) { return a.node < b.node; });
}

}  // namespace

Vector<NodeShare> GuestMemory::pages_per_node() const {
  Vector<NodeShare> out(impl_->hooks);
  // One entry per node at most (kNoNode included, for a frame the
  // allocator does not know: check_invariants() reports that).
  if (!out.reserve(pa_->topology().node_count() + 1)) return out;  // empty, !ok()
  count_per_node(*pa_, impl_->p2m, out);
  return out;
}

namespace {

// 4 KiB frames of the guest to free, gathered and freed in batches with
// free_bulk. A refused batch (which cannot happen: the guest owns every
// frame it lists) is freed frame by frame; a frame refused again is
// counted in `lost`, never ignored.
class FrameBatch {
 public:
  FrameBatch(PageAllocator& pa, OwnerId owner, std::atomic<std::uint64_t>& lost)
      : pa_(pa), owner_(owner), lost_(lost) {}
  ~FrameBatch() { flush(); }
  FrameBatch(const FrameBatch&) = delete;
  FrameBatch& operator=(const FrameBatch&) = delete;
  void add(Mfn mfn) {
    if (n_ == buf_.size()) flush();
    buf_[n_++] = mfn;
  }
  void flush() {
    if (n_ && !pa_.free_bulk(std::span<const Mfn>(buf_.data(), n_), owner_))
      for (std::size_t i = 0; i < n_; ++i)
        if (!pa_.free(buf_[i], 0, owner_)) lost_.fetch_add(1, std::memory_order_relaxed);
    n_ = 0;
  }

 private:
  PageAllocator& pa_;
  OwnerId owner_;
  std::atomic<std::uint64_t>& lost_;
  std::array<Mfn, 512> buf_;
  std::size_t n_ = 0;
};

// Frees every block that has a head in [first, last) and clears the entries.
// Lock held. Adds the nodes it freed frames on to `freed`.
void free_blocks(PageAllocator& pa, P2m& p2m, std::atomic<std::uint64_t>& present,
                 std::atomic<std::uint64_t>& lost, OwnerId owner, Gfn first, Gfn last, NodeMask& freed) {
  FrameBatch pages(pa, owner, lost);
  for (Gfn gfn = first; gfn < last; ++gfn) {
    P2mEntry e = p2m.get(gfn);
    if (!e.present()) continue;
    const std::uint64_t span = frames_of_order(e.order);
    if (gfn % span != 0) continue;  // not the block head: freed with it
    NodeId node = pa.node_of(e.mfn);
    if (e.order == 0) pages.add(e.mfn);
    else if (!pa.free(e.mfn, e.order, owner)) lost.fetch_add(span, std::memory_order_relaxed);
    for (Gfn k = gfn; k < gfn + span && k < p2m.size(); ++k) p2m.set(k, {});
    present.fetch_sub(span, std::memory_order_relaxed);
    freed.set(node);
  }
}

// Holds the owner's earlier claims aside for one call and, on the way
// out, drops what is left of the call's own claims and brings them back.
class ClaimScope {
 public:
  ClaimScope(PageAllocator& pa, OwnerId owner) : pa_(pa), owner_(owner) {
    ok_ = pa_.set_claims_aside(owner_).has_value();
  }
  ~ClaimScope() {
    if (ok_) (void)pa_.restore_claims(owner_);
  }
  ClaimScope(const ClaimScope&) = delete;
  ClaimScope& operator=(const ClaimScope&) = delete;
  bool ok() const noexcept { return ok_; }
  // Drops the call's claims so far; the earlier ones stay aside.
  bool drop_own() {
    (void)pa_.restore_claims(owner_);
    ok_ = pa_.set_claims_aside(owner_).has_value();
    return ok_;
  }

 private:
  PageAllocator& pa_;
  OwnerId owner_;
  bool ok_ = false;
};

// Frees of 4 KiB pages may sit dirty in per-CPU caches: return them to the
// node's heap first so the scrub reaches them.
void scrub_freed(PageAllocator& pa, const NodeMask& freed) {
  for (NodeId node : freed) {
    pa.drain_node(node);
    (void)pa.scrub_some(node, ~std::uint64_t{0});
  }
}

}  // namespace

Result<PopulateReport, Error> GuestMemory::populate() {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  if (m.destroyed) return guest_error(spec_, Errc::invalid_argument, "destroyed"sv);
  if (m.populated) return guest_error(spec_, Errc::busy, "already populated"sv);
  PageAllocator& pa = *pa_;

  // The report's lists first (one entry per node at most, kNoNode
  // included): running out of memory fails here, before any change.
  const std::size_t nodes = pa.topology().node_count() + 1;
  PopulateReport rep;
  rep.per_node = Vector<NodeShare>(m.hooks);
  rep.striped = Vector<NodeShare>(m.hooks);
  Vector<NodeShare> need(m.hooks);  // pages per pnode
  if (!rep.per_node.reserve(nodes) || !rep.striped.reserve(nodes) || !need.reserve(nodes))
    return guest_error(spec_, Errc::no_memory, "cannot allocate the populate report"sv);

  // 1. Claims: per node, or one global claim when striping is allowed.
  for (const auto& r : layout_) (void)add_share(need, r.pnode, r.pages);  // within capacity
  // Claims the embedder made for this owner before stay out of the call's
  // way: set aside now, back unchanged when it returns (success or not).
  ClaimScope scope(pa, owner_);
  if (!scope.ok()) return guest_error(spec_, Errc::busy, "another call holds the owner's claims aside"sv);
  bool striping = false;
  for (const auto& n : need) {
    Status st = pa.claim(owner_, n.bytes, n.node);
    if (st) continue;
    if (!options_.allow_striping) {
      auto stats = pa.stats(n.node);
      const std::uint64_t have = stats ? stats->free + stats->cached : 0;
      const std::uint64_t avail = stats && have > stats->claimed ? have - stats->claimed : 0;
      return guest_error(spec_, st.error(), "needs "sv, mb_of({n.bytes}), " MB on node "sv, n.node, ", only "sv,
                         mb_of({avail}), " MB unclaimed there ("sv, guest_detail::errc_text(st.error()), ")"sv);
    }
    striping = true;
  }
  if (striping) {
    if (!scope.drop_own()) return guest_error(spec_, Errc::busy, "another call holds the owner's claims aside"sv);
    std::uint64_t total = 0;
    for (const auto& n : need) total += n.bytes;
    if (Status st = pa.claim(owner_, total, kNoNode); !st)
      return guest_error(spec_, st.error(), "needs "sv, mb_of({total}), " MB and the host has less unclaimed"sv);
  }

  // 2. Exact-node extents, largest first; striped order-0 pages if allowed.
  // `fail` undoes everything; the error was made by the caller.
  auto fail = [&](Error e) -> Result<PopulateReport, Error> {
    NodeMask freed;
    free_blocks(pa, m.p2m, m.present, m.lost, owner_, 0, ram_pages_, freed);
    if (options_.scrub_on_free) scrub_freed(pa, freed);
    return e;  // `scope` drops what is left of the call's claims
  };
  auto note_striped = [&rep](NodeId node, std::uint64_t pages) {
    (void)add_share(rep.striped, node, pages << kFrameShift);  // within capacity
  };
  constexpr std::uint32_t kExact = AllocFlags::exact_node | AllocFlags::use_claim;
  for (const auto& r : layout_) {
    Gfn gfn = r.first;
    const Gfn end = r.first + r.pages;
    while (gfn < end) {
      Result<Allocation> a = Errc::no_memory;
      unsigned order = 0;
      for (unsigned o : {kOrder1G, kOrder2M}) {
        const std::uint64_t span = frames_of_order(o);
        if (gfn % span || end - gfn < span) continue;
        a = pa.alloc(AllocRequest{o, r.pnode, kExact, owner_, {}});
        order = o;
        if (a) break;
      }
      if (!a) {
        // 4 KiB extents up to the next 2 MiB boundary (where a 2 MiB
        // extent is tried again), in one bulk allocation.
        constexpr std::uint64_t k2M = frames_of_order(kOrder2M);
        const std::uint64_t run = std::min(end, (gfn / k2M + 1) * k2M) - gfn;
        std::array<Mfn, k2M> mfns;
        const std::span<Mfn> out(mfns.data(), run);
        Status st = pa.alloc_bulk(AllocRequest{0, r.pnode, kExact, owner_, {}}, out);
        if (!st && striping) st = pa.alloc_bulk(AllocRequest{0, r.pnode, AllocFlags::use_claim, owner_, {}}, out);
        if (!st)
          return fail(guest_error(spec_, st.error(), "populating vnode "sv, r.vnode, " on node "sv, r.pnode,
                                  " failed after "sv, mb_of({gfn - r.first}), " MB of "sv, mb_of({r.pages}),
                                  " MB ("sv, guest_detail::errc_text(st.error()), ")"sv));
        if (std::any_of(out.begin(), out.end(), [](Mfn f) { return f > P2m::kMaxMfn; })) {
          if (!pa.free_bulk(out, owner_)) m.lost.fetch_add(run, std::memory_order_relaxed);
          return fail(guest_error(spec_, Errc::invalid_frame, "frame number beyond the p2m's range"sv));
        }
        for (std::uint64_t k = 0; k < run; ++k) {
          m.p2m.set(gfn + k, P2mEntry{out[k], P2mFlags::present, 0});
          if (striping)
            if (const NodeId n = pa.node_of(out[k]); n != r.pnode) note_striped(n, 1);
        }
        m.present.fetch_add(run, std::memory_order_relaxed);
        rep.extents_4k += run;
        gfn += run;
        continue;
      }
      if (a->mfn > P2m::kMaxMfn) {
        if (!pa.free(a->mfn, order, owner_)) m.lost.fetch_add(frames_of_order(order), std::memory_order_relaxed);
        return fail(guest_error(spec_, Errc::invalid_frame, "frame number beyond the p2m's range"sv));
      }
      const std::uint64_t span = frames_of_order(order);
      for (std::uint64_t k = 0; k < span; ++k)
        m.p2m.set(gfn + k, P2mEntry{a->mfn + k, P2mFlags::present, static_cast<std::uint8_t>(order)});
      m.present.fetch_add(span, std::memory_order_relaxed);
      if (order == kOrder1G) ++rep.extents_1g;
      else ++rep.extents_2m;
      if (a->node != r.pnode) note_striped(a->node, span);  // exact-node: cannot happen
      gfn += span;
    }
  }
  // Nothing of the call's claims should be left; `scope` drops it anyway.
  m.populated = true;
  rep.pages = ram_pages_;
  count_per_node(pa, m.p2m, rep.per_node);  // within the capacity reserved above
  for (NodeShare& s : rep.per_node) s.bytes <<= kFrameShift;
  return rep;
}

namespace {

// Splits the allocator block holding `gfn` (its entry `e`, order > 0) into
// 4 KiB blocks and rewrites its entries as order 0. Guest lock held.
// Excludes a mover: every entry of the block is first marked `migrating`
// by compare-and-swap, as the mover marks a block it moves, so whichever
// marks first owns the block and the other backs off (busy). Without this a
// mover could copy the block as one order-9 unit while its entries turn
// into order 0 (see FrameSwapMover). State unchanged on error.
Status split_block(PageAllocator& pa, P2m& p2m, OwnerId owner, Gfn gfn, P2mEntry e) {
  const std::uint64_t span = frames_of_order(e.order);
  const Gfn head = gfn & ~(span - 1);
  const Mfn head_mfn = e.mfn - (gfn - head);
  auto unmark = [&](Gfn end) {
    for (Gfn k = head; k < end; ++k)
      for (;;) {
        P2mEntry c = p2m.get(k);
        P2mEntry d = c;
        d.flags = static_cast<std::uint8_t>(c.flags & ~P2mFlags::migrating);
        if (p2m.cas(k, c, d)) break;
      }
  };
  for (Gfn k = head; k < head + span; ++k) {
    for (;;) {
      const P2mEntry c = p2m.get(k);
      if (!c.present() || c.mfn != head_mfn + (k - head) || c.order != e.order ||
          ((c.flags & P2mFlags::migrating) && !NUMAHEAP_FAULT(split_ignores_migrating))) {
        unmark(k);
        return Errc::busy;  // a mover owns (part of) it, or it is changing
      }
      P2mEntry d = c;
      d.flags = static_cast<std::uint8_t>(c.flags | P2mFlags::migrating);
      if (p2m.cas(k, c, d)) break;  // else only flags changed: retry
    }
  }
  if (Status st = pa.split(head_mfn, e.order, owner); !st) {
    unmark(head + span);
    return st;
  }
  for (Gfn k = head; k < head + span; ++k)
    for (;;) {  // ours (migrating): only other flag bits may change meanwhile
      const P2mEntry c = p2m.get(k);
      P2mEntry d = c;
      d.order = 0;
      d.flags = static_cast<std::uint8_t>(c.flags & ~P2mFlags::migrating);
      if (p2m.cas(k, c, d)) break;
    }
  return {};
}

}  // namespace

Status GuestMemory::split_to_pages(Gfn gfn) {
  SpinGuard guard(impl_->lock);
  P2mEntry e = impl_->p2m.get(gfn);
  if (!e.present()) return Errc::not_present;
  if (e.order == 0) return {};
  if ((e.flags & P2mFlags::migrating) && !NUMAHEAP_FAULT(split_ignores_migrating)) return Errc::busy;
  return split_block(*pa_, impl_->p2m, owner_, gfn, e);
}

Result<std::uint64_t, Error> GuestMemory::balloon_down(std::uint64_t pages) {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  if (m.destroyed || !m.populated) return guest_error(spec_, Errc::invalid_argument, "not populated"sv);
  // Victims: away from home first (pass 0), then from home (pass 1), each
  // from the top of RAM down. Two passes over the p2m instead of a victim
  // list: nothing to allocate.
  NodeMask freed;
  FrameBatch batch(*pa_, owner_, m.lost);
  std::uint64_t done = 0;
  constexpr std::uint8_t kUntouchable =
      P2mFlags::pinned | P2mFlags::shared | P2mFlags::migrating | P2mFlags::device;
  for (int pass = 0; pass < 2 && done < pages; ++pass) {
    const bool want_home = pass == 1;
    for (Gfn gfn = ram_pages_; gfn-- > 0 && done < pages;) {
      P2mEntry e = m.p2m.get(gfn);
      if (!e.present() || (e.flags & kUntouchable)) continue;
      if (home_.test(pa_->node_of(e.mfn)) != want_home) continue;
      if (e.order > 0) {
        // A mover may mark the block at any moment: split_block claims it
        // first and says busy if the mover got there before (skip the page).
        if (Status st = split_block(*pa_, m.p2m, owner_, gfn, e); !st) {
          if (st.error() == Errc::busy) continue;
          batch.flush();
          if (options_.scrub_on_free) scrub_freed(*pa_, freed);
          return guest_error(spec_, st.error(), "cannot split a large page to balloon it"sv);
        }
        e = m.p2m.get(gfn);
        // Re-checked: a mover may have marked the page meanwhile.
        if (!e.present() || (e.flags & kUntouchable)) continue;
      }
      // Take the entry by CAS, so a racing mover cannot swap it under us.
      if (!m.p2m.cas(gfn, e, P2mEntry{})) continue;
      freed.set(pa_->node_of(e.mfn));
      batch.add(e.mfn);
      m.present.fetch_sub(1, std::memory_order_relaxed);
      ++done;
    }
  }
  batch.flush();
  if (options_.scrub_on_free) scrub_freed(*pa_, freed);
  return done;
}

Result<std::uint64_t, Error> GuestMemory::balloon_up(std::uint64_t pages) {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  if (m.destroyed || !m.populated) return guest_error(spec_, Errc::invalid_argument, "not populated"sv);
  std::uint64_t holes = 0;
  for (Gfn gfn = 0; gfn < ram_pages_ && holes < pages; ++gfn) holes += !m.p2m.get(gfn).present();
  if (holes < pages)
    return guest_error(spec_, Errc::invalid_argument, "asked for "sv, pages, " pages back, only "sv, holes,
                       " are ballooned out"sv);
  // The work list (gfns to fill) and the claims per node.
  Vector<Gfn> targets(m.hooks);
  Vector<NodeShare> need(m.hooks);
  if (!targets.reserve(pages) || !need.reserve(layout_.size()))
    return guest_error(spec_, Errc::no_memory, "cannot allocate the balloon work list"sv);
  for (Gfn gfn = 0; gfn < ram_pages_ && targets.size() < pages; ++gfn)
    if (!m.p2m.get(gfn).present()) {
      (void)targets.push_back(gfn);                      // within capacity
      (void)add_share(need, home_node_of(gfn), 1);      // one node per range at most
    }
  ClaimScope scope(*pa_, owner_);  // the embedder's claims come back unchanged
  if (!scope.ok()) return guest_error(spec_, Errc::busy, "another call holds the owner's claims aside"sv);
  for (const auto& n : need)
    if (Status st = pa_->claim(owner_, n.bytes, n.node); !st) {
      return guest_error(spec_, st.error(), "cannot claim "sv, n.bytes, " pages on node "sv, n.node);
    }
  std::size_t done = 0;
  for (; done < targets.size(); ++done) {
    Gfn gfn = targets[done];
    auto a = pa_->alloc(AllocRequest{0, home_node_of(gfn), AllocFlags::exact_node | AllocFlags::use_claim,
                                     owner_, {}});
    if (!a) break;
    m.p2m.set(gfn, P2mEntry{a->mfn, P2mFlags::present, 0});
    m.present.fetch_add(1, std::memory_order_relaxed);
  }
  if (done < targets.size()) {  // cannot happen with claims held; undo anyway
    for (std::size_t i = 0; i < done; ++i) {
      P2mEntry e = m.p2m.get(targets[i]);
      if (!pa_->free(e.mfn, 0, owner_)) m.lost.fetch_add(1, std::memory_order_relaxed);
      m.p2m.set(targets[i], {});
      m.present.fetch_sub(1, std::memory_order_relaxed);
    }
    return guest_error(spec_, Errc::no_memory, "claimed memory could not be allocated"sv);
  }
  return static_cast<std::uint64_t>(done);
}

Result<DeviceBuffer, Error> GuestMemory::alloc_device_buffer(std::size_t device, std::uint64_t pages) {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  if (m.destroyed) return guest_error(spec_, Errc::invalid_argument, "destroyed"sv);
  if (device >= spec_.devices.size()) return guest_error(spec_, Errc::invalid_argument, "no device #"sv, device);
  if (pages == 0 || pages > frames_of_order(kMaxOrder))
    return guest_error(spec_, Errc::invalid_argument, "buffer size must be 1..262144 pages"sv);
  // Room for its record first: out of memory changes nothing.
  if (!m.buffers.reserve(m.buffers.size() + 1))
    return guest_error(spec_, Errc::no_memory, "cannot record another device buffer"sv);
  unsigned order = 0;
  while (frames_of_order(order) < pages) ++order;
  const std::uint64_t span = frames_of_order(order);
  // A free, aligned gfn run in the device region.
  Gfn gfn = device_base_;
  for (; gfn + span <= m.p2m.size(); gfn += span) {
    bool empty = true;
    for (Gfn k = gfn; k < gfn + span && empty; ++k) empty = !m.p2m.get(k).present();
    if (empty) break;
  }
  if (gfn + span > m.p2m.size())
    return guest_error(spec_, Errc::no_memory, "device region full"sv);
  const DeviceSpec& dev = spec_.devices[device];
  auto a = pa_->alloc(AllocRequest{order, dev.host_node, AllocFlags::exact_node, owner_, {}});
  if (!a)
    return guest_error(spec_, a.error(), "no "sv, mb_of({span}), " MB block free on node "sv, dev.host_node,
                       " for device '"sv, dev.name, "'"sv);
  for (std::uint64_t k = 0; k < span; ++k)
    m.p2m.set(gfn + k, P2mEntry{a->mfn + k,
                                static_cast<std::uint8_t>(P2mFlags::present | P2mFlags::pinned | P2mFlags::device),
                                static_cast<std::uint8_t>(order)});
  m.present.fetch_add(span, std::memory_order_relaxed);
  DeviceBuffer b{gfn, a->mfn, span, a->node};
  (void)m.buffers.push_back(b);  // within the capacity reserved above
  return b;
}

Status GuestMemory::free_device_buffer(Gfn gfn) {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  auto it = std::find_if(m.buffers.begin(), m.buffers.end(), [&](const DeviceBuffer& b) { return b.gfn == gfn; });
  if (it == m.buffers.end()) return Errc::invalid_argument;
  unsigned order = 0;
  while (frames_of_order(order) < it->pages) ++order;
  if (Status st = pa_->free(it->mfn, order, owner_); !st) return st;
  for (Gfn k = gfn; k < gfn + it->pages; ++k) m.p2m.set(k, {});
  m.present.fetch_sub(it->pages, std::memory_order_relaxed);
  if (options_.scrub_on_free) scrub_freed(*pa_, NodeMask::single(it->node));
  m.buffers.erase(it);
  return {};
}

BackendAffinity GuestMemory::backend_affinity() const {
  const Topology& topo = pa_->topology();
  BackendAffinity out;
  out.cpus = Vector<CpuId>(impl_->hooks);
  const Vector<NodeShare> per_node = pages_per_node();  // !ok(): empty, the planned home answers
  std::uint64_t best = 0;
  for (const auto& s : per_node)
    if (s.bytes > best) {
      best = s.bytes;
      out.node = s.node;
    }
  if (out.node == kNoNode) {  // not populated: the planned home
    std::uint64_t most = 0;
    {
      SpinGuard g(impl_->layout_lock);
      for (const auto& r : layout_)
        if (r.pages > most) {
          most = r.pages;
          out.node = r.pnode;
        }
    }
    out.reason.append("guest not populated: its planned home node "sv).append_uint(out.node);
  } else {
    out.reason.append("node "sv).append_uint(out.node).append(" holds "sv).append_uint(mb_of({best}));
    out.reason.append(" MB of the guest's memory"sv);
  }
  NodeId cpu_node = out.node;
  if (const NodeInfo* n = topo.find(out.node); !n || !n->has_cpus()) {
    std::uint32_t d = ~0u;
    for (const auto& o : topo.nodes())
      if (o.has_cpus() && topo.distance(out.node, o.id) < d) {
        d = topo.distance(out.node, o.id);
        cpu_node = o.id;
      }
    out.reason.append("; it has no CPUs, so backends run on nearest node "sv).append_uint(cpu_node);
  }
  if (const NodeInfo* n = topo.find(cpu_node); n && out.cpus.reserve(n->cpus.size()))  // else !ok()
    (void)out.cpus.assign(n->cpus.data(), n->cpus.size());
  return out;
}

Status GuestMemory::destroy() {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);
  if (m.destroyed) return {};
  // Shared (deduplicated) frames belong to the sharing manager, which holds
  // this guest in its reverse maps: it must let go first (remove_guest).
  for (Gfn gfn = 0; gfn < m.p2m.size(); ++gfn)
    if (m.p2m.get(gfn).flags & P2mFlags::shared) return Errc::busy;
  NodeMask freed;
  const std::uint64_t lost_before = m.lost.load(std::memory_order_relaxed);
  free_blocks(*pa_, m.p2m, m.present, m.lost, owner_, 0, m.p2m.size(), freed);
  if (options_.scrub_on_free) scrub_freed(*pa_, freed);
  (void)pa_->release_owner(owner_);  // fails only when there is no claim left: fine
  m.buffers.clear();
  m.destroyed = true;
  // Everything else is done; a block the allocator refused is not ours to
  // retry (the p2m and the frame table disagreed about it): say so.
  if (m.lost.load(std::memory_order_relaxed) != lost_before) return Errc::invalid_frame;
  return {};
}

void GuestMemory::note_lost_frames(std::uint64_t frames) noexcept {
  impl_->lost.fetch_add(frames, std::memory_order_relaxed);
}

std::uint64_t GuestMemory::lost_frames() const noexcept { return impl_->lost.load(std::memory_order_relaxed); }

Status GuestMemory::check_invariants() const {
  Impl& m = *impl_;
  SpinGuard guard(m.lock);  // no split or balloon meanwhile
  if (m.lost.load(std::memory_order_relaxed)) return Errc::invalid_frame;
  std::uint64_t count = 0;
  for (Gfn gfn = 0; gfn < m.p2m.size(); ++gfn) {
    P2mEntry e = m.p2m.get(gfn);
    if (!e.present()) continue;
    ++count;
    const std::uint64_t span = frames_of_order(e.order);
    const Gfn head = gfn & ~(span - 1);
    const Mfn head_mfn = e.mfn - (gfn - head);
    if (head_mfn % span) return Errc::invalid_frame;      // block misaligned
    if (pa_->node_of(e.mfn) == kNoNode) return Errc::invalid_frame;
    P2mEntry h = m.p2m.get(head);
    if (!h.present() || h.order != e.order || h.mfn != head_mfn) return Errc::invalid_frame;
    bool in_ram = gfn < ram_pages_;
    if (in_ram == static_cast<bool>(e.flags & P2mFlags::device)) return Errc::invalid_argument;
    // The frame table must agree: the head is an allocated block of this
    // order, the guest's own (a shared frame belongs to the sharing
    // manager). Entries a mover owns (migrating) are changing: skipped;
    // an entry that changed while we asked is rechecked next time.
    if (gfn != head || (e.flags & P2mFlags::migrating)) continue;
    auto b = pa_->allocated_block(head_mfn);
    const bool agrees = b && b->order == e.order && (b->owner == owner_ || (e.flags & P2mFlags::shared));
    if (!agrees && m.p2m.get(gfn) == e) return Errc::invalid_frame;
  }
  if (count != m.present.load()) return Errc::invalid_argument;
  return {};
}

Status GuestMemory::relayout(std::span<const GuestRange> layout) noexcept {
  const NodeMask memory = pa_->topology().memory_nodes();
  SpinGuard guard(impl_->lock);
  NodeMask home;
  Gfn next = 0;
  std::size_t count = 0;
  for (GuestRange r : layout) {
    if (r.first >= ram_pages_ && r.first == next) break;  // the rest lies above RAM
    if (r.first != next || r.pages == 0) return Errc::invalid_argument;
    r.pages = std::min(r.pages, ram_pages_ - next);
    if (++count > layout_.capacity()) return Errc::invalid_argument;
    if (!memory.test(r.pnode)) return Errc::invalid_node;
    for (const GuestRange& o : layout_)  // the vnode of every gfn stays
      if (o.first < r.first + r.pages && r.first < o.first + o.pages && o.vnode != r.vnode)
        return Errc::invalid_argument;
    home.set(r.pnode);
    next += r.pages;
  }
  if (next != ram_pages_) return Errc::invalid_argument;
  SpinGuard g(impl_->layout_lock);
  (void)layout_.assign(layout.data(), count);  // within capacity: cannot fail
  layout_.back().pages = ram_pages_ - layout_.back().first;  // clipped to RAM
  home_ = home;
  {  // followers (cold-store pools) see the new home with a new generation
    GuestHome& rec = *home_record_.home_;
    SpinGuard r(rec.lock);
    rec.nodes = home;
    rec.generation.fetch_add(1, std::memory_order_release);
  }
  return {};
}

Status GuestMemory::check_frames() const {
  if (Status st = check_invariants(); !st) return st;
  std::uint64_t mine = 0;  // frames the p2m maps that the guest owns (not shared ones)
  for (Gfn gfn = 0; gfn < impl_->p2m.size(); ++gfn) {
    const P2mEntry e = impl_->p2m.get(gfn);
    if (e.present() && !(e.flags & P2mFlags::shared)) ++mine;
  }
  return pa_->frames_owned_by(owner_) == mine ? Status{} : Status{Errc::invalid_frame};
}

}  // namespace numaheap
