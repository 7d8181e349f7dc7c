list(APPEND NUMAHEAP_CORE_SOURCES
  migrate/access_tracker.cc
  migrate/evacuate.cc
  migrate/frame_swap_mover.cc
  migrate/kernel_mover.cc
  migrate/migrator.cc
  migrate/policy.cc
  migrate/rehome.cc)
list(APPEND NUMAHEAP_CORE_SOURCES migrate/c_api.cc)
