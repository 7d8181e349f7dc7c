// SharingManager: content index, merge, unshare (copy-on-write onto the
// writer's node), policy switch and stats. See include/numaheap/sharing.h.
#include "numaheap/sharing.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "allocator/guest/spec_text.h"
#include "allocator/platform/hash_map.h"
#include "allocator/platform/spin_lock.h"
#include "allocator/sharing/page_hash.h"

namespace numaheap {

using namespace sharing_detail;
using namespace std::string_view_literals;

namespace {

// One guest page: the guest's registration slot and its gfn.
struct MapKey {
  std::uint32_t guest = 0;
  Gfn gfn = 0;
  bool operator==(const MapKey&) const = default;
};
struct MapKeyHash {
  std::uint64_t operator()(const MapKey& k) const noexcept {
    return hash_mix(k.gfn * 0x9e3779b97f4a7c15ull ^ (std::uint64_t{k.guest} << 1));
  }
};

// A read-only frame that guest pages map to. Invariant: rmap is non-empty
// outside the lock (a frame with no users is freed at once), every key in
// it maps to this frame in the guest's p2m with P2mFlags::shared, and
// `mapped` points back at the key's position.
struct SharedFrame {
  explicit SharedFrame(const MetadataHooks* hooks) noexcept : rmap(hooks) {}
  Mfn mfn = kInvalidMfn;
  NodeId node = kNoNode;
  std::uint64_t hash = 0;  // XXH3 of the contents (0 and unused for zero frames)
  bool zero = false;
  Vector<MapKey> rmap;
};

// Where a shared guest page sits: its frame and its index in the rmap.
struct Mapped {
  Mfn frame = kInvalidMfn;
  std::size_t pos = 0;
};

// A page seen once and not matched yet (KSM's "unstable" tree). It may be
// stale: the guest can write, balloon or move it. Re-validated on use.
struct Candidate {
  MapKey key;
  Mfn mfn = kInvalidMfn;
};

bool eligible(const P2mEntry& e) noexcept {
  return e.present() &&
         !(e.flags & (P2mFlags::pinned | P2mFlags::device | P2mFlags::migrating | P2mFlags::shared));
}

template <class... Parts>
Error sharing_error(Errc code, const Parts&... parts) {
  return make_error(code, "sharing: "sv, parts...);
}

}  // namespace

struct SharingManager::Impl {
  NUMAHEAP_METADATA_NEW_DELETE
  Impl(PageAllocator& p, const SharingConfig& c, const MetadataHooks* h) noexcept
      : pa(p), topo(p.topology()), config(c), hooks(h), policy(c.policy), guests(h), frames(h), stable(h),
        mapped(h), unstable(h), candidate_hash(h) {}

  PageAllocator& pa;
  const Topology& topo;
  const SharingConfig config;
  const MetadataHooks* hooks;  // the manager's metadata memory

  // `lock` guards every member below. Entries of the hash tables move on
  // every insert and erase (open addressing): no pointer into one is kept
  // across a change of the same table.
  mutable SpinLock lock;
  SharingPolicy policy;
  Vector<GuestMemory*> guests;  // slot -> guest; nullptr = free slot
  HashMap<Mfn, SharedFrame> frames;
  HashMap<std::uint64_t, Mfn> stable;  // hash -> non-zero shared frame (multimap)
  MetadataArray<Mfn> zero_frame;       // dense node index -> zero frame or invalid
  HashMap<MapKey, Mapped, MapKeyHash> mapped;
  HashMap<std::uint64_t, Candidate> unstable;  // hash -> candidate (multimap)
  HashMap<MapKey, std::uint64_t, MapKeyHash> candidate_hash;  // key -> its hash
  MetadataArray<std::uint64_t> node_frames, node_mappings;   // dense node index
  std::uint64_t zero_mappings = 0;
  std::uint64_t lost_frames = 0;  // shared frames the allocator refused to free: check() fails
  std::uint64_t pages_scanned = 0, bytes_hashed = 0, bytes_compared = 0, merges = 0, unshares = 0,
                refused_by_policy = 0, merge_failures = 0;

