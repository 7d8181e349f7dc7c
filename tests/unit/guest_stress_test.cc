// Concurrent guest creation: two guests that cannot both fit on a node are
// never both populated (claims are checked atomically with the free
// counters), and a failed populate leaves nothing behind. Runs under TSan
// in CI (ctest -R stress).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "numaheap/guest_memory.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

TEST(GuestStress, ConcurrentCreationsNeverShareMemory) {
  Topology topo = builtin_default_topology();  // node 1: 1951 MB
  auto pa = std::move(PageAllocator::create(topo)).value();
  constexpr std::uint64_t kMiB = 1ull << 20;
  std::atomic<int> live{0}, max_live{0}, created{0}, refused{0};
  std::atomic<bool> failed{false};
  auto worker = [&](OwnerId base) {
    for (int round = 0; round < 12; ++round) {
      GuestSpec g;
      g.name = "racer";
      g.memory_bytes = 1200 * kMiB;  // two of these cannot fit on node 1
      g.vcpus = 1;
      g.vnodes = {VNodeSpec{g.memory_bytes, {0}, 1, {}}};
      Placement p;
      p.vnode_pnodes = {1};
      auto gm = GuestMemory::create(*pa, g, p, base + static_cast<OwnerId>(round));
      if (!gm) {
        failed = true;
        return;
      }
      if ((*gm)->populate()) {
        int now = ++live;
        int seen = max_live.load();
        while (now > seen && !max_live.compare_exchange_weak(seen, now)) {
        }
        ++created;
        std::this_thread::yield();
        --live;
        if (!(*gm)->destroy()) failed = true;
      } else {
        ++refused;
        if ((*gm)->present_pages() != 0) failed = true;
      }
    }
  };
  std::thread a(worker, 100), b(worker, 200), c(worker, 300);
  a.join();
  b.join();
  c.join();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(max_live.load(), 1);
  EXPECT_GT(created.load(), 0);
  EXPECT_EQ(created.load() + refused.load(), 36);
  pa->drain_all();
  auto st = pa->stats(1);
  EXPECT_EQ(st->used, 0u);
  EXPECT_EQ(st->claimed, 0u);
  EXPECT_TRUE(pa->check_frames().has_value());
}
