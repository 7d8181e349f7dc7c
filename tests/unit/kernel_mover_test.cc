// KernelMover's huge blocks (include/numaheap/mover.h): query() reports the
// pages of an aligned 2 MiB range one huge page maps as order 9, and
// move(whole_blocks) moves each listed page's block, with bad input refused
// before anything moves and a partial outcome reported per listed page.
// The host has one memory node, so moves here go nowhere; the real move
// (one THP across nodes, whole and not split) is checked in the VM
// (tests/vm/migrate_checks.cc). Where the THP probe cannot see huge pages
// (no THP, no CAP_SYS_ADMIN) the block path is driven by a test probe.
#include <gtest/gtest.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "numaheap/mover.h"
#include "numaheap/topology_io.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages;
constexpr std::uint64_t kBlockBytes = kBlock * kFrameSize;

// `blocks` 2 MiB-aligned blocks of fresh anonymous memory.
struct AlignedMap {
  explicit AlignedMap(std::uint64_t blocks, bool hugepage) : bytes(blocks * kBlockBytes) {
    raw = mmap(nullptr, bytes + kBlockBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return;
    base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kBlockBytes - 1) / kBlockBytes * kBlockBytes);
    (void)madvise(base, bytes, hugepage ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  }
  ~AlignedMap() {
    if (raw != MAP_FAILED) munmap(raw, bytes + kBlockBytes);
  }
  std::uint64_t bytes;
  void* raw = MAP_FAILED;
  char* base = nullptr;
};

bool always_huge(void*, const void*) { return true; }

bool move_pages_allowed(KernelMover& km) {
  PageState st[1];
  Status q = km.query(0, st);
  return q || q.error() != Errc::unsupported;
}

// One filled 2 MiB block under a KernelMover: the set-up of the one-block
// tests. `failed` says why it could not be made (the test fails), `skip`
// that move_pages is not permitted here (the test skips).
struct FilledBlock {
  explicit FilledBlock(bool hugepage) : map(1, hugepage) {
    if (map.raw == MAP_FAILED) {
      failed = "mmap failed";
      return;
    }
    std::memset(map.base, 1, map.bytes);
    auto r = KernelMover::create(map.base, kBlock);
    if (!r) {
      failed = "KernelMover::create failed";
      return;
    }
    km.emplace(std::move(*r));
    if (!move_pages_allowed(*km)) skip = "move_pages not permitted here";
  }
  AlignedMap map;
  std::optional<KernelMover> km;
  const char* failed = nullptr;
  const char* skip = nullptr;
};

