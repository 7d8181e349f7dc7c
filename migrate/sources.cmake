list(APPEND NUMAHEAP_CORE_SOURCES
  migrate/access_tracker.cc
  migrate/evacuate.cc
  migrate/frame_swap_mover.cc
  migrate/migrator.cc
  migrate/policy.cc
  migrate/rehome.cc
  migrate/vcpu_advice.cc)
list(APPEND NUMAHEAP_CORE_SOURCES migrate/c_api.cc)
# Host side: move_pages(2) on a VMM's mappings, the background thread and
# the steady clock.
list(APPEND NUMAHEAP_HOST_SOURCES
  migrate/kernel_mover.cc
  migrate/host/background.cc
  migrate/host/node_meminfo.cc)
# The C API's kernel-moved mappings (the core part is migrate/c_api.cc).
list(APPEND NUMAHEAP_HOST_SOURCES migrate/host/c_api.cc)