  unsigned char* addr(Mfn mfn) const noexcept { return config.access.resolve(pa, mfn); }
  std::size_t node_index(NodeId n) const noexcept {
    int i = topo.index_of(n);
    return i < 0 ? 0 : static_cast<std::size_t>(i);
  }

  int slot_of(const GuestMemory& g) const noexcept {
    for (std::size_t i = 0; i < guests.size(); ++i)
      if (guests[i] == &g) return static_cast<int>(i);
    return -1;
  }

  bool same_bytes(const unsigned char* a, Mfn b) {
    const unsigned char* pb = addr(b);
    bytes_compared += kFrameSize;
    return pb && pages_equal(a, pb);
  }

  // ---- candidates (lock held) ----
  void forget_candidate(const MapKey& key) {
    const std::uint64_t* h = candidate_hash.find(key);
    if (!h) return;
    const std::uint64_t hash = *h;
    for (std::size_t s = unstable.first(hash); s != unstable.npos; s = unstable.next(hash, s))
      if (unstable.value_at(s).key == key) {
        unstable.erase_at(s);
        break;
      }
    candidate_hash.erase(key);
  }
  // Out of memory: the page is simply not remembered (a later scan may).
  void remember_candidate(const MapKey& key, Mfn mfn, std::uint64_t hash) {
    forget_candidate(key);
    if (!unstable.reserve(unstable.size() + 1) || !candidate_hash.reserve(candidate_hash.size() + 1)) return;
    (void)unstable.insert(hash, Candidate{key, mfn});  // reserved: cannot fail
    (void)candidate_hash.insert(key, hash);
  }
  void forget_guest_candidates(std::uint32_t slot) {
    unstable.erase_if([&](std::uint64_t, const Candidate& c) {
      if (c.key.guest != slot) return false;
      candidate_hash.erase(c.key);
      return true;
    });
  }

  // ---- shared frames (lock held) ----
  // A fresh frame for the sharing owner on `node` exactly; nullptr when that
  // node has no free page.
  // Also nullptr when the index cannot grow (nothing changed then).
  SharedFrame* new_frame(NodeId node, std::uint64_t hash, bool zero) {
    if (!frames.reserve(frames.size() + 1) || (!zero && !stable.reserve(stable.size() + 1))) return nullptr;
    auto a = pa.alloc(AllocRequest{0, node, AllocFlags::exact_node, config.owner, {}});
    if (!a) return nullptr;
    SharedFrame* fp = frames.insert(a->mfn, hooks);  // reserved: cannot fail
    if (!fp) {
      (void)pa.free(a->mfn, 0, config.owner);
      return nullptr;
    }
    SharedFrame& f = *fp;
    f.mfn = a->mfn;
    f.node = a->node;
    f.hash = hash;
    f.zero = zero;
    ++node_frames[node_index(f.node)];
    if (zero) zero_frame[node_index(f.node)] = f.mfn;
    else (void)stable.insert(hash, f.mfn);  // reserved: cannot fail
    return &f;
  }
  void release_frame(Mfn mfn) {
    SharedFrame* fp = frames.find(mfn);
    if (!fp) return;
    SharedFrame& f = *fp;
    if (f.zero) {
      zero_frame[node_index(f.node)] = kInvalidMfn;
    } else {
      for (std::size_t s = stable.first(f.hash); s != stable.npos; s = stable.next(f.hash, s))
        if (stable.value_at(s) == mfn) {
          stable.erase_at(s);
          break;
        }
    }
    --node_frames[node_index(f.node)];
    frames.erase(mfn);
    // Dirty now; the allocator scrubs it before any other owner gets it.
    if (!pa.free(mfn, 0, config.owner)) ++lost_frames;
  }

