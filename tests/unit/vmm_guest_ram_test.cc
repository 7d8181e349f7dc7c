// GuestRam on this host's real kernel: validation (bad input changes
// nothing), binding (the kernel's own get_mempolicy), populating (the
// kernel's move_pages query), moving with per-page outcomes, holes,
// MPOL_MF_MOVE_ALL for a memfd mapped twice, relayout, the migrator and the
// sampler over it (a scan window's faults become samples), and the C API.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <numaif.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "numaheap/numaheap_vmm.h"
#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"
#include "unit/vmm_helper_checks.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kPages = 256;
constexpr std::uint64_t kBytes = kPages * 4096;

struct Fixture : ::testing::Test {
  Topology topo;
  NodeId node = 0;
  int mfd = -1;
  void* shm = nullptr;   // memfd, MAP_SHARED
  void* shm2 = nullptr;  // the same memfd mapped a second time
  void* anon = nullptr;

  void SetUp() override {
    auto t = load_topology_libnuma();
    if (!t) GTEST_SKIP() << "no libnuma topology";
    topo = *t;
    node = topo.memory_nodes().first();
    mfd = memfd_create("numaheap-test", MFD_CLOEXEC);
    ASSERT_GE(mfd, 0);
    ASSERT_EQ(ftruncate(mfd, kBytes), 0);
    shm = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    shm2 = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    anon = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(shm, MAP_FAILED);
    ASSERT_NE(shm2, MAP_FAILED);
    ASSERT_NE(anon, MAP_FAILED);
  }
  void TearDown() override {
    if (shm) munmap(shm, kBytes);
    if (shm2) munmap(shm2, kBytes);
    if (anon) munmap(anon, kBytes);
    if (mfd >= 0) close(mfd);
  }
  // memfd at gpa 0, a 1 MiB hole, anonymous RAM after it.
  std::vector<GuestRamRegion> regions(bool shared = false) const {
    return {{shm, kBytes, 0, RamBacking::memfd, shared}, {anon, kBytes, kBytes + (1u << 20), RamBacking::anonymous, false}};
  }
  std::vector<VnodeRam> vnodes() const {
    return {{0, 0, kBytes, NodeMask::single(node)}, {1, kBytes + (1u << 20), kBytes, NodeMask::single(node)}};
  }
  // The guest RAM of regions() and vnodes() tracked by a migrator (as guest
  // `id`, with `vcpus` vCPUs); removed from it on destruction, so a sampler
  // declared after it goes first. The fixture's topology outlives both.
  struct Tracked {
    std::unique_ptr<GuestRam> ram;
    std::unique_ptr<Migrator> mig;
    GuestId id = 0;
    ~Tracked() {
      if (mig && ram) {
        EXPECT_TRUE(mig->remove_guest(id).has_value());
      }
    }
  };
  void track(Tracked& t, std::uint32_t vcpus, bool vnuma_bound = false) {
    auto r = GuestRam::create(topo, regions(), vnodes());
    ASSERT_TRUE(r.has_value());
    auto m = Migrator::create(topo);
    ASSERT_TRUE(m.has_value());
    auto g = (*m)->add_guest(**r, (*r)->migrate_options(vcpus, vnuma_bound));
    ASSERT_TRUE(g.has_value());
    t.ram = std::move(*r);
    t.mig = std::move(*m);
    t.id = *g;
  }
};

int policy_of(void* addr) {
  int mode = -1;
  unsigned long mask[kMaxNodes / 64] = {};
  if (get_mempolicy(&mode, mask, kMaxNodes + 1, addr, MPOL_F_ADDR) != 0) return -2;
  return mode;
}

long present_pages(void* base) {
  std::vector<void*> a(kPages);
  std::vector<int> st(kPages);
  for (std::uint64_t i = 0; i < kPages; ++i) a[i] = static_cast<char*>(base) + i * 4096;
  if (move_pages(0, kPages, a.data(), nullptr, st.data(), 0) != 0) return -1;
  long n = 0;
  for (int s : st) n += s >= 0;
  return n;
}

using GuestRamTest = Fixture;

TEST_F(GuestRamTest, BadInputIsRefusedWithTheRangeAndChangesNothing) {
  auto expect_refused = [&](std::vector<GuestRamRegion> rs, std::vector<VnodeRam> vs, Errc code, const char* text) {
    auto r = GuestRam::create(topo, rs, vs);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, code) << r.error().message.c_str();
    EXPECT_NE(std::string(r.error().message.c_str()).find(text), std::string::npos) << r.error().message.c_str();
    EXPECT_EQ(policy_of(shm), MPOL_DEFAULT);
    EXPECT_EQ(policy_of(anon), MPOL_DEFAULT);
    EXPECT_EQ(present_pages(anon), 0) << "refused input populated memory";
  };
  auto rs = regions();
  rs[1].host = static_cast<char*>(anon) + 100;
  expect_refused(rs, vnodes(), Errc::invalid_argument, "multiples of 4096");
  rs = regions();
  rs[1].guest_phys = kBytes / 2;
  expect_refused(rs, vnodes(), Errc::invalid_argument, "overlap");
  rs = regions();
  rs[1].host = static_cast<char*>(shm) + 4096;
  expect_refused(rs, vnodes(), Errc::invalid_argument, "share host memory");
  auto vs = vnodes();
  vs[1].nodes = NodeMask::single(1000);
  expect_refused(regions(), vs, Errc::invalid_node, "node 1000 is not in the topology");
  vs = vnodes();
  vs[1].guest_phys = kBytes;  // in the hole
  expect_refused(regions(), vs, Errc::invalid_argument, "not in any guest RAM region");
  vs = vnodes();
  vs[1].guest_phys = 4096;
  vs[1].bytes = 4096;
  expect_refused(regions(), vs, Errc::invalid_argument, "overlaps another vnode");
  vs = vnodes();
  vs[0].nodes = NodeMask();
  expect_refused(regions(), vs, Errc::invalid_node, "no node");
  expect_refused({}, vnodes(), Errc::invalid_argument, "no regions");
  rs = regions();
  rs[0].backing = RamBacking::hugetlb;  // 4 KiB aligned only
  expect_refused(rs, {}, Errc::invalid_argument, "multiples of 2097152");
}

