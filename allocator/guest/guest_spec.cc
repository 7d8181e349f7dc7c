// GuestSpec validation (core: no allocation, messages built with
// make_error). The control-domain layout helper is host code
// (allocator/guest/host/control_domain.cc).
#include "numaheap/guest_spec.h"

#include <string_view>

#include "allocator/guest/spec_text.h"

namespace numaheap {

namespace {

using namespace std::string_view_literals;
using guest_detail::MaskText;
using guest_detail::mask_text;

constexpr std::uint64_t kPage = kFrameSize;

template <class... Parts>
Error spec_error(const GuestSpec& g, const Parts&... parts) {
  return make_error(Errc::invalid_argument, "guest '"sv, g.name.empty() ? "?"sv : g.name.view(), "': "sv,
                    parts...);
}

// The vnode (below `before`) that lists vCPU c; for the duplicate message.
std::size_t vnode_of_vcpu(const GuestSpec& g, std::uint32_t c, std::size_t before) {
  for (std::size_t v = 0; v < before; ++v)
    for (std::uint32_t x : g.vnodes[v].vcpus)
      if (x == c) return v;
  return before;
}

}  // namespace

Result<void, Error> validate_guest_spec(const GuestSpec& g, const Topology& topo) {
  if (!g.ok())
    return make_error(Errc::no_memory, "guest '"sv, g.name.view(), "': a list of its spec ran out of memory"sv);
  if (g.memory_bytes == 0) return spec_error(g, "memory size is 0"sv);
  if (g.memory_bytes % kPage)
    return spec_error(g, "memory size "sv, g.memory_bytes, " bytes is not a multiple of 4 KiB"sv);
  if (g.vcpus == 0) return spec_error(g, "no vCPUs"sv);
  if (g.vcpus > kMaxGuestVcpus) return spec_error(g, g.vcpus, " vCPUs, more than the 4096 supported"sv);

  for (NodeId n : g.allowed_nodes)
    if (!topo.has_node(n)) return spec_error(g, "allowed node "sv, n, " does not exist"sv);
  if (!g.allowed_nodes.empty() && !g.allowed_nodes.intersects(topo.memory_nodes()))
    return spec_error(g, "allowed nodes "sv, mask_text(g.allowed_nodes), " have no memory"sv);

  for (std::size_t i = 0; i < g.devices.size(); ++i) {
    const auto& d = g.devices[i];
    // "device 'name'" or "device '#i'"
    GuestName label;
    if (d.name.empty()) label.append("#"sv).append_uint(i);
    else label = d.name;
    if (d.host_node == kNoNode) return spec_error(g, "device '"sv, label, "' has no host node"sv);
    if (!topo.has_node(d.host_node))
      return spec_error(g, "device '"sv, label, "' is on node "sv, d.host_node, ", which does not exist"sv);
  }

  for (std::size_t i = 0; i < g.vcpu_pins.size(); ++i) {
    const VcpuPin& pin = g.vcpu_pins[i];
    if (pin.vcpu != kAllVcpus && pin.vcpu >= g.vcpus)
      return spec_error(g, "a pin names vCPU "sv, pin.vcpu, " but the guest has "sv, g.vcpus, " vCPUs"sv);
    for (NodeId n : pin.nodes)
      if (!topo.has_node(n)) return spec_error(g, "vCPU pin "sv, i, ": node "sv, n, " does not exist"sv);
  }

  if (g.vnodes.empty()) return {};
  const std::size_t nv = g.vnodes.size();
  std::uint64_t sum = 0;
  // vCPUs seen in some vnode: a bitmap on the stack (at most 4096 vCPUs).
  std::uint64_t seen[kMaxGuestVcpus / 64] = {};
  for (std::size_t v = 0; v < nv; ++v) {
    const VNodeSpec& vn = g.vnodes[v];
    if (vn.memory_bytes == 0) return spec_error(g, "vnode "sv, v, " has no memory"sv);
    if (vn.memory_bytes % kPage) return spec_error(g, "vnode "sv, v, " size is not a multiple of 4 KiB"sv);
    sum += vn.memory_bytes;
    if (sum < vn.memory_bytes) return spec_error(g, "vnode sizes overflow"sv);
    for (std::uint32_t c : vn.vcpus) {
      if (c >= g.vcpus)
        return spec_error(g, "vnode "sv, v, " lists vCPU "sv, c, " but the guest has "sv, g.vcpus, " vCPUs"sv);
      if ((seen[c / 64] >> (c % 64)) & 1u)
        return spec_error(g, "vCPU "sv, c, " is in vnode "sv, vnode_of_vcpu(g, c, v), " and vnode "sv, v);
      seen[c / 64] |= std::uint64_t{1} << (c % 64);
    }
    if (vn.pnode != kNoNode) {
      const NodeInfo* p = topo.find(vn.pnode);
      if (!p) return spec_error(g, "vnode "sv, v, ": pnode "sv, vn.pnode, " does not exist"sv);
      if (!p->has_memory()) return spec_error(g, "vnode "sv, v, ": pnode "sv, vn.pnode, " has no memory"sv);
      if (!g.allowed_nodes.empty() && !g.allowed_nodes.test(vn.pnode))
        return spec_error(g, "vnode "sv, v, ": pnode "sv, vn.pnode, " is outside the allowed nodes "sv,
                          mask_text(g.allowed_nodes));
    }
    for (NodeId n : vn.nodes) {
      const NodeInfo* p = topo.find(n);
      if (!p) return spec_error(g, "vnode "sv, v, ": node "sv, n, " of its nodeset does not exist"sv);
    }
    if (vn.pnode != kNoNode && !vn.nodes.empty() && !vn.nodes.test(vn.pnode))
      return spec_error(g, "vnode "sv, v, ": pnode "sv, vn.pnode, " is outside its nodeset "sv, mask_text(vn.nodes));
    if (!vn.distances.empty()) {
      if (vn.distances.size() != nv)
        return spec_error(g, "vnode "sv, v, " has "sv, vn.distances.size(), " distances for "sv, nv, " vnodes"sv);
      for (std::size_t k = 0; k < nv; ++k) {
        std::uint32_t d = vn.distances[k];
        if (d == 0 || d > kMaxDistance)
          return spec_error(g, "vnode "sv, v, ": distance "sv, d, " to vnode "sv, k, " outside 1..255"sv);
        if (d < vn.distances[v])
          return spec_error(g, "vnode "sv, v, ": local distance "sv, vn.distances[v], " exceeds its distance "sv, d,
                            " to vnode "sv, k);
      }
    }
  }
  if (sum != g.memory_bytes)
    return spec_error(g, "vnode sizes sum to "sv, sum >> 20, " MB, not the guest's "sv, g.memory_bytes >> 20, " MB"sv);
  for (std::uint32_t c = 0; c < g.vcpus; ++c)
    if (!((seen[c / 64] >> (c % 64)) & 1u)) return spec_error(g, "vCPU "sv, c, " is in no vnode"sv);
  // A distance matrix is all or nothing.
  bool any = false, all = true;
  for (const auto& vn : g.vnodes) {
    any |= !vn.distances.empty();
    all &= !vn.distances.empty();
  }
  if (any && !all) return spec_error(g, "some vnodes give distances and others do not"sv);
  return {};
}

}  // namespace numaheap
