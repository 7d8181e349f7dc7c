# Warnings on, and errors, for project code only (never for third-party
# headers, which come in as SYSTEM includes).
function(numaheap_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough -Werror)
endfunction()

function(numaheap_c_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
endfunction()

# The core's contract: no exceptions, no RTTI.
function(numaheap_core_flags target)
  target_compile_options(${target} PRIVATE -fno-exceptions -fno-rtti)
endfunction()