  // Maps guest page `key` (currently `e`, a private frame) to `f`: split a
  // large block, write-protect, final compare, swap the p2m entry, free the
  // private frame. False (nothing changed) when any step says no.
  bool attach(const MapKey& key, GuestMemory& g, P2mEntry e, SharedFrame& f) {
    const Gfn gfn = key.gfn;
    if (e.order > 0) {
      if (!g.split_to_pages(gfn)) return false;
      P2mEntry now = g.lookup(gfn);
      if (!eligible(now) || now.mfn != e.mfn) return false;
      e = now;
    }
    // Room in the reverse maps first: past the swap nothing may fail.
    if (!f.rmap.reserve(f.rmap.size() + 1) || !mapped.reserve(mapped.size() + 1)) return false;
    if (config.hooks.write_protect && !config.hooks.write_protect(config.hooks.ctx, g, gfn)) return false;
    auto undo = [&] {
      if (config.hooks.write_unprotect) config.hooks.write_unprotect(config.hooks.ctx, g, gfn);
    };
    const unsigned char* mine = addr(e.mfn);
    if (!mine || !same_bytes(mine, f.mfn)) {
      undo();
      return false;
    }
    const P2mEntry desired{f.mfn, static_cast<std::uint8_t>(P2mFlags::present | P2mFlags::shared), 0};
    if (!g.compare_exchange(gfn, e, desired)) {  // a mover or the balloon got there first
      undo();
      return false;
    }
    if (!g.allocator().free(e.mfn, 0, g.owner())) g.note_lost_frames(1);  // never ignored
    forget_candidate(key);
    (void)f.rmap.push_back(key);                              // reserved: cannot fail
    (void)mapped.insert(key, Mapped{f.mfn, f.rmap.size() - 1});  // absent (not shared before); reserved
    ++node_mappings[node_index(f.node)];
    if (f.zero) ++zero_mappings;
    ++merges;
    return true;
  }

  // Removes `key` from its frame's reverse map; frees the frame with its
  // last user.
  void detach(const MapKey& key) {
    const Mapped* m = mapped.find(key);
    if (!m) return;
    SharedFrame* fp = frames.find(m->frame);
    if (!fp) return;  // cannot be: check() would fail
    SharedFrame& f = *fp;
    const std::size_t pos = m->pos;
    if (pos + 1 != f.rmap.size()) {
      f.rmap[pos] = f.rmap.back();
      if (Mapped* moved = mapped.find(f.rmap[pos])) moved->pos = pos;
    }
    f.rmap.pop_back();
    --node_mappings[node_index(f.node)];
    if (f.zero) --zero_mappings;
    const Mfn frame = f.mfn;
    const bool last = f.rmap.empty();
    mapped.erase(key);
    if (last) release_frame(frame);
  }

  // Gives guest page `key` a private copy on `node` (exact first, then the
  // allocator's fallback). Lock held.
  Status unshare_locked(const MapKey& key, NodeId node) {
    GuestMemory& g = *guests[key.guest];
    const P2mEntry e = g.lookup(key.gfn);
    const Mapped* m = mapped.find(key);
    if (!e.present() || !(e.flags & P2mFlags::shared) || !m || e.mfn != m->frame)
      return Errc::invalid_argument;  // p2m and index disagree: not ours to fix
    if (node == kNoNode) node = g.home_node_of(key.gfn);
    if (node == kNoNode) node = pa.node_of(e.mfn);
    auto a = pa.alloc(AllocRequest{0, node, AllocFlags::exact_node, g.owner(), {}});
    if (!a) a = pa.alloc(AllocRequest{0, node, 0, g.owner(), {}});
    if (!a) return a.error();
    if (!pa.platform().copy_frame(a->mfn, e.mfn)) {
      unsigned char* dst = addr(a->mfn);
      const unsigned char* src = addr(e.mfn);
      if (!dst || !src) {
        if (!pa.free(a->mfn, 0, g.owner())) g.note_lost_frames(1);
        return Errc::unsupported;
      }
      std::memcpy(dst, src, kFrameSize);
    }
    const P2mEntry desired{a->mfn, static_cast<std::uint8_t>((e.flags & ~P2mFlags::shared) | P2mFlags::present), 0};
    if (!g.compare_exchange(key.gfn, e, desired)) {
      if (!pa.free(a->mfn, 0, g.owner())) g.note_lost_frames(1);
      return Errc::busy;
    }
    detach(key);
    ++unshares;
    return {};
  }

