# Core (freestanding): error names, NodeMask, Topology and its builder.
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/topology/result.cc
  allocator/topology/node_mask.cc
  allocator/topology/topology.cc)
# Host side (allocator/topology/host/): loaders (sysfs, numactl -H text,
# libnuma), the numactl renderer, the built-in seed machine, file reading,
# and NodeMask::to_string's std::string form.
list(APPEND NUMAHEAP_HOST_SOURCES
  allocator/topology/host/load_sysfs.cc
  allocator/topology/host/load_numactl.cc
  allocator/topology/host/load_libnuma.cc
  allocator/topology/host/render_numactl.cc
  allocator/topology/host/builtin_default.cc
  allocator/topology/host/read_file.cc)
# The C API's loaders (the core part is allocator/heap/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES allocator/topology/host/c_api.cc)
