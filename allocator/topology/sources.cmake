list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/topology/result.cc
  allocator/topology/node_mask.cc
  allocator/topology/topology.cc)
# Host side: loaders (sysfs, numactl -H text, libnuma), the numactl
# renderer, the built-in seed machine, file reading.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/topology/load_sysfs.cc
  allocator/topology/load_numactl.cc
  allocator/topology/load_libnuma.cc
  allocator/topology/render_numactl.cc
  allocator/topology/builtin_default.cc
  allocator/topology/read_file.cc)
# The C API's loaders (the core part is allocator/heap/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES allocator/topology/host/c_api.cc)
