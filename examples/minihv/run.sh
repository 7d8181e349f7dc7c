#!/usr/bin/env bash
# Installs the numaheap build tree into a scratch prefix, builds
# examples/minihv against it as a C-only CMake project (with the build's own
# C flags and linker flags, so a TSan build gives a TSan minihv), and runs it.
#   run.sh BUILD_DIR SOURCE_DIR [hosted|core]
set -euo pipefail
build_dir=$1
src_dir=$2
mode=${3:-auto}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" | head -1; }
san=$(cache NUMAHEAP_SANITIZE)
cflags="$(cache CMAKE_C_FLAGS)${san:+ -fsanitize=$san -fno-omit-frame-pointer}"
ldflags="$(cache CMAKE_EXE_LINKER_FLAGS)${san:+ -fsanitize=$san}"
hosted=OFF
[ "$mode" = hosted ] && hosted=ON
# The build's own C compiler: a sanitizer's runtime must match the one the
# core was instrumented for (clang's ASan with clang's).
cc_path=$(cache CMAKE_C_COMPILER)
cmake -S "$src_dir" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  ${cc_path:+-DCMAKE_C_COMPILER="$cc_path"} \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
  -DMINIHV_HOSTED=$hosted >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/minihv"
