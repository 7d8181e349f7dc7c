// The C API's guest handle and spec conversion, shared by the core guest C
// API (allocator/guest/c_api.cc) and its host part (allocator/guest/host/
// c_api.cc). Internal.
#pragma once

#include <memory>

#include "numaheap/guest_memory.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/vector.h"

#include "allocator/heap/c_handles.h"

struct numaheap_guest {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::GuestMemory> gm;
  numaheap::Vector<std::uint32_t> nodes;  // host node per vnode, or of each share (guest_nodes)
};

namespace numaheap::capi {

// The C spec as a GuestSpec (lists checked: a NULL list with a count is
// invalid_argument; out of memory is no_memory). Writes `err`.
int guest_spec_from_c(const numaheap_guest_spec& in, GuestSpec& out, char* err,
                      std::size_t err_len) noexcept;
// GuestOptions from the spec's optional fields.
GuestOptions guest_options_from_c(const numaheap_guest_spec& in) noexcept;
// Wraps a created guest in a handle (nodes: host node per vnode or share).
int wrap_guest(std::unique_ptr<GuestMemory> gm, std::span<const std::uint32_t> nodes,
               numaheap_guest** out, char* err, std::size_t err_len) noexcept;

}  // namespace numaheap::capi