TEST_F(GuestRamTest, BindsPopulatesAndReportsHolesAsNotPresent) {
  std::memset(shm, 0x5a, 4096);  // a VMM may have written before registering
  auto ram = GuestRam::create(topo, regions(), vnodes());
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  EXPECT_EQ(policy_of(shm), MPOL_BIND);
  EXPECT_EQ(policy_of(anon), MPOL_BIND);
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages));
  EXPECT_EQ(present_pages(anon), static_cast<long>(kPages));
  EXPECT_EQ(static_cast<unsigned char*>(shm)[4095], 0x5a) << "populating changed data";
  EXPECT_EQ(g.stats().populated_madvise, 2 * kPages);
  EXPECT_EQ(g.page_count(), 2 * kPages + 256);
  std::vector<PageState> st(g.page_count());
  ASSERT_TRUE(g.query(0, st).has_value());
  for (Gfn i = 0; i < g.page_count(); ++i) {
    const bool hole = i >= kPages && i < kPages + 256;
    EXPECT_EQ(st[i].node, hole ? kNoNode : node) << "gfn " << i;
  }
  EXPECT_EQ(g.host_address(kPages + 1), nullptr);
  EXPECT_EQ(g.host_address(kPages + 256), anon);
  EXPECT_EQ(*g.gfn_of(static_cast<char*>(anon) + 4096), kPages + 257);
  EXPECT_FALSE(g.gfn_of(&st).has_value());
  std::uint64_t free = 0, total = 0;
  ASSERT_TRUE(g.node_frames(node, free, total)) << "the kernel's per-node meminfo";
  EXPECT_GT(total, 0u);
  EXPECT_LE(free, total);
  ASSERT_EQ(g.layout().size(), 2u);
  EXPECT_EQ(g.layout()[1].first, kPages + 256);
}

TEST_F(GuestRamTest, TouchFallbackPopulatesWithoutChangingData) {
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i);
  GuestRamOptions o;
  o.populate_by_touch = true;
  auto ram = GuestRam::create(topo, regions(), vnodes(), o);
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  EXPECT_EQ((*ram)->stats().populated_touch, 2 * kPages);
  EXPECT_EQ(present_pages(anon), static_cast<long>(kPages));
  for (std::uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(static_cast<unsigned char*>(shm)[i * 4096], static_cast<unsigned char>(i));
}

TEST_F(GuestRamTest, MovesWithPerPageOutcomesAndMoveAllForSharedMemfd) {
  auto ram = GuestRam::create(topo, regions(/*shared=*/true), vnodes());
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  std::vector<Gfn> gfns = {0, 1, kPages - 1, kPages + 3 /* hole */, kPages + 256, 2 * kPages + 255};
  std::vector<MoveOutcome> out(gfns.size());
  auto moved = g.move(gfns, node, MoveGranularity::pages, out);
  ASSERT_TRUE(moved.has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i)
    EXPECT_EQ(out[i], i == 3 ? MoveOutcome::not_present : MoveOutcome::moved) << "gfn " << gfns[i];
  EXPECT_EQ(moved->frames_moved, 0u) << "already on the node";
  EXPECT_EQ(g.stats().moves_all, 1u) << "the shared memfd region moves with MPOL_MF_MOVE_ALL";
  EXPECT_EQ(g.stats().moves_via_helper, 1u) << "through the helper process (no TLB shootdown of the VMM's threads)";
  EXPECT_EQ(g.stats().helper_refusals, 0u);
  EXPECT_EQ(g.stats().helper_last_errno, 0u);
  // Moved through the helper, then mapped back in the VMM's mapping: none
  // is left reachable only through the helper (which may be dropped later).
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages));
  std::vector<PageState> st(kPages);
  ASSERT_TRUE(g.query(0, st).has_value());
  for (std::uint64_t i = 0; i < kPages; ++i) EXPECT_EQ(st[i].node, node) << "gfn " << i;
  auto bad = g.move(gfns, 1000, MoveGranularity::pages, out);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error(), Errc::invalid_node);
  std::vector<MoveOutcome> short_out(1);
  EXPECT_FALSE(g.move(gfns, node, MoveGranularity::pages, short_out).has_value());
}

// A VMM that may not fork (a seccomp filter) turns the helper off: the same
// moves, from its own mapping, and no child.
TEST_F(GuestRamTest, WithoutTheMoveHelperSharedMemfdMovesFromTheVmmsMapping) {
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i + 1);
  GuestRamOptions o;
  o.move_helper = false;
  auto ram = GuestRam::create(topo, regions(/*shared=*/true), vnodes(), o);
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  std::vector<Gfn> gfns = {0, 1, kPages - 1};
  std::vector<MoveOutcome> out(gfns.size());
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  EXPECT_EQ(g.stats().moves_all, 1u);
  EXPECT_EQ(g.stats().moves_via_helper, 0u) << "no helper was forked";
  for (std::uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(static_cast<unsigned char*>(shm)[i * 4096], static_cast<unsigned char>(i + 1));
}

