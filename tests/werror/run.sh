#!/usr/bin/env bash
# NUMAHEAP_WERROR: off (the default) a warning is reported and the build
# goes on; on (CI) the same warning fails the build. Builds tests/werror, C++
# and C, with the compilers and generator of the calling build.
#   run.sh SOURCE_DIR C_COMPILER CXX_COMPILER GENERATOR
set -euo pipefail
src=$1 cc=$2 cxx=$3 generator=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

for werror in OFF ON; do
  dir=$work/$werror
  if ! cmake -S "$src/tests/werror" -B "$dir" -G "$generator" -DNUMAHEAP_SOURCE_DIR="$src" \
       -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DNUMAHEAP_WERROR=$werror \
       >"$dir.log" 2>&1; then
    echo "FAIL: configuring tests/werror:"; cat "$dir.log"; exit 1
  fi
  for target in warns_cxx warns_c; do
    log=$dir.$target.log
    if cmake --build "$dir" --target $target >"$log" 2>&1; then built=yes; else built=no; fi
    if [ $werror = OFF ]; then
      [ $built = yes ] || { echo "FAIL: $target: a warning broke the build without NUMAHEAP_WERROR:"; cat "$log"; fail=1; }
      grep -q 'warning: unused variable' "$log" ||
        { echo "FAIL: $target: the warning is not reported without NUMAHEAP_WERROR:"; cat "$log"; fail=1; }
    else
      [ $built = no ] || { echo "FAIL: $target: a warning did not break the build with NUMAHEAP_WERROR=ON:"; cat "$log"; fail=1; }
      grep -q 'error: unused variable' "$log" ||
        { echo "FAIL: $target: the warning is not an error with NUMAHEAP_WERROR=ON:"; cat "$log"; fail=1; }
    fi
  done
done

[ $fail -eq 0 ] && echo "build.werror: ok"
exit $fail