  // Unshares every page of `slot` (or of all guests when slot < 0), each
  // onto its home node. Stops at the first failure.
  Status unshare_all_locked(int slot) {
    Vector<MapKey> keys(hooks);
    if (!keys.reserve(mapped.size())) return Errc::no_memory;
    mapped.for_each([&](const MapKey& key, const Mapped&) {
      if (slot < 0 || key.guest == static_cast<std::uint32_t>(slot)) (void)keys.push_back(key);  // reserved
    });
    for (const MapKey& k : keys)
      if (Status st = unshare_locked(k, kNoNode); !st) return st;
    return {};
  }

  std::uint64_t merge_page(std::uint32_t slot, GuestMemory& g, Gfn gfn, const P2mEntry& e,
                           const unsigned char* page, bool zero, std::uint64_t hash);
  Status check() const;
};

// One scanned page against the index. Returns guest pages merged (0..2:
// a fresh frame takes the candidate and this page). Lock held.
std::uint64_t SharingManager::Impl::merge_page(std::uint32_t slot, GuestMemory& g, Gfn gfn,
                                               const P2mEntry& e, const unsigned char* page, bool zero,
                                               std::uint64_t hash) {
  const MapKey key{slot, gfn};
  const NodeId node = pa.node_of(e.mfn);
  if (zero) {
    Mfn z = zero_frame[node_index(node)];
    SharedFrame* f = z == kInvalidMfn ? nullptr : frames.find(z);
    if (!f) {
      f = new_frame(node, 0, true);
      if (!f) {
        ++merge_failures;
        return 0;
      }
      if (unsigned char* p = addr(f->mfn)) std::memset(p, 0, kFrameSize);
      else pa.platform().zero_frames(f->mfn, 1);
    }
    if (attach(key, g, e, *f)) return 1;
    ++merge_failures;
    if (f->rmap.empty()) release_frame(f->mfn);
    return 0;
  }
  // 1. Frames already shared.
  for (std::size_t it = stable.first(hash); it != stable.npos; it = stable.next(hash, it)) {
    SharedFrame* fp = frames.find(stable.value_at(it));  // attach changes neither table
    if (!fp) continue;  // cannot be: check() would fail
    SharedFrame& f = *fp;
    if (!same_bytes(page, f.mfn)) continue;  // hash collision
    if (!policy.allows(topo, node, f.node)) {
      ++refused_by_policy;
      continue;
    }
    if (attach(key, g, e, f)) return 1;
    ++merge_failures;
    return 0;
  }
  // 2. Pages seen before: make a frame for both.
  for (std::size_t it = unstable.first(hash); it != unstable.npos;) {
    const Candidate c = unstable.value_at(it);
    if (c.key == key) {
      it = unstable.next(hash, it);
      continue;
    }
    GuestMemory* cg = guests[c.key.guest];
    const P2mEntry ce = cg ? cg->lookup(c.key.gfn) : P2mEntry{};
    if (!eligible(ce) || ce.mfn != c.mfn) {  // stale: written elsewhere, moved or freed
      candidate_hash.erase(c.key);
      unstable.erase_at(it);
      it = unstable.seek(hash, it);  // what followed may have moved into `it`
      continue;
    }
    const unsigned char* cp = addr(c.mfn);
    if (!cp || !same_bytes(page, c.mfn)) {
      it = unstable.next(hash, it);
      continue;
    }
    const NodeId cnode = pa.node_of(c.mfn);
    if (!policy.allows(topo, node, cnode)) {
      ++refused_by_policy;
      it = unstable.next(hash, it);
      continue;
    }
    // The frame goes on the older page's node (or this page's when full).
    SharedFrame* f = new_frame(cnode, hash, false);
    if (!f && cnode != node) f = new_frame(node, hash, false);
    if (!f) {
      ++merge_failures;
      return 0;
    }
    std::memcpy(addr(f->mfn), page, kFrameSize);
    const Mfn fm = f->mfn;
    std::uint64_t done = 0;
    if (attach(c.key, *cg, ce, *f)) ++done;
    if (SharedFrame* f2 = frames.find(fm); f2 && attach(key, g, e, *f2)) ++done;
    if (done < 2) ++merge_failures;
    if (const SharedFrame* f2 = frames.find(fm); f2 && f2->rmap.empty()) release_frame(fm);
    forget_candidate(c.key);
    return done;
  }
  remember_candidate(key, e.mfn, hash);
  return 0;
}

SharingManager::SharingManager(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}

SharingManager::~SharingManager() {
  if (!impl_) return;
  // Frames still mapped stay allocated: freeing them under a guest would
  // hand its data to the next owner. remove_guest() every guest first.
  SpinGuard g(impl_->lock);
  // (None should be unused: a frame goes with its last user. Looked for
  // again after each release, which moves entries.)
  for (bool again = true; again;) {
    again = false;
    for (std::size_t s = 0; s < impl_->frames.capacity() && !again; ++s)
      if (impl_->frames.used_at(s) && impl_->frames.value_at(s).rmap.empty()) {
        impl_->release_frame(impl_->frames.key_at(s));
        again = true;
      }
  }
}

Result<std::unique_ptr<SharingManager>, Error> SharingManager::create(PageAllocator& pa,
                                                                      const SharingConfig& config) {
  if (config.owner > kMaxOwner) return sharing_error(Errc::invalid_argument, "owner id is reserved"sv);
  if (!config.access.usable(pa))
    return sharing_error(Errc::unsupported, "frame_only mode needs a FrameAccess hook to read page contents"sv);
  if (config.policy.kind() == SharingPolicy::Kind::within_distance &&
      (config.policy.max_distance() == 0 || config.policy.max_distance() > kMaxDistance))
    return sharing_error(Errc::invalid_argument, "within_distance needs a distance of 1..255"sv);
  const MetadataHooks* hooks = config.metadata ? config.metadata : default_metadata();
  std::unique_ptr<Impl> impl(new (hooks) Impl(pa, config, hooks));
  const std::size_t n = pa.topology().node_count();
  // Per-node tables up front; the hash tables grow as pages merge. A
  // failure frees what was taken (impl's members).
  if (!impl || !impl->zero_frame.allocate(hooks, n) || !impl->node_frames.allocate(hooks, n) ||
      !impl->node_mappings.allocate(hooks, n))
    return sharing_error(Errc::no_memory, "cannot allocate the manager's tables"sv);
  for (Mfn& z : impl->zero_frame) z = kInvalidMfn;
  std::unique_ptr<SharingManager> m(new (hooks) SharingManager(std::move(impl)));
  if (!m) return sharing_error(Errc::no_memory, "cannot allocate the manager"sv);
  return m;
}

Result<void, Error> SharingManager::add_guest(GuestMemory& guest) {
  Impl& m = *impl_;
  const GuestName& name = guest.spec().name;
  if (!guest.spec().sharing)
    return sharing_error(Errc::invalid_argument, "guest '"sv, name, "' has not opted in (spec.sharing is off)"sv);
  if (guest.owner() == m.config.owner)
    return sharing_error(Errc::invalid_argument, "guest '"sv, name, "' uses the sharing owner id "sv, m.config.owner);
  if (&guest.allocator() != &m.pa)
    return sharing_error(Errc::invalid_argument, "guest '"sv, name, "' lives on another page allocator"sv);
  SpinGuard g(m.lock);
  if (m.slot_of(guest) >= 0) return sharing_error(Errc::busy, "guest '"sv, name, "' is already added"sv);
  for (auto& s : m.guests)
    if (!s) {
      s = &guest;
      return {};
    }
  if (!m.guests.push_back(&guest)) return sharing_error(Errc::no_memory, "guest '"sv, name, "': guest table full"sv);
  return {};
}

Result<void, Error> SharingManager::remove_guest(GuestMemory& guest) {
  Impl& m = *impl_;
  SpinGuard g(m.lock);
  const int slot = m.slot_of(guest);
  if (slot < 0) return sharing_error(Errc::invalid_argument, "guest '"sv, guest.spec().name, "' is not added"sv);
  if (Status st = m.unshare_all_locked(slot); !st)
    return sharing_error(st.error(), "guest '"sv, guest.spec().name,
                         "': could not give it private copies of its shared pages ("sv, guest_detail::errc_text(st.error()), ")"sv);
  m.forget_guest_candidates(static_cast<std::uint32_t>(slot));
  m.guests[static_cast<std::size_t>(slot)] = nullptr;
  return {};
}

Result<std::uint64_t> SharingManager::scan(GuestMemory& guest, Gfn first, std::uint64_t count) noexcept {
  Impl& m = *impl_;
  int slot;
  {
    SpinGuard g(m.lock);
    slot = m.slot_of(guest);
  }
  if (slot < 0) return Errc::invalid_argument;
  const Gfn limit = guest.gfn_limit();
  const Gfn end = first >= limit ? first : (count > limit - first ? limit : first + count);
  std::uint64_t merged = 0;
  for (Gfn gfn = first; gfn < end; ++gfn) {
    const P2mEntry e = guest.lookup(gfn);
    if (!eligible(e)) continue;
    // Hash outside the lock. A racing write is caught by the compare that
    // follows write_protect inside attach().
    const unsigned char* page = m.addr(e.mfn);
    if (!page) continue;
    const bool zero = m.config.zero_pages && page_is_zero(page);
    const std::uint64_t hash = zero ? 0 : hash_page(page);
    SpinGuard g(m.lock);
    if (m.guests[static_cast<std::size_t>(slot)] != &guest) break;  // removed meanwhile
    ++m.pages_scanned;
    if (!zero) m.bytes_hashed += kFrameSize;
    if (guest.lookup(gfn) != e) continue;  // changed since we hashed: next pass
    merged += m.merge_page(static_cast<std::uint32_t>(slot), guest, gfn, e, page, zero, hash);
  }
#if NUMAHEAP_CHECK_INVARIANTS
  if (Status st = check_invariants(); !st) return st.error();
#endif
  return merged;
}

Status SharingManager::write_fault(GuestMemory& guest, Gfn gfn, NodeId writer_node) noexcept {
  Impl& m = *impl_;
  if (writer_node != kNoNode && !m.topo.has_node(writer_node)) return Errc::invalid_node;
  SpinGuard g(m.lock);
  const int slot = m.slot_of(guest);
  if (slot < 0) return Errc::invalid_argument;
  const P2mEntry e = guest.lookup(gfn);
  if (!e.present()) return Errc::not_present;
  if (!(e.flags & P2mFlags::shared)) return {};  // already private (a racing fault won)
  return m.unshare_locked(MapKey{static_cast<std::uint32_t>(slot), gfn}, writer_node);
}

Status SharingManager::write_fault_cpu(GuestMemory& guest, Gfn gfn, CpuId writer_cpu) noexcept {
  const NodeId n = impl_->topo.node_of_cpu(writer_cpu);
  if (n == kNoNode) return Errc::invalid_argument;
  return write_fault(guest, gfn, n);
}

Result<void, Error> SharingManager::unmerge_all() {
  Impl& m = *impl_;
  SpinGuard g(m.lock);
  if (Status st = m.unshare_all_locked(-1); !st)
    return sharing_error(st.error(), "unmerge stopped: "sv, guest_detail::errc_text(st.error()), "; "sv, m.mapped.size(),
                         " pages still shared"sv);
  m.unstable.clear();
  m.candidate_hash.clear();
  return {};
}

SharingPolicy SharingManager::policy() const noexcept {
  SpinGuard g(impl_->lock);
  return impl_->policy;
}

Status SharingManager::set_policy(SharingPolicy policy) noexcept {
  Impl& m = *impl_;
  if (policy.kind() == SharingPolicy::Kind::within_distance &&
      (policy.max_distance() == 0 || policy.max_distance() > kMaxDistance))
    return Errc::invalid_argument;
  SpinGuard g(m.lock);
  if (policy == m.policy) return {};
  if (!m.mapped.empty()) return Errc::busy;  // KSM's EBUSY: unmerge first
  m.policy = policy;
  m.unstable.clear();
  m.candidate_hash.clear();
  return {};
}

SharingStats SharingManager::stats() const {
  const Impl& m = *impl_;
  SharingStats s;
  s.per_node = Vector<SharingNodeStats>(m.hooks);
  const bool room = s.per_node.reserve(m.topo.node_count());  // else per_node stays empty, !ok()
  SpinGuard g(m.lock);
  s.pages_shared = m.frames.size();
  s.pages_sharing = m.mapped.size();
  s.pages_saved = s.pages_sharing - s.pages_shared;
  s.zero_mappings = m.zero_mappings;
  s.candidates = m.unstable.size();
  s.pages_scanned = m.pages_scanned;
  s.bytes_hashed = m.bytes_hashed;
  s.bytes_compared = m.bytes_compared;
  s.merges = m.merges;
  s.unshares = m.unshares;
  s.refused_by_policy = m.refused_by_policy;
  s.merge_failures = m.merge_failures;
  for (std::size_t i = 0; i < m.topo.node_count(); ++i)
    if (m.node_frames[i] && room)
      (void)s.per_node.push_back(SharingNodeStats{m.topo.node_at(i).id, m.node_frames[i], m.node_mappings[i],
                                            m.node_mappings[i] - m.node_frames[i]});
  return s;
}

Status SharingManager::Impl::check() const {
  if (lost_frames) return Errc::invalid_frame;
  if (!frames.check_invariants() || !stable.check_invariants() || !mapped.check_invariants() ||
      !unstable.check_invariants() || !candidate_hash.check_invariants())
    return Errc::invalid_argument;
  // Recounts (allocated with the lock held: a debug check).
  MetadataArray<std::uint64_t> frames_per, maps_per;
  if (!frames_per.allocate(hooks, node_frames.size()) || !maps_per.allocate(hooks, node_frames.size()))
    return Errc::no_memory;
  std::uint64_t zeros = 0, total_maps = 0;
  for (std::size_t slot = 0; slot < frames.capacity(); ++slot) {
    if (!frames.used_at(slot)) continue;
    const Mfn mfn = frames.key_at(slot);
    const SharedFrame& f = frames.value_at(slot);
    if (f.mfn != mfn || f.rmap.empty()) return Errc::invalid_argument;
    if (pa.node_of(mfn) != f.node) return Errc::invalid_frame;
    const std::size_t ni = node_index(f.node);
    ++frames_per[ni];
    maps_per[ni] += f.rmap.size();
    total_maps += f.rmap.size();
    if (f.zero) {
      zeros += f.rmap.size();
      if (zero_frame[ni] != mfn) return Errc::invalid_argument;
    } else {
      std::size_t in_index = 0;
      for (std::size_t it = stable.first(f.hash); it != stable.npos; it = stable.next(f.hash, it))
        in_index += stable.value_at(it) == mfn;
      if (in_index != 1) return Errc::invalid_argument;
    }
    for (std::size_t pos = 0; pos < f.rmap.size(); ++pos) {
      const MapKey& k = f.rmap[pos];
      if (k.guest >= guests.size() || !guests[k.guest]) return Errc::invalid_argument;
      const P2mEntry e = guests[k.guest]->lookup(k.gfn);
      if (!e.present() || !(e.flags & P2mFlags::shared) || e.mfn != mfn || e.order != 0)
        return Errc::invalid_argument;
      const Mapped* m = mapped.find(k);
      if (!m || m->frame != mfn || m->pos != pos) return Errc::invalid_argument;
    }
  }
  if (total_maps != mapped.size() || zeros != zero_mappings || stable.size() + [&] {
        std::size_t z = 0;
        for (Mfn x : zero_frame) z += x != kInvalidMfn;
        return z;
      }() != frames.size())
    return Errc::invalid_argument;
  for (std::size_t i = 0; i < node_frames.size(); ++i)
    if (frames_per[i] != node_frames[i] || maps_per[i] != node_mappings[i]) return Errc::invalid_argument;
  if (candidate_hash.size() != unstable.size()) return Errc::invalid_argument;
  for (std::size_t slot = 0; slot < unstable.capacity(); ++slot) {
    if (!unstable.used_at(slot)) continue;
    const Candidate& c = unstable.value_at(slot);
    const std::uint64_t* h = candidate_hash.find(c.key);
    if (!h || *h != unstable.key_at(slot)) return Errc::invalid_argument;
    if (mapped.contains(c.key)) return Errc::invalid_argument;  // merged pages are no candidates
  }
  return {};
}

Status SharingManager::check_invariants() const {
  SpinGuard g(impl_->lock);
  return impl_->check();
}

}  // namespace numaheap
