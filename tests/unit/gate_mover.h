// GateMover: a test mover whose first move waits inside the mover until
// the test opens the gate, so a test can hold a migrator's step (or its
// background thread) mid-move and act meanwhile.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>

#include "numaheap/mover.h"

namespace numaheap::test {

// A guest of kPages pages on node 0; its first move waits inside the mover
// until open() (wait_entered() returns once it is there).
class GateMover final : public Mover {
 public:
  static constexpr std::uint64_t kPages = 64;
  std::uint64_t page_count() const noexcept override { return kPages; }
  Status query(Gfn first, std::span<PageState> out) noexcept override {
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = first + i < kPages ? PageState{node_[first + i].load(), 0, 0} : PageState{};
    return {};
  }
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity,
                          std::span<MoveOutcome> out) noexcept override {
    {
      std::unique_lock<std::mutex> l(mu_);
      inside_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return open_; });
    }
    MoveTotals t;
    for (std::size_t i = 0; i < gfns.size(); ++i) {
      out[i] = MoveOutcome::moved;
      if (node_[gfns[i]].exchange(target) != target) ++t.frames_moved;
    }
    return t;
  }
  // False if no move came within the bound (a failure, not a synchronisation).
  bool wait_entered() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(60), [&] { return inside_; });
  }
  void open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::atomic<NodeId> node_[kPages] = {};
  std::mutex mu_;
  std::condition_variable cv_;
  bool inside_ = false, open_ = false;
};

}  // namespace numaheap::test