// move_each: the huge blocks of several requests move together (one
// KernelMover::move_blocks), every other listed page with its request;
// each request answers for itself: outcomes per listed page, its totals,
// its own error; data intact. (One node here: nothing changes node.)
bool always_huge_block(void*, const void*) { return true; }

TEST_F(GuestRamTest, MoveEachGathersTheBlocksOfEveryRequestAndAnswersEachAlone) {
  constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages, kBlocks = 4;
  const std::uint64_t bytes = kBlocks * kBlock * 4096;
  void* raw = mmap(nullptr, bytes + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  auto* big = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(raw) + (2u << 20) - 1) &
                                               ~std::uintptr_t{(2u << 20) - 1});
  // 4 blocks of anonymous RAM at gpa 0, the fixture's memfd (unshared, 256
  // pages: never a whole block) after a hole.
  const std::vector<GuestRamRegion> rs = {{big, bytes, 0, RamBacking::anonymous, false},
                                          {shm, kBytes, bytes + kBytes, RamBacking::memfd, false}};
  const std::vector<VnodeRam> vs = {{0, 0, bytes, NodeMask::single(node)}, {1, bytes + kBytes, kBytes, NodeMask::single(node)}};
  auto ram = GuestRam::create(topo, rs, vs);
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  g.set_huge_probe_for_testing(always_huge_block, nullptr);
  for (std::uint64_t i = 0; i < kBlocks * kBlock; ++i) big[i * 4096] = static_cast<unsigned char>(i * 7);
  const Gfn memfd0 = (bytes + kBytes) >> 12, hole = bytes >> 12;
  const std::vector<Gfn> a = {3, kBlock, 9 /* block 0 again */, memfd0 + 1};
  const std::vector<Gfn> b = {2 * kBlock + 1, hole, 3 * kBlock + 5};
  const std::vector<Gfn> c = {7, memfd0 + 2};  // pages, not blocks
  const std::vector<Gfn> d = {4};
  std::vector<MoveOutcome> ao(a.size(), MoveOutcome::shared), bo(b.size(), MoveOutcome::shared),
      co(c.size(), MoveOutcome::shared), dout(d.size(), MoveOutcome::shared), eo(2, MoveOutcome::shared);
  MoveRequest q[5];
  q[0] = {a, node, MoveGranularity::whole_blocks, ao, Errc::unsupported};
  q[1] = {b, node, MoveGranularity::whole_blocks, bo, Errc::unsupported};
  q[2] = {c, node, MoveGranularity::pages, co, Errc::unsupported};
  q[3] = {d, 1000, MoveGranularity::whole_blocks, dout, Errc::unsupported};  // no such node
  q[4] = {d, node, MoveGranularity::whole_blocks, eo, Errc::unsupported};    // out too long
  g.move_each(q);
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(q[k].result.has_value()) << "request " << k;
    EXPECT_EQ(q[k].result->frames_moved, 0u) << "request " << k << ": everything was on the node";
  }
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(ao[i], MoveOutcome::moved) << "a[" << i << "]";
  EXPECT_EQ(bo[0], MoveOutcome::moved);
  EXPECT_EQ(bo[1], MoveOutcome::not_present);
  EXPECT_EQ(bo[2], MoveOutcome::moved);
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_EQ(co[i], MoveOutcome::moved) << "c[" << i << "]";
  ASSERT_FALSE(q[3].result.has_value());
  EXPECT_EQ(q[3].result.error(), Errc::invalid_node);
  EXPECT_EQ(dout[0], MoveOutcome::shared) << "a refused request is not touched";
  ASSERT_FALSE(q[4].result.has_value());
  EXPECT_EQ(q[4].result.error(), Errc::invalid_argument);
  EXPECT_EQ(g.stats().moves_grouped, 1u);
  EXPECT_EQ(g.stats().moves, 3u);
  for (std::uint64_t i = 0; i < kBlocks * kBlock; ++i)
    ASSERT_EQ(big[i * 4096], static_cast<unsigned char>(i * 7)) << "page " << i;
  munmap(raw, bytes + (2u << 20));
}

// The move helper killed under the VMM: the move that finds it gone reports
// its pages busy (nothing moved, nothing lost), later moves go from the
// VMM's own mapping, and the destructor still reaps the child.
TEST_F(GuestRamTest, ADeadMoveHelperIsDroppedAndMovesGoTheOldWay) {
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i + 7);
  const long tid = ::syscall(SYS_gettid);
  const std::string children = "/proc/self/task/" + std::to_string(tid) + "/children";
  auto ram = GuestRam::create(topo, regions(/*shared=*/true), vnodes());
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  std::ifstream in(children);
  if (!in) GTEST_SKIP() << children << " unreadable (no CONFIG_PROC_CHILDREN)";
  pid_t helper = 0;
  in >> helper;
  ASSERT_GT(helper, 0) << "a shared memfd region forks the move helper";
  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  std::vector<Gfn> gfns = {0, 1, kPages - 1};
  std::vector<MoveOutcome> out(gfns.size());
  // The helper may still be exiting when the first move asks it: until its
  // socket closes it cannot answer, so the move finds it gone either way.
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::busy) << "gfn " << gfns[i];
  EXPECT_EQ(g.stats().moves_via_helper, 0u);
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  EXPECT_EQ(g.stats().moves_via_helper, 0u) << "the helper is not used again";
  for (std::uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(static_cast<unsigned char*>(shm)[i * 4096], static_cast<unsigned char>(i + 7));
}

using test::refuse_move_pages_through_others;

