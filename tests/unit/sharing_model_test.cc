// rapidcheck stateful test of SharingManager against a plain model: the
// model is what each guest page holds (a content tag; 0 = zeros). After any
// sequence of writes (from any node), scans, unshares, unmerge_all and
// policy switches, every guest reads exactly the model's bytes, shared
// frames obey the policy in force when they were made, frame accounting
// adds up, and every component passes its invariant check.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>

#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr int kGuests = 3;
constexpr Gfn kPages = 12;
constexpr NodeId kNodes = 3;
constexpr NodeId kHome[kGuests] = {0, 1, 0};

struct Model {
  std::uint32_t tag[kGuests][kPages] = {};  // fresh memory reads as zeros
};

struct Sut {
  Topology topo = line_nodes(kNodes, 256);
  FakeMachine mem{topo};
  std::unique_ptr<PageAllocator> pa;
  std::unique_ptr<SharingManager> sm;
  std::unique_ptr<GuestMemory> g[kGuests];
  Sut() {
    pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    SharingConfig c;
    c.owner = 4000;
    c.access = mem.access();
    sm = std::move(SharingManager::create(*pa, c)).value();
    for (int i = 0; i < kGuests; ++i) {
      g[i] = pinned_guest(*pa, "g", static_cast<OwnerId>(i + 1), kHome[i], kPages);
      RC_ASSERT(sm->add_guest(*g[i]).has_value());
    }
  }
  ~Sut() {
    for (auto& x : g) (void)sm->remove_guest(*x);
  }
};

void check_all(const Model& m, Sut& s) {
  RC_ASSERT(s.sm->check_invariants().has_value());
  RC_ASSERT(s.pa->check_invariants().has_value());
  std::uint64_t private_pages = 0;
  std::map<Mfn, std::vector<NodeId>> sharers;  // shared frame -> home nodes of its users
  for (int i = 0; i < kGuests; ++i) {
    RC_ASSERT(s.g[i]->check_invariants().has_value());
    for (Gfn k = 0; k < kPages; ++k) {
      RC_ASSERT(page_is(guest_page(s.mem, *s.g[i], k), m.tag[i][k]));
      P2mEntry e = s.g[i]->lookup(k);
      if (e.flags & P2mFlags::shared) sharers[e.mfn].push_back(kHome[i]);
      else ++private_pages;
    }
  }
  SharingStats st = s.sm->stats();
  RC_ASSERT(st.pages_shared == sharers.size());
  std::uint64_t used = 0;
  for (NodeId n = 0; n < kNodes; ++n) used += s.pa->stats(n)->used;
  RC_ASSERT(used == private_pages + st.pages_shared);  // no leak, no double count
}

struct Write : rc::state::Command<Model, Sut> {
  int guest = *rc::gen::inRange(0, kGuests);
  Gfn gfn = *rc::gen::inRange<Gfn>(0, kPages);
  std::uint32_t tag = *rc::gen::inRange<std::uint32_t>(0, 4);  // few tags: many duplicates
  NodeId writer = *rc::gen::inRange<NodeId>(0, kNodes);
  void apply(Model& m) const override { m.tag[guest][gfn] = tag; }
  void run(const Model& m, Sut& s) const override {
    RC_ASSERT(guest_write(*s.sm, s.mem, *s.g[guest], gfn, tag, writer).has_value());
    Model next = m;
    apply(next);
    check_all(next, s);
  }
  void show(std::ostream& os) const override {
    os << "Write(g" << guest << ", " << gfn << ", tag " << tag << ", node " << writer << ")";
  }
};

