// GuestRam when one of its move_pages calls is refused after earlier ones
// of the same move moved frames (include/numaheap/mover.h: an error means
// no page was touched). The move must then succeed with the frames that
// changed node and an outcome per page -- busy for what was refused or
// not tried -- so the migrator books what moved; before, a later chunk's,
// region's or gathered batch's refusal turned the whole call (or request)
// into an error. The stand-in kernel (fake_move_pages.h) keeps two nodes
// on this one-node host; this binary links numaheap_faulty, whose
// KernelMover calls it.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "allocator/platform/fault_injection.h"
#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"
#include "unit/fake_move_pages.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages;

bool always_huge(void*, const void*) { return true; }
bool never_huge(void*, const void*) { return false; }

// `pages` pages of anonymous guest RAM (2 MiB aligned, never touched: the
// stand-in keeps their nodes, all on node 1 at first), not bound or
// populated, under a GuestRam whose move_pages calls the stand-in answers.
struct Rig {
  Rig(std::uint64_t pages, bool huge) {
    const std::uint64_t block_bytes = kBlock * kFrameSize;
    bytes = pages * kFrameSize + block_bytes;
    raw = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return;
    auto* base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + block_bytes - 1) / block_bytes * block_bytes);
    auto t = load_topology_libnuma();
    if (!t) return;
    topo = *t;
    const GuestRamRegion rs[] = {{base, pages * kFrameSize, 0, RamBacking::anonymous, false}};
    GuestRamOptions o;
    o.bind = false;
    o.populate = false;
    auto r = GuestRam::create(topo, rs, {}, o);
    if (!r) return;
    ram = std::move(*r);
    ram->set_huge_probe_for_testing(huge ? always_huge : never_huge, nullptr);
    k.base = base;
    k.pages = pages;
    k.node.assign(pages, 1);
    k.split.assign(pages / kBlock + 1, false);
    k.huge = huge;
    test::kernel = &k;
    fault::move_pages_hook.store(test::fake_move_pages);
  }
  ~Rig() {
    fault::move_pages_hook.store(nullptr);
    test::kernel = nullptr;
    ram.reset();
    if (raw != MAP_FAILED) munmap(raw, bytes);
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  std::uint64_t on_node0(std::uint64_t first, std::uint64_t n) const {
    std::uint64_t c = 0;
    for (std::uint64_t p = first; p < first + n; ++p) c += k.node[p] == 0;
    return c;
  }

  test::FakeKernel k;
  Topology topo;
  std::unique_ptr<GuestRam> ram;
  std::size_t bytes = 0;
  void* raw = MAP_FAILED;
};

// move() of 600 pages: three chunks of move_pages calls; the second
// chunk's moving call is refused before any of its pages.
TEST(vmm_guest_ram_partial_broken, ALaterChunksRefusalKeepsTheFramesEarlierChunksMoved) {
  Rig rig(600, false);
  ASSERT_TRUE(rig.ram);
  rig.k.fail_move_at = 2;
  std::vector<Gfn> gfns(600);
  for (Gfn g = 0; g < 600; ++g) gfns[g] = g;
  std::vector<MoveOutcome> out(gfns.size(), MoveOutcome::pinned);
  auto moved = rig.ram->move(gfns, 0, MoveGranularity::pages, out);
  ASSERT_TRUE(moved.has_value()) << "a refusal after frames moved made the whole move an error";
  EXPECT_EQ(moved->frames_moved, rig.on_node0(0, 600));
  EXPECT_EQ(moved->frames_moved, 256u);
  for (std::size_t i = 0; i < gfns.size(); ++i)
    EXPECT_EQ(out[i], i < 256 ? MoveOutcome::moved : MoveOutcome::busy) << "gfn " << i;
  EXPECT_EQ(rig.ram->stats().pages_moved, 256u);
}

