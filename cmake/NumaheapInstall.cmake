# Installation: headers, the libraries, CMake package files
# (find_package(numaheap) gives numaheap::numaheap, the static host library,
# numaheap::shared, the same as libnumaheap.so, and numaheap::core, the
# freestanding core), relocatable numaheap.pc, numaheap-static.pc and
# numaheap_core.pc (each derives its prefix from its own location), the
# command, its man pages and the docs.
include(CMakePackageConfigHelpers)

install(TARGETS numaheap numaheap_shared numaheap_core EXPORT numaheapTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/numaheap
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/numaheap/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/numaheap)
# The documentation (docs/ as it is in the tree: architecture, integration,
# the figures) and the README.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The command's man page (tools/CMakeLists.txt fills in the version).
install(FILES ${PROJECT_BINARY_DIR}/man/numaheap.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

set(NUMAHEAP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/numaheap)
install(EXPORT numaheapTargets NAMESPACE numaheap:: DESTINATION ${NUMAHEAP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/numaheapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/numaheapConfig.cmake INSTALL_DESTINATION ${NUMAHEAP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/numaheapConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/numaheapConfig.cmake
              ${PROJECT_BINARY_DIR}/numaheapConfigVersion.cmake
        DESTINATION ${NUMAHEAP_CMAKE_DIR})

# pkg-config: numaheap.pc links the shared library (its own needs are
# recorded in it); numaheap-static.pc names the archive, with what a static
# C++ library needs (libnuma, the C++ runtime, threads) for C consumers too.
file(RELATIVE_PATH NUMAHEAP_PC_TO_PREFIX
     ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" NUMAHEAP_PC_TO_PREFIX "${NUMAHEAP_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/numaheap.pc.in
               ${PROJECT_BINARY_DIR}/numaheap.pc @ONLY)
configure_file(${PROJECT_SOURCE_DIR}/cmake/numaheap-static.pc.in
               ${PROJECT_BINARY_DIR}/numaheap-static.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/numaheap.pc ${PROJECT_BINARY_DIR}/numaheap-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The freestanding core: nothing but the archive (no libnuma, no C++
# runtime, no threads).
configure_file(${PROJECT_SOURCE_DIR}/cmake/numaheap_core.pc.in
               ${PROJECT_BINARY_DIR}/numaheap_core.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/numaheap_core.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
