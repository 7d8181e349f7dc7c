# VMM guest RAM (host only): a VMM's own mappings bound, populated and
# moved by the kernel (guest_ram.cc) with its move helper process
# (move_helper.cc), the checks of its mappings (host_mappings.cc), the
# userfaultfd access sampler (uffd_sampler.cc), and their C API (c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES
  vmm/host/guest_ram.cc
  vmm/host/host_mappings.cc
  vmm/host/move_helper.cc
  vmm/host/uffd_sampler.cc
  vmm/host/c_api.cc)
