// KernelMover when a move_pages(2) call is refused after pages already
// moved (include/numaheap/mover.h: errors are whole-call, no page
// touched). The call must then succeed with what changed node and an
// outcome per page (busy: not tried, or fate unknown), and the migrator
// must book those frames; before, the mover returned the late call's
// error and the migrator booked nothing for frames that had moved.
//
// The host has one memory node, where every page already is, so the
// kernel itself can neither move a page nor refuse a chosen call. This
// binary links numaheap_faulty, whose KernelMover sends its move_pages
// calls to fault::move_pages_hook: here a stand-in kernel with two nodes
// that keeps each page's node, moves a huge page whole on its first page
// (unless the test split it), and refuses chosen calls the way Linux does
// (a refused moving call may have moved the pages before the one that
// failed). Its own query (nodes = NULL) is the truth the tests check.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "allocator/platform/fault_injection.h"
#include "numaheap/migrator.h"
#include "numaheap/mover.h"
#include "numaheap/topology.h"
#include "unit/fake_move_pages.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages;
constexpr std::uint64_t kBlockBytes = kBlock * kFrameSize;

using test::FakeKernel;
using test::fake_move_pages;
using test::kernel;
using test::serve;

bool always_huge(void*, const void*) { return true; }
bool never_huge(void*, const void*) { return false; }

