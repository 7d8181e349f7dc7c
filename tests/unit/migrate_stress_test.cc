// No lost writes: vCPU threads and backend threads (the dirty-log path)
// keep writing per-page sequence numbers into guest pages while the
// migrator moves those pages back and forth (rehomes of whole 2 MiB blocks,
// cancelled rehomes, policy moves of split 4 KiB pages) and a reader checks
// every page against its last acknowledged write. The guest model (see
// migrate_test_model.h) is only as strict as hardware, so the mover's
// write protection, flushes and dirty-log check are what keep the data.
// Every acknowledged write must be found at every read, at every unprotect
// and at the end; every frame is accounted for. A deliberately broken mover
// (copy before write-protect) runs the same harness and must be caught
// every time. Also run under ThreadSanitizer in CI.
//
// Duration: 1 s by default; NUMAHEAP_STRESS_SECONDS=N runs longer.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "migrate_test_model.h"
#include "unit/stress_seconds.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

using test::stress_seconds;

void run_until_rehome_ends(Migrator& m, GuestId id, int max_steps = 10000) {
  for (int i = 0; i < max_steps; ++i) {
    (void)m.step();
    auto p = m.rehome_progress(id);
    if (!p || p->state != RehomeState::running) return;
  }
}

struct StressResult {
  std::uint64_t violations = 0, final_mismatches = 0, rounds = 0, dirty_hits = 0, protect_writes = 0;
  Gfn first_bad = 0;
  bool frames_conserved = false, invariants = false;
};

// Two vCPU writers (each also reads and checks every page it passes), one
// backend writer, the migrator on this thread. Runs at least `seconds`,
// and until the dirty log has caught a backend write at least once
// (bounded).
StressResult run_stress(bool broken_mover, double seconds) {
  StressResult res;
  TwoNodeHost h(8192);
  auto gm = make_guest(h, 8, false, 0);
  EXPECT_TRUE(gm);
  if (!gm) return res;
  const std::uint64_t used_before = h.used();
  // Half the guest as 4 KiB pages, half as 2 MiB blocks.
  EXPECT_TRUE(gm->split_to_pages(0).has_value());
  EXPECT_TRUE(gm->split_to_pages(512).has_value());
  constexpr unsigned kVcpuWriters = 2, kBackends = 1, kEvery = 3;
  GuestModelOptions mo;
  mo.vcpus = kVcpuWriters;
  mo.backends = kBackends;
  mo.backend_every = kEvery;  // gfn % 3 == 2: the backend's; 0 and 1: vCPU 0 and 1
  mo.write_at_protect = true;
  mo.backend_hold_yields = 64;
  GuestModel model(*gm, mo);
  FrameSwapOptions fo;
  fo.batch = 32;
  fo.unsafe_copy_before_protect = broken_mover;
  auto mover = FrameSwapMover::create(*gm, model.hooks(), fo);
  EXPECT_TRUE(mover.has_value());
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  cfg.watermark_fraction = 0;
  cfg.rehome_pages_per_step = 256;
  cfg.scan_pages = 1024;
  auto mig = Migrator::create(h.topo, cfg);
  EXPECT_TRUE(mig.has_value());
  Migrator& m = **mig;
  auto id = m.add_guest(*mover, migrate_options_for(*gm, false));
  EXPECT_TRUE(id.has_value());

  const std::uint64_t pages = gm->ram_pages();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < kVcpuWriters; ++w)
    threads.emplace_back([&, w] {  // vCPU w on node w % 2
      while (!stop.load(std::memory_order_relaxed))
        for (Gfn gfn = w; gfn < pages && !stop.load(std::memory_order_relaxed); gfn += kEvery) {
          (void)model.read_check(w, gfn);
          (void)model.read_check(w, gfn - w + kEvery - 1);  // the backend's page next door
          (void)model.write(w, gfn);
          m.record_access(*id, gfn, w % 2 == 0 ? 0 : 2);
        }
    });
  for (unsigned b = 0; b < kBackends; ++b)
    threads.emplace_back([&, b] {
      while (!stop.load(std::memory_order_relaxed))
        for (Gfn gfn = kEvery - 1; gfn < pages && !stop.load(std::memory_order_relaxed); gfn += kEvery)
          (void)model.backend_write(b, gfn);
    });

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  const auto cap = start + std::chrono::duration<double>(seconds * 10);
  bool ok = true;
  while (ok) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= cap || (now >= deadline && (model.dirty_hits() > 0 || broken_mover))) break;
    ++res.rounds;
    ok = ok && m.rehome(*id, NodeMask::single(1)).has_value();
    run_until_rehome_ends(m, *id);
    ok = ok && m.rehome(*id, NodeMask::single(0)).has_value();
    for (int i = 0; i < 3; ++i) (void)m.step();
    (void)m.cancel_rehome(*id);  // cancelled half way: pages on both nodes
    run_until_rehome_ends(m, *id);
    ok = ok && m.rehome(*id, NodeMask::single(0) | NodeMask::single(1)).has_value();
    for (int i = 0; i < 20; ++i) (void)m.step();  // policy: pages follow their writers
    ok = ok && m.check_invariants().has_value();
  }
  EXPECT_TRUE(ok);
  stop.store(true);
  for (auto& t : threads) t.join();

  for (Gfn gfn = 0; gfn < pages; ++gfn)
    if (!model.final_check(gfn) && res.final_mismatches++ == 0 && model.violations() == 0) res.first_bad = gfn;
  res.violations = model.violations();
  if (res.violations) res.first_bad = model.first_violation();
  res.dirty_hits = model.dirty_hits();
  res.protect_writes = model.protect_writes();
  res.invariants = gm->check_frames().has_value() && h.pa->check_invariants().has_value();
  res.frames_conserved = h.used() == used_before;  // every old frame freed
  const MigratorStats s = m.stats();
  std::printf("%s mover: rounds %llu, pages moved %llu, write faults %llu, flushes %llu, busy %llu, "
              "dirty-log catches %llu, writes at protect %llu, lost writes seen %llu\n",
              broken_mover ? "broken" : "correct", static_cast<unsigned long long>(res.rounds),
              static_cast<unsigned long long>(s.pages_moved), static_cast<unsigned long long>(model.faults()),
              static_cast<unsigned long long>(s.flushes),
              static_cast<unsigned long long>(s.outcomes[static_cast<int>(MoveOutcome::busy)]),
              static_cast<unsigned long long>(res.dirty_hits), static_cast<unsigned long long>(res.protect_writes),
              static_cast<unsigned long long>(res.violations));
  if (!broken_mover) {
    EXPECT_GT(s.pages_moved, pages) << "rounds " << res.rounds;
  }
  return res;
}

}  // namespace

