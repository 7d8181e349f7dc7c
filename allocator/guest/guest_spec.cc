// GuestSpec validation and the control-domain layout helper.
#include "numaheap/guest_spec.h"

#include <algorithm>

namespace numaheap {

namespace {

constexpr std::uint64_t kPage = kFrameSize;
constexpr std::uint64_t k2M = 2ull << 20;

Error spec_error(const GuestSpec& g, const std::string& what) {
  return Error{Errc::invalid_argument,
               "guest '" + (g.name.empty() ? std::string("?") : g.name) + "': " + what};
}

std::string mb(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

}  // namespace

Result<void, Error> validate_guest_spec(const GuestSpec& g, const Topology& topo) {
  if (g.memory_bytes == 0) return spec_error(g, "memory size is 0");
  if (g.memory_bytes % kPage)
    return spec_error(g, "memory size " + std::to_string(g.memory_bytes) +
                             " bytes is not a multiple of 4 KiB");
  if (g.vcpus == 0) return spec_error(g, "no vCPUs");
  if (g.vcpus > kMaxGuestVcpus)
    return spec_error(g, std::to_string(g.vcpus) + " vCPUs, more than the 4096 supported");

  for (NodeId n : g.allowed_nodes)
    if (!topo.has_node(n)) return spec_error(g, "allowed node " + std::to_string(n) + " does not exist");
  if (!g.allowed_nodes.empty() && !g.allowed_nodes.intersects(topo.memory_nodes()))
    return spec_error(g, "allowed nodes " + g.allowed_nodes.to_string() + " have no memory");

  for (std::size_t i = 0; i < g.devices.size(); ++i) {
    const auto& d = g.devices[i];
    std::string label = "device '" + (d.name.empty() ? "#" + std::to_string(i) : d.name) + "'";
    if (d.host_node == kNoNode) return spec_error(g, label + " has no host node");
    if (!topo.has_node(d.host_node))
      return spec_error(g, label + " is on node " + std::to_string(d.host_node) +
                               ", which does not exist");
  }

  if (g.vnodes.empty()) return {};
  const std::size_t nv = g.vnodes.size();
  std::uint64_t sum = 0;
  std::vector<int> vcpu_owner(g.vcpus, -1);
  for (std::size_t v = 0; v < nv; ++v) {
    const VNodeSpec& vn = g.vnodes[v];
    const std::string label = "vnode " + std::to_string(v);
    if (vn.memory_bytes == 0) return spec_error(g, label + " has no memory");
    if (vn.memory_bytes % kPage) return spec_error(g, label + " size is not a multiple of 4 KiB");
    sum += vn.memory_bytes;
    if (sum < vn.memory_bytes) return spec_error(g, "vnode sizes overflow");
    for (std::uint32_t c : vn.vcpus) {
      if (c >= g.vcpus)
        return spec_error(g, label + " lists vCPU " + std::to_string(c) + " but the guest has " +
                                 std::to_string(g.vcpus) + " vCPUs");
      if (vcpu_owner[c] >= 0)
        return spec_error(g, "vCPU " + std::to_string(c) + " is in vnode " +
                                 std::to_string(vcpu_owner[c]) + " and " + label);
      vcpu_owner[c] = static_cast<int>(v);
    }
    if (vn.pnode != kNoNode) {
      const NodeInfo* p = topo.find(vn.pnode);
      if (!p) return spec_error(g, label + ": pnode " + std::to_string(vn.pnode) + " does not exist");
      if (!p->has_memory())
        return spec_error(g, label + ": pnode " + std::to_string(vn.pnode) + " has no memory");
      if (!g.allowed_nodes.empty() && !g.allowed_nodes.test(vn.pnode))
        return spec_error(g, label + ": pnode " + std::to_string(vn.pnode) +
                                 " is outside the allowed nodes " + g.allowed_nodes.to_string());
    }
    if (!vn.distances.empty()) {
      if (vn.distances.size() != nv)
        return spec_error(g, label + " has " + std::to_string(vn.distances.size()) +
                                 " distances for " + std::to_string(nv) + " vnodes");
      for (std::size_t k = 0; k < nv; ++k) {
        std::uint32_t d = vn.distances[k];
        if (d == 0 || d > kMaxDistance)
          return spec_error(g, label + ": distance " + std::to_string(d) + " to vnode " +
                                   std::to_string(k) + " outside 1..255");
        if (d < vn.distances[v])
          return spec_error(g, label + ": local distance " + std::to_string(vn.distances[v]) +
                                   " exceeds its distance " + std::to_string(d) + " to vnode " +
                                   std::to_string(k));
      }
    }
  }
  if (sum != g.memory_bytes)
    return spec_error(g, "vnode sizes sum to " + mb(sum) + ", not the guest's " + mb(g.memory_bytes));
  for (std::uint32_t c = 0; c < g.vcpus; ++c)
    if (vcpu_owner[c] < 0) return spec_error(g, "vCPU " + std::to_string(c) + " is in no vnode");
  // A distance matrix is all or nothing.
  bool any = false, all = true;
  for (const auto& vn : g.vnodes) {
    any |= !vn.distances.empty();
    all &= !vn.distances.empty();
  }
  if (any && !all) return spec_error(g, "some vnodes give distances and others do not");
  return {};
}

Result<GuestSpec, Error> control_domain_spec(const Topology& topo, std::uint64_t total,
                                             std::string name) {
  GuestSpec g;
  g.name = std::move(name);
  if (total == 0 || total % kPage) return spec_error(g, "size must be a non-zero multiple of 4 KiB");
  struct Share {
    NodeId node;
    std::uint64_t free;
  };
  std::vector<Share> nodes;
  std::uint64_t free_sum = 0;
  for (const auto& n : topo.nodes()) {
    if (!n.has_memory()) continue;
    std::uint64_t f = n.free_bytes == kUnknownBytes ? n.memory_bytes : n.free_bytes;
    if (f == 0) continue;
    nodes.push_back({n.id, f});
    free_sum += f;
  }
  if (nodes.empty()) return spec_error(g, "no node has free memory");
  if (total > free_sum)
    return spec_error(g, "asks for " + mb(total) + " but only " + mb(free_sum) + " is free");
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
  if (auto ok = validate_guest_spec(g, topo); !ok) return ok.error();
  return g;
}

}  // namespace numaheap
