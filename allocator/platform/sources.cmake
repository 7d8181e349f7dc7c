# Platform: the contract's core side (frame-only hooks, metadata memory,
# locks) and the host side (mmap'd, mbind'ed node memory; malloc metadata).
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/platform/metadata.cc
  allocator/platform/platform.cc)
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/platform/host/malloc_metadata.cc
  allocator/platform/host/host_memory.cc)
