// Negative tests: the scrub scenarios of heap_scrub_test, run against an
// allocator with one safety step deliberately broken (numaheap_faulty, see
// allocator/platform/fault_injection.h). Each scenario must see the
// violation on every run; if it did not, heap_scrub_test's passing would
// prove nothing.
#include <gtest/gtest.h>

#include <span>

#include "allocator/platform/fault_injection.h"
#include "unit/scrub_scenarios.h"

namespace numaheap {
namespace {

TEST(heap_scrub_broken, ScrubberThatIgnoresStopIsCaught) {
  fault::Scope broken(fault::scrub_ignores_stop);
  const test::InterruptResult r = test::interrupted_scrub();
  ASSERT_TRUE(r.allocated);
  EXPECT_GT(r.frames_not_new_owners, 0u) << "the scenario missed a scrubber writing after stop";
}

TEST(heap_scrub_broken, FastPathWithoutScrubIsCaught) {
  fault::Scope broken(fault::fast_path_skips_scrub);
  const test::FastPathResult r = test::fast_path_handover();
  if (!r.lockless) GTEST_SKIP() << "no rseq fast path here";
  EXPECT_GT(r.unclean, 0u) << "the scenario never reached the lock-free pop";
}

// Runs each request with the fast path's scrub broken (only that path
// hands out unclean frames then): `fast` says whether the fast path must
// serve them. False when this host has no rseq fast path.
bool expect_fast_path(std::span<const test::NamedHandover> list, bool fast) {
  fault::Scope broken(fault::fast_path_skips_scrub);
  for (const test::NamedHandover& h : list) {
    SCOPED_TRACE(h.what);
    const test::FastPathResult r = test::fast_path_handover(h.ask);
    if (!r.lockless) return false;
    EXPECT_GT(r.handed_out, 0u);
    if (fast)
      EXPECT_GT(r.unclean, 0u) << "not served by the fast path";
    else
      EXPECT_EQ(r.unclean, 0u) << "served by the fast path";
    EXPECT_EQ(r.off_node, 0u);
  }
  return true;
}

// Requests naming the CPU's own node (preferred or exact) are served by
// the lock-free fast path, not by alloc_slow.
TEST(heap_scrub_broken, OwnNodeRequestsTakeTheFastPath) {
  if (!expect_fast_path(test::kOwnNodeRequests, true)) GTEST_SKIP() << "no rseq fast path here";
}

// Another node, or the own node excluded: alloc_slow, which scrubs even
// with the fast path broken.
TEST(heap_scrub_broken, OtherRequestsTakeTheSlowPath) {
  if (!expect_fast_path(test::kSlowPathRequests, false)) GTEST_SKIP() << "no rseq fast path here";
}

// Cache entries whose dirty tag is a truncation of the owner (not exact):
// some writer/reader pair shares a tag, and the reader, asking no_scrub,
// gets the writer's bytes.
TEST(heap_scrub_broken, TruncatedEntryTagIsCaught) {
  fault::Scope broken(fault::entry_tag_truncates);
  std::uint64_t unclean = 0;
  for (const test::NamedHandover& h : test::kUntaggedOwners) {
    const test::FastPathResult r = test::fast_path_handover(h.ask, 20);
    if (!r.lockless) GTEST_SKIP() << "no rseq fast path here";
    unclean += r.unclean;
  }
  EXPECT_GT(unclean, 0u) << "the scenarios missed a tag that confuses two owners";
}

// alloc_bulk's cache route without its scrub: the reader sees the writer's
// bytes, so heap_scrub_bulk's scenario reaches that route and would see it.
TEST(heap_scrub_broken, BulkCacheRouteWithoutScrubIsCaught) {
  fault::Scope broken(fault::bulk_cache_skips_scrub);
  const test::BulkHandoverResult r = test::bulk_cache_handover();
  EXPECT_GT(r.handed_out, 0u);
  EXPECT_GT(r.unclean, 0u) << "the scenario never reached the bulk cache route";
}

TEST(heap_scrub_broken, CorrectAllocatorPassesTheSameScenarios) {
  // The faulty build with no fault on behaves as the real one.
  const test::InterruptResult r = test::interrupted_scrub();
  EXPECT_EQ(r.frames_not_new_owners, 0u);
  EXPECT_EQ(r.background_scrubbed, 0u);
}

}  // namespace
}  // namespace numaheap