TEST_F(GuestRamTest, ARefusedMoveHelperIsDroppedBeforeAnythingIsZapped) {
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i + 3);
  auto ram = GuestRam::create(topo, regions(/*shared=*/true), vnodes());
  ASSERT_TRUE(ram.has_value()) << ram.error().message.c_str();
  GuestRam& g = **ram;
  ASSERT_EQ(present_pages(shm), static_cast<long>(kPages));
  std::vector<Gfn> gfns = {0, 1, kPages - 1};
  std::vector<MoveOutcome> out(gfns.size(), MoveOutcome::busy);
  bool filtered = false;
  Result<MoveTotals> moved = Errc::busy;
  std::thread sandboxed([&] {  // the filter dies with this thread
    filtered = refuse_move_pages_through_others();
    if (filtered) moved = g.move(gfns, node, MoveGranularity::pages, out);
  });
  sandboxed.join();
  if (!filtered) GTEST_SKIP() << "seccomp filters unavailable";
  // Refused before anything was zapped: the old way, at once, every page still mapped here.
  ASSERT_TRUE(moved.has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  EXPECT_EQ(g.stats().moves_via_helper, 0u);
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages)) << "pages were zapped for a move that could not happen";
  // Permitted again (this thread has no filter): the helper stays dropped.
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  EXPECT_EQ(g.stats().moves_via_helper, 0u) << "the helper is not used again";
  for (std::uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(static_cast<unsigned char*>(shm)[i * 4096], static_cast<unsigned char>(i + 3));
}

// Refused after the probe, at the move itself (a filter that lets a call
// naming no pages through): the zapped pages are mapped back and moved the
// old way at once; none is left unmapped or unmoved. (Broken on purpose in
// vmm_helper_broken_test.cc.)
void expect_late_refusal_handled(bool with_sampler) {
  const test::LateRefusal r = test::late_refusal(with_sampler);
  if (!r.set_up) GTEST_SKIP() << r.skip;
  EXPECT_TRUE(r.move_ok);
  EXPECT_EQ(r.moved, r.asked) << "pages zapped for the helper were not moved the old way";
  EXPECT_EQ(r.present_here, static_cast<long>(r.pages)) << "pages left unmapped in the VMM's mapping";
  EXPECT_EQ(r.via_helper, 0u);
  EXPECT_EQ(r.sampler_errors, 0u);
  EXPECT_EQ(r.sampler_samples, 0u) << "the window was not closed: mapping the pages back faulted through the sampler";
  EXPECT_TRUE(r.data_ok);
}

TEST(GuestRamHelper, ARefusalAfterTheProbeMovesThePagesTheOldWayAndLeavesThemMapped) {
  expect_late_refusal_handled(false);
}

// The same with a running sampler: the zapped pages were its window, which
// closes before they move.
TEST(GuestRamHelper, ARefusalAfterTheProbeClosesTheSamplersWindowAndMovesThePages) {
  expect_late_refusal_handled(true);
}

// The helper holds none of the VMM's private memory (no copy-on-write
// sharing: a page the VMM writes is not copied), not the guest RAM it does
// not move (anonymous regions were not inherited: the VMM's writes to them
// after the fork take no fault), all of the shared memfd RAM, and still
// moves. (Broken on purpose in vmm_helper_broken_test.cc.)
TEST(GuestRamHelper, TheHelperHoldsNoneOfTheVmmsPrivateMemory) {
  const test::HelperFootprint r = test::helper_footprint();
  if (!r.set_up) GTEST_SKIP() << r.skip;
  EXPECT_EQ(r.private_buffer_mapped, 0) << "the helper maps the VMM's private memory (copy-on-write shared)";
  EXPECT_EQ(r.anon_guest_mapped, 0) << "the helper maps anonymous guest RAM";
  EXPECT_LE(r.private_mappings, 2) << "the helper keeps private writable mappings beyond its stack and thread block";
  EXPECT_EQ(r.shared_guest_mapped, static_cast<long long>(r.pages * 4096)) << "the helper must map the shared RAM";
  EXPECT_LT(r.writes_faulted, static_cast<long>(r.pages / 8))
      << "writes to anonymous guest RAM fault after the fork (it was inherited write-protected)";
  EXPECT_TRUE(r.helper_moved);
}

TEST_F(GuestRamTest, RelayoutRebindsAndRefusesAnotherShape) {
  auto ram = GuestRam::create(topo, regions(), vnodes());
  ASSERT_TRUE(ram.has_value());
  GuestRam& g = **ram;
  std::vector<GuestRange> l = g.layout();
  EXPECT_TRUE(g.relayout(l).has_value());
  l[0].pages -= 1;
  EXPECT_FALSE(g.relayout(l).has_value());
  l[0].pages += 1;
  l[0].pnode = 1000;
  EXPECT_FALSE(g.relayout(l).has_value());
  EXPECT_EQ(g.layout()[0].pnode, node);
}

TEST_F(GuestRamTest, MigratorRehomesIt) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 2, true));
  ASSERT_TRUE(t.mig->rehome(t.id, NodeMask::single(node)).has_value());
  for (int i = 0; i < 100; ++i) {
    (void)t.mig->step();
    if (t.mig->rehome_progress(t.id)->state != RehomeState::running) break;
  }
  auto p = t.mig->rehome_progress(t.id);
  EXPECT_EQ(p->state, RehomeState::done);
  EXPECT_EQ(p->done, p->total);
}

