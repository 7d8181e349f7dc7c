// What the VMM's mappings of guest RAM are (internal to vmm/host): read
// from /proc/self/maps before GuestRam::create() trusts a region.
//
// Why: GuestRam writes every page of a region (populate) and, for memfd
// RAM, drops page-table entries with MADV_DONTNEED (the sampler's windows,
// moves through the helper) on the promise that the data stays in the page
// cache. A read-only or PROT_NONE range would kill the VMM in populate, and
// MADV_DONTNEED on a *private* mapping throws away the guest's
// copy-on-write pages (a MAP_PRIVATE memfd, share=off, or private
// anonymous memory declared memfd): audit s16 #1 and #3.
#pragma once

#include <cstdint>

namespace numaheap::detail {

enum class MappingProblem : std::uint8_t {
  none = 0,
  unmapped,        // part of the range is not mapped
  not_read_write,  // a mapping of it is not readable and writable
  not_shared,      // a mapping of it is private (MAP_PRIVATE), where shared is needed
  unknown,         // /proc/self/maps cannot be read: nothing could be checked
};

// Checks [addr, addr + bytes): all mapped, readable and writable, and with
// need_shared every mapping MAP_SHARED ('s' in /proc/self/maps). Where
// /proc/self/maps cannot be read, nothing can be checked: unknown.
MappingProblem check_guest_mapping(const void* addr, std::uint64_t bytes, bool need_shared) noexcept;

const char* mapping_problem_text(MappingProblem p) noexcept;

// Whether a mapping over [addr, addr + bytes) is mlocked (VM_LOCKED: "lo"
// among VmFlags in /proc/self/smaps -- mlock, mlockall(MCL_CURRENT), or
// mlockall(MCL_FUTURE) before it was mapped). The kernel refuses
// MADV_DONTNEED (EINVAL) on such a mapping, so the sampler cannot window
// memfd RAM there. unknown: /proc/self/smaps unreadable, or no mapping
// over the range.
enum class MappingLock : std::uint8_t { unlocked = 0, locked, unknown };
MappingLock guest_mapping_locked(const void* addr, std::uint64_t bytes) noexcept;

}  // namespace numaheap::detail
