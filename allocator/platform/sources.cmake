list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/platform/platform.cc)
