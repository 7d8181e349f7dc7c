// Guest churn against racing inputs: threads keep calling every lock-free
// entry point of the Migrator (record_access, record_vcpu_access,
// set_vcpu_cpu, rehome_progress, guest_stats, cancel_rehome) on guest ids that are being
// added and removed, with steps in between. A removed guest's tracking
// memory must never be freed under an input (ASan / TSan would see the
// use-after-free or the race) and must be reclaimed once inputs stop:
// tracking memory stays bounded under churn. Run under TSan in CI.
//
// Duration: 1 s of churn by default; NUMAHEAP_STRESS_SECONDS=N runs longer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "numaheap/migrator.h"
#include "unit/stub_mover.h"
#include "unit/stress_seconds.h"

using namespace numaheap;

namespace {

using test::stress_seconds;

using test::StubMover;

}  // namespace

TEST(MigrateChurnStress, RemovedGuestsAreFreedOnlyAfterRacingInputs) {
  const Topology topo = std::move(TopologyBuilder("churn")
                                      .add_node(0, {0, 1}, 64ull << 20)
                                      .add_node(1, {2, 3}, 64ull << 20)
                                      .build())
                            .value();
  MigratorConfig cfg;
  cfg.max_guests = 4;
  cfg.scan_pages = 256;
  auto mig = Migrator::create(topo, cfg);
  ASSERT_TRUE(mig.has_value());
  Migrator& m = **mig;
  constexpr std::uint64_t kPages = 4096;
  StubMover mover(kPages);
  MigrateGuestOptions opts;
  opts.vcpus = 4;

  // One guest's tracking memory, and reclaimed at once with no input racing.
  std::uint64_t one = 0;
  {
    auto id = m.add_guest(mover, opts);
    ASSERT_TRUE(id.has_value());
    one = m.stats().tracking_bytes;
    ASSERT_TRUE(m.remove_guest(*id).has_value());
    ASSERT_EQ(m.stats().tracking_bytes, 0u);
  }

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> calls{0};
  auto input = [&](unsigned seed) {
    std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const GuestId id = static_cast<GuestId>(x % cfg.max_guests);
      const Gfn gfn = (x >> 8) % kPages;
      const auto vcpu = static_cast<std::uint32_t>((x >> 40) % 4);
      switch ((x >> 50) % 6) {
        case 0: m.record_access(id, gfn, static_cast<CpuId>(vcpu)); break;
        case 1: m.record_vcpu_access(id, gfn, vcpu); break;
        case 2: (void)m.set_vcpu_cpu(id, vcpu, static_cast<CpuId>((x >> 20) % 4)); break;
        case 3: (void)m.rehome_progress(id); break;
        case 4: (void)m.guest_stats(id); break;
        default: (void)m.cancel_rehome(id); break;
      }
      ++n;
    }
    calls.fetch_add(n);
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 3; ++t) threads.emplace_back(input, t + 1);

  // Churn: keep 3 guests, remove the oldest, add another, step now and
  // then. Held memory is exactly the live guests plus those in their grace
  // period, and every removed guest is eventually reclaimed.
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
  std::uint64_t cycles = 0, most_retired = 0;
  std::vector<GuestId> live;
  NodeMask to1;
  to1.set(1);
  while (std::chrono::steady_clock::now() < end || cycles < 50) {
    while (live.size() < 3) {
      auto id = m.add_guest(mover, opts);
      if (!id) break;  // every id is still taken by a guest in its grace period
      live.push_back(*id);
      if (cycles % 4 == 0) (void)m.rehome(*id, to1);
    }
    const MigratorStats s = m.stats();
    EXPECT_EQ(s.tracking_bytes, (live.size() + s.retired_guests) * one);
    most_retired = std::max(most_retired, s.retired_guests);
    ASSERT_FALSE(live.empty());
    ASSERT_TRUE(m.remove_guest(live.front()).has_value());
    live.erase(live.begin());
    if (++cycles % 8 == 0) (void)m.step();
    ASSERT_TRUE(m.check_invariants().has_value());
  }
  // Inputs still running (also on newer guests under the same ids): steps
  // alone must get every retired guest freed -- phases drain even while an
  // id stays busy. A reader preempted inside an input delays this (as any
  // grace period), so allow time, not a step count.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (m.stats().retired_guests > 0 && std::chrono::steady_clock::now() < deadline) (void)m.step();
  EXPECT_EQ(m.stats().retired_guests, 0u) << "most retired at once: " << most_retired << " over " << cycles
                                          << " cycles";
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_GT(calls.load(), 0u);
  for (GuestId id : live) ASSERT_TRUE(m.remove_guest(id).has_value());
  EXPECT_EQ(m.stats().tracking_bytes, 0u);
  EXPECT_EQ(m.stats().retired_guests, 0u);
  EXPECT_TRUE(m.check_invariants().has_value());
}