TEST_F(GuestRamTest, SamplerScanTurnsFaultsIntoSamplesAndStopLeavesPagesMapped) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 1));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;  // windows only on scan()
  auto s = UffdSampler::create(*t.ram, *t.mig, t.id, cfg);
  if (!s) GTEST_SKIP() << s.error().message.c_str();
  EXPECT_FALSE(UffdSampler::create(*t.ram, *t.mig, t.id, cfg).has_value()) << "one sampler per guest RAM";
  EXPECT_EQ((*s)->scan(0, 1).error(), Errc::busy) << "not running";
  ASSERT_TRUE((*s)->start().has_value());
  EXPECT_EQ((*s)->start().error(), Errc::busy);
  EXPECT_EQ((*s)->scan(0, 0).error(), Errc::invalid_argument);
  ASSERT_TRUE((*s)->set_vcpu_thread(0, gettid()).has_value());
  // Window over all RAM (the hole is skipped); read 8 memfd pages, write 8
  // anonymous ones, read 8 anonymous ones (never sampled: writes only).
  ASSERT_TRUE((*s)->scan(0, t.ram->page_count()).has_value());
  unsigned sum = 0;
  for (int i = 0; i < 8; ++i) sum += static_cast<volatile unsigned char*>(shm)[i * 4096];
  for (int i = 0; i < 8; ++i) static_cast<volatile unsigned char*>(anon)[i * 4096] = 7;
  for (int i = 8; i < 16; ++i) sum += static_cast<volatile unsigned char*>(anon)[i * 4096];
  (void)sum;
  SamplerStats st = (*s)->stats();
  EXPECT_EQ(st.minor_samples, 8u);
  EXPECT_EQ(st.wp_samples, 8u);
  EXPECT_EQ(st.windows, 1u);
  EXPECT_EQ(st.pages_windowed, 2 * kPages);
  EXPECT_GT(st.ns_per_sample, 0.0);
  (*s)->stop();
  EXPECT_FALSE((*s)->running());
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages)) << "stop() left memfd pages unmapped";
  // Writable without a fault the handler would have to take: the thread is
  // gone, so a write to a still-protected page would hang here.
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<volatile unsigned char*>(anon)[i * 4096] = 9;
}

// A move from the VMM's own mapping (unshared memfd: no helper) of pages
// the sampler has unmapped closes their windows first: an unmapped page is
// invisible to move_pages (it would report not_present and stay), and
// mapping it back takes no sample. Anonymous pages of an open window move
// write-protected, as they are; with move_each too.
TEST_F(GuestRamTest, AMoveOfWindowedPagesClosesTheMemfdWindowsFirst) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 1));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;  // windows only on scan()
  auto s = UffdSampler::create(*t.ram, *t.mig, t.id, cfg);
  if (!s) GTEST_SKIP() << s.error().message.c_str();
  ASSERT_TRUE((*s)->start().has_value());
  const Gfn anon0 = (kBytes + (1u << 20)) >> 12;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE((*s)->scan(0, t.ram->page_count()).has_value());
    ASSERT_EQ(present_pages(shm), 0) << "the window unmapped the memfd pages";
    std::vector<Gfn> a = {0, 1, 2, 3}, b = {anon0, anon0 + 1};
    std::vector<MoveOutcome> ao(a.size(), MoveOutcome::busy), bo(b.size(), MoveOutcome::busy);
    if (round == 0) {
      ASSERT_TRUE(t.ram->move(a, node, MoveGranularity::pages, ao).has_value());
      ASSERT_TRUE(t.ram->move(b, node, MoveGranularity::pages, bo).has_value());
    } else {
      MoveRequest q[2];
      q[0] = {a, node, MoveGranularity::pages, ao, Errc::unsupported};
      q[1] = {b, node, MoveGranularity::pages, bo, Errc::unsupported};
      t.ram->move_each(q);
      ASSERT_TRUE(q[0].result.has_value());
      ASSERT_TRUE(q[1].result.has_value());
    }
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(ao[i], MoveOutcome::moved) << "round " << round << " memfd " << i;
    for (std::size_t i = 0; i < b.size(); ++i) EXPECT_EQ(bo[i], MoveOutcome::moved) << "round " << round << " anon " << i;
    EXPECT_EQ((*s)->stats().minor_samples, 0u) << "mapping the pages back took a sample";
    (*s)->close_window();
  }
  (*s)->stop();
}

// 4 MiB of small anonymous pages (each page's first byte: its index mod
// 256) as one region of a guest, with a migrator; start() adds a sampler.
struct SmallAnonSampler : ::testing::Test {
  static constexpr std::uint64_t kRamPages = 1024, kRamBytes = kRamPages * 4096;
  Topology topo;  // the migrator and the RAM keep a reference: it outlives them
  void* anon = MAP_FAILED;
  volatile unsigned char* bytes = nullptr;
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<Migrator> mig;
  std::unique_ptr<UffdSampler> sampler;
  GuestId id = 0;

