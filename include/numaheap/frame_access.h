// numaheap: reading and writing the bytes of a machine frame.
//
// The page allocator never looks inside frames; dedup (hash and compare) and
// the cold store (put/get a page of data) must. In host_memory mode the
// platform already maps every frame (PageAllocator::frame_address). In
// frame_only mode the hypervisor owns RAM, so it supplies `address`: a
// direct-map (or temporary-map) address of one frame, valid until the frame
// is freed. The hook is called with no numaheap lock of the allocator held,
// possibly from several threads at once, and must not allocate or fail for a
// frame the allocator manages.
#pragma once

#include <cstdint>

#include "numaheap/frame.h"
#include "numaheap/page_allocator.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

struct FrameAccess {
  void* ctx = nullptr;
  // Address of the first byte of `mfn` (kFrameSize bytes), or nullptr when
  // the frame is not mapped. nullptr hook: use PageAllocator::frame_address.
  unsigned char* (*address)(void* ctx, Mfn mfn) = nullptr;

  unsigned char* resolve(const PageAllocator& pa, Mfn mfn) const noexcept {
    if (address) return address(ctx, mfn);
    return static_cast<unsigned char*>(pa.frame_address(mfn));
  }
  // True when frames can be reached at all: a hook, or host_memory mode.
  bool usable(const PageAllocator& pa) const noexcept {
    return address != nullptr || pa.platform().mode() == MemoryMode::host_memory;
  }
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
