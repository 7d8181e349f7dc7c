// A mover for tests of the migrator's bookkeeping: a guest of `pages`
// frames, all on node 0, that never move (every move answers busy).
#pragma once

#include <cstdint>
#include <span>

#include "numaheap/mover.h"

namespace numaheap::test {

class StubMover final : public Mover {
 public:
  explicit StubMover(std::uint64_t pages) : pages_(pages) {}
  std::uint64_t page_count() const noexcept override { return pages_; }
  Status query(Gfn first, std::span<PageState> out) noexcept override {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = first + i < pages_ ? PageState{0, 1, 0} : PageState{};
    return {};
  }
  Result<MoveTotals> move(std::span<const Gfn>, NodeId, MoveGranularity, std::span<MoveOutcome> out) noexcept override {
    for (auto& o : out) o = MoveOutcome::busy;
    return MoveTotals{};
  }

 private:
  std::uint64_t pages_;
};

}  // namespace numaheap::test
