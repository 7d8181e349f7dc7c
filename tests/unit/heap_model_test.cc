// Stateful property test: the page allocator against a plain reference
// model (what each owner holds, what is offline or pending, the claims).
// After every command: no frame owned twice, used/offlined/pending per node
// equal the model, free + used + cached + offlined = managed, exact_node
// and exclude honoured, free lists maximally coalesced and every counter
// equal to a recount (check_frames walks every descriptor). split() is
// covered too (the guest layer uses it to free single pages of a block), and
// so are alloc_bulk/free_bulk: the same rules per frame, all or nothing.
//
// Bounded by default (rapidcheck's 100 cases); RC_PARAMS="max_success=2000"
// runs more.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <span>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap {
namespace {

struct Held {
  unsigned order;
  OwnerId owner;
  NodeId node;
};

// The system under test plus the reference model it is compared with.
struct Sut {
  Topology topo;
  test::FakeCpu cpu;
  std::unique_ptr<PageAllocator> pa;
  std::map<Mfn, Held> held;      // block head -> what the model says
  std::set<Mfn> offlined;        // retired frames
  std::set<Mfn> pending;         // in-use frames to retire on free
  std::map<std::pair<OwnerId, NodeId>, std::uint64_t> claims;
  std::vector<Mfn> freed;        // recently freed heads, for double frees
  bool offlined_under_claims = false;

  explicit Sut(Topology t) : topo(std::move(t)) {
    HeapConfig hc;
    hc.cpus = 3;
    hc.pcp_batch = 4;
    hc.pcp_high = 8;
    pa = test::make(topo, test::frame_only(&cpu), hc);
  }

  // The held block containing mfn, or end().
  std::map<Mfn, Held>::const_iterator holder(Mfn mfn) const {
    auto it = held.upper_bound(mfn);
    if (it == held.begin()) return held.end();
    --it;
    return mfn - it->first < frames_of_order(it->second.order) ? it : held.end();
  }
  bool overlaps(Mfn head, unsigned order) const {
    auto it = held.lower_bound(head);
    if (it != held.end() && it->first < head + frames_of_order(order)) return true;
    return holder(head) != held.end();
  }
  std::uint64_t claimed(OwnerId o) const {
    std::uint64_t n = 0;
    for (const auto& [k, v] : claims)
      if (k.first == o) n += v;
    return n;
  }