  void SetUp() override {
    auto t = load_topology_libnuma();
    if (!t) GTEST_SKIP() << "no libnuma topology";
    topo = *t;
    anon = mmap(nullptr, kRamBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(anon, MAP_FAILED);
    ASSERT_EQ(madvise(anon, kRamBytes, MADV_NOHUGEPAGE), 0);  // two blocks of 512 small pages
    bytes = static_cast<volatile unsigned char*>(anon);
    for (std::uint64_t i = 0; i < kRamPages; ++i) bytes[i * 4096] = static_cast<unsigned char>(i);
    const GuestRamRegion rs[] = {{anon, kRamBytes, 0, RamBacking::anonymous, false}};
    auto r = GuestRam::create(topo, rs, {});
    ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
    ram = std::move(*r);
    auto m = Migrator::create(topo);
    ASSERT_TRUE(m.has_value());
    mig = std::move(*m);
    auto g = mig->add_guest(*ram, ram->migrate_options(1, false));
    ASSERT_TRUE(g.has_value());
    id = *g;
  }
  // False (the test skips): no userfaultfd here.
  bool start(const SamplerConfig& cfg) {
    auto s = UffdSampler::create(*ram, *mig, id, cfg);
    if (!s) return false;
    sampler = std::move(*s);
    EXPECT_TRUE(sampler->start().has_value());
    return true;
  }
  void TearDown() override {
    sampler.reset();
    if (mig && ram) {
      EXPECT_TRUE(mig->remove_guest(id).has_value());
    }
    mig.reset();
    ram.reset();
    if (anon != MAP_FAILED) munmap(anon, kRamBytes);
  }
};

// The budget's walk arms a window's adjacent pages of one region with one
// protection change (one TLB shootdown), not one per 2 MiB piece of it:
// 4 MiB of small anonymous pages, a window as large, is one arm a window.
TEST_F(SmallAnonSampler, AWindowOverAdjacentBlocksIsArmedInOneCall) {
  SamplerConfig cfg;
  cfg.pages_per_second = 1u << 20;  // a window about every millisecond
  cfg.window_pages = kRamPages;     // each one over all of it
  cfg.follow_advice = false;
  if (!start(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  while (sampler->stats().windows < 3) std::this_thread::yield();  // no time limit asserted
  sampler->stop();
  const SamplerStats st = sampler->stats();
  EXPECT_EQ(st.arm_calls, st.windows) << "one protection change per window";
  EXPECT_EQ(st.pages_windowed, st.windows * kRamPages);
  EXPECT_EQ(st.blocks_windowed, 0u);
  for (std::uint64_t i = 0; i < kRamPages; ++i) bytes[i * 4096] = 2;  // writable
}

// A handler far over its share of a CPU closes the windows it has open
// (each armed page would stop a vCPU as long as the last samples took):
// with a cap so small that any sample overloads it, a few faults in a
// window of 1024 pages shed the rest; the pages stay intact and writable.
TEST_F(SmallAnonSampler, AnOverloadedHandlerClosesItsOpenWindows) {
  SamplerConfig cfg;
  cfg.pages_per_second = 4096;
  cfg.window_pages = kRamPages;  // one window over all of it every 250 ms
  cfg.follow_advice = false;
  cfg.max_handler_share = 1e-9;  // any sample is an overload
  if (!start(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sampler->stats().pages_armed == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_GT(sampler->stats().pages_armed, 0u) << "no window opened in 30 s";
  // Writes until they are samples (the window's bits are set just before
  // its protection), then wait for the shed.
  unsigned writes = 0;
  while (sampler->stats().samples == 0 && std::chrono::steady_clock::now() < deadline) {
    for (std::uint64_t i = 0; i < 8; ++i) bytes[i * 4096] = static_cast<unsigned char>(bytes[i * 4096] + 1);
    ++writes;
  }
  while (sampler->stats().sheds == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  const SamplerStats st = sampler->stats();
  EXPECT_GE(st.sheds, 1u) << "the open window was never closed (30 s)";
  EXPECT_GT(st.pages_shed, 0u);
  EXPECT_GT(st.samples, 0u);
  sampler->stop();
  for (std::uint64_t i = 0; i < kRamPages; ++i)
    ASSERT_EQ(bytes[i * 4096], static_cast<unsigned char>(i + (i < 8 ? writes : 0))) << "page " << i;
  for (std::uint64_t i = 0; i < kRamPages; ++i) bytes[i * 4096] = 0;  // writable
}

TEST_F(GuestRamTest, SamplerConfigOutOfRangeIsRefused) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 1));
  for (double share : {0.0, -1.0, 1.5, std::nan("")}) {
    SamplerConfig cfg;
    cfg.max_handler_share = share;
    auto s = UffdSampler::create(*t.ram, *t.mig, t.id, cfg);
    ASSERT_FALSE(s.has_value()) << share;
    EXPECT_EQ(s.error().code, Errc::invalid_argument);
  }
}

// vcpu_moved(v): windows at once over the chunks v was sampled in and those
// nobody was sampled in, not over chunks only another vCPU was seen in.
TEST_F(GuestRamTest, SamplerBurstAfterVcpuMoveWindowsItsChunksOnly) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 2));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;  // windows only on scan() and vcpu_moved()
  auto s = UffdSampler::create(*t.ram, *t.mig, t.id, cfg);
  if (!s) GTEST_SKIP() << s.error().message.c_str();
  EXPECT_EQ((*s)->vcpu_moved(0).error(), Errc::busy) << "not running";
  ASSERT_TRUE((*s)->start().has_value());
  ASSERT_TRUE((*s)->set_vcpu_thread(0, gettid()).has_value());
  // memfd chunk 0 (pages 0..63) sampled from vCPU 0, chunk 1 from vCPU 1;
  // chunks 2 and 3 and the anonymous region never.
  ASSERT_TRUE((*s)->scan(0, kPages).has_value());
  unsigned sum = 0;
  for (int i = 0; i < 8; ++i) sum += static_cast<volatile unsigned char*>(shm)[i * 4096];
  std::thread other([&] {
    (void)(*s)->set_vcpu_thread(1, gettid());
    unsigned x = 0;
    for (int i = 64; i < 72; ++i) x += static_cast<volatile unsigned char*>(shm)[i * 4096];
    (void)x;
  });
  other.join();
  (void)sum;
  (*s)->close_window();
  EXPECT_EQ((*s)->vcpu_samples(0), 8u);
  EXPECT_EQ((*s)->vcpu_samples(1), 8u);
  EXPECT_EQ((*s)->vcpu_samples(kSamplerCountedVcpus), 0u);
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages));
  ASSERT_TRUE((*s)->vcpu_moved(0).has_value());
  // The handler thread serves it; wait for that (no time limit asserted).
  while ((*s)->stats().bursts == 0) std::this_thread::yield();
  const SamplerStats st = (*s)->stats();
  EXPECT_EQ(st.pages_burst, 3 * 64 + kPages) << "memfd chunks 0, 2, 3 and all anonymous RAM";
  EXPECT_EQ(st.pages_armed, 3 * 64 + kPages);
  EXPECT_EQ(present_pages(shm), 64) << "only vCPU 1's chunk stays mapped";
  (*s)->stop();
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages)) << "stop() left memfd pages unmapped";
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<volatile unsigned char*>(anon)[i * 4096] = 9;
}

