// Broken-RAM evacuation scenarios shared by migrate_rehome_test (the real
// migrator: the page leaves its failing frame) and migrate_evacuate_broken_test
// (a migrator with evacuation deliberately broken, numaheap_faulty: the same
// scenario must report the violation, or its passing proves nothing).
// Each returns what it saw; the test asserts.
#pragma once

#include <cstdint>
#include <memory>

#include "migrate_test_model.h"

namespace numaheap::test {

struct EvacuateResult {
  bool set_up = false;            // the rig was built and the frame marked pending
  bool left_bad_frame = false;    // the victim's p2m entry no longer maps the bad frame
  NodeId victim_node = kNoNode;   // where the victim is now
  std::uint64_t pending_offline = 0, offlined = 0;  // node 0, after one step
  std::uint64_t pages_evacuated = 0;                // after one step
  std::uint64_t guest_evacuated = 0;                // the guest's own count (guest_stats), after one step
  std::uint64_t evacuated_again = 0;                // after a second step (0: nothing searched twice)
  std::uint64_t wrong_pages = 0;  // pages not holding what was written
  bool frames_ok = false;         // PageAllocator::check_frames
  bool guest_ok = false;          // GuestMemory::check_invariants + check_frames
};

// A 4 MiB guest on node 0 of a two-node host (host-memory mode), every page
// written; the frame under gfn 700 is marked pending offline; one migrator
// step (auto-balance on, but scanning one page a step, so only evacuation
// can move the page in time) must move the whole 2 MiB block off it on the
// same node and retire the frame.
inline EvacuateResult pending_offline_in_host_memory() {
  EvacuateResult res;
  TwoNodeHost h(4096);
  auto gm = make_guest(h, 4, false, 0);
  if (!gm) return res;
  GuestModel model(*gm, 4);
  auto mv = FrameSwapMover::create(*gm, model.hooks());
  MigratorConfig c;
  c.rate_limit_mb_s = 0;
  c.watermark_fraction = 0;
  c.decay_steps = 1000;
  c.scan_pages = 1;
  auto mg = Migrator::create(h.topo, c);
  if (!mv || !mg) return res;
  Migrator& m = **mg;
  auto o = migrate_options_for(*gm, false);
  o.auto_balance = true;
  auto id = m.add_guest(*mv, o);
  if (!id) return res;
  for (Gfn g = 0; g < gm->ram_pages(); ++g)
    if (!model.write(2, g, g ^ 0x5a5a)) return res;
  const Gfn victim = 700;
  const Mfn bad = gm->lookup(victim).mfn;
  auto st = h.pa->offline(bad);
  if (!st || *st != OfflineState::pending) return res;
  res.set_up = true;
  (void)m.step_at(1);
  res.left_bad_frame = gm->lookup(victim).mfn != bad;
  res.victim_node = h.pa->node_of(gm->lookup(victim).mfn);
  res.pending_offline = h.pa->stats(0)->pending_offline;
  res.offlined = h.pa->stats(0)->offlined;
  res.pages_evacuated = m.stats().pages_evacuated;
  res.guest_evacuated = m.guest_stats(*id) ? m.guest_stats(*id)->pages_evacuated : 0;
  for (Gfn g = 0; g < gm->ram_pages(); ++g) res.wrong_pages += model.read(g) != (g ^ 0x5a5a);
  (void)m.step_at(2);
  res.evacuated_again = m.stats().pages_evacuated - res.pages_evacuated;
  res.frames_ok = h.pa->check_frames().has_value();
  res.guest_ok = gm->check_invariants().has_value() && gm->check_frames().has_value();
  return res;
}

}  // namespace numaheap::test