TEST(MigrateStress, NoLostWritesWhilePagesMoveBackAndForth) {
  const StressResult r = run_stress(false, stress_seconds());
  EXPECT_EQ(r.violations, 0u) << "a read missed an acknowledged write, first at gfn " << r.first_bad;
  EXPECT_EQ(r.final_mismatches, 0u) << "first at gfn " << r.first_bad;
  EXPECT_GT(r.protect_writes, 0u);
  EXPECT_GT(r.dirty_hits, 0u) << "the dirty-log path never raced a move";
  EXPECT_TRUE(r.invariants);
  EXPECT_TRUE(r.frames_conserved);
}

// The negative test: a mover that copies before write_protect + flush must
// be caught, every run (the write_protect hook's own write guarantees a
// write lands after such a copy in the very first batch).
TEST(MigrateStress, BrokenMoverThatCopiesBeforeProtectIsCaught) {
  const StressResult r = run_stress(true, std::min(stress_seconds(), 0.3));
  EXPECT_GT(r.violations, 0u) << "a mover that copies before write-protect lost no write?";
  EXPECT_GT(r.protect_writes, 0u);
}

// The migrator's background thread does the moving; stop() joins promptly.
TEST(MigrateStress, BackgroundThreadNoLostWritesAndPromptStop) {
  TwoNodeHost h(4096);
  auto gm = make_guest(h, 4, true);
  ASSERT_TRUE(gm);
  GuestModelOptions mo;
  mo.vcpus = 1;
  mo.backends = 1;
  mo.backend_every = 2;
  mo.write_at_protect = true;
  GuestModel model(*gm, mo);
  auto mover = FrameSwapMover::create(*gm, model.hooks());
  ASSERT_TRUE(mover.has_value());
  MigratorConfig cfg;
  cfg.period_ms = 1;
  cfg.rate_limit_mb_s = 0;
  cfg.watermark_fraction = 0;
  auto mig = Migrator::create(h.topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  auto id = m.add_guest(*mover, migrate_options_for(*gm, true));
  ASSERT_TRUE(id.has_value());
  const std::uint64_t pages = gm->ram_pages();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed))
      for (Gfn gfn = 0; gfn < pages; ++gfn) {
        if (model.backend_page(gfn)) (void)model.backend_write(0, gfn);
        else (void)model.write(0, gfn);
      }
  });
  ASSERT_TRUE(m.start().has_value());
  EXPECT_FALSE(m.start().has_value());  // already running
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds() / 2);
  NodeId p = 1;
  while (std::chrono::steady_clock::now() < end) {  // flip vnode 0 between the nodes
    ASSERT_TRUE(m.bind_vnode(*id, 0, p).has_value());
    m.request_step();  // races the background thread's own wake-ups (TSan)
    p ^= 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto t0 = std::chrono::steady_clock::now();
  m.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_FALSE(m.running());
  m.request_step();  // stopped: nothing
  stop.store(true);
  writer.join();
  EXPECT_EQ(model.violations(), 0u) << "first at gfn " << model.first_violation();
  for (Gfn gfn = 0; gfn < pages; ++gfn) ASSERT_TRUE(model.final_check(gfn)) << "gfn " << gfn;
  EXPECT_GT(m.stats().pages_moved, 0u);
}

