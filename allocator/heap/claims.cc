// Claims: reservations checked and consumed under the same locks as the
// free counters (see claims.h for the accounting).
#include <algorithm>

#include "allocator/heap/page_allocator_impl.h"

namespace numaheap {

void PageAllocator::Impl::lock_all_heaps() const noexcept {
  for (std::uint32_t i = 0; i < node_count; ++i) heaps[i].lock.lock();
}

void PageAllocator::Impl::unlock_all_heaps() const noexcept {
  for (std::uint32_t i = node_count; i-- > 0;) heaps[i].lock.unlock();
}

bool PageAllocator::Impl::charge(std::uint32_t ni, std::uint64_t pages,
                                 const AllocRequest& req) noexcept {
  if (!claims.active) return true;
  NodeHeap& h = heap(ni);
  if (!(req.flags & AllocFlags::use_claim)) {
    // Unclaimed memory only: on this node and overall.
    if (h.free_frames() < h.claimed_ + pages) return false;
    return claims.take_spare(pages);
  }
  SpinGuard g(claims.lock);
  const NodeId node = topo.node_at(ni).id;
  ClaimRecord* nr = claims.find(req.owner, node);
  ClaimRecord* gr = claims.find(req.owner, kNoNode);
  const std::uint64_t from_node = nr ? std::min(nr->remaining, pages) : 0;
  const std::uint64_t from_global = gr ? std::min(gr->remaining, pages - from_node) : 0;
  // The node's memory claimed by others stays untouched.
  if (h.free_frames() + from_node < h.claimed_ + pages) return false;
  if (!claims.take_spare(pages - from_node - from_global)) return false;
  if (nr) {
    nr->remaining -= from_node;
    h.claimed_ -= from_node;
  }
  if (gr) {
    gr->remaining -= from_global;
    claims.global -= from_global;
  }
  // Exhausted records go (the table stays small); `active` stays until
  // release_owner, which holds every node lock.
  if (gr && gr->remaining == 0) claims.remove(gr);
  if (nr && nr->remaining == 0) {
    nr = claims.find(req.owner, node);  // remove() may have moved it
    if (nr) claims.remove(nr);
  }
  return true;
}

PageAllocator::Impl::Quote PageAllocator::Impl::begin_quote(const AllocRequest& req) noexcept {
  Quote q;
  if (!claims.active) return q;
  q.spare = claims.spare.load(std::memory_order_relaxed);
  if (req.flags & AllocFlags::use_claim) {
    SpinGuard g(claims.lock);
    if (const ClaimRecord* gr = claims.find(req.owner, kNoNode)) q.global = gr->remaining;
  }
  return q;
}

// Mirrors charge(): with the node claim taken first, then the global one,
// then spare, a charge of n pages succeeds iff n <= free frames, n minus
// the node claim part <= the node's unclaimed frames, and what neither
// claim covers <= spare.
std::uint64_t PageAllocator::Impl::quote(std::uint32_t ni, std::uint64_t want,
                                         const AllocRequest& req, Quote& q) noexcept {
  const NodeHeap& h = heap(ni);
  std::uint64_t n = std::min(want, h.free_frames());
  if (!claims.active) return n;
  const std::int64_t unclaimed =
      static_cast<std::int64_t>(h.free_frames()) - static_cast<std::int64_t>(h.claimed_);
  const std::uint64_t spare = q.spare > 0 ? static_cast<std::uint64_t>(q.spare) : 0;
  if (unclaimed < 0) return 0;
  if (!(req.flags & AllocFlags::use_claim)) {
    n = std::min({n, static_cast<std::uint64_t>(unclaimed), spare});
    q.spare -= static_cast<std::int64_t>(n);
    return n;
  }
  std::uint64_t from_node = 0;
  {
    SpinGuard g(claims.lock);
    if (const ClaimRecord* nr = claims.find(req.owner, topo.node_at(ni).id)) from_node = nr->remaining;
  }
  n = std::min(n, from_node + std::min(static_cast<std::uint64_t>(unclaimed), q.global + spare));
  const std::uint64_t rest = n - std::min(from_node, n);
  const std::uint64_t from_global = std::min(q.global, rest);
  q.global -= from_global;
  q.spare -= static_cast<std::int64_t>(rest - from_global);
  return n;
}

std::uint64_t PageAllocator::Impl::charge_upto(std::uint32_t ni, std::uint64_t blocks,
                                               unsigned order) noexcept {
  if (!claims.active) return blocks;
  NodeHeap& h = heap(ni);
  const std::uint64_t unclaimed = h.free_frames() > h.claimed_ ? h.free_frames() - h.claimed_ : 0;
  blocks = std::min(blocks, unclaimed >> order);
  const std::uint64_t got = claims.take_spare_upto(blocks << order);
  const std::uint64_t whole = got >> order;
  if (got - (whole << order)) claims.give_spare(got - (whole << order));
  return whole;
}

Status PageAllocator::claim(OwnerId owner, std::uint64_t pages, NodeId node) noexcept {
  if (owner > kMaxOwner) return Errc::invalid_argument;
  Impl& m = *impl_;
  int ni = -1;
  if (node != kNoNode) {
    ni = m.topo.index_of(node);
    if (ni < 0) return Errc::invalid_node;
  }
  if (pages == 0) return {};
  if (pages > (std::uint64_t{1} << 62)) return Errc::claim_exceeded;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Errc err = Errc::ok;
    m.lock_all_heaps();
    m.claims.lock.lock();
    if (!m.claims.active) {
      std::int64_t spare = 0;
      for (std::uint32_t i = 0; i < m.node_count; ++i)
        spare += static_cast<std::int64_t>(m.heaps[i].free_frames()) -
                 static_cast<std::int64_t>(m.heaps[i].claimed_);
      m.claims.spare.store(spare - static_cast<std::int64_t>(m.claims.global));
      m.claims.active = true;
    }
    NodeHeap* h = ni >= 0 ? &m.heap(static_cast<std::uint32_t>(ni)) : nullptr;
    if (h && h->free_frames() < h->claimed_ + pages) err = Errc::claim_exceeded;
    else if (!m.claims.take_spare(pages)) err = Errc::claim_exceeded;
    if (err == Errc::ok) {
      ClaimRecord* rec = m.claims.find(owner, node);
      if (!rec) rec = m.claims.add(owner, node);
      if (!rec) {
        m.claims.give_spare(pages);
        err = Errc::busy;
      } else {
        rec->remaining += pages;
        if (h) h->claimed_ += pages;
        else m.claims.global += pages;
      }
    }
    if (m.claims.size() == 0) m.claims.active = false;
    m.claims.lock.unlock();
    m.unlock_all_heaps();
    if (err != Errc::claim_exceeded || attempt == 1) {
      if (err == Errc::ok) return {};
      return err;
    }
    // Free frames may sit in per-CPU caches: return them and try again.
    // Every node's, even for a node claim: the claim also needs spare
    // memory overall, which frames cached on other nodes count towards.
    drain_all();
  }
  return Errc::claim_exceeded;
}

