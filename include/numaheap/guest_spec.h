// numaheap: what a guest asks for -- memory, vCPUs, an optional vNUMA
// layout, devices, opt-ins and affinity groups -- and its validation.
//
// A GuestSpec is plain data: toolstacks fill it from libvirt domain XML,
// xl.cfg or JSON (tools/guest_spec_io.h) or build it directly. Validation
// follows the rules Xen's toolstack applies to vNUMA configurations, with a
// message that says which vnode / vCPU / device is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap {

inline constexpr std::uint32_t kMaxGuestVcpus = 4096;

// One virtual NUMA node of a guest.
struct VNodeSpec {
  std::uint64_t memory_bytes = 0;
  std::vector<std::uint32_t> vcpus;  // vCPU indices living on this vnode
  NodeId pnode = kNoNode;            // host node, or kNoNode for "auto"
  // Virtual distances to every vnode, in vnode order; empty = 10 local,
  // 20 remote.
  std::vector<std::uint32_t> distances;
};

// A device the guest uses, on a host node (passthrough NIC, NVMe, GPU...).
// DMA buffers for it come from that node; the guest is placed near it.
struct DeviceSpec {
  std::string name;
  NodeId host_node = kNoNode;
};

struct GuestSpec {
  std::string name;
  std::uint64_t memory_bytes = 0;  // total; a multiple of 4 KiB
  std::uint32_t vcpus = 0;
  std::vector<VNodeSpec> vnodes;   // empty: no vNUMA, placement decides
  std::vector<DeviceSpec> devices;
  // Host nodes the guest may use (libvirt <numatune> nodeset); empty = any.
  NodeMask allowed_nodes;
  bool sharing = false;     // opt in to page deduplication
  bool cold_store = false;  // opt in to the cold-page store
  // Guests that talk to each other share a group: placed on the same or
  // near nodes. Guests in the same anti-affinity group are kept apart.
  std::string affinity_group;
  std::string anti_affinity_group;
};

// Checks a spec against a host. Rules: memory > 0 and a multiple of 4 KiB;
// 1..4096 vCPUs; with vNUMA: vnode sizes are multiples of 4 KiB and sum to
// the total, every vCPU is in exactly one vnode, each pnode exists and has
// memory, distance rows have one entry per vnode in 1..255 with the local
// distance no larger than any remote one; devices sit on existing nodes;
// allowed nodes exist and include a node with memory; pinned pnodes lie in
// the allowed set. The error message names the guest and the culprit.
Result<void, Error> validate_guest_spec(const GuestSpec& spec, const Topology& topo);

// A control-domain (dom0 / backend) layout: one vnode per host memory node,
// memory spread in proportion to each node's free memory (sizes rounded to
// 2 MiB, the remainder on the node with the most free memory), one vCPU per
// vnode pinned to its node. Fails when total_bytes is not a multiple of
// 4 KiB or exceeds the free memory.
Result<GuestSpec, Error> control_domain_spec(const Topology& topo, std::uint64_t total_bytes,
                                             std::string name = "dom0");

}  // namespace numaheap
