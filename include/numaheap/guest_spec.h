// numaheap: what a guest asks for -- memory, vCPUs, an optional vNUMA
// layout, devices, opt-ins and affinity groups -- and its validation.
//
// A GuestSpec is plain data: toolstacks fill it from libvirt domain XML,
// xl.cfg or JSON (numaheap/guest_spec_io.h, host) or build it directly. Validation
// follows the rules Xen's toolstack applies to vNUMA configurations, with a
// message that says which vnode / vCPU / device is wrong.
//
// Two worlds: the core reads a spec (GuestMemory::create validates it with
// validate_guest_spec, a core function); the host builds it. So its lists
// are numaheap::Vector (push_back returns false when out of memory; a
// failed push or copy leaves the vector !ok(), which GuestSpec::ok() sums
// up) and its names are FixedString (at most kGuestNameMax bytes; longer
// text is cut and truncated() says so). Host code keeps writing
// `spec.vnodes.push_back(v)`, `v.vcpus = {0, 1}` and `spec.name = str`.
// control_domain_spec is host code (allocator/guest/host/).
#pragma once

#include <cstdint>
#include <string>

#include "numaheap/fixed_string.h"
#include "numaheap/node_mask.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/vector.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

inline constexpr std::uint32_t kMaxGuestVcpus = 4096;

// Guest, device and group names: at most 63 bytes.
inline constexpr std::size_t kGuestNameMax = 63;
using GuestName = FixedString<kGuestNameMax + 1>;

// How memory is tied to its host nodes (libvirt's <numatune> modes; see
// docs/guests.md for the mapping). unset: numaheap's default, which is bind.
enum class MemoryPolicy : std::uint8_t {
  unset = 0,
  bind,        // only these nodes (libvirt strict / restrictive)
  prefer,      // these nodes first, others when they are full (preferred)
  interleave,  // page by page across the nodes (interleave)
};

// One virtual NUMA node of a guest.
struct VNodeSpec {
  std::uint64_t memory_bytes = 0;
  Vector<std::uint32_t> vcpus;  // vCPU indices living on this vnode
  NodeId pnode = kNoNode;            // host node, or kNoNode for "auto"
  // Virtual distances to every vnode, in vnode order; empty = 10 local,
  // 20 remote.
  Vector<std::uint32_t> distances;
  // libvirt <memnode>: the vnode's memory mode, and its host nodes when it
  // names more than one (one node is `pnode`); empty = pnode / placement.
  MemoryPolicy memory_mode = MemoryPolicy::unset;
  NodeMask nodes{};  // (initialised: aggregate users may stop before it)
  // False when a push or copy into a list ran out of memory.
  bool ok() const noexcept { return vcpus.ok() && distances.ok(); }
};

// A vCPU's host-CPU affinity: libvirt <vcpupin> / <vcpu cpuset>, xl cpus /
// cpus_soft. Constraints carried for the toolstack and placement; the
// allocator itself does not schedule vCPUs.
inline constexpr std::uint32_t kAllVcpus = 0xffffffffu;
struct VcpuPin {
  std::uint32_t vcpu = kAllVcpus;  // kAllVcpus: every vCPU without a pin of its own
  Vector<std::uint32_t> cpus;      // host CPU ids, ascending
  NodeMask nodes;                  // or: the CPUs of these host nodes (xl "nodes:0-1")
  bool soft = false;               // preferred (xl cpus_soft), not enforced
  bool ok() const noexcept { return cpus.ok(); }
};

// A device the guest uses, on a host node (passthrough NIC, NVMe, GPU...).
// DMA buffers for it come from that node; the guest is placed near it.
struct DeviceSpec {
  GuestName name;
  NodeId host_node = kNoNode;
};

struct GuestSpec {
  GuestName name;
  std::uint64_t memory_bytes = 0;  // total; a multiple of 4 KiB
  std::uint32_t vcpus = 0;
  Vector<VNodeSpec> vnodes;   // empty: no vNUMA, placement decides
  Vector<DeviceSpec> devices;
  // Host nodes the guest may use (libvirt <numatune> nodeset); empty = any.
  NodeMask allowed_nodes;
  bool sharing = false;     // opt in to page deduplication
  bool cold_store = false;  // opt in to the cold-page store
  // Guests that talk to each other share a group: placed on the same or
  // near nodes. Guests in the same anti-affinity group are kept apart.
  GuestName affinity_group;
  GuestName anti_affinity_group;
  // libvirt <numatune><memory mode>: how the guest's memory is tied to
  // allowed_nodes (or to the placement's nodes when that is empty).
  MemoryPolicy memory_mode = MemoryPolicy::unset;
  Vector<VcpuPin> vcpu_pins{};  // in the order given

  // False when building or copying the spec ran out of memory somewhere
  // (a list is then incomplete): validate_guest_spec refuses such a spec.
  bool ok() const noexcept {
    if (!vnodes.ok() || !devices.ok() || !vcpu_pins.ok()) return false;
    for (const VNodeSpec& v : vnodes)
      if (!v.ok()) return false;
    for (const VcpuPin& p : vcpu_pins)
      if (!p.ok()) return false;
    return true;
  }
};

// Checks a spec against a host. Rules: memory > 0 and a multiple of 4 KiB;
// 1..4096 vCPUs; with vNUMA: vnode sizes are multiples of 4 KiB and sum to
// the total, every vCPU is in exactly one vnode, each pnode and vnode
// nodeset node exists (a pnode lies in its vnode's nodeset), each pnode has
// memory, distance rows have one entry per vnode in 1..255 with the local
// distance no larger than any remote one; devices sit on existing nodes;
// allowed nodes exist and include a node with memory; pinned pnodes lie in
// the allowed set; vCPU pins name existing vCPUs and nodes. The error message names the guest and the culprit.
// no_memory when !spec.ok(). Core: allocates nothing.
Result<void, Error> validate_guest_spec(const GuestSpec& spec, const Topology& topo);

// A control-domain (dom0 / backend) layout: one vnode per host memory node,
// memory spread in proportion to each node's free memory (sizes rounded to
// 2 MiB, the remainder on the node with the most free memory), one vCPU per
// vnode pinned to its node. Fails when total_bytes is not a multiple of
// 4 KiB or exceeds the free memory. Host only (allocator/guest/host/).
Result<GuestSpec, Error> control_domain_spec(const Topology& topo, std::uint64_t total_bytes,
                                             std::string name = "dom0");

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
