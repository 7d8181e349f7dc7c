# Installation: headers, the core library, CMake package files
# (find_package(numaheap) gives numaheap::numaheap, the host library, and
# numaheap::core, the freestanding core) and relocatable numaheap.pc and
# numaheap_core.pc (its prefix is derived from its own location).
include(CMakePackageConfigHelpers)

install(TARGETS numaheap numaheap_core EXPORT numaheapTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/numaheap
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(NUMAHEAP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/numaheap)
install(EXPORT numaheapTargets NAMESPACE numaheap:: DESTINATION ${NUMAHEAP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/numaheapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/numaheapConfig.cmake INSTALL_DESTINATION ${NUMAHEAP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/numaheapConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/numaheapConfig.cmake
              ${PROJECT_BINARY_DIR}/numaheapConfigVersion.cmake
        DESTINATION ${NUMAHEAP_CMAKE_DIR})

# pkg-config: the library is static C++, so its own link needs (libnuma, the
# C++ runtime, threads) are in Libs for C consumers too.
file(RELATIVE_PATH NUMAHEAP_PC_TO_PREFIX
     ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" NUMAHEAP_PC_TO_PREFIX "${NUMAHEAP_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/numaheap.pc.in
               ${PROJECT_BINARY_DIR}/numaheap.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/numaheap.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The freestanding core: nothing but the archive (no libnuma, no C++
# runtime, no threads).
configure_file(${PROJECT_SOURCE_DIR}/cmake/numaheap_core.pc.in
               ${PROJECT_BINARY_DIR}/numaheap_core.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/numaheap_core.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
