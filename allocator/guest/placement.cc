// Placer: node-set choice for new guests (see include/numaheap/placement.h).
// The public entry points and PlacementSession; the search itself is in
// placement_flat.cc (a guest without vnodes) and placement_vnuma.cc (with
// vnodes), sharing placement_internal.h.
#include "numaheap/placement.h"

#include "numaheap/page_allocator.h"

#include "allocator/guest/placement_internal.h"

namespace numaheap {

using placement_detail::Ctx;
using placement_detail::kInf;
using placement_detail::place_flat;
using placement_detail::place_vnuma;

Placer::Placer(const Topology& topo, PlacementOptions options) : topo_(topo), options_(options) {}

std::vector<NodeUsage> Placer::idle_usage() const {
  std::vector<NodeUsage> u(topo_.node_count());
  for (std::size_t i = 0; i < u.size(); ++i) {
    const NodeInfo& n = topo_.node_at(i);
    if (!n.has_memory()) continue;
    u[i].free_bytes = n.free_bytes == kUnknownBytes ? n.memory_bytes : n.free_bytes;
  }
  return u;
}

std::uint64_t Placer::watermark(NodeId node) const noexcept {
  const NodeInfo* n = topo_.find(node);
  if (!n || !n->has_memory()) return 0;
  auto frac = static_cast<std::uint64_t>(static_cast<double>(n->memory_bytes) *
                                         options_.watermark_fraction);
  return std::max(options_.watermark_bytes, frac);
}

double Placer::set_cost(const GuestSpec& spec, const NodeMask& set,
                        std::span<const NodeUsage> usage, const PlacementHints& hints) const {
  if (usage.size() != topo_.node_count()) return kInf;
  Ctx c(topo_, spec, usage, hints, *this);
  std::vector<std::size_t> idx;
  for (NodeId id : set) {
    if (!topo_.has_node(id)) return kInf;
    idx.push_back(static_cast<std::size_t>(topo_.index_of(id)));
  }
  return c.cost(idx);
}

void Placer::release(const Placement& p, std::span<NodeUsage> usage) const {
  for (const auto& s : p.memory) {
    int i = topo_.index_of(s.node);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    usage[static_cast<std::size_t>(i)].free_bytes += s.bytes;
  }
  for (NodeId n : p.vcpu_nodes) {
    int i = topo_.index_of(n);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    auto& v = usage[static_cast<std::size_t>(i)].vcpus;
    if (v > 0) --v;
  }
}

void Placer::commit(const Placement& p, std::span<NodeUsage> usage) const {
  for (const auto& s : p.memory) {
    int i = topo_.index_of(s.node);
    if (i < 0 || static_cast<std::size_t>(i) >= usage.size()) continue;
    auto& u = usage[static_cast<std::size_t>(i)];
    u.free_bytes = u.free_bytes > s.bytes ? u.free_bytes - s.bytes : 0;
  }
  for (NodeId n : p.vcpu_nodes) {
    int i = topo_.index_of(n);
    if (i >= 0 && static_cast<std::size_t>(i) < usage.size()) ++usage[static_cast<std::size_t>(i)].vcpus;
  }
}

Result<Placement, Error> Placer::place(const GuestSpec& spec, std::span<const NodeUsage> usage,
                                       const PlacementHints& hints) const {
  if (auto ok = validate_guest_spec(spec, topo_); !ok) return ok.error();
  if (usage.size() != topo_.node_count())
    return Error{Errc::invalid_argument, "usage has " + std::to_string(usage.size()) +
                                             " entries for " +
                                             std::to_string(topo_.node_count()) + " nodes"};
  auto attempt = [&](bool relax) {
    Ctx c(topo_, spec, usage, hints, *this, relax);
    return spec.vnodes.empty() ? place_flat(c) : place_vnuma(c);
  };
  auto p = attempt(false);
  // prefer: the allowed nodes first; when they cannot hold the guest, any.
  if (p || p.error().code != Errc::no_memory || spec.memory_mode != MemoryPolicy::prefer ||
      spec.allowed_nodes.empty())
    return p;
  auto again = attempt(true);
  if (!again) return again;
  std::string why = "warning: preferred nodes " + spec.allowed_nodes.to_string() +
                    " could not hold it, placed elsewhere; " + std::string(again->reason.str());
  again->reason = why;
  return again;
}

}  // namespace numaheap

