// Negative tests: the scrub scenarios of heap_scrub_test, run against an
// allocator with one safety step deliberately broken (numaheap_faulty, see
// allocator/platform/fault_injection.h). Each scenario must see the
// violation on every run; if it did not, heap_scrub_test's passing would
// prove nothing.
#include <gtest/gtest.h>

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

TEST(heap_scrub_broken, CorrectAllocatorPassesTheSameScenarios) {
  // The faulty build with no fault on behaves as the real one.
  const test::InterruptResult r = test::interrupted_scrub();
  EXPECT_EQ(r.frames_not_new_owners, 0u);
  EXPECT_EQ(r.background_scrubbed, 0u);
}

}  // namespace
}  // namespace numaheap
