# Dedup (page sharing). xxHash is used header-only (XXH_INLINE_ALL), so the
# core needs no extra library; the header comes from Debian's libxxhash-dev.
list(APPEND NUMAHEAP_CORE_SOURCES
  allocator/sharing/sharing_policy.cc
  allocator/sharing/sharing_manager.cc)
list(APPEND NUMAHEAP_CORE_SOURCES allocator/sharing/c_api.cc)