namespace {

// Drops the owner's live records (and held ones if `held_too`); held
// records left behind become live again. One atomic step under every lock.
void drop_claims(PageAllocator::Impl& m, OwnerId owner, bool held_too) noexcept {
  m.lock_all_heaps();
  m.claims.lock.lock();
  for (std::uint32_t i = m.claims.size(); i-- > 0;) {
    ClaimRecord& rec = m.claims.at(i);
    if (rec.owner != owner) continue;
    if (rec.held && !held_too) {
      rec.held = false;  // no live record of (owner, node) is left: dropped below or before
      continue;
    }
    if (rec.node == kNoNode) m.claims.global -= rec.remaining;
    else m.heap(static_cast<std::uint32_t>(m.topo.index_of(rec.node))).claimed_ -= rec.remaining;
    m.claims.give_spare(rec.remaining);
    m.claims.remove(&rec);
  }
  if (m.claims.size() == 0) {
    m.claims.active = false;
    m.claims.global = 0;
  }
  m.claims.lock.unlock();
  m.unlock_all_heaps();
}

}  // namespace

Status PageAllocator::release_owner(OwnerId owner) noexcept {
  if (owner > kMaxOwner) return Errc::invalid_argument;
  drop_claims(*impl_, owner, /*held_too=*/true);
  return {};
}

Status PageAllocator::set_claims_aside(OwnerId owner) noexcept {
  if (owner > kMaxOwner) return Errc::invalid_argument;
  Impl& m = *impl_;
  // Only the held bits change; counters stay, so the claim lock is enough
  // (charge() and quote() look records up under it).
  SpinGuard g(m.claims.lock);
  for (std::uint32_t i = 0; i < m.claims.size(); ++i)
    if (m.claims.at(i).owner == owner && m.claims.at(i).held) return Errc::busy;
  for (std::uint32_t i = 0; i < m.claims.size(); ++i)
    if (m.claims.at(i).owner == owner) m.claims.at(i).held = true;
  return {};
}

Status PageAllocator::restore_claims(OwnerId owner) noexcept {
  if (owner > kMaxOwner) return Errc::invalid_argument;
  drop_claims(*impl_, owner, /*held_too=*/false);
  return {};
}

std::uint64_t PageAllocator::claimed_by(OwnerId owner, NodeId node) const noexcept {
  Impl& m = *impl_;
  SpinGuard g(m.claims.lock);
  std::uint64_t n = 0;
  for (std::uint32_t i = 0; i < m.claims.size(); ++i) {
    const ClaimRecord& rec = m.claims.at(i);
    if (rec.owner == owner && (node == kAllNodes || rec.node == node)) n += rec.remaining;
  }
  return n;
}

std::uint64_t PageAllocator::global_claimed() const noexcept {
  SpinGuard g(impl_->claims.lock);
  return impl_->claims.global;
}

}  // namespace numaheap
