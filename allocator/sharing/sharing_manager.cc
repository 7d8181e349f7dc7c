// SharingManager: content index, merge, unshare (copy-on-write onto the
// writer's node), policy switch and stats. See include/numaheap/sharing.h.
#include "numaheap/sharing.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "allocator/sharing/page_hash.h"

namespace numaheap {

using namespace sharing_detail;

namespace {

// One guest page: the guest's registration slot and its gfn.
struct MapKey {
  std::uint32_t guest = 0;
  Gfn gfn = 0;
  bool operator==(const MapKey&) const = default;
};
struct MapKeyHash {
  std::size_t operator()(const MapKey& k) const noexcept {
    std::uint64_t x = k.gfn * 0x9e3779b97f4a7c15ull ^ (std::uint64_t{k.guest} << 1);
    x ^= x >> 31;
    return static_cast<std::size_t>(x * 0xbf58476d1ce4e5b9ull);
  }
};

// A read-only frame that guest pages map to. Invariant: rmap is non-empty
// outside the lock (a frame with no users is freed at once), every key in
// it maps to this frame in the guest's p2m with P2mFlags::shared, and
// `mapped` points back at the key's position.
struct SharedFrame {
  Mfn mfn = kInvalidMfn;
  NodeId node = kNoNode;
  std::uint64_t hash = 0;  // XXH3 of the contents (0 and unused for zero frames)
  bool zero = false;
  std::vector<MapKey> rmap;
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

Error sharing_error(Errc code, std::string what) { return Error{code, "sharing: " + std::move(what)}; }

}  // namespace

struct SharingManager::Impl {
  Impl(PageAllocator& p, const SharingConfig& c) : pa(p), topo(p.topology()), config(c), policy(c.policy) {}

  PageAllocator& pa;
  const Topology& topo;
  const SharingConfig config;

