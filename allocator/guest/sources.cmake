list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/guest/guest_spec.cc
  allocator/guest/placement.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/guest_memory.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/c_api.cc)