// `pages` pages of a 2 MiB-aligned reservation (never touched: the
// stand-in kernel keeps their nodes), every page on node 1, under a
// KernelMover whose move_pages calls the stand-in answers.
struct Rig {
  Rig(std::uint64_t pages, bool huge) {
    bytes = pages * kFrameSize + kBlockBytes;
    raw = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return;
    const auto a = (reinterpret_cast<std::uintptr_t>(raw) + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
    k.base = reinterpret_cast<const char*>(a);
    k.pages = pages;
    k.node.assign(pages, 1);
    k.split.assign(pages / kBlock + 1, false);
    k.huge = huge;
    auto m = KernelMover::create(reinterpret_cast<void*>(a), pages);
    if (!m) return;
    km.emplace(std::move(*m));
    km->set_huge_probe_for_testing(huge ? always_huge : never_huge, nullptr);
    kernel = &k;
    fault::move_pages_hook.store(fake_move_pages);
  }
  ~Rig() {
    fault::move_pages_hook.store(nullptr);
    kernel = nullptr;
    if (raw != MAP_FAILED) munmap(raw, bytes);
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  bool ok() const { return km.has_value(); }
  // Where the stand-in kernel says page p is (its own query).
  int where(std::uint64_t p) {
    void* a = const_cast<char*>(k.base + p * kFrameSize);
    int st = -1;
    return serve(k, false, 0, 1, &a, nullptr, &st) == 0 ? st : -1;
  }
  std::uint64_t on_target(std::uint64_t first, std::uint64_t n) {
    std::uint64_t c = 0;
    for (std::uint64_t p = first; p < first + n; ++p) c += where(p) == 0;
    return c;
  }

  FakeKernel k;
  std::optional<KernelMover> km;
  std::size_t bytes = 0;
  void* raw = MAP_FAILED;
};

const char* name(MoveOutcome o) { return move_outcome_name(o); }

// Two huge blocks listed together (one group): calls 1-2 ask where each
// block is, 3 moves both first pages, then per block: where it is now (4
// and 5 without a split), the pages still elsewhere, where they are after.
struct BlockCase {
  const char* what;
  int fail_at, fail_until;
  std::size_t fail_after;
  bool split_second;  // the kernel moves block 1's first page alone
  bool whole_error;   // nothing moved: the call's error
  MoveOutcome want0, want1;
  int err;            // the refused calls' errno
};

TEST(kernel_mover_partial_broken, ALateRefusalInABlockMoveKeepsWhatMoved) {
  constexpr MoveOutcome moved = MoveOutcome::moved, busy = MoveOutcome::busy;
  const BlockCase cases[] = {
      {"the group's moving call refused after block 0 moved", 3, 3, 1, false, false, moved, busy, ENOMEM},
      {"the group's moving call refused before anything moved", 3, 3, 0, false, true, busy, busy, ENOMEM},
      {"block 0's query after the move refused once", 4, 4, 0, false, false, moved, moved, ENOMEM},
      {"block 1's query after the move refused once", 5, 5, 0, false, false, moved, moved, ENOMEM},
      {"block 1 split: its rest refused", 6, 6, 0, true, false, moved, busy, ENOMEM},
      {"block 1 split: its rest refused after 100 pages", 6, 6, 100, true, false, moved, busy, ENOMEM},
      {"block 1 split: the query after its rest refused once", 7, 7, 0, true, false, moved, moved, ENOMEM},
      {"block 1 split: every call from its rest on refused", 6, 1000, 0, true, false, moved, busy, ENOMEM},
      // EPERM (a seccomp filter, a dropped capability): the kernel turned
      // the call away before any page, and asking where the pages are is
      // refused too. Nothing moved: the call's error, as GuestRam's helper
      // fallback expects; after block 0 moved, block 1's rest is known
      // unmoved (513 frames, exact).
      {"every call from the group's moving call on refused (EPERM)", 3, 1000, 0, false, true, busy, busy, EPERM},
      {"block 1 split: every call from its rest on refused (EPERM)", 6, 1000, 0, true, false, moved, busy, EPERM},
  };
  for (const BlockCase& c : cases) {
    SCOPED_TRACE(c.what);
    Rig rig(2 * kBlock, true);
    ASSERT_TRUE(rig.ok());
    rig.k.fail_at = c.fail_at;
    rig.k.fail_until = c.fail_until;
    rig.k.fail_after = c.fail_after;
    rig.k.split[1] = c.split_second;
    rig.k.fail_errno = c.err;
    const Gfn g[2] = {7, kBlock + 9};
    MoveOutcome out[2] = {MoveOutcome::pinned, MoveOutcome::pinned};
    auto r = rig.km->move(g, 0, MoveGranularity::whole_blocks, out);
    const std::uint64_t there = rig.on_target(0, 2 * kBlock);
    if (c.whole_error) {
      EXPECT_FALSE(r.has_value());
      if (!r) {
        EXPECT_EQ(r.error(), c.err == EPERM ? Errc::unsupported : Errc::no_memory);
      }
      EXPECT_EQ(there, 0u);
      continue;
    }
    if (!r) {
      ADD_FAILURE() << "error " << errc_name(r.error()) << " after " << there << " frames moved";
      continue;
    }
    EXPECT_GT(there, 0u);
    // Every call refused from block 1's rest on: its first page moved but
    // where it is could not be asked, so it is not counted (busy).
    const std::uint64_t unseen = c.fail_until == 1000 && c.err != EPERM ? 1 : 0;
    EXPECT_EQ(r->frames_moved + unseen, there);
    EXPECT_EQ(out[0], c.want0) << name(out[0]);
    EXPECT_EQ(out[1], c.want1) << name(out[1]);
    EXPECT_EQ(rig.on_target(0, kBlock) == kBlock, out[0] == moved);
    EXPECT_EQ(rig.on_target(kBlock, kBlock) == kBlock, out[1] == moved);
  }
}

// move_blocks (GuestRam's gathered moves) with more blocks than one group
// holds: the second group's first query refused after the first group
// moved. Calls: 16 queries, the group's moving call, 16 queries after it,
// then the second group's queries (34 and 35).
TEST(kernel_mover_partial_broken, ALaterGroupRefusedKeepsTheFirstGroupsMove) {
  constexpr std::size_t kBlocks = KernelMover::kBlockGroup + 2;
  Rig rig(kBlocks * kBlock, true);
  ASSERT_TRUE(rig.ok());
  rig.k.fail_at = rig.k.fail_until = 2 * static_cast<int>(KernelMover::kBlockGroup) + 2;
  MoveOutcome out[kBlocks];
  std::uint64_t frames = 0;
  KernelMover::BlockMove blocks[kBlocks];
  for (std::size_t b = 0; b < kBlocks; ++b) {
    out[b] = MoveOutcome::pinned;
    blocks[b] = KernelMover::BlockMove{&*rig.km, b * kBlock, 0, &out[b], &frames};
  }
  const Status st = KernelMover::move_blocks(0, blocks);
  const std::uint64_t there = rig.on_target(0, kBlocks * kBlock);
  EXPECT_EQ(there, KernelMover::kBlockGroup * kBlock);
  ASSERT_TRUE(st.has_value()) << "error " << errc_name(st.error()) << " after " << there << " frames moved";
  EXPECT_EQ(frames, there);
  for (std::size_t b = 0; b < kBlocks; ++b)
    EXPECT_EQ(out[b], b < KernelMover::kBlockGroup ? MoveOutcome::moved : MoveOutcome::busy) << "block " << b;
}

// More than one chunk (256 pages) of 4 KiB pages: calls 1-2 ask where
// each chunk is, 3 and 4 move them.
struct PageCase {
  const char* what;
  int fail_at;
  std::size_t fail_after;
  std::uint64_t want_moved;  // 0: nothing moved, the call's error
  int err;                   // the refused calls' errno, from fail_at on (EPERM: every later call too)
};

TEST(kernel_mover_partial_broken, ALateRefusalInAPageMoveKeepsWhatMoved) {
  constexpr std::uint64_t kPages = 300;
  const PageCase cases[] = {
      {"a query before anything moved refused", 2, 0, 0, ENOMEM},
      {"the first chunk's move refused at once", 3, 0, 0, ENOMEM},
      {"the first chunk's move refused after 50 pages", 3, 50, 50, ENOMEM},
      {"the second chunk's move refused at once", 4, 0, 256, ENOMEM},
      {"the second chunk's move refused after 10 pages", 4, 10, 266, ENOMEM},
      {"every call from the first chunk's move on refused (EPERM)", 3, 0, 0, EPERM},
      {"every call from the second chunk's move on refused (EPERM)", 4, 0, 256, EPERM},
  };
  for (const PageCase& c : cases) {
    SCOPED_TRACE(c.what);
    Rig rig(kPages, false);
    ASSERT_TRUE(rig.ok());
    rig.k.fail_at = rig.k.fail_until = c.fail_at;
    if (c.err == EPERM) rig.k.fail_until = 1000;
    rig.k.fail_errno = c.err;
    rig.k.fail_after = c.fail_after;
    std::vector<Gfn> g(kPages);
    for (std::uint64_t p = 0; p < kPages; ++p) g[p] = p;
    std::vector<MoveOutcome> out(kPages, MoveOutcome::pinned);
    auto r = rig.km->move(g, 0, MoveGranularity::pages, out);
    const std::uint64_t there = rig.on_target(0, kPages);
    EXPECT_EQ(there, c.want_moved);
    if (c.want_moved == 0) {
      EXPECT_FALSE(r.has_value());
      if (!r) {
        EXPECT_EQ(r.error(), c.err == EPERM ? Errc::unsupported : Errc::no_memory);
      }
      continue;
    }
    if (!r) {
      ADD_FAILURE() << "error " << errc_name(r.error()) << " after " << there << " frames moved";
      continue;
    }
    EXPECT_EQ(r->frames_moved, there);
    std::uint64_t wrong = 0;
    for (std::uint64_t p = 0; p < kPages; ++p)
      wrong += out[p] != (rig.where(p) == 0 ? MoveOutcome::moved : MoveOutcome::busy);
    EXPECT_EQ(wrong, 0u) << "outcomes not moved-where-moved, busy elsewhere";
  }
}

// The migrator books what moved before a refusal: a rehome of 128 pages
// from node 1 to node 0 (64 pages a move), the first moving call refused
// after 20 of its pages moved.
TEST(kernel_mover_partial_broken, TheMigratorBooksFramesMovedBeforeARefusal) {
  constexpr std::uint64_t kPages = 128;
  Rig rig(kPages, false);
  ASSERT_TRUE(rig.ok());
  rig.k.fail_move_at = 1;
  rig.k.fail_after = 20;
  auto topo = TopologyBuilder("test:two").add_node(0, {0}, 64ull << 20).add_node(1, {1}, 64ull << 20).build();
  ASSERT_TRUE(topo.has_value());
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  cfg.watermark_fraction = 0;
  cfg.decay_steps = 1000;
  auto mg = Migrator::create(*topo, cfg);
  ASSERT_TRUE(mg.has_value());
  Migrator& m = **mg;
  MigrateGuestOptions o;
  o.auto_balance = false;
  auto id = m.add_guest(*rig.km, o);
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(m.rehome(*id, NodeMask::single(0)).has_value());
  (void)m.step_at(1);
  EXPECT_EQ(rig.k.moving_calls, 2) << "one refused move of 64 pages, one that moved its 64";
  EXPECT_EQ(m.stats().pages_moved, rig.on_target(0, kPages)) << "frames that changed node, booked";
  EXPECT_EQ(rig.on_target(0, kPages), 84u);
  int steps = 1;
  for (; steps < 16; ++steps) {
    auto p = m.rehome_progress(*id);
    ASSERT_TRUE(p.has_value());
    if (p->state != RehomeState::running) break;
    (void)m.step_at(static_cast<std::uint64_t>(steps) + 1);
  }
  auto p = m.rehome_progress(*id);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->state, RehomeState::done);
  EXPECT_EQ(rig.on_target(0, kPages), kPages);
  EXPECT_EQ(m.stats().pages_moved, kPages) << "every frame moved once, every one booked";
  EXPECT_EQ(p->moved, kPages);
  std::uint64_t pair = 0;
  for (const NodePairMoves& mv : m.stats().moves)
    if (mv.from == 1 && mv.to == 0) pair += mv.pages;
  EXPECT_EQ(pair, kPages) << "node 1 -> node 0";
}

}  // namespace
}  // namespace numaheap