  // `lock` guards every member below.
  mutable std::mutex lock;
  SharingPolicy policy;
  std::vector<GuestMemory*> guests;  // slot -> guest; nullptr = free slot
  std::unordered_map<Mfn, SharedFrame> frames;
  std::unordered_multimap<std::uint64_t, Mfn> stable;  // hash -> non-zero shared frame
  std::vector<Mfn> zero_frame;                         // dense node index -> zero frame or invalid
  std::unordered_map<MapKey, Mapped, MapKeyHash> mapped;
  std::unordered_multimap<std::uint64_t, Candidate> unstable;  // hash -> candidate
  std::unordered_map<MapKey, std::uint64_t, MapKeyHash> candidate_hash;  // key -> its hash
  std::vector<std::uint64_t> node_frames, node_mappings;  // dense node index
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
    auto h = candidate_hash.find(key);
    if (h == candidate_hash.end()) return;
    auto [b, e] = unstable.equal_range(h->second);
    for (auto it = b; it != e; ++it)
      if (it->second.key == key) {
        unstable.erase(it);
        break;
      }
    candidate_hash.erase(h);
  }
  void remember_candidate(const MapKey& key, Mfn mfn, std::uint64_t hash) {
    forget_candidate(key);
    unstable.emplace(hash, Candidate{key, mfn});
    candidate_hash.emplace(key, hash);
  }
  void forget_guest_candidates(std::uint32_t slot) {
    for (auto it = unstable.begin(); it != unstable.end();) {
      if (it->second.key.guest == slot) {
        candidate_hash.erase(it->second.key);
        it = unstable.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- shared frames (lock held) ----
  // A fresh frame for the sharing owner on `node` exactly; nullptr when that
  // node has no free page.
  SharedFrame* new_frame(NodeId node, std::uint64_t hash, bool zero) {
    auto a = pa.alloc(AllocRequest{0, node, AllocFlags::exact_node, config.owner, {}});
    if (!a) return nullptr;
    SharedFrame& f = frames[a->mfn];
    f.mfn = a->mfn;
    f.node = a->node;
    f.hash = hash;
    f.zero = zero;
    ++node_frames[node_index(f.node)];
    if (zero) zero_frame[node_index(f.node)] = f.mfn;
    else stable.emplace(hash, f.mfn);
    return &f;
  }
  void release_frame(Mfn mfn) {
    auto it = frames.find(mfn);
    if (it == frames.end()) return;
    SharedFrame& f = it->second;
    if (f.zero) {
      zero_frame[node_index(f.node)] = kInvalidMfn;
    } else {
      auto [b, e] = stable.equal_range(f.hash);
      for (auto s = b; s != e; ++s)
        if (s->second == mfn) {
          stable.erase(s);
          break;
        }
    }
    --node_frames[node_index(f.node)];
    frames.erase(it);
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
    f.rmap.push_back(key);
    mapped[key] = Mapped{f.mfn, f.rmap.size() - 1};
    ++node_mappings[node_index(f.node)];
    if (f.zero) ++zero_mappings;
    ++merges;
    return true;
  }

  // Removes `key` from its frame's reverse map; frees the frame with its
  // last user.
  void detach(const MapKey& key) {
    auto m = mapped.find(key);
    if (m == mapped.end()) return;
    SharedFrame& f = frames.at(m->second.frame);
    const std::size_t pos = m->second.pos;
    if (pos + 1 != f.rmap.size()) {
      f.rmap[pos] = f.rmap.back();
      mapped[f.rmap[pos]].pos = pos;
    }
    f.rmap.pop_back();
    --node_mappings[node_index(f.node)];
    if (f.zero) --zero_mappings;
    const Mfn frame = f.mfn;
    const bool last = f.rmap.empty();
    mapped.erase(m);
    if (last) release_frame(frame);
  }

  // Gives guest page `key` a private copy on `node` (exact first, then the
  // allocator's fallback). Lock held.
  Status unshare_locked(const MapKey& key, NodeId node) {
    GuestMemory& g = *guests[key.guest];
    const P2mEntry e = g.lookup(key.gfn);
    auto m = mapped.find(key);
    if (!e.present() || !(e.flags & P2mFlags::shared) || m == mapped.end() || e.mfn != m->second.frame)
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
    std::vector<MapKey> keys;
    for (const auto& [key, where] : mapped)
      if (slot < 0 || key.guest == static_cast<std::uint32_t>(slot)) keys.push_back(key);
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
    SharedFrame* f = z == kInvalidMfn ? nullptr : &frames.at(z);
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
  auto [sb, se] = stable.equal_range(hash);
  for (auto it = sb; it != se; ++it) {
    SharedFrame& f = frames.at(it->second);
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
  auto [ub, ue] = unstable.equal_range(hash);
  for (auto it = ub; it != ue;) {
    const Candidate c = it->second;
    if (c.key == key) {
      ++it;
      continue;
    }
    GuestMemory* cg = guests[c.key.guest];
    const P2mEntry ce = cg ? cg->lookup(c.key.gfn) : P2mEntry{};
    if (!eligible(ce) || ce.mfn != c.mfn) {  // stale: written elsewhere, moved or freed
      candidate_hash.erase(c.key);
      it = unstable.erase(it);
      continue;
    }
    const unsigned char* cp = addr(c.mfn);
    if (!cp || !same_bytes(page, c.mfn)) {
      ++it;
      continue;
    }
    const NodeId cnode = pa.node_of(c.mfn);
    if (!policy.allows(topo, node, cnode)) {
      ++refused_by_policy;
      ++it;
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
    if (attach(key, g, e, frames.at(fm))) ++done;
    if (done < 2) ++merge_failures;
    if (frames.at(fm).rmap.empty()) release_frame(fm);
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
  std::lock_guard<std::mutex> g(impl_->lock);
  std::vector<Mfn> unused;
  for (const auto& [mfn, f] : impl_->frames)
    if (f.rmap.empty()) unused.push_back(mfn);
  for (Mfn m : unused) impl_->release_frame(m);
}

Result<std::unique_ptr<SharingManager>, Error> SharingManager::create(PageAllocator& pa,
                                                                      const SharingConfig& config) {
  if (config.owner > kMaxOwner) return sharing_error(Errc::invalid_argument, "owner id is reserved");
  if (!config.access.usable(pa))
    return sharing_error(Errc::unsupported,
                         "frame_only mode needs a FrameAccess hook to read page contents");
  if (config.policy.kind() == SharingPolicy::Kind::within_distance &&
      (config.policy.max_distance() == 0 || config.policy.max_distance() > kMaxDistance))
    return sharing_error(Errc::invalid_argument, "within_distance needs a distance of 1..255");
  auto impl = std::make_unique<Impl>(pa, config);
  const std::size_t n = pa.topology().node_count();
  impl->zero_frame.assign(n, kInvalidMfn);
  impl->node_frames.assign(n, 0);
  impl->node_mappings.assign(n, 0);
  return std::unique_ptr<SharingManager>(new SharingManager(std::move(impl)));
}

Result<void, Error> SharingManager::add_guest(GuestMemory& guest) {
  Impl& m = *impl_;
  if (!guest.spec().sharing)
    return sharing_error(Errc::invalid_argument,
                         "guest '" + guest.spec().name + "' has not opted in (spec.sharing is off)");
  if (guest.owner() == m.config.owner)
    return sharing_error(Errc::invalid_argument, "guest '" + guest.spec().name +
                                                     "' uses the sharing owner id " +
                                                     std::to_string(m.config.owner));
  if (&guest.allocator() != &m.pa)
    return sharing_error(Errc::invalid_argument,
                         "guest '" + guest.spec().name + "' lives on another page allocator");
  std::lock_guard<std::mutex> g(m.lock);
  if (m.slot_of(guest) >= 0)
    return sharing_error(Errc::busy, "guest '" + guest.spec().name + "' is already added");
  for (auto& s : m.guests)
    if (!s) {
      s = &guest;
      return {};
    }
  m.guests.push_back(&guest);
  return {};
}

Result<void, Error> SharingManager::remove_guest(GuestMemory& guest) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.lock);
  const int slot = m.slot_of(guest);
  if (slot < 0) return sharing_error(Errc::invalid_argument, "guest '" + guest.spec().name + "' is not added");
  if (Status st = m.unshare_all_locked(slot); !st)
    return sharing_error(st.error(), "guest '" + guest.spec().name +
                                         "': could not give it private copies of its shared pages (" +
                                         errc_name(st.error()) + ")");
  m.forget_guest_candidates(static_cast<std::uint32_t>(slot));
  m.guests[static_cast<std::size_t>(slot)] = nullptr;
  return {};
}

Result<std::uint64_t> SharingManager::scan(GuestMemory& guest, Gfn first, std::uint64_t count) noexcept {
  Impl& m = *impl_;
  int slot;
  {
    std::lock_guard<std::mutex> g(m.lock);
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
    std::lock_guard<std::mutex> g(m.lock);
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
  std::lock_guard<std::mutex> g(m.lock);
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
  std::lock_guard<std::mutex> g(m.lock);
  if (Status st = m.unshare_all_locked(-1); !st)
    return sharing_error(st.error(), std::string("unmerge stopped: ") + errc_name(st.error()) + "; " +
                                         std::to_string(m.mapped.size()) + " pages still shared");
  m.unstable.clear();
  m.candidate_hash.clear();
  return {};
}

SharingPolicy SharingManager::policy() const noexcept {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->policy;
}

Status SharingManager::set_policy(SharingPolicy policy) noexcept {
  Impl& m = *impl_;
  if (policy.kind() == SharingPolicy::Kind::within_distance &&
      (policy.max_distance() == 0 || policy.max_distance() > kMaxDistance))
    return Errc::invalid_argument;
  std::lock_guard<std::mutex> g(m.lock);
  if (policy == m.policy) return {};
  if (!m.mapped.empty()) return Errc::busy;  // KSM's EBUSY: unmerge first
  m.policy = policy;
  m.unstable.clear();
  m.candidate_hash.clear();
  return {};
}

SharingStats SharingManager::stats() const {
  const Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.lock);
  SharingStats s;
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
    if (m.node_frames[i])
      s.per_node.push_back(SharingNodeStats{m.topo.node_at(i).id, m.node_frames[i], m.node_mappings[i],
                                            m.node_mappings[i] - m.node_frames[i]});
  return s;
}

Status SharingManager::Impl::check() const {
  if (lost_frames) return Errc::invalid_frame;
  std::vector<std::uint64_t> frames_per(node_frames.size(), 0), maps_per(node_frames.size(), 0);
  std::uint64_t zeros = 0, total_maps = 0;
  for (const auto& [mfn, f] : frames) {
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
      auto [b, e] = stable.equal_range(f.hash);
      for (auto it = b; it != e; ++it) in_index += it->second == mfn;
      if (in_index != 1) return Errc::invalid_argument;
    }
    for (std::size_t pos = 0; pos < f.rmap.size(); ++pos) {
      const MapKey& k = f.rmap[pos];
      if (k.guest >= guests.size() || !guests[k.guest]) return Errc::invalid_argument;
      const P2mEntry e = guests[k.guest]->lookup(k.gfn);
      if (!e.present() || !(e.flags & P2mFlags::shared) || e.mfn != mfn || e.order != 0)
        return Errc::invalid_argument;
      auto m = mapped.find(k);
      if (m == mapped.end() || m->second.frame != mfn || m->second.pos != pos) return Errc::invalid_argument;
    }
  }
  if (total_maps != mapped.size() || zeros != zero_mappings || stable.size() + [&] {
        std::size_t z = 0;
        for (Mfn x : zero_frame) z += x != kInvalidMfn;
        return z;
      }() != frames.size())
    return Errc::invalid_argument;
  if (frames_per != node_frames || maps_per != node_mappings) return Errc::invalid_argument;
  if (candidate_hash.size() != unstable.size()) return Errc::invalid_argument;
  for (const auto& [hash, c] : unstable) {
    auto h = candidate_hash.find(c.key);
    if (h == candidate_hash.end() || h->second != hash) return Errc::invalid_argument;
    if (mapped.count(c.key)) return Errc::invalid_argument;  // merged pages are no candidates
  }
  return {};
}

Status SharingManager::check_invariants() const {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->check();
}

}  // namespace numaheap
