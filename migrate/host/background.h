// Host side of the migrator: the steady clock step() uses by default in the
// host library.
#pragma once

#include <cstdint>

namespace numaheap::host {

// CLOCK_MONOTONIC in ns (MigratorConfig::clock_ns signature).
std::uint64_t clock_ns(void* ctx) noexcept;

}  // namespace numaheap::host