// A burst budget smaller than the RAM goes to the moved vCPU's chunks
// first, then to chunks nobody was sampled in: here vCPU 0 was sampled in
// memfd chunk 3 only, and a 64-page burst arms chunk 3, not chunk 0 (the
// first chunk nobody was sampled in).
TEST_F(GuestRamTest, SamplerBurstGoesToTheMovedVcpusChunksFirst) {
  Tracked t;
  ASSERT_NO_FATAL_FAILURE(track(t, 2));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;  // windows only on scan() and vcpu_moved()
  cfg.burst_pages = 64;
  auto s = UffdSampler::create(*t.ram, *t.mig, t.id, cfg);
  if (!s) GTEST_SKIP() << s.error().message.c_str();
  ASSERT_TRUE((*s)->start().has_value());
  ASSERT_TRUE((*s)->set_vcpu_thread(0, gettid()).has_value());
  ASSERT_TRUE((*s)->scan(0, kPages).has_value());
  unsigned sum = 0;
  for (int i = 192; i < 200; ++i) sum += static_cast<volatile unsigned char*>(shm)[i * 4096];
  (void)sum;
  (*s)->close_window();
  EXPECT_EQ((*s)->vcpu_samples(0), 8u);
  ASSERT_EQ(present_pages(shm), static_cast<long>(kPages));
  ASSERT_TRUE((*s)->vcpu_moved(0).has_value());
  while ((*s)->stats().bursts == 0) std::this_thread::yield();
  const SamplerStats st = (*s)->stats();
  EXPECT_EQ(st.pages_burst, 64u);
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages - 64));
  std::vector<void*> a(64);
  std::vector<int> where(64);
  for (std::uint64_t i = 0; i < 64; ++i) a[i] = static_cast<char*>(shm) + (192 + i) * 4096;
  ASSERT_EQ(move_pages(0, 64, a.data(), nullptr, where.data(), 0), 0);
  for (std::uint64_t i = 0; i < 64; ++i) EXPECT_LT(where[i], 0) << "page " << 192 + i << " of vCPU 0's chunk is mapped";
  (*s)->stop();
  EXPECT_EQ(present_pages(shm), static_cast<long>(kPages)) << "stop() left memfd pages unmapped";
}

