// libFuzzer harness for guest memory sizes and options: a fuzzed guest
// (with or without vnodes), placement (shares that may overflow) and
// GuestOptions (device regions near 2^64 and near the 2^40-frame limit),
// then populate / balloon / device buffers / destroy with the embedder's
// claims for the owner in place. Properties: create() either refuses or
// builds a p2m that covers RAM and the whole device region; the guest and
// the allocator stay consistent after every call; the embedder's claims
// are the same after every populate and balloon_up, failed or not; destroy
// gives every frame back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <vector>

#include "numaheap/guest_memory.h"

using namespace numaheap;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::uint64_t kNodeFrames = 2048;  // 8 MiB per node
constexpr OwnerId kOwner = 5;

// A device region size: small, near 2^64, near the guest limit, or any.
std::uint64_t region_of(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return in.ConsumeIntegralInRange<std::uint64_t>(0, 1u << 14);
    case 1: return ~std::uint64_t{0} - in.ConsumeIntegralInRange<std::uint64_t>(0, 1u << 20);
    case 2: return kMaxGuestFrames - in.ConsumeIntegralInRange<std::uint64_t>(0, 1u << 20) +
                   in.ConsumeIntegralInRange<std::uint64_t>(0, 1u << 20);
    default: return in.ConsumeIntegral<std::uint64_t>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  static const Topology topo = [] {
    auto t = TopologyBuilder("fuzz-guest")
                 .add_node(0, {0}, kNodeFrames << kFrameShift)
                 .add_node(1, {1}, kNodeFrames << kFrameShift)
                 .build();
    require(t.has_value());
    return std::move(t).value();
  }();
  auto made = PageAllocator::create(topo);
  require(made.has_value());
  PageAllocator& pa = **made;

  GuestSpec spec;
  spec.name = "fuzz";
  spec.vcpus = 1;
  spec.devices = {DeviceSpec{"dev", 1}};
  Placement placement;
  if (in.ConsumeBool()) {  // vNUMA: the spec's sizes are validated (sum checked)
    const unsigned vnodes = in.ConsumeIntegralInRange<unsigned>(1, 3);
    for (unsigned v = 0; v < vnodes; ++v) {
      const std::uint64_t pages = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(0, 3000)
                                                   : in.ConsumeIntegral<std::uint64_t>() >> kFrameShift;
      const NodeId pnode = in.ConsumeIntegralInRange<NodeId>(0, 2);  // 2: no such node
      spec.vnodes.push_back(VNodeSpec{pages << kFrameShift, {}, pnode, {}});
      spec.memory_bytes += pages << kFrameShift;  // may wrap: validation must catch it
      placement.vnode_pnodes.push_back(in.ConsumeBool() ? pnode : in.ConsumeIntegralInRange<NodeId>(0, 2));
    }
    spec.vnodes[0].vcpus = {0};
  } else {  // no vNUMA: the placement's shares make the layout
    spec.memory_bytes = in.ConsumeIntegralInRange<std::uint64_t>(0, 3000) << kFrameShift;
    const unsigned shares = in.ConsumeIntegralInRange<unsigned>(0, 3);
    for (unsigned k = 0; k < shares; ++k) {
      const std::uint64_t bytes = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(0, 3000) << kFrameShift
                                                   : in.ConsumeIntegral<std::uint64_t>();
      placement.memory.push_back(NodeShare{in.ConsumeIntegralInRange<NodeId>(0, 2), bytes});
    }
  }
  GuestOptions options;
  options.allow_striping = in.ConsumeBool();
  options.scrub_on_free = in.ConsumeBool();
  options.device_region_pages = region_of(in);

  // What create() would build, computed without wrapping; a legitimately
  // huge p2m (up to 2^40 words) is not worth allocating here.
  unsigned __int128 ram = 0;
  if (spec.vnodes.empty())
    for (const auto& s : placement.memory) ram += s.bytes >> kFrameShift;
  else
    for (const auto& v : spec.vnodes) ram += v.memory_bytes >> kFrameShift;
  std::uint64_t align = 1;
  while (align < options.device_region_pages && align < frames_of_order(kMaxOrder)) align <<= 1;
  const unsigned __int128 base = (ram + align - 1) / align * align;
  const unsigned __int128 limit = base + options.device_region_pages;
  if (limit <= kMaxGuestFrames && limit > (1u << 16)) return 0;

  const std::uint64_t before_node = in.ConsumeIntegralInRange<std::uint64_t>(0, 64);
  const std::uint64_t before_global = in.ConsumeIntegralInRange<std::uint64_t>(0, 64);
  require(pa.claim(kOwner, before_node, 0).has_value());
  require(pa.claim(kOwner, before_global, kNoNode).has_value());
  auto claims_kept = [&] {
    return pa.claimed_by(kOwner, 0) == before_node && pa.claimed_by(kOwner, kNoNode) == before_global &&
           pa.claimed_by(kOwner, 1) == 0;
  };

  auto gm = GuestMemory::create(pa, spec, placement, kOwner, options);
  require(claims_kept());
  if (!gm) {
    require(pa.check_invariants().has_value());
    return 0;
  }
  GuestMemory& g = **gm;
  require(limit <= kMaxGuestFrames);  // anything beyond must have been refused
  require(g.ram_pages() == ram && g.device_gfn_base() == base && g.gfn_limit() == limit);
  require(g.gfn_limit() >= g.device_gfn_base() && g.device_gfn_base() >= g.ram_pages());

  for (int op = 0; op < 8 && in.remaining_bytes() > 0; ++op) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: (void)g.populate(); break;
      case 1: (void)g.balloon_down(in.ConsumeIntegralInRange<std::uint64_t>(0, 4096)); break;
      case 2: (void)g.balloon_up(in.ConsumeIntegralInRange<std::uint64_t>(0, 4096)); break;
      default: (void)g.alloc_device_buffer(0, in.ConsumeIntegralInRange<std::uint64_t>(0, 600)); break;
    }
    require(claims_kept());
    require(g.check_invariants().has_value());
    require(pa.check_invariants().has_value());
  }
  require(g.destroy().has_value());
  require(pa.claimed_by(kOwner) == 0);  // destroy releases the owner's claims, as documented
  for (NodeId n : {NodeId{0}, NodeId{1}}) require(pa.stats(n)->used == 0);
  require(pa.check_invariants().has_value());
  return 0;
}
