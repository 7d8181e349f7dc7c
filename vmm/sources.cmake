# VMM guest RAM (host only): a VMM's own mappings bound, populated and
# moved by the kernel (guest_ram.cc) with its move helper process
# (move_helper.cc), the checks of its mappings (host_mappings.cc), the
# userfaultfd access sampler (uffd_sampler*.cc: its API, windows, handler
# thread and fault attribution; uffd_sampler_impl.h), and their C API
# (c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES
  vmm/host/guest_ram.cc
  vmm/host/host_mappings.cc
  vmm/host/move_helper.cc
  vmm/host/uffd_sampler.cc
  vmm/host/uffd_sampler_handler.cc
  vmm/host/uffd_sampler_threads.cc
  vmm/host/uffd_sampler_windows.cc
  vmm/host/c_api.cc)