  void check_all() const {
    RC_ASSERT(pa->check_frames().has_value());
    for (const NodeInfo& n : topo.nodes()) {
      const NodeStats st = pa->stats(n.id).value();
      std::uint64_t used = 0, off = 0, pend = 0;
      for (const auto& [m, h] : held)
        if (h.node == n.id) used += frames_of_order(h.order);
      for (Mfn m : offlined) off += pa->node_of(m) == n.id;
      for (Mfn m : pending) pend += pa->node_of(m) == n.id;
      RC_ASSERT(st.managed == n.frame_count());
      RC_ASSERT(st.used == used);
      RC_ASSERT(st.offlined == off);
      RC_ASSERT(st.pending_offline == pend);
      RC_ASSERT(st.free + st.cached + st.used + st.offlined == st.managed);
      if (!offlined_under_claims) RC_ASSERT(st.claimed <= st.free + st.cached);
    }
    for (OwnerId o = 1; o <= 3; ++o) RC_ASSERT(pa->claimed_by(o) == claimed(o));
  }
};

struct Model {};  // generation needs no state; the reference model is in Sut
using Cmd = rc::state::Command<Model, Sut>;

NodeId pick_node(const Sut& s, std::size_t i) {
  if (i % 8 == 7) return 77;  // not a node
  return s.topo.node_at(i % s.topo.node_count()).id;
}

// The node a kNoNode request prefers: the (fake) CPU's, as create() maps it.
NodeId preferred(const Sut& s, NodeId node) {
  if (node != kNoNode) return node;
  const std::uint32_t slot = s.cpu.cpu % 3;
  NodeId pref = s.topo.node_of_cpu(slot);
  if (pref == kNoNode && s.topo.max_cpu() > 0) pref = s.topo.node_of_cpu(slot % s.topo.max_cpu());
  if (pref == kNoNode) pref = s.topo.memory_nodes().first();
  return pref;
}

// Per node: used frames and free + cached frames (a failed call may drain
// per-CPU caches, which moves frames between those two and nowhere else).
std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> counters(const Sut& s) {
  std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> out;
  for (const NodeInfo& n : s.topo.nodes()) {
    const NodeStats st = s.pa->stats(n.id).value();
    out[n.id] = {st.used, st.free + st.cached};
  }
  return out;
}

// The model's side of a use_claim allocation of `frames` on `node`: the
// node claim first, then the global one.
void consume_claims(Sut& s, OwnerId owner, NodeId node, std::uint64_t frames, std::uint64_t& rest) {
  auto it = s.claims.find({owner, node});
  std::uint64_t need = frames;
  if (it != s.claims.end()) {
    const std::uint64_t take = std::min(it->second, need);
    it->second -= take;
    need -= take;
    if (it->second == 0) s.claims.erase(it);
  }
  rest += need;
}
void consume_global(Sut& s, OwnerId owner, std::uint64_t rest) {
  auto it = s.claims.find({owner, kNoNode});
  if (it == s.claims.end()) return;
  it->second -= std::min(it->second, rest);
  if (it->second == 0) s.claims.erase(it);
}

struct Alloc : Cmd {
  unsigned order = *rc::gen::weightedElement<unsigned>({{6, 0}, {2, 1}, {2, 3}, {1, 9}, {1, 5}, {1, 19}});
  std::size_t node = *rc::gen::inRange<std::size_t>(0, 16);
  bool preferred_cpu = *rc::gen::weightedElement<bool>({{1, true}, {3, false}});
  std::uint32_t flags = *rc::gen::inRange<std::uint32_t>(0, 8);
  OwnerId owner = *rc::gen::inRange<OwnerId>(1, 4);
  std::uint32_t exclude_bits = *rc::gen::weightedElement<std::uint32_t>({{4, 0}, {1, 1}, {1, 2}, {1, 5}});