namespace numaheap {

std::vector<NodeUsage> heap_usage(const PageAllocator& pa) {
  const Topology& topo = pa.topology();
  std::vector<NodeUsage> usage = Placer(topo).idle_usage();
  for (std::size_t i = 0; i < usage.size(); ++i) {
    auto st = pa.stats(topo.node_at(i).id);
    if (!st) continue;
    std::uint64_t avail = st->free + st->cached;
    avail = avail > st->claimed ? avail - st->claimed : 0;
    usage[i].free_bytes = avail << kFrameShift;
  }
  return usage;
}

// ---- PlacementSession -------------------------------------------------------

PlacementSession::PlacementSession(const Topology& topo, PlacementOptions options)
    : topo_(topo), placer_(topo_, options), usage_(placer_.idle_usage()) {}

PlacementSession::PlacementSession(const Topology& topo, std::vector<NodeUsage> usage,
                                   PlacementOptions options)
    : topo_(topo), placer_(topo_, options), usage_(std::move(usage)) {
  if (usage_.size() != topo_.node_count()) {
    usage_ = placer_.idle_usage();
    valid_ = false;
  }
}

NodeMask PlacementSession::nodes_of(const std::map<std::string, std::vector<std::uint32_t>>& groups,
                                    const std::string& group) const {
  NodeMask m;
  if (group.empty()) return m;
  auto it = groups.find(group);
  if (it == groups.end()) return m;
  for (std::size_t i = 0; i < it->second.size(); ++i)
    if (it->second[i] > 0) m.set(topo_.node_at(i).id);
  return m;
}

PlacementHints PlacementSession::hints_for(const GuestSpec& spec) const {
  PlacementHints h;
  h.affinity_nodes = nodes_of(affinity_, spec.affinity_group.str());
  h.anti_affinity_nodes = nodes_of(anti_, spec.anti_affinity_group.str());
  return h;
}

// A guest's nodes: where its memory is and where its vCPUs run.
void PlacementSession::count(const std::string& group,
                             std::map<std::string, std::vector<std::uint32_t>>& groups,
                             const Placement& p, bool add) {
  if (group.empty()) return;
  NodeMask nodes = p.nodes;
  for (NodeId n : p.vcpu_nodes)
    if (n != kNoNode) nodes.set(n);
  auto it = groups.find(group);
  if (it == groups.end()) {
    if (!add) return;
    it = groups.emplace(group, std::vector<std::uint32_t>(topo_.node_count(), 0)).first;
  }
  bool any = false;
  for (NodeId n : nodes) {
    int i = topo_.index_of(n);
    if (i < 0) continue;
    auto& c = it->second[static_cast<std::size_t>(i)];
    if (add) ++c;
    else if (c > 0) --c;
  }
  for (auto c : it->second) any = any || c > 0;
  if (!any) groups.erase(it);
}

Result<Placement, Error> PlacementSession::place(const GuestSpec& spec) {
  auto p = placer_.place(spec, usage_, hints_for(spec));
  if (!p) return p;
  placer_.commit(*p, usage_);
  count(spec.affinity_group.str(), affinity_, *p, true);
  count(spec.anti_affinity_group.str(), anti_, *p, true);
  return p;
}

void PlacementSession::release(const GuestSpec& spec, const Placement& p) {
  placer_.release(p, usage_);
  count(spec.affinity_group.str(), affinity_, p, false);
  count(spec.anti_affinity_group.str(), anti_, p, false);
}

}  // namespace numaheap
