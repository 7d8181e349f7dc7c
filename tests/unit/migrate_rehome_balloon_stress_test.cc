// Rehome racing ballooning and vCPU writers (issue 12 gap): one thread
// rehomes the guest back and forth (Migrator::rehome + step, single- and
// two-node targets, some cancelled half way), one balloons it down and up
// again (the guest lock, then layout_lock inside, while the rehome's
// relayout takes them in the same order), and vCPU writers write and check
// per-page sequence numbers (tests/unit/migrate_test_model.h). At the end:
// no lost write, no leaked frame (GuestMemory::check_frames,
// PageAllocator::check_frames), layout and home consistent
// (check_invariants, home = the last rehome's target), and no deadlock (the
// test finishes). Run under TSan in CI.
//
// The balloon thread plays the guest's balloon driver: a guest never
// touches a page it is giving back, so the writers (vCPUs of the same
// guest) pause while it runs (a shared_mutex), and it tells the model to
// forget the sequence of each page that went out. The migrator and the
// rehome are not paused: they race both.
//
// Duration: 1 s by default; NUMAHEAP_STRESS_SECONDS=N runs longer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "migrate_test_model.h"
#include "numaheap/cold_store.h"
#include "unit/stress_seconds.h"

using namespace numaheap;
using namespace numaheap::test;

