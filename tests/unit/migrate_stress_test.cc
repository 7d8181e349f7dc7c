// No lost writes: vCPU threads keep writing a known sequence into guest
// pages through the p2m while the migrator moves those pages back and forth
// (rehomes of whole 2 MiB blocks, cancelled rehomes, policy moves of split
// 4 KiB pages). At the end every page holds exactly the last value written
// and every frame is accounted for. Also run under ThreadSanitizer in CI.
//
// Duration: 1 s by default; NUMAHEAP_STRESS_SECONDS=N runs longer.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "migrate_test_model.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

double stress_seconds() {
  const char* s = std::getenv("NUMAHEAP_STRESS_SECONDS");
  return s && std::atof(s) > 0 ? std::atof(s) : 1.0;
}

void run_until_rehome_ends(Migrator& m, GuestId id, int max_steps = 10000) {
  for (int i = 0; i < max_steps; ++i) {
    (void)m.step();
    auto p = m.rehome_progress(id);
    if (!p || p->state != RehomeState::running) return;
  }
}

}  // namespace

TEST(MigrateStress, NoLostWritesWhilePagesMoveBackAndForth) {
  TwoNodeHost h(8192);
  auto gm = make_guest(h, 8, false, 0);
  ASSERT_TRUE(gm);
  const std::uint64_t used_before = h.used();
  // Half the guest as 4 KiB pages, half as 2 MiB blocks.
  ASSERT_TRUE(gm->split_to_pages(0).has_value());
  ASSERT_TRUE(gm->split_to_pages(512).has_value());
  GuestModel model(*gm, 4);
  auto mover = FrameSwapMover::create(*gm, model.hooks(), {16});
  ASSERT_TRUE(mover.has_value());
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  cfg.watermark_fraction = 0;
  cfg.rehome_pages_per_step = 256;
  cfg.scan_pages = 1024;
  auto mig = Migrator::create(h.topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  auto id = m.add_guest(*mover, migrate_options_for(*gm, false));
  ASSERT_TRUE(id.has_value());

  const std::uint64_t pages = gm->ram_pages();
  constexpr unsigned kWriters = 4;
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::uint64_t>> last(kWriters, std::vector<std::uint64_t>(pages, 0));
  std::vector<std::thread> writers;
  for (unsigned w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      std::uint64_t seq = 1;
      // Writer w owns pages gfn % kWriters == w; its vCPU runs on node w % 2.
      while (!stop.load(std::memory_order_relaxed)) {
        for (Gfn gfn = w; gfn < pages && !stop.load(std::memory_order_relaxed); gfn += kWriters) {
          const std::uint64_t v = (seq++ << 8) | w;
          if (model.write(w, gfn, v)) last[w][gfn] = v;
          m.record_access(*id, gfn, w % 2 == 0 ? 0 : 2);
        }
      }
    });

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
  std::uint64_t rounds = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    ++rounds;
    ASSERT_TRUE(m.rehome(*id, NodeMask::single(1)).has_value());
    run_until_rehome_ends(m, *id);
    ASSERT_TRUE(m.rehome(*id, NodeMask::single(0)).has_value());
    for (int i = 0; i < 3; ++i) (void)m.step();
    (void)m.cancel_rehome(*id);  // cancelled half way: pages on both nodes
    run_until_rehome_ends(m, *id);
    ASSERT_TRUE(m.rehome(*id, NodeMask::single(0) | NodeMask::single(1)).has_value());
    for (int i = 0; i < 20; ++i) (void)m.step();  // policy: pages follow their writers
    ASSERT_TRUE(m.check_invariants().has_value());
  }
  stop.store(true);
  for (auto& t : writers) t.join();

  for (Gfn gfn = 0; gfn < pages; ++gfn)
    ASSERT_EQ(model.read(gfn), last[gfn % kWriters][gfn]) << "gfn " << gfn;
  EXPECT_TRUE(gm->check_invariants().has_value());
  EXPECT_TRUE(h.pa->check_invariants().has_value());
  EXPECT_EQ(h.used(), used_before);  // frames conserved: every old frame freed
  const MigratorStats s = m.stats();
  EXPECT_GT(s.pages_moved, pages) << "rounds " << rounds;
  EXPECT_GT(s.flushes, 0u);
  std::printf("rounds %llu, pages moved %llu, write faults %llu, flushes %llu, busy %llu\n",
              static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(s.pages_moved),
              static_cast<unsigned long long>(model.faults()), static_cast<unsigned long long>(s.flushes),
              static_cast<unsigned long long>(s.outcomes[static_cast<int>(MoveOutcome::busy)]));
}

// The migrator's background thread does the moving; stop() joins promptly.
TEST(MigrateStress, BackgroundThreadNoLostWritesAndPromptStop) {
  TwoNodeHost h(4096);
  auto gm = make_guest(h, 4, true);
  ASSERT_TRUE(gm);
  GuestModel model(*gm, 2);
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
  std::vector<std::uint64_t> last(pages, 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::uint64_t seq = 1;
    while (!stop.load(std::memory_order_relaxed))
      for (Gfn gfn = 0; gfn < pages; ++gfn)
        if (model.write(0, gfn, seq)) last[gfn] = seq++;
  });
  ASSERT_TRUE(m.start().has_value());
  EXPECT_FALSE(m.start().has_value());  // already running
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds() / 2);
  NodeId p = 1;
  while (std::chrono::steady_clock::now() < end) {  // flip vnode 0 between the nodes
    ASSERT_TRUE(m.bind_vnode(*id, 0, p).has_value());
    p ^= 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto t0 = std::chrono::steady_clock::now();
  m.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_FALSE(m.running());
  stop.store(true);
  writer.join();
  for (Gfn gfn = 0; gfn < pages; ++gfn) ASSERT_EQ(model.read(gfn), last[gfn]) << "gfn " << gfn;
  EXPECT_GT(m.stats().pages_moved, 0u);
}
