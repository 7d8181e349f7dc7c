// The control-domain (dom0 / backend) layout helper: host code (the
// toolstack decides how big dom0 is and where). See guest_spec.h (from the
// topology's figures) and placement.h (from the allocator's current free
// memory above the watermarks).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "numaheap/guest_spec.h"
#include "numaheap/page_allocator.h"
#include "numaheap/placement.h"

namespace numaheap {

namespace {

constexpr std::uint64_t kPage = kFrameSize;
constexpr std::uint64_t k2M = 2ull << 20;

Error spec_error(const GuestSpec& g, const std::string& what) {
  return Error{Errc::invalid_argument, "guest '" + (g.name.empty() ? std::string("?") : g.name.str()) + "': " + what};
}

std::string mb(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

struct Share {
  NodeId node;
  std::uint64_t free;  // what the layout may take on the node, a 4 KiB multiple
};

// The layout over `nodes` (those with something free), in proportion to
// what each has free; `what` says which free memory in the error.
Result<GuestSpec, Error> layout(const Topology& topo, std::vector<Share> nodes, std::uint64_t total,
                                std::string name, const char* what) {
  GuestSpec g;
  g.name = std::move(name);
  if (total == 0 || total % kPage) return spec_error(g, "size must be a non-zero multiple of 4 KiB");
  std::uint64_t free_sum = 0;
  for (const auto& s : nodes) free_sum += s.free;
  if (nodes.empty() || free_sum == 0) return spec_error(g, std::string("no node has ") + what);
  if (total > free_sum)
    return spec_error(g, "asks for " + mb(total) + " but only " + mb(free_sum) + " is " + what);
  std::size_t biggest = 0;
  for (std::size_t i = 1; i < nodes.size(); ++i)
    if (nodes[i].free > nodes[biggest].free) biggest = i;
  std::vector<std::uint64_t> share(nodes.size(), 0);
  std::uint64_t given = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    // total * free / free_sum without overflow (sizes < 2^50, ratio <= 1).
    long double exact = static_cast<long double>(total) * static_cast<long double>(nodes[i].free) /
                        static_cast<long double>(free_sum);
    std::uint64_t s = static_cast<std::uint64_t>(exact) / k2M * k2M;
    share[i] = std::min(s, nodes[i].free);
    given += share[i];
  }
  // The remainder goes where there is most room, then spills over.
  std::uint64_t rest = total - given;
  for (std::size_t step = 0; rest > 0 && step <= nodes.size(); ++step) {
    std::size_t i = step == 0 ? biggest : step - 1;
    std::uint64_t room = nodes[i].free - share[i];
    std::uint64_t add = std::min(room, rest);
    share[i] += add;
    rest -= add;
  }
  g.memory_bytes = total;
  g.vcpus = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (share[i] == 0) continue;
    VNodeSpec v;
    v.memory_bytes = share[i];
    v.pnode = nodes[i].node;
    v.vcpus = {g.vcpus++};
    g.vnodes.push_back(std::move(v));
  }
  // Virtual distances mirror the host's.
  for (auto& v : g.vnodes)
    for (const auto& o : g.vnodes) v.distances.push_back(topo.distance(v.pnode, o.pnode));
  if (!g.ok()) return Error{Errc::no_memory, "control domain spec: out of memory"};
  if (auto ok = validate_guest_spec(g, topo); !ok) return ok.error();
  return g;
}

}  // namespace

Result<GuestSpec, Error> control_domain_spec(const Topology& topo, std::uint64_t total,
                                             std::string name) {
  std::vector<Share> nodes;
  for (const auto& n : topo.nodes()) {
    if (!n.has_memory()) continue;
    std::uint64_t f = n.free_bytes == kUnknownBytes ? n.memory_bytes : n.free_bytes;
    f = f / kPage * kPage;
    if (f == 0) continue;
    nodes.push_back({n.id, f});
  }
  return layout(topo, std::move(nodes), total, std::move(name), "free");
}

Result<GuestSpec, Error> control_domain_spec(const PageAllocator& pa, std::uint64_t total,
                                             std::string name, const PlacementOptions& options) {
  const Topology& topo = pa.topology();
  const Placer placer(topo, options);
  const std::vector<NodeUsage> usage = heap_usage(pa);
  std::vector<Share> nodes;
  for (std::size_t i = 0; i < usage.size(); ++i) {
    const NodeId id = topo.node_at(i).id;
    const std::uint64_t wm = placer.watermark(id);
    const std::uint64_t f = usage[i].free_bytes > wm ? (usage[i].free_bytes - wm) / kPage * kPage : 0;
    if (f == 0) continue;
    nodes.push_back({id, f});
  }
  return layout(topo, std::move(nodes), total, std::move(name), "free above the watermarks");
}

}  // namespace numaheap