// Split, balloon and move of one extent exclude each other: a thread that
// splits and balloons 2 MiB blocks races a mover that keeps moving them
// whole. No frame may leak, and the p2m must agree with the frame table.
TEST(MigrateStress, SplitAndBalloonRaceTheMover) {
  TwoNodeHost h(8192);
  auto gm = make_guest(h, 16, false, 0);
  ASSERT_TRUE(gm);
  const std::uint64_t used_before = h.used();
  GuestModelOptions mo;
  mo.check_at_unprotect = false;  // no writers here; ballooned pages are freed unflushed
  GuestModel model(*gm, mo);
  auto mover = FrameSwapMover::create(*gm, model.hooks(), {8});
  ASSERT_TRUE(mover.has_value());
  const std::uint64_t pages = gm->ram_pages();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> splits{0}, ballooned{0};
  std::thread other([&] {
    std::uint64_t x = 12345;
    while (!stop.load(std::memory_order_relaxed)) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      if (gm->split_to_pages((x >> 33) % pages).has_value()) splits.fetch_add(1);
      auto d = gm->balloon_down(1 + (x >> 40) % 8);
      if (d && *d) {
        ballooned.fetch_add(*d);
        EXPECT_TRUE(gm->balloon_up(*d).has_value());
      }
    }
  });
  std::vector<Gfn> heads;
  for (Gfn g = 0; g < pages; g += 512) heads.push_back(g);
  std::vector<MoveOutcome> out(heads.size());
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds() / 2);
  NodeId target = 1;
  std::uint64_t moves = 0;
  while (std::chrono::steady_clock::now() < end) {
    auto r = mover->move(heads, target, MoveGranularity::whole_blocks, out);
    ASSERT_TRUE(r.has_value());
    moves += r->frames_moved;
    target ^= 1;
  }
  stop.store(true);
  other.join();
  EXPECT_EQ(gm->lost_frames(), 0u);
  EXPECT_TRUE(gm->check_frames().has_value());  // p2m and frame table agree both ways
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  EXPECT_TRUE(h.pa->check_frames().has_value());
  EXPECT_EQ(gm->present_pages(), pages);
  EXPECT_EQ(h.used(), used_before);  // nothing leaked
  std::printf("frames moved %llu, splits %llu, ballooned %llu\n", static_cast<unsigned long long>(moves),
              static_cast<unsigned long long>(splits.load()), static_cast<unsigned long long>(ballooned.load()));
}
