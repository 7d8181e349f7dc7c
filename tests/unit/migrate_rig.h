// The migrator tests' rig (policy, rehome, vCPU advice): a guest of `mb`
// MiB on node 0 of a TwoNodeHost with `frames` per node (two vnodes, one a
// node, when `vnuma`), the model of its contents, a frame-swap mover over
// it and a migrator with config `cfg`. add() registers the guest.
#pragma once

#include <memory>

#include "migrate_test_model.h"

namespace numaheap::test {

struct MigrateRig {
  TwoNodeHost h;
  std::unique_ptr<GuestMemory> gm;
  std::unique_ptr<GuestModel> model;
  std::unique_ptr<FrameSwapMover> mover;
  std::unique_ptr<Migrator> m;
  GuestId id = 0;
  bool vnuma = false;

  MigrateRig(const MigratorConfig& cfg, bool vnuma_bound, std::uint64_t mb, std::uint64_t frames, unsigned nodes = 2)
      : h(frames, MemoryMode::host_memory, nodes), vnuma(vnuma_bound) {
    gm = make_guest(h, mb, vnuma, 0);
    model = std::make_unique<GuestModel>(*gm, 4);
    auto mv = FrameSwapMover::create(*gm, model->hooks());
    EXPECT_TRUE(mv.has_value());
    mover = std::make_unique<FrameSwapMover>(*mv);
    auto mg = Migrator::create(h.topo, cfg);
    EXPECT_TRUE(mg.has_value());
    m = std::move(*mg);
  }
  // Registers the guest, moved by `mv`; auto_balance off: only bindings and rehome move pages.
  void add(Mover& mv, bool auto_balance = true) {
    MigrateGuestOptions o = migrate_options_for(*gm, vnuma);
    o.auto_balance = auto_balance;
    auto r = m->add_guest(mv, o);
    ASSERT_TRUE(r.has_value());
    id = *r;
  }
  NodeId node(Gfn gfn) const { return h.pa->node_of(gm->lookup(gfn).mfn); }
};

}  // namespace numaheap::test
