list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/guest_memory.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/c_api.cc)
# Toolstack side: spec checks against a host, placement.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/guest/guest_spec.cc
  allocator/guest/placement.cc)
# The C API's placement and auto-placed guests (the core part is
# allocator/guest/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES allocator/guest/host/c_api.cc)