TEST_F(GuestRamTest, CApiAtParity) {
  numaheap_topology* ct = nullptr;
  char err[256] = {};
  ASSERT_EQ(numaheap_topology_load_libnuma(&ct, err, sizeof err), NUMAHEAP_OK) << err;
  numaheap_ram_region rs[2] = {{shm, kBytes, 0, NUMAHEAP_RAM_MEMFD, 0},
                               {anon, kBytes, kBytes, NUMAHEAP_RAM_ANONYMOUS, 0}};
  numaheap_vnode_ram vs[1] = {};
  vs[0].vnode = 0;
  vs[0].guest_phys = 0;
  vs[0].bytes = 2 * kBytes;
  numaheap_nodemask_set(&vs[0].nodes, node);
  numaheap_vmm_ram* r = nullptr;
  rs[1].backing = 9;
  EXPECT_EQ(numaheap_vmm_ram_create(ct, rs, 2, vs, 1, nullptr, &r, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
  rs[1].backing = NUMAHEAP_RAM_ANONYMOUS;
  rs[1].guest_phys = 4096;
  EXPECT_EQ(numaheap_vmm_ram_create(ct, rs, 2, vs, 1, nullptr, &r, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("overlap"), std::string::npos) << err;
  rs[1].guest_phys = kBytes;
  ASSERT_EQ(numaheap_vmm_ram_create(ct, rs, 2, vs, 1, nullptr, &r, err, sizeof err), NUMAHEAP_OK) << err;
  EXPECT_EQ(numaheap_vmm_ram_pages(r), 2 * kPages);
  EXPECT_EQ(numaheap_vmm_ram_host_address(r, kPages), anon);
  std::uint64_t gfn = 0;
  EXPECT_EQ(numaheap_vmm_ram_gfn_of(r, static_cast<char*>(shm) + 8192, &gfn), NUMAHEAP_OK);
  EXPECT_EQ(gfn, 2u);
  numaheap_page_state ps[4];
  EXPECT_EQ(numaheap_vmm_ram_query(r, 0, 4, ps), NUMAHEAP_OK);
  EXPECT_EQ(ps[3].node, node);
  std::uint64_t gfns[2] = {0, kPages};
  std::uint8_t out[2] = {};
  std::uint64_t moved = 7;
  EXPECT_EQ(numaheap_vmm_ram_move(r, gfns, 2, node, out, &moved), NUMAHEAP_OK);
  EXPECT_EQ(out[0], NUMAHEAP_MOVED);
  EXPECT_EQ(moved, 0u);
  std::uint64_t fr = 0, tot = 0;
  EXPECT_EQ(numaheap_vmm_ram_node_frames(r, node, &fr, &tot), NUMAHEAP_OK);
  numaheap_ram_part parts[4];
  // One vnode over both regions, one node: one part.
  EXPECT_EQ(numaheap_vmm_ram_layout(r, parts, 4), 1u);
  EXPECT_EQ(parts[0].pages, 2 * kPages);
  {
    const std::uint64_t g1[2] = {0, 1}, g2[1] = {kPages + 3};
    std::uint8_t o1[2] = {9, 9}, o2[1] = {9};
    numaheap_vmm_move_request mq[3] = {};
    mq[0] = {g1, 2, node, 0, o1, -1, 7};
    mq[1] = {g2, 1, node, 1, o2, -1, 7};
    mq[2] = {nullptr, 4, node, 0, o1, -1, 7};  // no gfns
    EXPECT_EQ(numaheap_vmm_ram_move_each(r, mq, 3), NUMAHEAP_OK);
    EXPECT_EQ(mq[0].result, NUMAHEAP_OK);
    EXPECT_EQ(mq[1].result, NUMAHEAP_OK);
    EXPECT_EQ(mq[2].result, NUMAHEAP_E_INVALID_ARGUMENT);
    EXPECT_EQ(mq[0].frames_moved, 0u);
    EXPECT_EQ(o1[0], NUMAHEAP_MOVED);
    EXPECT_EQ(o1[1], NUMAHEAP_MOVED);
    EXPECT_EQ(o2[0], NUMAHEAP_MOVED);
    EXPECT_EQ(numaheap_vmm_ram_move_each(nullptr, mq, 3), NUMAHEAP_E_INVALID_ARGUMENT);
    EXPECT_EQ(numaheap_vmm_ram_move_each(r, nullptr, 1), NUMAHEAP_E_INVALID_ARGUMENT);
  }
  numaheap_vmm_ram_stats gs;
  EXPECT_EQ(numaheap_vmm_ram_get_stats(r, &gs), NUMAHEAP_OK);
  EXPECT_EQ(gs.pages, 2 * kPages);
  EXPECT_EQ(gs.moves, 3u);
  numaheap_migrator* m = nullptr;
  ASSERT_EQ(numaheap_migrator_create(ct, nullptr, &m), NUMAHEAP_OK);
  std::uint32_t id = 0;
  ASSERT_EQ(numaheap_migrator_add_vmm_ram(m, r, nullptr, &id), NUMAHEAP_OK);
  numaheap_sampler_config sc;
  numaheap_sampler_config_init(&sc);
  EXPECT_EQ(sc.pages_per_second, 4096u);
  EXPECT_EQ(sc.max_handler_share, SamplerConfig{}.max_handler_share);
  EXPECT_EQ(sc.follow_advice, 1);
  EXPECT_EQ(sc.burst_pages, SamplerConfig{}.burst_pages);
  sc.max_handler_share = 2;
  EXPECT_EQ(numaheap_sampler_create(r, m, id, &sc, nullptr, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_sampler* bad = nullptr;
  EXPECT_EQ(numaheap_sampler_create(r, m, id, &sc, &bad, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_EQ(bad, nullptr);
  sc.max_handler_share = 0.05;
  sc.pages_per_second = 0;
  EXPECT_EQ(numaheap_sampler_vcpu_moved(nullptr, 0), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_EQ(numaheap_sampler_vcpu_samples(nullptr, 0), 0u);
  numaheap_sampler* s = nullptr;
  if (numaheap_sampler_create(r, m, id, &sc, &s, err, sizeof err) == NUMAHEAP_OK) {
    EXPECT_EQ(numaheap_sampler_set_vcpu_thread(s, 0, gettid()), NUMAHEAP_OK);
    EXPECT_EQ(numaheap_sampler_start(s), NUMAHEAP_OK);
    EXPECT_EQ(numaheap_sampler_running(s), 1);
    EXPECT_EQ(numaheap_sampler_scan(s, 0, 4), NUMAHEAP_OK);
    static_cast<volatile char*>(shm)[0] = 1;
    numaheap_sampler_close_window(s);
    numaheap_sampler_stats ss;
    EXPECT_EQ(numaheap_sampler_get_stats(s, &ss), NUMAHEAP_OK);
    EXPECT_EQ(ss.minor_samples, 1u);
    EXPECT_EQ(ss.faults_outside_windows, 0u);
    EXPECT_EQ(ss.regions_locked, 0u);
    EXPECT_EQ(ss.vcpu_unknown_samples, 0u);
    // Another process's id is no thread of this one: refused.
    EXPECT_EQ(numaheap_sampler_set_vcpu_thread(s, 1, getppid()), NUMAHEAP_E_INVALID_ARGUMENT);
    EXPECT_EQ(numaheap_sampler_vcpu_samples(s, 0), 1u);
    EXPECT_EQ(numaheap_sampler_vcpu_moved(s, 0), NUMAHEAP_OK);
    numaheap_sampler_stop(s);
    EXPECT_EQ(numaheap_sampler_running(s), 0);
    numaheap_sampler_destroy(s);
  }
  EXPECT_EQ(numaheap_migrator_remove_guest(m, id), NUMAHEAP_OK);
  numaheap_migrator_destroy(m);
  numaheap_vmm_ram_destroy(r);
  numaheap_topology_free(ct);
}

}  // namespace
}  // namespace numaheap
