// A mover that hands page_count, query and move to another one: tests
// derive from it to count calls or to hide what the inner mover knows
// (node room, say) without restating the forwarding.
#pragma once

#include <cstdint>
#include <span>

#include "numaheap/mover.h"

namespace numaheap::test {

class ForwardingMover : public Mover {
 public:
  explicit ForwardingMover(Mover& inner) : inner_(inner) {}
  std::uint64_t page_count() const noexcept override { return inner_.page_count(); }
  Status query(Gfn first, std::span<PageState> out) noexcept override { return inner_.query(first, out); }
  Result<MoveTotals> move(std::span<const Gfn> gfns, NodeId target, MoveGranularity g,
                          std::span<MoveOutcome> out) noexcept override {
    return inner_.move(gfns, target, g, out);
  }

 protected:
  Mover& inner_;
};

}  // namespace numaheap::test
