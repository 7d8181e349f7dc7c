# Hypervisor side: p2m, populate, balloon, device buffers; spec validation
# (GuestMemory::create checks every spec).
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/guest/guest_memory.cc
  allocator/guest/guest_spec.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/guest/c_api.cc)
# Toolstack side (host): placement, the control-domain layout, and the
# guest-spec readers (libvirt domain XML with pugixml, xl.cfg, JSON with
# nlohmann_json) with their C API.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/guest/placement.cc
  allocator/guest/placement_flat.cc
  allocator/guest/placement_vnuma.cc
  allocator/guest/host/control_domain.cc
  allocator/guest/host/node_load.cc
  allocator/guest/host/spec_io.cc
  allocator/guest/host/spec_json.cc
  allocator/guest/host/spec_libvirt.cc
  allocator/guest/host/spec_xl.cc
  allocator/guest/host/c_api_spec_io.cc)
# The C API's placement and auto-placed guests (the core part is
# allocator/guest/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES allocator/guest/host/c_api.cc)