  void run(const Model&, Sut& s) const override {
    AllocRequest r;
    r.order = order;
    r.node = preferred_cpu ? kNoNode : pick_node(s, node);
    r.flags = flags;
    r.owner = owner;
    for (std::size_t i = 0; i < s.topo.node_count(); ++i)
      if (exclude_bits & (1u << i)) r.exclude.set(s.topo.node_at(i).id);
    auto a = s.pa->alloc(r);
    const NodeId pref = preferred(s, r.node);
    if (!a) {
      const Errc e = a.error();
      if (order > kMaxOrder) RC_ASSERT(e == Errc::invalid_order);
      else if (!s.topo.has_node(pref))
        RC_ASSERT(e == Errc::invalid_node);
      else if ((flags & AllocFlags::exact_node) && r.exclude.test(pref))
        RC_ASSERT(e == Errc::invalid_argument);
      else {
        RC_ASSERT(e == Errc::no_memory);
        // Without claims, no_memory means no allowed node has a fitting block.
        if (s.claims.empty()) {
          auto allowed = (flags & AllocFlags::exact_node)
                             ? std::vector<NodeId>{pref}
                             : std::vector<NodeId>(s.topo.fallback_order(pref).begin(),
                                                   s.topo.fallback_order(pref).end());
          for (NodeId n : allowed)
            if (!r.exclude.test(n))
              RC_ASSERT(s.pa->stats(n).value().largest_free_order < static_cast<int>(order));
        }
      }
      s.check_all();
      return;
    }
    RC_ASSERT(order <= kMaxOrder);
    RC_ASSERT((a->mfn & (frames_of_order(order) - 1)) == 0u);
    RC_ASSERT(s.pa->node_of(a->mfn) == a->node);
    RC_ASSERT(s.pa->node_of(a->mfn + frames_of_order(order) - 1) == a->node);
    RC_ASSERT(!r.exclude.test(a->node));
    if (flags & AllocFlags::exact_node) RC_ASSERT(a->node == pref);
    RC_ASSERT(!s.overlaps(a->mfn, order));  // never owned twice
    for (std::uint64_t i = 0; i < frames_of_order(order); ++i)
      RC_ASSERT(s.offlined.count(a->mfn + i) == 0u);
    s.held[a->mfn] = Held{order, owner, a->node};
    if (flags & AllocFlags::use_claim) {  // node claim first, then global
      std::uint64_t need = frames_of_order(order);
      for (NodeId n : {a->node, kNoNode}) {
        auto it = s.claims.find({owner, n});
        if (it == s.claims.end()) continue;
        const std::uint64_t take = std::min(it->second, need);
        it->second -= take;
        need -= take;
        if (it->second == 0) s.claims.erase(it);
      }
    }
    s.check_all();
  }
  void show(std::ostream& os) const override {
    os << "Alloc(order " << order << ", node#" << node << (preferred_cpu ? " cpu" : "")
       << ", flags " << flags << ", owner " << owner << ", exclude " << exclude_bits << ")";
  }
};

// Whether `count` single-frame allocations for `r` would all pass the claim
// rules, one at a time, each from the first allowed node where it may, once
// the allowed nodes' per-CPU caches are drained: what alloc_bulk must do.
// A frame may come from a node when the node has one free; with claims,
// use_claim takes the owner's node claim there first, then its global
// claim, and any frame neither covers must leave the node's frames that
// others claimed alone and needs unreserved memory (spare) overall.
bool bulk_fits(const Sut& s, const AllocRequest& r, const std::vector<NodeId>& allowed,
               std::uint64_t count) {
  struct Room { std::uint64_t free, claimed; };
  std::map<NodeId, Room> room;
  std::int64_t spare = -static_cast<std::int64_t>(s.pa->global_claimed());
  for (const NodeInfo& n : s.topo.nodes()) {
    const NodeStats st = s.pa->stats(n.id).value();
    const bool ok = std::find(allowed.begin(), allowed.end(), n.id) != allowed.end();
    room[n.id] = {st.free + (ok ? st.cached : 0), st.claimed};
    spare += static_cast<std::int64_t>(room[n.id].free) - static_cast<std::int64_t>(st.claimed);
  }
  auto claims = s.claims;
  const bool use_claim = (r.flags & AllocFlags::use_claim) != 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    bool placed = false;
    for (NodeId n : allowed) {
      Room& rm = room[n];
      if (rm.free == 0) continue;
      if (claims.empty()) {
        --rm.free;
        placed = true;
        break;
      }
      auto nc = use_claim ? claims.find({r.owner, n}) : claims.end();
      auto gc = use_claim ? claims.find({r.owner, kNoNode}) : claims.end();
      if (nc != claims.end()) {  // the owner's own claim on this node
        if (rm.free < rm.claimed) continue;
        --rm.free;
        --rm.claimed;
        if (--nc->second == 0) claims.erase(nc);
      } else {
        if (rm.free < rm.claimed + 1) continue;  // others' claims on this node
        if (gc != claims.end()) {
          if (--gc->second == 0) claims.erase(gc);
        } else if (spare >= 1) {
          --spare;
        } else {
          continue;
        }
        --rm.free;
      }
      placed = true;
      break;
    }
    if (!placed) return false;
  }
  return true;
}

// alloc_bulk: every frame as alloc() would give it, all or nothing.
struct AllocBulk : Cmd {
  bool small = *rc::gen::weightedElement<bool>({{4, true}, {1, false}});
  std::size_t count = small ? *rc::gen::inRange<std::size_t>(0, 40)
                            : *rc::gen::inRange<std::size_t>(100, 1100);
  std::size_t node = *rc::gen::inRange<std::size_t>(0, 16);
  bool preferred_cpu = *rc::gen::weightedElement<bool>({{1, true}, {3, false}});
  std::uint32_t flags = *rc::gen::inRange<std::uint32_t>(0, 8);
  OwnerId owner = *rc::gen::inRange<OwnerId>(1, 4);
  std::uint32_t exclude_bits = *rc::gen::weightedElement<std::uint32_t>({{4, 0}, {1, 1}, {1, 2}, {1, 5}});

