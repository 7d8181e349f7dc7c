# API reference: `cmake --build build --target doc` runs Doxygen on the public
# headers (include/numaheap/*.h) into build/docs/api (HTML). Not part of
# `all`; without Doxygen there is no target.
#
# The headers are commented in plain // and /* */ style, not Doxygen's: an
# input filter (sed, generated below) reads them as Doxygen comments --
# a comment line before a declaration documents it, a trailing comment
# after `;` or `,` (or a #define's value) documents that member, and the
# comment opening a file becomes its @file text. Section rules (`// ----`)
# are left alone. The headers themselves stay as they are.
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "Doxygen not found: no `doc` target (apt-get install doxygen)")
  return()
endif()

set(NUMAHEAP_DOC_DIR ${CMAKE_BINARY_DIR}/docs/api)
set(NUMAHEAP_DOC_FILTER ${CMAKE_BINARY_DIR}/docs/doxygen_filter.sed)
file(WRITE ${NUMAHEAP_DOC_FILTER} [=[
/^[[:space:]]*\/\/ *--/b
/^[[:space:]]*\/\* *--/b
1s|^// |/// @file\n/// |
1s|^/\* |/** @file\n * |
s|^\([[:space:]]*\)// |\1/// |
s|^\([[:space:]]*\)//$|\1///|
s|\([;,{]\)\([[:space:]]*\)// |\1\2///< |
s|^\([[:space:]]*\)/\* \([^-]\)|\1/** \2|
s|\([;,]\)\([[:space:]]*\)/\* |\1\2/**< |
s|^\(#define .*[^[:space:]]\)\([[:space:]][[:space:]]*\)/\* |\1\2/**< |
]=])

configure_file(${CMAKE_CURRENT_LIST_DIR}/Doxyfile.in ${CMAKE_BINARY_DIR}/docs/Doxyfile @ONLY)
add_custom_target(doc
  COMMAND ${CMAKE_COMMAND} -E make_directory ${NUMAHEAP_DOC_DIR}
  COMMAND ${DOXYGEN_EXECUTABLE} ${CMAKE_BINARY_DIR}/docs/Doxyfile
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  COMMENT "Doxygen: API reference in ${NUMAHEAP_DOC_DIR}/html"
  VERBATIM)
