list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/guest_memory.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/c_api.cc)
# Toolstack side: spec checks against a host, placement.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/guest/guest_spec.cc
  allocator/guest/placement.cc)