  void run(const Model&, Sut& s) const override {
    AllocRequest r;
    r.node = preferred_cpu ? kNoNode : pick_node(s, node);
    r.flags = flags;
    r.owner = owner;
    for (std::size_t i = 0; i < s.topo.node_count(); ++i)
      if (exclude_bits & (1u << i)) r.exclude.set(s.topo.node_at(i).id);
    const NodeId pref = preferred(s, r.node);
    const bool exact = (flags & AllocFlags::exact_node) != 0;
    std::vector<NodeId> allowed;
    if (exact) allowed.push_back(pref);
    else if (s.topo.has_node(pref))
      for (NodeId n : s.topo.fallback_order(pref))
        if (!r.exclude.test(n)) allowed.push_back(n);
    std::uint64_t room = 0;  // free frames of the allowed nodes, caches included
    if (s.topo.has_node(pref))
      for (NodeId n : allowed) room += s.pa->stats(n).value().free + s.pa->stats(n).value().cached;
    const bool fits = s.topo.has_node(pref) && bulk_fits(s, r, allowed, count);
    const auto before = counters(s);
    std::vector<Mfn> out(count, kInvalidMfn);
    auto st = s.pa->alloc_bulk(r, out);
    if (!st) {
      const Errc e = st.error();
      if (!s.topo.has_node(pref)) RC_ASSERT(e == Errc::invalid_node);
      else if (exact && r.exclude.test(pref)) RC_ASSERT(e == Errc::invalid_argument);
      else {
        RC_ASSERT(e == Errc::no_memory);
        RC_ASSERT(count > 0u);
        if (s.claims.empty()) RC_ASSERT(room < count);  // without claims: only when it does not fit
        if (!s.offlined_under_claims) RC_ASSERT(!fits);
      }
      for (Mfn m : out) RC_ASSERT(m == kInvalidMfn);
      RC_ASSERT(counters(s) == before);  // nothing taken
      s.check_all();
      return;
    }
    RC_ASSERT(s.topo.has_node(pref));
    if (s.claims.empty()) RC_ASSERT(room >= count);
    if (!s.offlined_under_claims) RC_ASSERT(fits);
    std::set<Mfn> seen;
    std::map<NodeId, std::uint64_t> per_node;
    std::size_t last_pos = 0;
    for (Mfn m : out) {
      RC_ASSERT(seen.insert(m).second);
      RC_ASSERT(!s.overlaps(m, 0));  // never owned twice
      RC_ASSERT(s.offlined.count(m) == 0u);
      const NodeId n = s.pa->node_of(m);
      const auto pos = static_cast<std::size_t>(std::find(allowed.begin(), allowed.end(), n) - allowed.begin());
      RC_ASSERT(pos < allowed.size());  // exact node, exclusions, memory nodes
      RC_ASSERT(pos >= last_pos);       // nearer nodes' frames first
      last_pos = pos;
      ++per_node[n];
    }
    for (Mfn m : out) s.held[m] = Held{0, owner, s.pa->node_of(m)};
    if (flags & AllocFlags::use_claim) {
      std::uint64_t rest = 0;
      for (const auto& [n, frames] : per_node) consume_claims(s, owner, n, frames, rest);
      consume_global(s, owner, rest);
    }
    s.check_all();
  }
  void show(std::ostream& os) const override {
    os << "AllocBulk(" << count << ", node#" << node << (preferred_cpu ? " cpu" : "") << ", flags "
       << flags << ", owner " << owner << ", exclude " << exclude_bits << ")";
  }
};

// free_bulk of some of an owner's 4 KiB blocks, maybe with one bad entry
// (which must fail the whole call and change nothing).
struct FreeBulk : Cmd {
  std::size_t pick = *rc::gen::arbitrary<std::size_t>();
  std::size_t take = *rc::gen::inRange<std::size_t>(0, 64);
  bool reversed = *rc::gen::arbitrary<bool>();
  unsigned bad = *rc::gen::weightedElement<unsigned>(
      {{8, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}, {1, 7}});
  Mfn raw = *rc::gen::inRange<Mfn>(0, 4096);

