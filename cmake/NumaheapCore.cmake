# The core library, numaheap::numaheap: every layer from topology to the
# migrator. Each layer's folder lists its own files in sources.cmake, which
# appends to NUMAHEAP_CORE_SOURCES (paths relative to the repo root), so the
# fuzz build can compile an instrumented copy of exactly the same files.
set(NUMAHEAP_CORE_SOURCES "")
foreach(layer allocator/topology allocator/platform allocator/heap
              allocator/guest allocator/sharing allocator/coldstore migrate)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${layer}/sources.cmake)
    include(${PROJECT_SOURCE_DIR}/${layer}/sources.cmake)
  endif()
endforeach()
list(TRANSFORM NUMAHEAP_CORE_SOURCES PREPEND ${PROJECT_SOURCE_DIR}/)

# Settings shared by the core and its instrumented copies.
function(numaheap_core_target target)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target}
    PUBLIC PkgConfig::NUMA Threads::Threads
    PRIVATE $<BUILD_INTERFACE:Boost::headers>)
  numaheap_warnings(${target})
  numaheap_core_flags(${target})
  # Debug builds check every data structure's invariants on each change.
  target_compile_definitions(${target} PRIVATE
    $<$<CONFIG:Debug>:NUMAHEAP_CHECK_INVARIANTS=1>)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

add_library(numaheap STATIC ${NUMAHEAP_CORE_SOURCES})
add_library(numaheap::numaheap ALIAS numaheap)
numaheap_core_target(numaheap)
set_target_properties(numaheap PROPERTIES EXPORT_NAME numaheap)
