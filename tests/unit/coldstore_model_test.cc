// rapidcheck stateful test of ColdStore against a plain model: per key the
// last page put, whether it was dropped, its node and its age. get returns
// the last put unless the page is ephemeral and was dropped (then it says
// dropped); reclaim drops exactly the oldest ephemeral pages of the node;
// persistent pages never vanish; pages never sit on the guest's home node.
// Other owners take and give back memory in between to create pressure.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "numaheap/cold_store.h"
#include "sharing_test_support.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

constexpr NodeId kNodes = 3;  // guest home: node 0
constexpr OwnerId kHog = 555;

struct Stored {
  std::uint32_t tag = 0;
  bool dropped = false;
  NodeId node = kNoNode;
  std::uint64_t age = 0;
};
using Key = std::tuple<int, ObjectId, std::uint32_t>;  // pool slot (0 eph, 1 pers), object, index

struct Model {};  // the reference model lives beside the SUT (see Sut::model)

struct Sut {
  Topology topo = line_nodes(kNodes, 48);
  FakeMachine mem{topo};
  std::unique_ptr<PageAllocator> pa;
  std::unique_ptr<ColdStore> cs;
  PoolId pool[2] = {};
  std::map<Key, Stored> model;
  std::uint64_t clock = 0;
  std::vector<Mfn> hog[kNodes];
  Sut() {
    pa = std::move(PageAllocator::create(topo, mem.platform())).value();
    ColdStoreConfig c;
    c.owner = 444;
    c.max_entries = 512;
    c.watermark_pages = 4;
    c.watermark_fraction = 0;
    c.room_recheck = 1;  // exact watermarks
    c.access = mem.access();
    cs = std::move(ColdStore::create(*pa, c)).value();
    pool[0] = *cs->create_pool(NodeMask::single(0), PoolKind::ephemeral);
    pool[1] = *cs->create_pool(NodeMask::single(0), PoolKind::persistent);
  }
  ~Sut() {
    for (NodeId n = 0; n < kNodes; ++n)
      for (Mfn m : hog[n]) (void)pa->free(m, 0, kHog);
  }
};

// Pages the store dropped on its own (a persistent put making room) show
// up as live-in-model but absent-in-store: only ephemeral ones may.
void sync_and_check(Sut& s) {
  RC_ASSERT(s.cs->check_invariants().has_value());
  RC_ASSERT(s.pa->check_invariants().has_value());
  for (auto& [key, st] : s.model) {
    const auto& [slot, obj, idx] = key;
    const NodeId n = s.cs->node_of(s.pool[slot], obj, idx);
    if (st.dropped) {
      RC_ASSERT(n == kNoNode);
      continue;
    }
    if (n == kNoNode) {
      RC_ASSERT(slot == 0);  // only ephemeral pages may vanish
      st.dropped = true;
      continue;
    }
    RC_ASSERT(n == st.node);
    RC_ASSERT(n != 0u);  // never on the home node
  }
}

struct Put : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, 2);
  ObjectId obj = *rc::gen::inRange<ObjectId>(0, 3);
  std::uint32_t idx = *rc::gen::inRange<std::uint32_t>(0, 24);
  std::uint32_t tag = *rc::gen::inRange<std::uint32_t>(1, 1000);
  void run(const Model&, Sut& s) const override {
    unsigned char page[kFrameSize];
    fill_page(page, tag);
    const Key key{slot, obj, idx};
    auto it = s.model.find(key);
    const bool had_page = it != s.model.end() && !it->second.dropped;
    auto r = s.cs->put(s.pool[slot], obj, idx, page);
    if (had_page) RC_ASSERT(r.has_value());  // overwrite in place never fails
    if (r) {
      RC_ASSERT(*r != 0u);
      const NodeId node = had_page ? it->second.node : *r;
      RC_ASSERT(*r == node);
      s.model[key] = Stored{tag, false, node, ++s.clock};
    } else {
      RC_ASSERT(r.error() == Errc::no_memory);
    }
    sync_and_check(s);
  }
  void show(std::ostream& os) const override {
    os << "Put(" << (slot ? "pers" : "eph") << ", " << obj << ", " << idx << ", tag " << tag << ")";
  }
};

