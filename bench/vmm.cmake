# VMM guest RAM benchmarks: the userfaultfd sampler's cost per sampled access
# against a plain minor fault and a plain touch in the same run. Included
# from bench/CMakeLists.txt (find_package(benchmark) already done there).
add_executable(numaheap-bench-vmm ${CMAKE_CURRENT_LIST_DIR}/vmm_bench.cc)
target_link_libraries(numaheap-bench-vmm PRIVATE numaheap::numaheap benchmark::benchmark Threads::Threads)
target_include_directories(numaheap-bench-vmm PRIVATE ${CMAKE_CURRENT_LIST_DIR})
numaheap_warnings(numaheap-bench-vmm)
