// Host side of the platform (Linux user space): node memory as anonymous
// mappings bound with mbind, the calling CPU, the CPU count. The core's
// platform.cc calls these only in the host library (NUMAHEAP_HOSTED=1).
#pragma once

#include <cstdint>

#include "numaheap/node_mask.h"
#include "numaheap/result.h"

namespace numaheap::host {

// Maps `bytes` of anonymous memory (MAP_NORESERVE) bound to `node` with
// MPOL_BIND. A failed bind is an error only when `require_bind`. On error:
// nullptr, nothing left mapped, and *err says what failed (with errno text).
void* map_node_memory(NodeId node, std::uint64_t bytes, bool require_bind, Error* err) noexcept;
void unmap_node_memory(void* addr, std::uint64_t bytes) noexcept;
// Gives the pages back (they read as zero and keep the binding). False when
// the kernel refused (the caller then zeroes them itself).
bool discard_memory(void* addr, std::uint64_t bytes) noexcept;
// The calling thread's CPU (sched_getcpu), 0 when unknown.
std::uint32_t current_cpu() noexcept;
// CPUs the host has configured (sysconf), at least 1.
std::uint32_t configured_cpus() noexcept;

}  // namespace numaheap::host
