# Guest-level benchmarks (placement, populate).
add_executable(numaheap-bench-guest ${CMAKE_CURRENT_LIST_DIR}/guest_bench.cc)
target_link_libraries(numaheap-bench-guest PRIVATE numaheap::numaheap benchmark::benchmark)
numaheap_warnings(numaheap-bench-guest)