  void run(const Model&, Sut& s) const override {
    std::vector<std::pair<Mfn, OwnerId>> singles;
    for (const auto& [m, h] : s.held)
      if (h.order == 0) singles.push_back({m, h.owner});
    const OwnerId owner = singles.empty() ? 1 : singles[pick % singles.size()].second;
    std::vector<Mfn> list;
    for (std::size_t i = 0; i < singles.size() && list.size() < take; ++i) {
      const auto& [m, o] = singles[(pick + i) % singles.size()];
      if (o == owner) list.push_back(m);
    }
    if (reversed) std::reverse(list.begin(), list.end());
    // The bad entry and the errors it may give.
    Mfn wrong = kInvalidMfn;
    std::vector<Errc> expect;
    auto other_block = [&](bool larger) -> const std::pair<const Mfn, Held>* {
      for (const auto& e : s.held)
        if (larger ? e.second.order > 0 : (e.second.order == 0 && e.second.owner != owner)) return &e;
      return nullptr;
    };
    switch (bad) {
      case 1:  // listed twice
        if (!list.empty()) {
          wrong = list[pick % list.size()];
          expect = {Errc::double_free};
        }
        break;
      case 2:  // someone else's
        if (auto* e = other_block(false)) {
          wrong = e->first;
          expect = {Errc::not_owner};
        }
        break;
      case 3:  // freed before (unless it was handed out again since)
        if (!s.freed.empty() && s.holder(s.freed[pick % s.freed.size()]) == s.held.end()) {
          wrong = s.freed[pick % s.freed.size()];
          expect = {Errc::double_free, Errc::invalid_frame};
        }
        break;
      case 4:  // head of a larger block
        if (auto* e = other_block(true)) {
          wrong = e->first;
          expect = {Errc::invalid_order};
        }
        break;
      case 5:  // inside a larger block
        if (auto* e = other_block(true)) {
          wrong = e->first + 1;
          expect = {Errc::invalid_frame};
        }
        break;
      case 6:  // not managed
        if (s.pa->node_of(raw) == kNoNode) {
          wrong = raw;
          expect = {Errc::invalid_frame};
        }
        break;
      case 7:  // retired
        if (!s.offlined.empty()) {
          wrong = *s.offlined.begin();
          expect = {Errc::invalid_frame};
        }
        break;
      default: break;
    }
    if (wrong != kInvalidMfn) list.insert(list.begin() + static_cast<long>(pick % (list.size() + 1)), wrong);
    const auto before = counters(s);
    auto st = s.pa->free_bulk(list, owner);
    if (wrong != kInvalidMfn) {
      RC_ASSERT(!st.has_value());
      RC_ASSERT(std::find(expect.begin(), expect.end(), st.error()) != expect.end());
      RC_ASSERT(counters(s) == before);  // nothing freed
      s.check_all();
      return;
    }
    RC_ASSERT(st.has_value());
    for (Mfn m : list) {
      s.held.erase(m);
      if (s.pending.erase(m)) s.offlined.insert(m);
      s.freed.push_back(m);
    }
    while (s.freed.size() > 16) s.freed.erase(s.freed.begin());
    s.check_all();
  }
  void show(std::ostream& os) const override {
    os << "FreeBulk(#" << pick << ", " << take << (reversed ? " reversed" : "") << ", bad " << bad
       << ", raw " << raw << ")";
  }
};

struct Free : Cmd {
  std::size_t pick = *rc::gen::arbitrary<std::size_t>();
  void run(const Model&, Sut& s) const override {
    if (s.held.empty()) return;
    auto it = std::next(s.held.begin(), static_cast<long>(pick % s.held.size()));
    const Mfn head = it->first;
    const Held h = it->second;
    RC_ASSERT(s.pa->free(head, h.order, h.owner).has_value());
    s.held.erase(it);
    for (auto p = s.pending.lower_bound(head);
         p != s.pending.end() && *p < head + frames_of_order(h.order);) {
      s.offlined.insert(*p);
      p = s.pending.erase(p);
    }
    s.freed.push_back(head);
    if (s.freed.size() > 16) s.freed.erase(s.freed.begin());
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "Free(#" << pick << ")"; }
};