namespace {

using test::stress_seconds;

// One run; with `broken_mover` the mover copies before write protection
// (FrameSwapOptions::unsafe_copy_before_protect) and the write_protect hook
// writes into each run, so a write is lost on every move: the run must
// report it (violations), or its passing proves nothing. Only a correct
// run checks frames, layout and home at the end.
void run_stress(bool broken_mover, double seconds, std::uint64_t& violations) {
  TwoNodeHost h(8192);
  auto gm = make_guest(h, 8, false, 0, 7, true);
  ASSERT_TRUE(gm);
  ASSERT_TRUE(gm->split_to_pages(512).has_value());  // 4 KiB pages too
  constexpr unsigned kWriters = 2;
  GuestModelOptions mo;
  mo.vcpus = kWriters;
  // The unprotect hook's check could read a page's acknowledged value, then
  // see it ballooned and back with a fresh frame: the writers check instead.
  mo.check_at_unprotect = false;
  mo.write_at_protect = broken_mover;
  GuestModel model(*gm, mo);
  FrameSwapOptions fo;
  fo.batch = 16;
  fo.unsafe_copy_before_protect = broken_mover;
  auto mover = FrameSwapMover::create(*gm, model.hooks(), fo);
  ASSERT_TRUE(mover.has_value());
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  cfg.watermark_fraction = 0;
  cfg.rehome_pages_per_step = 256;
  auto mig = Migrator::create(h.topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  auto o = migrate_options_for(*gm, false);
  o.auto_balance = false;
  auto id = m.add_guest(*mover, o);
  ASSERT_TRUE(id.has_value());

  const std::uint64_t pages = gm->ram_pages();
  std::shared_mutex guest_running;  // shared: vCPUs run; exclusive: balloon driver
  std::atomic<bool> balloon_waiting{false};  // writers yield to the balloon driver
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> writes{0}, ballooned{0}, balloon_errors{0}, rehomes{0};
  // A cold-store pool made from the guest follows its home on its own
  // (GuestHome): a thread puts and gets through it while the home changes.
  auto cs = ColdStore::create(*h.pa, ColdStoreConfig{});
  ASSERT_TRUE(cs.has_value());
  ColdStore& cold = **cs;
  auto pool = cold.create_pool(*gm, PoolKind::persistent);
  ASSERT_TRUE(pool.has_value());
  std::atomic<std::uint64_t> cold_puts{0}, cold_bad{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    std::vector<unsigned char> page(kFrameSize), out(kFrameSize);
    std::vector<unsigned char> stored(16, 0);  // last byte put under each index (0: none)
    for (unsigned k = 1; !stop.load(std::memory_order_relaxed); ++k) {
      const std::uint32_t i = k % 16;
      page[0] = static_cast<unsigned char>(k | 1);
      if (cold.put(*pool, 1, i, page.data())) {
        stored[i] = page[0];
        cold_puts.fetch_add(1, std::memory_order_relaxed);
      }  // no_memory while the guest lives on both nodes: nothing outside its home
      if (!stored[i]) continue;
      auto got = cold.get(*pool, 1, i, out.data());
      if (!got || *got != ColdGet::hit || out[0] != stored[i]) cold_bad.fetch_add(1);
    }
  });
  for (unsigned w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      std::uint64_t x = 0x9e3779b97f4a7c15ull * (w + 1);
      while (!stop.load(std::memory_order_relaxed)) {
        while (balloon_waiting.load(std::memory_order_acquire)) std::this_thread::yield();
        std::shared_lock<std::shared_mutex> running(guest_running);
        for (int i = 0; i < 64; ++i) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          const Gfn gfn = (x % (pages / kWriters)) * kWriters + w;  // each page has one writer
          (void)model.read_check(w, gfn);
          if (model.write(w, gfn)) writes.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  threads.emplace_back([&] {  // the balloon driver
    std::uint64_t x = 12345;
    while (!stop.load(std::memory_order_relaxed)) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      balloon_waiting.store(true, std::memory_order_release);
      std::unique_lock<std::shared_mutex> paused(guest_running);
      balloon_waiting.store(false, std::memory_order_release);
      auto d = gm->balloon_down(1 + x % 96);
      if (!d) {
        balloon_errors.fetch_add(1);
        continue;
      }
      for (Gfn g = 0; g < pages; ++g)
        if (!gm->lookup(g).present()) model.forget(g);
      ballooned.fetch_add(*d);
      if (!gm->balloon_up(*d)) balloon_errors.fetch_add(1);
    }
  });

  // This thread rehomes: {1}, {0}, {0,1}, {1} cancelled half way, ...
  NodeMask both = NodeMask::single(0);
  both.set(1);
  const NodeMask targets[] = {NodeMask::single(1), NodeMask::single(0), both, NodeMask::single(1)};
  NodeMask last = NodeMask::single(0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t now = 1;
  bool rehome_ok = true;
  for (unsigned round = 0; rehome_ok && std::chrono::steady_clock::now() < deadline; ++round) {
    const NodeMask t = targets[round % 4];
    if (!m.rehome(*id, t).has_value()) {
      rehome_ok = false;
      break;
    }
    last = t;
    rehomes.fetch_add(1);
    for (int s = 0; s < 10000; ++s) {
      (void)m.step_at(now++);
      if (round % 4 == 3 && s == 1) (void)m.cancel_rehome(*id);
      auto p = m.rehome_progress(*id);
      if (!p || p->state != RehomeState::running) break;
    }
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  ASSERT_TRUE(rehome_ok);
  std::printf("rehomes %llu, writes %llu, ballooned %llu, balloon errors %llu\n",
              static_cast<unsigned long long>(rehomes.load()), static_cast<unsigned long long>(writes.load()),
              static_cast<unsigned long long>(ballooned.load()), static_cast<unsigned long long>(balloon_errors.load()));
  EXPECT_EQ(balloon_errors.load(), 0u);
  EXPECT_GT(writes.load(), 0u);
  EXPECT_GT(ballooned.load(), 0u);
  violations = model.violations();
  if (broken_mover) return;
  EXPECT_EQ(cold_bad.load(), 0u);
  EXPECT_GT(cold_puts.load(), 0u);
  if (last.count() == 1) {  // a node is left outside the home: one put follows the last rehome
    std::vector<unsigned char> page(kFrameSize, 7);
    auto at = cold.put(*pool, 2, 0, page.data());
    ASSERT_TRUE(at.has_value());
    EXPECT_FALSE(last.test(*at));
    for (std::uint32_t i = 0; i < 16; ++i) {
      const NodeId n = cold.node_of(*pool, 1, i);
      if (n != kNoNode) {
        EXPECT_FALSE(last.test(n)) << i;
      }
    }
  }
  EXPECT_TRUE(cold.check_invariants().has_value());
  EXPECT_TRUE(cold.destroy_pool(*pool).has_value());
  EXPECT_EQ(model.violations(), 0u) << "first lost write at gfn " << model.first_violation();
  for (Gfn g = 0; g < pages; ++g) {
    ASSERT_TRUE(gm->lookup(g).present()) << g;
    ASSERT_FALSE(gm->lookup(g).flags & P2mFlags::migrating) << g;
    ASSERT_TRUE(model.final_check(g)) << "gfn " << g;
  }
  EXPECT_EQ(gm->home_nodes(), last);
  for (const auto& r : gm->layout()) EXPECT_TRUE(last.test(r.pnode));
  EXPECT_TRUE(gm->check_invariants().has_value());
  EXPECT_TRUE(gm->check_frames().has_value());
  EXPECT_TRUE(m.check_invariants().has_value());
  EXPECT_TRUE(h.pa->check_frames().has_value());
  EXPECT_EQ(h.pa->claimed_by(gm->owner()), 0u);
  (void)m.remove_guest(*id);
  ASSERT_TRUE(gm->destroy().has_value());
  EXPECT_EQ(h.used(), 0u);
}

}  // namespace

TEST(MigrateRehomeBalloonStress, RehomeRacesBalloonAndWriters) {
  std::uint64_t violations = 0;
  run_stress(false, stress_seconds(), violations);
}

TEST(MigrateRehomeBalloonStress, BrokenMoverIsCaught) {
  std::uint64_t violations = 0;
  run_stress(true, std::min(stress_seconds(), 0.3), violations);
  EXPECT_GT(violations, 0u) << "the scenario missed writes lost by a mover that copies before protecting";
}
