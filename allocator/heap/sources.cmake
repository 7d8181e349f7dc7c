list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/heap/frame_table.cc
  allocator/heap/node_heap.cc
  allocator/heap/per_cpu_cache.cc
  allocator/heap/rseq_cache.cc
  allocator/heap/page_allocator.cc
  allocator/heap/claims.cc
  allocator/heap/maintenance.cc
  allocator/heap/c_api.cc
  allocator/heap/split.cc
  allocator/heap/bulk.cc)
