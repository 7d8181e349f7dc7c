// Host side of the migrator: the kernel's own free and total memory per
// node, for the destination watermark of kernel-moved guests.
#pragma once

#include <cstdint>

#include "numaheap/node_mask.h"

namespace numaheap::host {

// MemFree and MemTotal of `node` in 4 KiB frames, from
// /sys/devices/system/node/nodeN/meminfo (libnuma's numa_node_size64 reads
// the same file). False when the node or the file is missing.
bool node_meminfo_frames(NodeId node, std::uint64_t& free, std::uint64_t& total) noexcept;

}  // namespace numaheap::host