struct Scan : rc::state::Command<Model, Sut> {
  int guest = *rc::gen::inRange(0, kGuests);
  Gfn first = *rc::gen::inRange<Gfn>(0, kPages);
  std::uint64_t count = *rc::gen::inRange<std::uint64_t>(1, kPages + 2);
  void run(const Model& m, Sut& s) const override {
    // Node of every private page before; a page merged by this scan must
    // have been allowed to map a frame on the frame's node.
    NodeId before[kGuests][kPages];
    for (int i = 0; i < kGuests; ++i)
      for (Gfn k = 0; k < kPages; ++k) {
        P2mEntry e = s.g[i]->lookup(k);
        before[i][k] = (e.flags & P2mFlags::shared) ? kNoNode : s.pa->node_of(e.mfn);
      }
    RC_ASSERT(s.sm->scan(*s.g[guest], first, count).has_value());
    const SharingPolicy policy = s.sm->policy();
    for (int i = 0; i < kGuests; ++i)
      for (Gfn k = 0; k < kPages; ++k) {
        P2mEntry e = s.g[i]->lookup(k);
        if (before[i][k] == kNoNode || !(e.flags & P2mFlags::shared)) continue;
        RC_ASSERT(policy.allows(s.topo, before[i][k], s.pa->node_of(e.mfn)));
        if (m.tag[i][k] == 0) RC_ASSERT(s.pa->node_of(e.mfn) == before[i][k]);  // own node's zero frame
      }
    check_all(m, s);
  }
  void show(std::ostream& os) const override { os << "Scan(g" << guest << ", " << first << "+" << count << ")"; }
};

struct Unshare : rc::state::Command<Model, Sut> {
  int guest = *rc::gen::inRange(0, kGuests);
  Gfn gfn = *rc::gen::inRange<Gfn>(0, kPages);
  void run(const Model& m, Sut& s) const override {
    const bool was_shared = s.g[guest]->lookup(gfn).flags & P2mFlags::shared;
    RC_ASSERT(s.sm->unshare(*s.g[guest], gfn).has_value());
    P2mEntry e = s.g[guest]->lookup(gfn);
    RC_ASSERT(!(e.flags & P2mFlags::shared));
    if (was_shared) RC_ASSERT(s.pa->node_of(e.mfn) == kHome[guest]);
    check_all(m, s);
  }
  void show(std::ostream& os) const override { os << "Unshare(g" << guest << ", " << gfn << ")"; }
};

struct UnmergeAll : rc::state::Command<Model, Sut> {
  void run(const Model& m, Sut& s) const override {
    RC_ASSERT(s.sm->unmerge_all().has_value());
    RC_ASSERT(s.sm->stats().pages_sharing == 0u);
    check_all(m, s);
  }
  void show(std::ostream& os) const override { os << "UnmergeAll"; }
};

struct SetPolicy : rc::state::Command<Model, Sut> {
  int which = *rc::gen::inRange(0, 3);
  SharingPolicy policy() const {
    return which == 0 ? SharingPolicy::across_nodes()
                      : which == 1 ? SharingPolicy::same_node_only() : SharingPolicy::within_distance(20);
  }
  void run(const Model& m, Sut& s) const override {
    const bool merged = s.sm->stats().pages_sharing > 0;
    const SharingPolicy before = s.sm->policy();
    Status st = s.sm->set_policy(policy());
    if (merged && !(before == policy())) {
      RC_ASSERT(!st.has_value());
      RC_ASSERT(st.error() == Errc::busy);
      RC_ASSERT(s.sm->policy() == before);
    } else {
      RC_ASSERT(st.has_value());
      RC_ASSERT(s.sm->policy() == policy());
    }
    check_all(m, s);
  }
  void show(std::ostream& os) const override { os << "SetPolicy(" << which << ")"; }
};

}  // namespace

RC_GTEST_PROP(SharingModel, EveryGuestReadsWhatItWrote, ()) {
  Model model;
  Sut sut;
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<Write, Write, Write, Scan, Scan, Unshare, UnmergeAll,
                                                     SetPolicy>());
  for (auto& g : sut.g) RC_ASSERT(sut.sm->remove_guest(*g).has_value());
  RC_ASSERT(sut.sm->stats().pages_shared == 0u);
  for (auto& g : sut.g) RC_ASSERT(g->destroy().has_value());
  for (NodeId n = 0; n < kNodes; ++n) RC_ASSERT(sut.pa->stats(n)->used == 0u);
  RC_ASSERT(sut.pa->check_frames().has_value());
}
