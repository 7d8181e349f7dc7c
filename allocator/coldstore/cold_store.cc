// ColdStore: pools, put/get/flush, node choice outside the guest's home,
// reclaim of ephemeral pages. See include/numaheap/cold_store.h.
#include "numaheap/cold_store.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string_view>

#include "allocator/coldstore/cold_table.h"
#include "allocator/guest/spec_text.h"
#include "allocator/platform/spin_lock.h"

namespace numaheap {

using namespace cold_detail;
using namespace std::string_view_literals;

namespace {

// PoolId = generation << kSlotBits | slot, so a destroyed pool's id never
// names its slot's next pool.
constexpr unsigned kSlotBits = 12;
constexpr std::uint32_t kMaxPools = 1u << kSlotBits;

template <class... Parts>
Error cold_error(Errc code, const Parts&... parts) {
  return make_error(code, "cold store: "sv, parts...);
}

// A pool's allowed memory nodes, nearest to its home first: immutable once
// built, reference counted (intrusively, metadata memory) so that a put can
// use it outside the lock while set_pool_home replaces it.
struct NodeOrder {
  explicit NodeOrder(const MetadataHooks* hooks) noexcept : nodes(hooks) {}
  std::atomic<std::uint32_t> refs{1};
  Vector<NodeId> nodes;
};

class OrderRef {
 public:
  OrderRef() noexcept = default;
  explicit OrderRef(NodeOrder* adopt) noexcept : p_(adopt) {}
  OrderRef(const OrderRef& o) noexcept : p_(o.p_) {
    if (p_) p_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  OrderRef(OrderRef&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  OrderRef& operator=(OrderRef o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~OrderRef() { reset(); }
  void reset() noexcept {
    if (p_ && p_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) metadata_destroy(p_);
    p_ = nullptr;
  }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  const Vector<NodeId>& operator*() const noexcept { return p_->nodes; }
  const Vector<NodeId>* operator->() const noexcept { return &p_->nodes; }

 private:
  NodeOrder* p_ = nullptr;
};

}  // namespace

struct ColdStore::Impl {
  NUMAHEAP_METADATA_NEW_DELETE
  Impl(PageAllocator& p, const ColdStoreConfig& c, const MetadataHooks* h) noexcept
      : pa(p), topo(p.topology()), config(c), hooks(h) {}

  struct Pool {
    bool used = false;
    std::uint32_t generation = 0;
    PoolKind kind = PoolKind::ephemeral;
    NodeMask home;
    // Allowed memory nodes, nearest to the home first. Immutable while the
    // pool lives; shared so a put can use it outside the lock.
    OrderRef order;
    List entries;  // live and dropped entries of this pool
    // Persistent pages the last set_pool_home could not move off the home
    // (no room elsewhere); at most this many live pages sit on `home`.
    std::uint64_t stuck = 0;
    GuestName name;
    // Pools made from a GuestMemory follow its home record: the first put
    // after the guest's home changed (generation != followed) runs
    // set_pool_home with the new home. The record outlives the guest.
    GuestHomeRef follows;
    std::uint64_t followed = 0;
  };

  PageAllocator& pa;
  const Topology& topo;
  const ColdStoreConfig config;
  const MetadataHooks* hooks;  // the store's metadata memory
  ColdStore* self = nullptr;   // for reclaim from allocate()

  // `lock` guards everything below. Lock order: this lock, then the
  // allocator's (frees happen under it; allocations never do).
  mutable SpinLock lock;
  Table table;
  MetadataArray<Pool> pools;               // max_pools slots
  MetadataArray<List> age;                 // dense node index -> live ephemeral, oldest first
  List markers;                            // dropped entries, oldest first
  MetadataArray<std::uint64_t> node_eph, node_pers;  // dense node index
  std::uint64_t clock = 0;
  // Frames the allocator refused to free (a bug: check() fails). Atomic:
  // free_frame may run without the lock.
  std::atomic<std::uint64_t> lost_frames{0};
  // Pages a put may take from a node before reading its stats again
  // (dense node index). Atomic: used without the lock by allocate().
  MetadataArray<std::atomic<std::int64_t>> room;
  std::uint64_t puts = 0, put_failures = 0, gets = 0, hits = 0, misses = 0, dropped_gets = 0,
                flushes = 0, reclaimed = 0;

  unsigned char* addr(Mfn mfn) const noexcept { return config.access.resolve(pa, mfn); }

  Pool* pool_of(PoolId id) noexcept {
    const std::uint32_t slot = id & (kMaxPools - 1);
    if (slot >= pools.size()) return nullptr;
    Pool& p = pools[slot];
    return p.used && p.generation == (id >> kSlotBits) ? &p : nullptr;
  }
  const Pool* pool_of(PoolId id) const noexcept { return const_cast<Impl*>(this)->pool_of(id); }

  // Free, unclaimed pages above max(watermark_pages, fraction * managed).
  // PageAllocator::stats() is costly (it visits every CPU's cache), so a
  // reading grants up to config.room_recheck pages before the next one;
  // between readings the node may sink that many pages below its mark.
  std::int64_t read_room(NodeId n) const noexcept {
    auto s = pa.stats(n);
    if (!s) return 0;
    const auto frac = static_cast<std::uint64_t>(config.watermark_fraction * static_cast<double>(s->managed));
    const std::uint64_t avail = s->free + s->cached;
    const std::uint64_t usable = avail > s->claimed ? avail - s->claimed : 0;
    const std::uint64_t mark = std::max(config.watermark_pages, frac);
    return usable > mark ? static_cast<std::int64_t>(std::min<std::uint64_t>(usable - mark, config.room_recheck)) : 0;
  }
  bool take_room(NodeId n) noexcept {
    const int ni = topo.index_of(n);
    if (ni < 0) return false;
    std::atomic<std::int64_t>& budget = room[static_cast<std::size_t>(ni)];
    if (budget.fetch_sub(1, std::memory_order_relaxed) > 0) return true;
    const std::int64_t r = read_room(n);
    budget.store(r - 1, std::memory_order_relaxed);
    return r > 0;
  }

  void free_frame(Mfn mfn) noexcept {
    if (config.scrub_on_free) {
      if (unsigned char* p = addr(mfn)) std::memset(p, 0, kFrameSize);
      else pa.platform().zero_frames(mfn, 1);
    }
    // Dirty in the allocator: scrubbed before any other owner gets it.
    if (!pa.free(mfn, 0, config.owner)) lost_frames.fetch_add(1, std::memory_order_relaxed);
  }

  // Takes a live entry's page away (its frame is freed by the caller).
  void unlink_live(std::uint32_t i) noexcept {
    Entry& e = table.at(i);
    if (e.ephemeral) {
      AgeLinks::remove(age[e.node_idx], table.slab(), i);
      --node_eph[e.node_idx];
    } else {
      --node_pers[e.node_idx];
    }
  }
  // Removes entry i (live or dropped) completely.
  void remove_entry(Pool& p, std::uint32_t i) noexcept {
    Entry& e = table.at(i);
    if (e.state == EntryState::live) {
      unlink_live(i);
      free_frame(e.mfn);
    } else {
      AgeLinks::remove(markers, table.slab(), i);
    }
    PoolLinks::remove(p.entries, table.slab(), i);
    table.give_back(i);
  }

  Result<Allocation> allocate(PoolKind kind, const NodeMask& home, const Vector<NodeId>& order) noexcept;
  OrderRef node_order(const NodeMask& home) const noexcept;
  Status check() const;
  Result<std::uint64_t> set_home(PoolId pool, NodeMask home, const std::uint64_t* generation);
};

ColdStore::ColdStore(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) { impl_->self = this; }

ColdStore::~ColdStore() {
  if (!impl_) return;
  Impl& m = *impl_;
  SpinGuard g(m.lock);
  for (Impl::Pool& p : m.pools) {
    if (!p.used) continue;
    while (p.entries.head != kNil) m.remove_entry(p, p.entries.head);
    p.used = false;
  }
}

Result<std::unique_ptr<ColdStore>, Error> ColdStore::create(PageAllocator& pa, const ColdStoreConfig& config) {
  if (config.owner > kMaxOwner) return cold_error(Errc::invalid_argument, "owner id is reserved");
  if (config.max_pools == 0 || config.max_pools > kMaxPools)
    return cold_error(Errc::invalid_argument, "max_pools must be 1.."sv, kMaxPools);
  if (config.room_recheck == 0) return cold_error(Errc::invalid_argument, "room_recheck must be at least 1"sv);
  if (config.max_entries == 0 || config.max_entries > (1ull << 30))
    return cold_error(Errc::invalid_argument, "max_entries must be 1..2^30"sv);
  if (!Table::valid_size(config.max_entries)) return cold_error(Errc::invalid_argument, "bad max_entries"sv);
  if (!(config.watermark_fraction >= 0.0 && config.watermark_fraction <= 1.0))
    return cold_error(Errc::invalid_argument, "watermark_fraction must be 0..1"sv);
  if (!config.access.usable(pa))
    return cold_error(Errc::unsupported, "frame_only mode needs a FrameAccess hook to copy pages"sv);
  const MetadataHooks* hooks = config.metadata ? config.metadata : default_metadata();
  std::unique_ptr<Impl> impl(new (hooks) Impl(pa, config, hooks));
  const std::size_t n = pa.topology().node_count();
  // Every table up front; a failure frees what was taken (impl's members).
  if (!impl || !impl->table.init(hooks, config.max_entries) || !impl->pools.allocate(hooks, config.max_pools) ||
      !impl->age.allocate(hooks, n) || !impl->node_eph.allocate(hooks, n) || !impl->node_pers.allocate(hooks, n) ||
      !impl->room.allocate(hooks, n))
    return cold_error(Errc::no_memory, "cannot allocate the store's tables"sv);
  std::unique_ptr<ColdStore> store(new (hooks) ColdStore(std::move(impl)));
  if (!store) return cold_error(Errc::no_memory, "cannot allocate the store"sv);
  return store;
}

Result<PoolId, Error> ColdStore::create_pool(const GuestMemory& guest, PoolKind kind) {
  if (!guest.spec().cold_store)
    return cold_error(Errc::invalid_argument, "guest '"sv, guest.spec().name,
                      "' has not opted in (spec.cold_store is off)"sv);
  if (guest.owner() == impl_->config.owner)
    return cold_error(Errc::invalid_argument, "guest '"sv, guest.spec().name, "' uses the cold store's owner id"sv);
  GuestHomeRef record = guest.home_record();
  std::uint64_t generation = 0;
  const NodeMask home = record.nodes(&generation);
  auto id = create_pool(home, kind, guest.spec().name.view());
  if (!id) return id;
  SpinGuard g(impl_->lock);
  if (Impl::Pool* p = impl_->pool_of(*id)) {  // ours until the id is handed out
    p->follows = std::move(record);
    p->followed = generation;
  }
  return id;
}

// Memory nodes outside `home`, nearest to any home node first (ties: sum
// of distances, then id), as a demotion target list. Empty reference: out
// of memory; empty list: no node outside the home.
OrderRef ColdStore::Impl::node_order(const NodeMask& home) const noexcept {
  struct Rank { std::uint32_t nearest, total; NodeId id; };
  Vector<Rank> ranks(hooks);
  if (!ranks.reserve(topo.node_count())) return OrderRef();
  for (NodeId n : topo.memory_nodes()) {
    if (home.test(n)) continue;
    Rank r{home.empty() ? 0u : ~0u, 0, n};
    for (NodeId h : home) {
      if (!topo.has_node(h)) continue;
      r.nearest = std::min(r.nearest, topo.distance(h, n));
      r.total += topo.distance(h, n);
    }
    (void)ranks.push_back(r);  // within capacity
  }
  std::sort(ranks.begin(), ranks.end(), [](const Rank& a, const Rank& b) {
    if (a.nearest != b.nearest) return a.nearest < b.nearest;
    if (a.total != b.total) return a.total < b.total;
    return a.id < b.id;
  });
  NodeOrder* order = metadata_create<NodeOrder>(hooks, hooks);
  if (!order) return OrderRef();
  OrderRef ref(order);
  if (!order->nodes.reserve(ranks.size())) return OrderRef();
  for (const Rank& r : ranks) (void)order->nodes.push_back(r.id);  // within capacity
  return ref;
}

Result<PoolId, Error> ColdStore::create_pool(NodeMask home, PoolKind kind, std::string_view name) {
  Impl& m = *impl_;
  if (kind != PoolKind::ephemeral && kind != PoolKind::persistent)
    return cold_error(Errc::invalid_argument, "unknown pool kind"sv);
  OrderRef order = m.node_order(home);
  if (!order) return cold_error(Errc::no_memory, "pool '"sv, name, "': cannot allocate its node order"sv);
  if (order->empty())
    return cold_error(Errc::invalid_argument, "pool '"sv, name, "': no memory node outside its home nodes "sv,
                      guest_detail::mask_text(home));
  SpinGuard g(m.lock);
  for (std::uint32_t slot = 0; slot < m.pools.size(); ++slot) {
    Impl::Pool& p = m.pools[slot];
    if (p.used) continue;
    p.used = true;
    p.generation = (p.generation + 1) & ((1u << (32 - kSlotBits)) - 1);
    p.kind = kind;
    p.home = home;
    p.order = std::move(order);
    p.entries = List{};
    p.name = GuestName(name);
    p.stuck = 0;
    p.follows.reset();
    p.followed = 0;
    return (p.generation << kSlotBits) | slot;
  }
  return cold_error(Errc::busy, "pool table full ("sv, m.pools.size(), " pools)"sv);
}

Result<std::uint64_t> ColdStore::set_pool_home(PoolId pool, NodeMask home) {
  return impl_->set_home(pool, home, nullptr);
}

// set_pool_home; `generation` (a put following the guest's home record)
// is recorded as followed together with the new home.
Result<std::uint64_t> ColdStore::Impl::set_home(PoolId pool, NodeMask home, const std::uint64_t* generation) {
  Impl& m = *this;
  OrderRef order = m.node_order(home);
  if (!order) return Errc::no_memory;
  if (order->empty()) return Errc::invalid_argument;
  struct Move { std::uint32_t i; Mfn old_mfn; Result<Allocation> to; };
  Vector<Move> moves(m.hooks);
  PoolKind kind = PoolKind::ephemeral;
  OrderRef old_order;  // released after the lock
  for (;;) {
    std::uint64_t need = 0;
    {
      SpinGuard g(m.lock);
      Impl::Pool* p = m.pool_of(pool);
      if (!p) return Errc::invalid_argument;
      need = p->entries.size;
      if (moves.capacity() >= need) {  // the work list fits
        old_order = std::move(p->order);
        p->home = home;  // puts from now on avoid it
        p->order = order;
        p->stuck = 0;
        if (generation) p->followed = *generation;
        kind = p->kind;
        for (std::uint32_t i = p->entries.head; i != kNil; i = m.table.at(i).pool_next) {
          const Entry& e = m.table.at(i);
          if (e.state == EntryState::live && home.test(m.topo.node_at(e.node_idx).id))
            (void)moves.push_back(Move{i, e.mfn, Errc::no_memory});  // within capacity
        }
        break;
      }
    }
    // The work list is allocated outside the lock (the hooks are not called
    // with it held), then the pool is looked at again.
    if (!moves.reserve(need)) return Errc::no_memory;
  }
  for (Move& mv : moves) mv.to = m.allocate(kind, home, *order);  // without the lock (reclaim hook)
  SpinGuard g(m.lock);
  Impl::Pool* p = m.pool_of(pool);
  std::uint64_t stuck = 0;
  for (Move& mv : moves) {
    Entry& e = m.table.at(mv.i);
    const bool same = p && p->home == home && e.state == EntryState::live && e.pool == pool && e.mfn == mv.old_mfn;
    if (!same) {  // flushed, reclaimed or moved meanwhile
      if (mv.to) m.free_frame(mv.to->mfn);
      continue;
    }
    if (!mv.to) {
      if (e.ephemeral) {  // a cache page with nowhere to go: dropped, as reclaim would
        m.unlink_live(mv.i);
        m.free_frame(e.mfn);
        e.state = EntryState::dropped;
        e.mfn = kInvalidMfn;
        AgeLinks::push_back(m.markers, m.table.slab(), mv.i);
        ++m.reclaimed;
      } else {
        ++stuck;  // persistent pages are never dropped: it stays until flushed
      }
      continue;
    }
    std::memcpy(m.addr(mv.to->mfn), m.addr(e.mfn), kFrameSize);
    m.unlink_live(mv.i);
    m.free_frame(e.mfn);
    e.mfn = mv.to->mfn;
    e.node_idx = static_cast<std::uint32_t>(m.topo.index_of(mv.to->node));
    if (e.ephemeral) {  // keeps its age: re-inserted in seq order
      List& l = m.age[e.node_idx];
      std::uint32_t at = l.tail;
      while (at != kNil && m.table.at(at).seq > e.seq) at = m.table.at(at).age_prev;
      if (at == l.tail) {
        AgeLinks::push_back(l, m.table.slab(), mv.i);
      } else {  // insert after `at` (or at the head)
        const std::uint32_t next = at == kNil ? l.head : m.table.at(at).age_next;
        e.age_prev = at;
        e.age_next = next;
        if (at != kNil) m.table.at(at).age_next = mv.i;
        else l.head = mv.i;
        m.table.at(next).age_prev = mv.i;
        ++l.size;
      }
      ++m.node_eph[e.node_idx];
    } else {
      ++m.node_pers[e.node_idx];
    }
  }
  if (p && p->home == home) p->stuck = stuck;
  return stuck;
}

Status ColdStore::destroy_pool(PoolId pool) noexcept {
  Impl& m = *impl_;
  OrderRef order;       // the references are dropped after the lock
  GuestHomeRef follows;
  SpinGuard g(m.lock);
  Impl::Pool* p = m.pool_of(pool);
  if (!p) return Errc::invalid_argument;
  while (p->entries.head != kNil) m.remove_entry(*p, p->entries.head);
  p->used = false;
  order = std::move(p->order);
  follows = std::move(p->follows);
  return {};
}

// Where a new page goes. Runs without the lock (the allocator may call
// reclaim_hook from inside alloc). no_scrub: put() overwrites the whole
// frame before anyone can read it, and the allocator still scrubs any
// frame that holds another owner's bytes.
Result<Allocation> ColdStore::Impl::allocate(PoolKind kind, const NodeMask& home,
                                             const Vector<NodeId>& order) noexcept {
  // 1. Nearest node with room above its watermark, exactly.
  // "Only n" is said as exclude = every other node rather than exact_node,
  // which would drain every CPU's cache of n on each call.
  for (NodeId n : order) {
    if (!take_room(n)) continue;
    if (auto a = pa.alloc(AllocRequest{0, n, AllocFlags::no_scrub, config.owner, ~NodeMask::single(n)})) return a;
  }
  if (kind == PoolKind::ephemeral) return Errc::no_memory;  // a cache never squeezes a node
  // 2. Persistent: below the watermarks, nearest first (allocator fallback).
  if (auto a = pa.alloc(AllocRequest{0, order.front(), AllocFlags::no_scrub, config.owner, home})) return a;
  // 3. Persistent: make room by dropping ephemeral pages, nearest first.
  for (NodeId n : order) {
    if (self->reclaim(n, 1) == 0) continue;
    if (auto a = pa.alloc(AllocRequest{0, n, AllocFlags::exact_node | AllocFlags::no_scrub, config.owner, home})) return a;
  }
  return Errc::no_memory;
}

Result<NodeId> ColdStore::put(PoolId pool, ObjectId object, std::uint32_t index, const void* page) noexcept {
  Impl& m = *impl_;
  if (!page) return Errc::invalid_argument;
  PoolKind kind;
  NodeMask home;
  OrderRef order;
  // The pool's guest was rehomed since the pool last looked: follow it
  // first (set_pool_home, outside the lock; it allocates its work list).
  // At most twice: a guest rehomed again meanwhile is followed next put.
  for (int follow = 0;; ++follow) {
    GuestHomeRef record;
    {
      SpinGuard g(m.lock);
      Impl::Pool* p = m.pool_of(pool);
      if (!p) return Errc::invalid_argument;
      if (follow < 2 && p->follows && p->follows.generation() != p->followed) record = p->follows;
    }
    if (!record) break;
    std::uint64_t generation = 0;
    const NodeMask now = record.nodes(&generation);
    if (auto r = m.set_home(pool, now, &generation); !r) {
      SpinGuard g(m.lock);
      ++m.put_failures;
      // invalid_argument: destroyed meanwhile, or no node outside the new
      // home is left for this pool (nothing it may use: no_memory).
      // no_memory: its node order or work list could not be allocated.
      return m.pool_of(pool) ? Errc::no_memory : Errc::invalid_argument;
    }
  }
  {
    SpinGuard g(m.lock);
    Impl::Pool* p = m.pool_of(pool);
    if (!p) return Errc::invalid_argument;
    const std::uint32_t i = m.table.find(pool, object, index);
    if (i != kNil && m.table.at(i).state == EntryState::live) {
      // Overwrite in place: cannot fail, loses nothing.
      Entry& e = m.table.at(i);
      std::memcpy(m.addr(e.mfn), page, kFrameSize);
      e.seq = ++m.clock;
      if (e.ephemeral) {  // youngest again
        AgeLinks::remove(m.age[e.node_idx], m.table.slab(), i);
        AgeLinks::push_back(m.age[e.node_idx], m.table.slab(), i);
      }
      ++m.puts;
      return m.topo.node_at(e.node_idx).id;
    }
    kind = p->kind;
    home = p->home;
    order = p->order;
  }
  auto a = m.allocate(kind, home, *order);
  SpinGuard g(m.lock);
  if (!a) {
    ++m.put_failures;
    return a.error();
  }
  unsigned char* dst = m.addr(a->mfn);
  Impl::Pool* p = m.pool_of(pool);
  if (!p || !dst) {  // destroyed meanwhile
    m.free_frame(a->mfn);
    ++m.put_failures;
    return Errc::invalid_argument;
  }
  if (p->home.test(a->node)) {  // set_pool_home made that node the home meanwhile
    m.free_frame(a->mfn);
    ++m.put_failures;
    return Errc::busy;
  }
  std::memcpy(dst, page, kFrameSize);
  std::uint32_t i = m.table.find(pool, object, index);
  if (i != kNil && m.table.at(i).state == EntryState::live) {  // a racing put stored first
    Entry& e = m.table.at(i);
    std::memcpy(m.addr(e.mfn), page, kFrameSize);
    e.seq = ++m.clock;
    if (e.ephemeral) {
      AgeLinks::remove(m.age[e.node_idx], m.table.slab(), i);
      AgeLinks::push_back(m.age[e.node_idx], m.table.slab(), i);
    }
    m.free_frame(a->mfn);
    ++m.puts;
    return m.topo.node_at(e.node_idx).id;
  }
  if (i != kNil) {  // a dropped marker: reuse its slot
    AgeLinks::remove(m.markers, m.table.slab(), i);
  } else {
    if (m.table.free_count() == 0 && m.markers.head != kNil) {  // recycle the oldest marker
      const std::uint32_t old = m.markers.head;
      Impl::Pool* op = m.pool_of(m.table.at(old).pool);
      AgeLinks::remove(m.markers, m.table.slab(), old);
      if (op) PoolLinks::remove(op->entries, m.table.slab(), old);
      m.table.give_back(old);
    }
    i = m.table.take(pool, object, index);
    if (i == kNil) {
      m.free_frame(a->mfn);
      ++m.put_failures;
      return Errc::no_memory;  // entry table full of stored pages
    }
    PoolLinks::push_back(p->entries, m.table.slab(), i);
  }
  Entry& e = m.table.at(i);
  e.state = EntryState::live;
  e.mfn = a->mfn;
  e.node_idx = static_cast<std::uint32_t>(m.topo.index_of(a->node));
  e.ephemeral = kind == PoolKind::ephemeral;
  e.seq = ++m.clock;
  if (e.ephemeral) {
    AgeLinks::push_back(m.age[e.node_idx], m.table.slab(), i);
    ++m.node_eph[e.node_idx];
  } else {
    ++m.node_pers[e.node_idx];
  }
  ++m.puts;
  return a->node;
}

Result<ColdGet> ColdStore::get(PoolId pool, ObjectId object, std::uint32_t index, void* out) noexcept {
  Impl& m = *impl_;
  if (!out) return Errc::invalid_argument;
  SpinGuard g(m.lock);
  if (!m.pool_of(pool)) return Errc::invalid_argument;
  ++m.gets;
  const std::uint32_t i = m.table.find(pool, object, index);
  if (i == kNil) {
    ++m.misses;
    return ColdGet::miss;
  }
  const Entry& e = m.table.at(i);
  if (e.state == EntryState::dropped) {
    ++m.dropped_gets;
    return ColdGet::dropped;
  }
  std::memcpy(out, m.addr(e.mfn), kFrameSize);
  ++m.hits;
  return ColdGet::hit;
}

Status ColdStore::flush(PoolId pool, ObjectId object, std::uint32_t index) noexcept {
  Impl& m = *impl_;
  SpinGuard g(m.lock);
  Impl::Pool* p = m.pool_of(pool);
  if (!p) return Errc::invalid_argument;
  const std::uint32_t i = m.table.find(pool, object, index);
  if (i != kNil) {
    m.remove_entry(*p, i);
    ++m.flushes;
  }
  return {};
}

Result<std::uint64_t> ColdStore::flush_object(PoolId pool, ObjectId object) noexcept {
  Impl& m = *impl_;
  SpinGuard g(m.lock);
  Impl::Pool* p = m.pool_of(pool);
  if (!p) return Errc::invalid_argument;
  std::uint64_t n = 0;
  for (std::uint32_t i = p->entries.head; i != kNil;) {
    const std::uint32_t next = m.table.at(i).pool_next;
    if (m.table.at(i).object == object) {
      m.remove_entry(*p, i);
      ++n;
    }
    i = next;
  }
  m.flushes += n;
  return n;
}

std::uint64_t ColdStore::reclaim(NodeId node, std::uint64_t pages) noexcept {
  Impl& m = *impl_;
  const int ni = m.topo.index_of(node);
  if (ni < 0) return 0;
  SpinGuard g(m.lock);
  List& l = m.age[static_cast<std::size_t>(ni)];
  std::uint64_t done = 0;
  while (done < pages && l.head != kNil) {
    const std::uint32_t i = l.head;
    Entry& e = m.table.at(i);
    m.unlink_live(i);
    m.free_frame(e.mfn);
    e.state = EntryState::dropped;
    e.mfn = kInvalidMfn;
    AgeLinks::push_back(m.markers, m.table.slab(), i);
    ++done;
  }
  m.reclaimed += done;
  return done;
}

std::uint64_t ColdStore::reclaim_hook(void* ctx, NodeId node, std::uint64_t pages) noexcept {
  return static_cast<ColdStore*>(ctx)->reclaim(node, pages);
}

NodeId ColdStore::node_of(PoolId pool, ObjectId object, std::uint32_t index) const noexcept {
  const Impl& m = *impl_;
  SpinGuard g(m.lock);
  if (!m.pool_of(pool)) return kNoNode;
  const std::uint32_t i = m.table.find(pool, object, index);
  if (i == kNil || m.table.at(i).state != EntryState::live) return kNoNode;
  return m.topo.node_at(m.table.at(i).node_idx).id;
}

Vector<NodeId> ColdStore::pool_node_order(PoolId pool) const {
  const Impl& m = *impl_;
  Vector<NodeId> out(m.hooks);
  OrderRef order;
  {
    SpinGuard g(m.lock);
    if (const Impl::Pool* p = m.pool_of(pool)) order = p->order;
  }
  // reserve() first: it leaves the vector !ok() when out of memory (a
  // failed assign() alone does not say so).
  if (order && out.reserve(order->size())) (void)out.assign(order->data(), order->size());
  return out;
}

ColdStoreStats ColdStore::stats() const {
  const Impl& m = *impl_;
  ColdStoreStats s;
  s.per_node = Vector<ColdNodeStats>(m.hooks);
  const bool room = s.per_node.reserve(m.topo.node_count());  // else per_node stays empty, !ok()
  SpinGuard g(m.lock);
  for (const auto& p : m.pools) s.pools += p.used;
  s.dropped_markers = m.markers.size;
  s.puts = m.puts;
  s.put_failures = m.put_failures;
  s.gets = m.gets;
  s.hits = m.hits;
  s.misses = m.misses;
  s.dropped_gets = m.dropped_gets;
  s.flushes = m.flushes;
  s.reclaimed = m.reclaimed;
  for (std::size_t i = 0; i < m.topo.node_count(); ++i) {
    if (room) (void)s.per_node.push_back(ColdNodeStats{m.topo.node_at(i).id, m.node_eph[i], m.node_pers[i]});
    s.pages += m.node_eph[i] + m.node_pers[i];
  }
  return s;
}

Status ColdStore::Impl::check() const {
  if (lost_frames.load(std::memory_order_relaxed)) return Errc::invalid_frame;
  const std::size_t n = topo.node_count();
  MetadataArray<std::uint64_t> eph, pers;  // recounts (allocated with the lock held: a debug check)
  if (!eph.allocate(hooks, n) || !pers.allocate(hooks, n)) return Errc::no_memory;
  std::uint64_t live = 0, dropped = 0, in_pools = 0;
  for (std::uint32_t slot = 0; slot < pools.size(); ++slot) {
    const Pool& p = pools[slot];
    if (!p.used) continue;
    const PoolId id = (p.generation << kSlotBits) | slot;
    std::uint64_t count = 0, on_home = 0;
    for (std::uint32_t i = p.entries.head; i != kNil; i = table.at(i).pool_next) {
      const Entry& e = table.at(i);
      if (++count > table.capacity() || e.pool != id || e.state == EntryState::free) return Errc::invalid_argument;
      if (table.find(e.pool, e.object, e.index) != i) return Errc::invalid_argument;
      if (e.state == EntryState::live) {
        ++live;
        const NodeId node = topo.node_at(e.node_idx).id;
        if (pa.node_of(e.mfn) != node) return Errc::invalid_node;
        if (p.home.test(node) && (e.ephemeral || ++on_home > p.stuck)) return Errc::invalid_node;
        if (e.ephemeral != (p.kind == PoolKind::ephemeral)) return Errc::invalid_argument;
        ++(e.ephemeral ? eph : pers)[e.node_idx];
      } else {
        ++dropped;
        if (e.mfn != kInvalidMfn) return Errc::invalid_argument;
      }
    }
    if (count != p.entries.size) return Errc::invalid_argument;
    in_pools += count;
  }
  for (std::size_t k = 0; k < n; ++k)
    if (eph[k] != node_eph[k] || pers[k] != node_pers[k]) return Errc::invalid_argument;
  if (dropped != markers.size) return Errc::invalid_argument;
  if (in_pools + table.free_count() != table.capacity()) return Errc::invalid_argument;
  for (std::size_t k = 0; k < n; ++k) {  // age lists: live ephemeral of that node, oldest first
    std::uint64_t c = 0, last = 0;
    for (std::uint32_t i = age[k].head; i != kNil; i = table.at(i).age_next) {
      const Entry& e = table.at(i);
      if (e.state != EntryState::live || !e.ephemeral || e.node_idx != k || e.seq <= last) return Errc::invalid_argument;
      last = e.seq;
      if (++c > table.capacity()) return Errc::invalid_argument;
    }
    if (c != age[k].size || c != eph[k]) return Errc::invalid_argument;
  }
  std::uint64_t c = 0;
  for (std::uint32_t i = markers.head; i != kNil; i = table.at(i).age_next) {
    if (table.at(i).state != EntryState::dropped || ++c > table.capacity()) return Errc::invalid_argument;
  }
  if (c != markers.size) return Errc::invalid_argument;
  (void)live;
  return {};
}

Status ColdStore::check_invariants() const {
  SpinGuard g(impl_->lock);
  return impl_->check();
}

}  // namespace numaheap
