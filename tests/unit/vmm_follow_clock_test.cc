// The sampler's follow clock (vmm/host/follow_clock.h): after a burst for
// moved vCPUs the shed stays off for 2 s, and 2 s more from each moved
// vCPU's sample that finds the migrator moved pages since the one before;
// a sample that finds nothing moved does not extend it, nor does one after
// the following ended.
#include <gtest/gtest.h>

#include "vmm/host/follow_clock.h"

using numaheap::detail::FollowClock;

namespace {

constexpr std::uint64_t kS = 1'000'000'000;

TEST(FollowClock, LastsTwoSecondsAfterABurstAndLongerWhilePagesMove) {
  FollowClock f;
  EXPECT_FALSE(f.following(0)) << "nothing to follow before a burst";
  f.burst(10 * kS);
  EXPECT_TRUE(f.following(10 * kS));
  EXPECT_TRUE(f.following(12 * kS - 1));
  EXPECT_TRUE(f.sample(11 * kS, 100)) << "pages moved since the last sample";
  EXPECT_TRUE(f.following(12 * kS + kS / 2)) << "pushed on to 13 s";
  EXPECT_TRUE(f.sample(12 * kS + kS / 2, 300));
  EXPECT_FALSE(f.sample(13 * kS, 300)) << "nothing moved since: no push";
  EXPECT_TRUE(f.following(14 * kS + kS / 2 - 1));
  EXPECT_FALSE(f.following(14 * kS + kS / 2)) << "2 s after the last sample that found moves";
  EXPECT_FALSE(f.sample(15 * kS, 900)) << "over: a late sample does not restart it";
  EXPECT_FALSE(f.following(15 * kS));
  f.burst(20 * kS);  // a new burst
  EXPECT_TRUE(f.following(21 * kS));
  EXPECT_FALSE(f.sample(21 * kS, 900)) << "the count seen after the last one: unchanged";
  EXPECT_FALSE(f.following(22 * kS));
}

}  // namespace
