# The two worlds (docs/architecture.md):
#  * numaheap::core -- libnumaheap_core.a, the freestanding hypervisor core:
#    NUMAHEAP_CORE_SOURCES compiled with NUMAHEAP_HOSTED=0. No C++ runtime,
#    no libc beyond the platform contract's memcpy family, no system calls
#    (tests/core/check_symbols.sh proves it from the archive).
#  * numaheap::numaheap -- libnumaheap.a, and numaheap::shared --
#    libnumaheap.so (the same objects), the Linux host library: the same
#    core sources compiled with NUMAHEAP_HOSTED=1 (the rseq fast path,
#    malloc metadata by default, yielding spin locks) plus
#    NUMAHEAP_HOST_SOURCES (loaders, host memory, placement, kernel mover).
# Each layer's folder lists its own files in sources.cmake (paths relative
# to the repo root), so the fuzz and fault-injection builds can compile
# instrumented copies of exactly the same files.
set(NUMAHEAP_CORE_SOURCES "")
set(NUMAHEAP_HOST_SOURCES "")
foreach(layer allocator/topology allocator/platform allocator/heap
              allocator/guest allocator/sharing allocator/coldstore migrate vmm)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${layer}/sources.cmake)
    include(${PROJECT_SOURCE_DIR}/${layer}/sources.cmake)
  endif()
endforeach()
list(TRANSFORM NUMAHEAP_CORE_SOURCES PREPEND ${PROJECT_SOURCE_DIR}/)
list(TRANSFORM NUMAHEAP_HOST_SOURCES PREPEND ${PROJECT_SOURCE_DIR}/)

# Settings shared by the host library and its instrumented copies.
function(numaheap_core_target target)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR})
  # nlohmann_json is header-only and stays out of the installed interface;
  # pugixml is a library a static consumer links too (numaheapConfig.cmake
  # finds it; numaheap.pc names it).
  target_link_libraries(${target}
    PUBLIC PkgConfig::NUMA Threads::Threads
    PRIVATE $<BUILD_INTERFACE:Boost::headers> $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>
            pugixml::pugixml)
  numaheap_warnings(${target})
  numaheap_core_flags(${target})
  target_compile_definitions(${target} PRIVATE NUMAHEAP_HOSTED=1)
  # Debug builds check every data structure's invariants on each change.
  target_compile_definitions(${target} PRIVATE
    $<$<CONFIG:Debug>:NUMAHEAP_CHECK_INVARIANTS=1>)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# include/numaheap/version.h: the version macros, generated into the build
# tree (and installed beside the other headers).
configure_file(${PROJECT_SOURCE_DIR}/cmake/version.h.in
               ${PROJECT_BINARY_DIR}/include/numaheap/version.h @ONLY)

# The host library's objects, compiled once for both its forms. Hidden by
# default: what the public headers declare is marked exported
# (include/numaheap/export.h), so the shared library's symbol table is the
# public API and nothing else; the static archive is not affected.
add_library(numaheap_objects OBJECT ${NUMAHEAP_CORE_SOURCES} ${NUMAHEAP_HOST_SOURCES})
numaheap_core_target(numaheap_objects)
set_target_properties(numaheap_objects PROPERTIES C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden)

# What a user of either form gets: the headers, and (static) libnuma,
# threads and pugixml (the libvirt XML reader's).
function(numaheap_host_library target kind)
  add_library(${target} ${kind} $<TARGET_OBJECTS:numaheap_objects>)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endfunction()

# numaheap::numaheap -- libnumaheap.a.
numaheap_host_library(numaheap STATIC)
add_library(numaheap::numaheap ALIAS numaheap)
target_link_libraries(numaheap PUBLIC PkgConfig::NUMA Threads::Threads PRIVATE pugixml::pugixml)
set_target_properties(numaheap PROPERTIES EXPORT_NAME numaheap)

# numaheap::shared -- libnumaheap.so. While the version is 0.x every minor
# release may change the ABI, so the SONAME carries major.minor
# (libnumaheap.so.0.1); from 1.0 on, the major alone.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(NUMAHEAP_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
else()
  set(NUMAHEAP_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()
numaheap_host_library(numaheap_shared SHARED)
add_library(numaheap::shared ALIAS numaheap_shared)
target_link_libraries(numaheap_shared PRIVATE PkgConfig::NUMA Threads::Threads pugixml::pugixml)
set_target_properties(numaheap_shared PROPERTIES OUTPUT_NAME numaheap EXPORT_NAME shared
  VERSION ${PROJECT_VERSION} SOVERSION ${NUMAHEAP_SOVERSION})
# Everything it needs is linked in (sanitizer runtimes are the executable's).
if(NOT NUMAHEAP_SANITIZE)
  target_link_options(numaheap_shared PRIVATE -Wl,--no-undefined)
endif()

# The freestanding core. Only headers from include/ and Boost.Intrusive's
# (header-only); nothing to link. -fno-threadsafe-statics: no __cxa_guard_*
# (the core has no function-local statics that need them);
# -fno-stack-protector: no __stack_chk_fail (the embedder's build decides).
add_library(numaheap_core STATIC ${NUMAHEAP_CORE_SOURCES})
add_library(numaheap::core ALIAS numaheap_core)
target_include_directories(numaheap_core
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
         $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(numaheap_core PRIVATE $<BUILD_INTERFACE:Boost::headers>)
numaheap_warnings(numaheap_core)
numaheap_core_flags(numaheap_core)
# -fno-tree-loop-distribute-patterns: gcc would turn counting loops into
# strlen calls; -fno-builtin-bcmp: clang would turn memcmp(...) == 0 into
# bcmp. Both are outside the contract.
target_compile_options(numaheap_core PRIVATE -fno-threadsafe-statics -fno-stack-protector
                       $<$<CXX_COMPILER_ID:GNU>:-fno-tree-loop-distribute-patterns>
                       $<$<CXX_COMPILER_ID:Clang>:-fno-builtin-bcmp>
                       -fno-asynchronous-unwind-tables)
target_compile_definitions(numaheap_core PRIVATE NUMAHEAP_HOSTED=0
  $<$<CONFIG:Debug>:NUMAHEAP_CHECK_INVARIANTS=1>)
set_target_properties(numaheap_core PROPERTIES EXPORT_NAME core POSITION_INDEPENDENT_CODE ON)
# clang's UBSan "function" check tags indirect calls with C++ type_info,
# which needs the C++ ABI runtime a C embedder (minihv) does not link.
if(NUMAHEAP_SANITIZE MATCHES "undefined" AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  target_compile_options(numaheap_core PRIVATE -fno-sanitize=function)
endif()
