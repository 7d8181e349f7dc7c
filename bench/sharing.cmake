# Dedup scan throughput and cold-store put/get latency (numaheap only).
# Included from bench/CMakeLists.txt; paths are absolute so it also works
# when included from elsewhere.
find_package(benchmark REQUIRED)
add_executable(numaheap-bench-sharing ${PROJECT_SOURCE_DIR}/bench/sharing_bench.cc)
target_link_libraries(numaheap-bench-sharing PRIVATE numaheap::numaheap benchmark::benchmark Threads::Threads)
# The source root too: the bench measures the core's page hash directly.
target_include_directories(numaheap-bench-sharing PRIVATE ${PROJECT_SOURCE_DIR}/bench ${PROJECT_SOURCE_DIR})
numaheap_warnings(numaheap-bench-sharing)