// split(): a held block becomes 2^order held 4 KiB blocks of the same owner.
struct Split : Cmd {
  std::size_t pick = *rc::gen::arbitrary<std::size_t>();
  void run(const Model&, Sut& s) const override {
    if (s.held.empty()) return;
    auto it = std::next(s.held.begin(), static_cast<long>(pick % s.held.size()));
    const Mfn head = it->first;
    const Held h = it->second;
    if (h.order > 0) RC_ASSERT(s.pa->split(head, h.order, h.owner % 3 + 1).error() == Errc::not_owner);
    RC_ASSERT(s.pa->split(head, h.order, h.owner).has_value());
    for (std::uint64_t i = 0; i < frames_of_order(h.order); ++i)
      s.held[head + i] = Held{0, h.owner, h.node};
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "Split(#" << pick << ")"; }
};

// Frees (and splits) what the caller does not hold: a wrong order, a
// foreign owner (owner 0 too: a valid id that holds nothing here), a frame
// inside a block, a double free, a frame nobody holds. Each must fail and
// change nothing on any node.
struct BadFree : Cmd {
  unsigned kind = *rc::gen::inRange(0u, 6u);
  unsigned via = *rc::gen::inRange(0u, 3u);  // free, free_bulk, split
  std::size_t pick = *rc::gen::arbitrary<std::size_t>();
  Mfn raw = *rc::gen::inRange<Mfn>(0, 4096);
  void run(const Model&, Sut& s) const override {
    Mfn mfn = raw;
    unsigned order = 0;
    OwnerId owner = kind == 5 ? 0 : 1;
    if (kind <= 2 && !s.held.empty()) {
      auto it = std::next(s.held.begin(), static_cast<long>(pick % s.held.size()));
      mfn = it->first;
      order = it->second.order;
      owner = it->second.owner;
      if (kind == 0) order = order == 0 ? 1 : order - 1;             // wrong order
      else if (kind == 1) owner = (pick & 1) ? 0 : owner % 3 + 1;     // foreign owner
      else if (order > 0) mfn += 1;                                   // not a head
      else order = kMaxOrder + 1;
    } else if (kind == 3 && !s.freed.empty()) {
      mfn = s.freed[pick % s.freed.size()];                           // double free
    }
    auto h = s.held.find(mfn);
    if (h != s.held.end() && h->second.order == order && h->second.owner == owner) return;
    if (via == 1 && order != 0) return;  // free_bulk frees 4 KiB frames only
    const auto before = counters(s);
    Status st;
    if (via == 0) st = s.pa->free(mfn, order, owner);
    else if (via == 1) st = s.pa->free_bulk(std::span<const Mfn>(&mfn, 1), owner);
    else st = s.pa->split(mfn, order, owner);
    // split of an order-0 block of its owner is a no-op success, handled
    // above (held with that order and owner); everything else fails.
    RC_ASSERT(!st.has_value());
    RC_ASSERT(counters(s) == before);
    s.check_all();
  }
  void show(std::ostream& os) const override {
    os << "BadFree(kind " << kind << ", via " << via << ", #" << pick << ", raw " << raw << ")";
  }
};

struct Claim : Cmd {
  OwnerId owner = *rc::gen::inRange<OwnerId>(1, 4);
  std::uint64_t pages = *rc::gen::inRange<std::uint64_t>(0, 300);
  std::size_t node = *rc::gen::inRange<std::size_t>(0, 16);
  bool global = *rc::gen::arbitrary<bool>();
  void run(const Model&, Sut& s) const override {
    const NodeId n = global ? kNoNode : pick_node(s, node);
    // Prediction from the counters before the call.
    std::int64_t spare = 0;
    std::uint64_t node_room = 0;
    for (const NodeInfo& ni : s.topo.nodes()) {
      const NodeStats st = s.pa->stats(ni.id).value();
      spare += static_cast<std::int64_t>(st.free + st.cached) - static_cast<std::int64_t>(st.claimed);
      if (ni.id == n) node_room = st.free + st.cached - std::min(st.claimed, st.free + st.cached);
    }
    spare -= static_cast<std::int64_t>(s.pa->global_claimed());
    auto r = s.pa->claim(owner, pages, n);
    if (n != kNoNode && !s.topo.has_node(n)) {
      RC_ASSERT(r.error() == Errc::invalid_node);
    } else if (pages == 0) {
      RC_ASSERT(r.has_value());
    } else {
      const bool fits = spare >= static_cast<std::int64_t>(pages) && (n == kNoNode || node_room >= pages);
      if (!s.offlined_under_claims) RC_ASSERT(r.has_value() == fits);
      if (r) s.claims[{owner, n}] += pages;
      else RC_ASSERT(r.error() == Errc::claim_exceeded);
    }
    s.check_all();
  }
  void show(std::ostream& os) const override {
    os << "Claim(owner " << owner << ", " << pages << ", " << (global ? "global" : "node#") << node << ")";
  }
};