struct Get : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, 2);
  ObjectId obj = *rc::gen::inRange<ObjectId>(0, 3);
  std::uint32_t idx = *rc::gen::inRange<std::uint32_t>(0, 24);
  void run(const Model&, Sut& s) const override {
    unsigned char out[kFrameSize];
    auto r = s.cs->get(s.pool[slot], obj, idx, out);
    RC_ASSERT(r.has_value());
    auto it = s.model.find(Key{slot, obj, idx});
    if (it == s.model.end()) {
      RC_ASSERT(*r == ColdGet::miss);
    } else if (it->second.dropped) {
      RC_ASSERT(*r == ColdGet::dropped);
    } else {
      RC_ASSERT(*r == ColdGet::hit);
      RC_ASSERT(page_is(out, it->second.tag));
    }
  }
  void show(std::ostream& os) const override { os << "Get(" << slot << ", " << obj << ", " << idx << ")"; }
};

struct Flush : rc::state::Command<Model, Sut> {
  int slot = *rc::gen::inRange(0, 2);
  ObjectId obj = *rc::gen::inRange<ObjectId>(0, 3);
  std::uint32_t idx = *rc::gen::inRange<std::uint32_t>(0, 24);
  bool whole_object = *rc::gen::inRange(0, 4) == 0;
  void run(const Model&, Sut& s) const override {
    if (whole_object) {
      auto r = s.cs->flush_object(s.pool[slot], obj);
      RC_ASSERT(r.has_value());
      std::uint64_t expect = 0;
      for (auto it = s.model.begin(); it != s.model.end();) {
        if (std::get<0>(it->first) == slot && std::get<1>(it->first) == obj) {
          ++expect;
          it = s.model.erase(it);
        } else {
          ++it;
        }
      }
      RC_ASSERT(*r == expect);
    } else {
      RC_ASSERT(s.cs->flush(s.pool[slot], obj, idx).has_value());
      s.model.erase(Key{slot, obj, idx});
    }
    sync_and_check(s);
  }
  void show(std::ostream& os) const override {
    os << (whole_object ? "FlushObject(" : "Flush(") << slot << ", " << obj << ", " << idx << ")";
  }
};

struct Reclaim : rc::state::Command<Model, Sut> {
  NodeId node = *rc::gen::inRange<NodeId>(0, kNodes);
  std::uint64_t pages = *rc::gen::inRange<std::uint64_t>(0, 8);
  void run(const Model&, Sut& s) const override {
    std::vector<std::pair<std::uint64_t, Key>> eph;  // live ephemeral on node, by age
    for (const auto& [key, st] : s.model)
      if (std::get<0>(key) == 0 && !st.dropped && st.node == node) eph.push_back({st.age, key});
    std::sort(eph.begin(), eph.end());
    const std::uint64_t got = s.cs->reclaim(node, pages);
    RC_ASSERT(got == std::min<std::uint64_t>(pages, eph.size()));
    for (std::uint64_t k = 0; k < got; ++k) s.model[eph[k].second].dropped = true;
    for (std::uint64_t k = got; k < eph.size(); ++k)
      RC_ASSERT(s.cs->node_of(s.pool[0], std::get<1>(eph[k].second), std::get<2>(eph[k].second)) == node);
    sync_and_check(s);
  }
  void show(std::ostream& os) const override { os << "Reclaim(node " << node << ", " << pages << ")"; }
};

struct Pressure : rc::state::Command<Model, Sut> {
  NodeId node = *rc::gen::inRange<NodeId>(1, kNodes);
  int pages = *rc::gen::inRange(-20, 20);  // >0 another owner takes, <0 gives back
  void run(const Model&, Sut& s) const override {
    auto& h = s.hog[node];
    for (int k = 0; k < pages; ++k) {
      auto a = s.pa->alloc(AllocRequest{0, node, AllocFlags::exact_node, kHog, {}});
      if (!a) break;
      h.push_back(a->mfn);
    }
    for (int k = 0; k < -pages && !h.empty(); ++k) {
      RC_ASSERT(s.pa->free(h.back(), 0, kHog).has_value());
      h.pop_back();
    }
    sync_and_check(s);
  }
  void show(std::ostream& os) const override { os << "Pressure(node " << node << ", " << pages << ")"; }
};

}  // namespace

RC_GTEST_PROP(ColdStoreModel, GetReturnsLastPutUnlessEphemeralAndDropped, ()) {
  Model model;
  Sut sut;
  rc::state::check(model, sut,
                   rc::state::gen::execOneOfWithArgs<Put, Put, Put, Get, Get, Flush, Reclaim, Pressure>());
  // Destroying the pools gives every frame back.
  for (PoolId p : sut.pool) RC_ASSERT(sut.cs->destroy_pool(p).has_value());
  for (NodeId n = 1; n < kNodes; ++n) RC_ASSERT(sut.pa->stats(n)->used == sut.hog[n].size());
}
