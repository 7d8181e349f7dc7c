# Warnings on for project code only (never for third-party headers, which
# come in as SYSTEM includes). They are errors only with NUMAHEAP_WERROR=ON
# (CI): a compiler newer than or different from CI's may warn about new
# things, and that must not break a user's build.
set(NUMAHEAP_WERROR_FLAGS "")
if(NUMAHEAP_WERROR)
  # gcc 12 at -O3 reports impossible overlaps inside std::string's
  # operator+ (a known false positive); keep it a warning.
  set(NUMAHEAP_WERROR_FLAGS -Werror $<$<CXX_COMPILER_ID:GNU>:-Wno-error=restrict>)
endif()

function(numaheap_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Wunused -Woverloaded-virtual
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough ${NUMAHEAP_WERROR_FLAGS})
endfunction()

function(numaheap_c_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic ${NUMAHEAP_WERROR_FLAGS})
endfunction()

# The core's contract: no exceptions, no RTTI. -Wnull-dereference only here:
# optimised builds of code that inlines libstdc++/CLI11 internals (tools,
# tests) get false positives from it.
function(numaheap_core_flags target)
  target_compile_options(${target} PRIVATE -fno-exceptions -fno-rtti -Wnull-dereference)
endfunction()
