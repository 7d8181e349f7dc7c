# Hypervisor side: p2m, populate, balloon, device buffers; spec validation
# (GuestMemory::create checks every spec).
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/guest/guest_memory.cc
  allocator/guest/guest_spec.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/c_api.cc)
# Toolstack side (host): placement, the control-domain layout.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/guest/placement.cc
  allocator/guest/host/control_domain.cc
  allocator/guest/host/node_load.cc)
# The C API's placement and auto-placed guests (the core part is
# allocator/guest/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES allocator/guest/host/c_api.cc)
