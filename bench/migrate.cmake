# Migrator benchmarks: frame-swap migration throughput against plain memcpy
# of the same bytes, and record_access cost. Included from bench/CMakeLists.txt
# (find_package(benchmark) already done there).
add_executable(numaheap-bench-migrate ${CMAKE_CURRENT_LIST_DIR}/migrate_bench.cc)
target_link_libraries(numaheap-bench-migrate PRIVATE numaheap::numaheap benchmark::benchmark Threads::Threads)
target_include_directories(numaheap-bench-migrate PRIVATE ${CMAKE_CURRENT_LIST_DIR})
numaheap_warnings(numaheap-bench-migrate)