struct Release : Cmd {
  OwnerId owner = *rc::gen::inRange<OwnerId>(1, 4);
  void run(const Model&, Sut& s) const override {
    RC_ASSERT(s.pa->release_owner(owner).has_value());
    for (auto it = s.claims.begin(); it != s.claims.end();)
      it = it->first.first == owner ? s.claims.erase(it) : std::next(it);
    if (s.claims.empty()) s.offlined_under_claims = false;
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "Release(owner " << owner << ")"; }
};

struct Offline : Cmd {
  std::size_t pick = *rc::gen::arbitrary<std::size_t>();
  bool in_held = *rc::gen::arbitrary<bool>();
  void run(const Model&, Sut& s) const override {
    Mfn mfn;
    if (in_held && !s.held.empty()) {
      auto it = std::next(s.held.begin(), static_cast<long>(pick % s.held.size()));
      mfn = it->first + (pick >> 8) % frames_of_order(it->second.order);
    } else {
      mfn = pick % 4096;
    }
    auto r = s.pa->offline(mfn);
    if (s.pa->node_of(mfn) == kNoNode) {
      RC_ASSERT(r.error() == Errc::invalid_frame);
    } else if (s.offlined.count(mfn)) {
      RC_ASSERT(r.value() == OfflineState::offlined);
    } else if (s.holder(mfn) != s.held.end()) {
      RC_ASSERT(r.value() == OfflineState::pending);
      s.pending.insert(mfn);
    } else {
      RC_ASSERT(r.value() == OfflineState::offlined);
      s.offlined.insert(mfn);
      if (!s.claims.empty()) s.offlined_under_claims = true;
    }
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "Offline(#" << pick << (in_held ? " held" : "") << ")"; }
};

struct Scrub : Cmd {
  std::size_t node = *rc::gen::inRange<std::size_t>(0, 16);
  std::uint64_t budget = *rc::gen::inRange<std::uint64_t>(0, 64);
  void run(const Model&, Sut& s) const override {
    const NodeId n = pick_node(s, node);
    const std::uint64_t before = s.topo.has_node(n) ? s.pa->stats(n).value().dirty : 0;
    const std::uint64_t done = s.pa->scrub_some(n, budget);
    if (s.topo.has_node(n)) RC_ASSERT(s.pa->stats(n).value().dirty + done == before);
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "Scrub(node#" << node << ", " << budget << ")"; }
};

struct Drain : Cmd {
  void run(const Model&, Sut& s) const override {
    s.pa->drain_all();
    s.check_all();
  }
  void show(std::ostream& os) const override { os << "DrainAll"; }
};

struct SetCpu : Cmd {
  std::uint32_t cpu = *rc::gen::inRange<std::uint32_t>(0, 5);
  void run(const Model&, Sut& s) const override { s.cpu.cpu = cpu; }
  void show(std::ostream& os) const override { os << "SetCpu(" << cpu << ")"; }
};

void run_model(Topology topo) {
  Sut sut(std::move(topo));
  RC_ASSERT(sut.pa != nullptr);
  Model model;
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<Alloc, Alloc, Alloc, Free, Free, BadFree, Split,
                                                     AllocBulk, AllocBulk, FreeBulk, FreeBulk,
                                                     Claim, Release, Offline, Scrub, Drain,
                                                     SetCpu>());
}

RC_GTEST_PROP(heap_model, OneNode, ()) { run_model(test::one_node(512)); }
RC_GTEST_PROP(heap_model, SparseWithMemorylessNode, ()) { run_model(test::sparse_nodes()); }
RC_GTEST_PROP(heap_model, TwoNodes, ()) { run_model(test::two_nodes(1024)); }

}  // namespace
}  // namespace numaheap
