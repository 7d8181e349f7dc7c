#!/usr/bin/env bash
# Installs the numaheap build tree into a scratch prefix, builds
# examples/minihv against it as a C-only CMake project (with the build's own
# C flags and linker flags, so a TSan build gives a TSan minihv), and runs it.
#   run.sh BUILD_DIR SOURCE_DIR [hosted|core] [catches]
# With `catches` it runs each deliberately broken variant instead
# (minihv --break=...) and fails unless every one is caught by its own check.
set -euo pipefail
build_dir=$1
src_dir=$2
mode=${3:-auto}
what=${4:-run}
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
if [ "$what" != catches ]; then
  exec "$work/build/minihv"
fi
# Each broken embedder must fail, and through the check that guards it.
caught=0
check() {
  local variant=$1 pattern=$2 out rc=0
  out=$("$work/build/minihv" --break="$variant" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && grep -q 'minihv: FAILED' <<<"$out" && grep -Eq "$pattern" <<<"$out"; then
    echo "caught --break=$variant ($(grep -Eo "$pattern" <<<"$out" | head -1))"
    caught=$((caught + 1))
  else
    echo "NOT caught: --break=$variant (exit $rc; expected /$pattern/):" >&2
    echo "$out" >&2
  fi
}
check copy 'lost writes [1-9][0-9]*'
check scrub 'unscrubbed words [1-9][0-9]*'
check leak 'leaked frames [1-9][0-9]*'
check metadata '[1-9][0-9]* bytes after teardown'
[ "$caught" -eq 4 ]
