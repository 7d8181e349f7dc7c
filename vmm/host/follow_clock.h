// How long the sampler follows moved vCPUs (internal to vmm/host).
//
// After vcpu_moved() the moved vCPUs' samples ask the migrator for a step at
// once (Migrator::request_step) and the overload shed stays off, so their
// pages are sampled and follow them. That lasts kFollowNs after the burst,
// and kFollowNs more each time such a sample finds that the migrator moved
// pages since the one before: under emulation a burst's samples on memfd
// RAM take longer than 2 s to arrive, and a fixed 2 s let the shed close
// the windows of pages still to follow (session 14: a third to a half of
// the moved vCPUs' pages left remote for good).
//
// The count is this guest's own (Migrator::guest_stats, lock-free), so
// in a migrator shared by several guests another guest's moves do not
// hold this one's shed off.
//
// Used by the sampler's handler thread only: no locking.
#pragma once

#include <algorithm>
#include <cstdint>

namespace numaheap::detail {

class FollowClock {
 public:
  static constexpr std::uint64_t kFollowNs = 2'000'000'000;

  // A burst for moved vCPUs was served at `now_ns`.
  void burst(std::uint64_t now_ns) noexcept { until_ns_ = now_ns + kFollowNs; }
  // A moved vCPU's sample at `now_ns` found its guest's pages_moved at
  // `moved`; true when that pushed the following on.
  bool sample(std::uint64_t now_ns, std::uint64_t moved) noexcept {
    const bool on = following(now_ns) && moved != moved_at_sample_;
    moved_at_sample_ = moved;
    if (on) until_ns_ = std::max(until_ns_, now_ns + kFollowNs);
    return on;
  }
  bool following(std::uint64_t now_ns) const noexcept { return now_ns < until_ns_; }

 private:
  std::uint64_t until_ns_ = 0;         // following before this time
  std::uint64_t moved_at_sample_ = 0;  // pages_moved at the last sample()
};

}  // namespace numaheap::detail