// Nothing moved before the refusal: still the whole call's error.
TEST(vmm_guest_ram_partial_broken, ARefusalBeforeAnyFrameMovedIsTheCallsError) {
  Rig rig(600, false);
  ASSERT_TRUE(rig.ram);
  rig.k.fail_move_at = 1;
  std::vector<Gfn> gfns(600);
  for (Gfn g = 0; g < 600; ++g) gfns[g] = g;
  std::vector<MoveOutcome> out(gfns.size());
  auto moved = rig.ram->move(gfns, 0, MoveGranularity::pages, out);
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(rig.on_node0(0, 600), 0u);
}

// move_each, pages: request 0's second chunk refused; it keeps its first
// chunk's frames (the rest busy), request 1 moves all of its own.
TEST(vmm_guest_ram_partial_broken, MoveEachKeepsARequestsFramesWhenItsLaterChunkIsRefused) {
  Rig rig(600, false);
  ASSERT_TRUE(rig.ram);
  rig.k.fail_move_at = 2;
  std::vector<Gfn> g0(300), g1(300);
  for (Gfn g = 0; g < 300; ++g) {
    g0[g] = g;
    g1[g] = 300 + g;
  }
  std::vector<MoveOutcome> o0(300, MoveOutcome::pinned), o1(300, MoveOutcome::pinned);
  MoveRequest q[2] = {{g0, 0, MoveGranularity::pages, o0, MoveTotals{}}, {g1, 0, MoveGranularity::pages, o1, MoveTotals{}}};
  rig.ram->move_each(q);
  ASSERT_TRUE(q[0].result.has_value()) << "request 0 lost the frames its first chunk moved";
  EXPECT_EQ(q[0].result->frames_moved, 256u);
  EXPECT_EQ(rig.on_node0(0, 300), 256u);
  for (std::size_t i = 0; i < 300; ++i) EXPECT_EQ(o0[i], i < 256 ? MoveOutcome::moved : MoveOutcome::busy) << i;
  ASSERT_TRUE(q[1].result.has_value());
  EXPECT_EQ(q[1].result->frames_moved, 300u);
  EXPECT_EQ(rig.on_node0(300, 300), 300u);
}

// move_each, whole blocks: 65 blocks of one request are gathered 64 at a
// time; the second batch's moving call is refused: the request keeps the
// first batch's 64 blocks, the 65th is busy.
TEST(vmm_guest_ram_partial_broken, MoveEachKeepsTheBlocksOfAnEarlierBatch) {
  constexpr std::uint64_t kBlocks = 65;
  Rig rig(kBlocks * kBlock, true);
  ASSERT_TRUE(rig.ram);
  std::vector<Gfn> g0(kBlocks);
  for (std::uint64_t b = 0; b < kBlocks; ++b) g0[b] = b * kBlock;
  const Gfn g1[] = {kBlock + 1};  // a second request (a page of block 1, listed there too)
  std::vector<MoveOutcome> o0(kBlocks, MoveOutcome::pinned);
  MoveOutcome o1[1] = {MoveOutcome::pinned};
  // Batch 1: 64 blocks in groups of KernelMover::kBlockGroup, one moving
  // call each; batch 2's call is the next one.
  rig.k.fail_move_at = static_cast<int>(64 / KernelMover::kBlockGroup) + 1;
  MoveRequest q[2] = {{g0, 0, MoveGranularity::whole_blocks, o0, MoveTotals{}},
                      {g1, 0, MoveGranularity::whole_blocks, o1, MoveTotals{}}};
  rig.ram->move_each(q);
  ASSERT_TRUE(q[0].result.has_value()) << "the request lost the 64 blocks of its first batch";
  EXPECT_EQ(q[0].result->frames_moved, 64 * kBlock);
  EXPECT_EQ(rig.on_node0(0, kBlocks * kBlock), 64 * kBlock);
  for (std::uint64_t b = 0; b < kBlocks; ++b) EXPECT_EQ(o0[b], b < 64 ? MoveOutcome::moved : MoveOutcome::busy) << b;
}

}  // namespace
}  // namespace numaheap
