// SharingPolicy: which nodes may share a frame.
#include <algorithm>

#include "numaheap/sharing.h"

namespace numaheap {

bool SharingPolicy::allows(const Topology& topo, NodeId a, NodeId b) const noexcept {
  switch (kind_) {
    case Kind::across_nodes:
      return true;
    case Kind::same_node_only:
      return a == b;
    case Kind::within_distance:
      // Asymmetric SLITs: both directions must be near enough, since either
      // guest may end up reading the frame.
      return a == b || std::max(topo.distance(a, b), topo.distance(b, a)) <= max_distance_;
  }
  return false;
}

}  // namespace numaheap
