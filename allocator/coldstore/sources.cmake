# Cold-page store (tmem-like pools on "any node but the guest's own").
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/coldstore/cold_store.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/coldstore/c_api.cc)