TEST(KernelMoverBlocks, BadInputChangesNothing) {
  FilledBlock b(false);
  ASSERT_EQ(b.failed, nullptr) << b.failed;
  if (b.skip) GTEST_SKIP() << b.skip;
  auto& km = b.km;
  km->set_huge_probe_for_testing(always_huge, nullptr);
  Gfn g[2] = {0, 7};
  MoveOutcome out[1];
  auto r = km->move(g, 0, MoveGranularity::whole_blocks, std::span<MoveOutcome>(out, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::invalid_argument);  // out.size() != gfns.size()
  MoveOutcome out2[2];
  r = km->move(g, kMaxNodes, MoveGranularity::whole_blocks, out2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::invalid_node);
  EXPECT_FALSE(KernelMover::create(b.map.base + 1, 1).has_value());
}

TEST(KernelMoverBlocks, WholeBlockMoveReportsEveryListedPage) {
  AlignedMap m(2, false);
  ASSERT_NE(m.raw, MAP_FAILED);
  std::memset(m.base, 1, kBlockBytes);                // block 0: every page present
  std::memset(m.base + kBlockBytes, 1, kBlockBytes / 2);  // block 1: first half only
  const std::uint64_t pages = 2 * kBlock - 3;         // block 1 overhangs the mapping's end
  auto km = KernelMover::create(m.base, pages);
  ASSERT_TRUE(km.has_value());
  if (!move_pages_allowed(*km)) GTEST_SKIP() << "move_pages not permitted here";
  // Without huge pages (MADV_NOHUGEPAGE) every page is 4 KiB.
  PageState st[8];
  ASSERT_TRUE(km->query(0, st).has_value());
  EXPECT_EQ(st[0].order, 0u);
  EXPECT_FALSE(km->huge_block(0));
  km->set_huge_probe_for_testing(always_huge, nullptr);
  EXPECT_TRUE(km->huge_block(5));
  EXPECT_FALSE(km->huge_block(kBlock + 1)) << "a block the mapping does not hold whole is not huge";
  ASSERT_TRUE(km->query(kBlock - 4, st).has_value());
  EXPECT_EQ(st[0].order, KernelMover::kHugeBlockOrder);  // pages of block 0
  EXPECT_EQ(st[4].order, 0u);                            // block 1
  const NodeId here = st[0].node;
  ASSERT_NE(here, kNoNode);
  // Listed: a page of block 0 twice, a present and an absent page of
  // block 1 (moved alone), a page outside the mapping.
  Gfn g[5] = {5, 300, kBlock + 2, kBlock + 400, pages + 3};
  MoveOutcome out[5];
  auto r = km->move(g, here, MoveGranularity::whole_blocks, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::moved);
  EXPECT_EQ(out[1], MoveOutcome::moved);
  EXPECT_EQ(out[2], MoveOutcome::moved);
  EXPECT_EQ(out[3], MoveOutcome::not_present);
  EXPECT_EQ(out[4], MoveOutcome::not_present);
  EXPECT_EQ(r->frames_moved, 0u);  // everything was on `here` already
  // A block with no page present is not_present.
  ASSERT_EQ(madvise(m.base, kBlockBytes, MADV_DONTNEED), 0);
  Gfn g0[1] = {9};
  MoveOutcome o0[1];
  r = km->move(g0, here, MoveGranularity::whole_blocks, o0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(o0[0], MoveOutcome::not_present);
}

TEST(KernelMoverBlocks, MissingNodeAfterTheFirstPageIsAPartialOutcome) {
  auto topo = load_topology_libnuma();
  if (!topo) GTEST_SKIP() << "no libnuma topology";
  NodeId missing = 0;
  while (missing < kMaxNodes && topo->find(missing)) ++missing;
  FilledBlock b(false);
  ASSERT_EQ(b.failed, nullptr) << b.failed;
  if (b.skip) GTEST_SKIP() << b.skip;
  auto& km = b.km;
  km->set_huge_probe_for_testing(always_huge, nullptr);
  // The first listed page is outside the mapping (nothing to move), the
  // second's block cannot go to a missing node: the call succeeds with the
  // first page's outcome and the second reported busy, nothing moved.
  Gfn g[2] = {kBlock + 1, 3};
  MoveOutcome out[2];
  auto r = km->move(g, missing, MoveGranularity::whole_blocks, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::not_present);
  EXPECT_EQ(out[1], MoveOutcome::busy);
  EXPECT_EQ(r->frames_moved, 0u);
  // A page of a huge block is refused for a page-granular move (the kernel
  // would move all 512): busy, no call made, so no error either; on its
  // node already it is moved.
  r = km->move(std::span<const Gfn>(g + 1, 1), missing, MoveGranularity::pages, std::span<MoveOutcome>(out, 1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::busy);
  PageState st[1];
  ASSERT_TRUE(km->query(3, st).has_value());
  r = km->move(std::span<const Gfn>(g + 1, 1), st[0].node, MoveGranularity::pages, std::span<MoveOutcome>(out, 1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::moved);
  // Listed first, the same block is a whole-call error.
  r = km->move(std::span<const Gfn>(g + 1, 1), missing, MoveGranularity::whole_blocks, std::span<MoveOutcome>(out, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::invalid_node);
}

// Blocks listed one after another move in one group (one moving call for
// all their first pages): every listed page still gets its own outcome,
// a block listed again starts a new group, and pages outside huge blocks
// between them move as a run of pages.
bool huge_but_block_2(void* base, const void* head) {
  return head != static_cast<const char*>(base) + 2 * kBlockBytes;
}

TEST(KernelMoverBlocks, BlocksListedTogetherMoveAsAGroupWithOutcomesPerListedPage) {
  AlignedMap m(4, false);
  ASSERT_NE(m.raw, MAP_FAILED);
  std::memset(m.base, 1, 3 * kBlockBytes);  // block 3: nothing present
  auto km = KernelMover::create(m.base, 4 * kBlock);
  ASSERT_TRUE(km.has_value());
  if (!move_pages_allowed(*km)) GTEST_SKIP() << "move_pages not permitted here";
  km->set_huge_probe_for_testing(huge_but_block_2, m.base);
  PageState st[1];
  ASSERT_TRUE(km->query(0, st).has_value());
  const NodeId here = st[0].node;
  ASSERT_NE(here, kNoNode);
  // block 0, block 1, block 0 again, two pages of block 2 (4 KiB pages),
  // block 3 (absent), block 1 again, past the end.
  const Gfn g[8] = {5, kBlock + 7, 9, 2 * kBlock + 1, 2 * kBlock + 2, 3 * kBlock, kBlock, 4 * kBlock};
  const MoveOutcome want[8] = {MoveOutcome::moved, MoveOutcome::moved,       MoveOutcome::moved,
                               MoveOutcome::moved, MoveOutcome::moved,       MoveOutcome::not_present,
                               MoveOutcome::moved, MoveOutcome::not_present};
  MoveOutcome out[8];
  for (MoveOutcome& o : out) o = MoveOutcome::busy;
  auto r = km->move(g, here, MoveGranularity::whole_blocks, out);
  ASSERT_TRUE(r.has_value());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], want[i]) << "listed page " << i << " (gfn " << g[i] << ")";
  EXPECT_EQ(r->frames_moved, 0u);  // everything was on `here` already
  // More blocks than one group holds: every one still answered.
  AlignedMap big(KernelMover::kBlockGroup + 3, false);
  ASSERT_NE(big.raw, MAP_FAILED);
  std::memset(big.base, 1, big.bytes);
  auto kb = KernelMover::create(big.base, big.bytes / kFrameSize);
  ASSERT_TRUE(kb.has_value());
  kb->set_huge_probe_for_testing(always_huge, nullptr);
  std::vector<Gfn> heads;
  for (std::uint64_t b = 0; b < KernelMover::kBlockGroup + 3; ++b) heads.push_back(b * kBlock + b);
  std::vector<MoveOutcome> hout(heads.size(), MoveOutcome::busy);
  r = kb->move(heads, here, MoveGranularity::whole_blocks, hout);
  ASSERT_TRUE(r.has_value());
  for (std::size_t i = 0; i < heads.size(); ++i) EXPECT_EQ(hout[i], MoveOutcome::moved) << "block " << i;
}

// Linux 6.7 and later have PAGEMAP_SCAN.
bool kernel_has_pagemap_scan() {
  utsname u{};
  if (uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 7);
}

// The two ways of telling a THP agree wherever both can tell: a block one
// THP maps, a block of 4 KiB pages, a block half touched.
TEST(KernelMoverBlocks, PagemapScanAndFrameFlagsAgree) {
  AlignedMap huge(1, true), small(1, false), half(1, true);
  ASSERT_NE(huge.raw, MAP_FAILED);
  ASSERT_NE(small.raw, MAP_FAILED);
  ASSERT_NE(half.raw, MAP_FAILED);
  std::memset(huge.base, 1, huge.bytes);
  std::memset(small.base, 1, small.bytes);
  (void)madvise(half.base, half.bytes, MADV_NOHUGEPAGE);
  std::memset(half.base, 1, half.bytes / 2);
  const bool scan_here = kernel_has_pagemap_scan();
  for (const char* head : {huge.base, small.base, half.base}) {
    const int scan = KernelMover::thp_by_pagemap_scan(head), flags = KernelMover::thp_by_frame_flags(head);
    if (scan_here) {
      EXPECT_GE(scan, 0) << "PAGEMAP_SCAN unusable on a kernel that has it";
    }
    if (scan >= 0 && flags >= 0) {
      EXPECT_EQ(scan, flags) << (head == huge.base ? "THP block" : "4 KiB block");
    }
  }
  EXPECT_NE(KernelMover::thp_by_pagemap_scan(small.base), 1);
  EXPECT_NE(KernelMover::thp_by_pagemap_scan(half.base), 1);
  if (KernelMover::thp_by_frame_flags(huge.base) != 1) GTEST_SKIP() << "no THP formed here, or no way to see one";
  if (scan_here) {
    EXPECT_EQ(KernelMover::thp_by_pagemap_scan(huge.base), 1);
  }
}

// Without privilege (a VMM run as its own user, as libvirt runs QEMU) the
// frame numbers and page flags are hidden, and PAGEMAP_SCAN still sees the
// huge page: a forked child that drops to nobody answers for the THP block
// it inherited (the fork keeps it PMD-mapped).
TEST(KernelMoverBlocks, AnUnprivilegedProcessStillSeesTheHugePage) {
  if (!kernel_has_pagemap_scan()) GTEST_SKIP() << "no PAGEMAP_SCAN before Linux 6.7";
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to another user";
  AlignedMap huge(1, true);
  ASSERT_NE(huge.raw, MAP_FAILED);
  std::memset(huge.base, 1, huge.bytes);
  if (KernelMover::thp_by_frame_flags(huge.base) != 1) GTEST_SKIP() << "no THP formed here";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Exit codes: 0 as expected, 1 could not drop, 2 frame flags still readable, 3 scan wrong.
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(1);
    (void)prctl(PR_SET_DUMPABLE, 1);  // its own /proc/self files readable again after the switch
    if (KernelMover::thp_by_frame_flags(huge.base) == 1) _exit(2);
    _exit(KernelMover::thp_by_pagemap_scan(huge.base) == 1 ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: could not drop privileges, 2: frame flags readable as nobody, "
                                       "3: PAGEMAP_SCAN did not see the huge page";
}

TEST(KernelMoverBlocks, RealTransparentHugePageIsOneBlock) {
  FilledBlock b(true);
  ASSERT_EQ(b.failed, nullptr) << b.failed;
  if (b.skip) GTEST_SKIP() << b.skip;
  auto& km = b.km;
  if (!km->huge_block(0))
    GTEST_SKIP() << "no transparent huge page seen here (THP off, or /proc/kpageflags and pagemap frame numbers "
                    "unreadable without CAP_SYS_ADMIN)";
  PageState st[kBlock];
  ASSERT_TRUE(km->query(0, st).has_value());
  for (const PageState& p : st) ASSERT_EQ(p.order, KernelMover::kHugeBlockOrder);
  Gfn g[1] = {17};
  MoveOutcome out[1];
  auto r = km->move(g, st[0].node, MoveGranularity::whole_blocks, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], MoveOutcome::moved);
  EXPECT_TRUE(km->huge_block(0)) << "a move in place split the huge page";
}

// query() asks one page per huge block (all of a THP's pages are on its
// node) and every other page alone: over ranges that begin and end inside
// blocks, around a block of small pages with holes, its answer is the
// per-page move_pages answer, order 9 on exactly the huge blocks' pages.
TEST(KernelMoverBlocks, QueryAcrossHugeAndSmallBlocksMatchesThePerPageAnswer) {
  AlignedMap map(3, true);
  ASSERT_NE(map.raw, MAP_FAILED);
  char* small = map.base + kBlockBytes;
  ASSERT_EQ(madvise(small, kBlockBytes, MADV_NOHUGEPAGE), 0);
  std::memset(map.base, 1, kBlockBytes);
  std::memset(map.base + 2 * kBlockBytes, 1, kBlockBytes);
  for (std::uint64_t p = 0; p < kBlock; p += 2) small[p * kFrameSize] = 1;  // every other page present
  auto r = KernelMover::create(map.base, 3 * kBlock);
  ASSERT_TRUE(r.has_value());
  KernelMover& km = *r;
  if (!move_pages_allowed(km)) GTEST_SKIP() << "move_pages not permitted here";
  if (!km.huge_block(0) || !km.huge_block(2 * kBlock))
    GTEST_SKIP() << "no transparent huge pages seen here (THP off, or no way to see them)";
  ASSERT_FALSE(km.huge_block(kBlock));
  for (const auto& [first, len] : std::vector<std::pair<Gfn, std::uint64_t>>{
           {0, 3 * kBlock}, {100, 1200}, {511, 2}, {kBlock - 1, kBlock + 2}, {kBlock + 1, 3}, {2 * kBlock + 7, 9}}) {
    std::vector<PageState> st(len);
    ASSERT_TRUE(km.query(first, st).has_value());
    for (std::uint64_t i = 0; i < len; ++i) {
      const Gfn g = first + i;
      void* a = map.base + g * kFrameSize;
      int want = -1;
      ASSERT_EQ(move_pages(0, 1, &a, nullptr, &want, 0), 0);
      const bool present = want >= 0;
      ASSERT_EQ(st[i].node, present ? static_cast<NodeId>(want) : kNoNode) << "range " << first << "+" << len << " page " << g;
      const bool in_huge = g < kBlock || g >= 2 * kBlock;
      EXPECT_EQ(st[i].order, present && in_huge ? KernelMover::kHugeBlockOrder : 0) << g;
    }
  }
}

}  // namespace
}  // namespace numaheap
