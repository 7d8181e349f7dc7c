#!/usr/bin/env bash
# Installs the build tree into a scratch prefix and builds a consumer against
# it twice: with find_package(numaheap) and with pkg-config, the latter after
# moving the prefix elsewhere (numaheap.pc must be relocatable).
set -euo pipefail
build_dir=$1
src_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null

cmake -S "$src_dir" -B "$work/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/consumer"

mv "$work/prefix" "$work/moved"
pc_dir=$(dirname "$(find "$work/moved" -name numaheap.pc | head -1)")
export PKG_CONFIG_PATH="$pc_dir"
# shellcheck disable=SC2046
c++ -std=c++20 "$src_dir/consumer.cc" -o "$work/pc-consumer" $(pkg-config --cflags --libs numaheap)
"$work/pc-consumer"
if [ -f "$work/moved/include/numaheap/numaheap.h" ] && [ -f "$src_dir/consumer_c.c" ]; then
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Werror "$src_dir/consumer_c.c" -o "$work/c-consumer" $(pkg-config --cflags --libs numaheap)
  "$work/c-consumer"
fi
# The freestanding core from C only: a C-only CMake project through
# find_package(numaheap) (numaheap::core), and cc through pkg-config
# (numaheap_core.pc); neither names libstdc++, and the link proves nothing
# needs it.
cmake -S "$src_dir/core" -B "$work/core-build" -G Ninja -DCMAKE_PREFIX_PATH="$work/moved" >/dev/null
cmake --build "$work/core-build" >/dev/null
"$work/core-build/core_consumer"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src_dir/core/core_consumer.c" -o "$work/pc-core-consumer" \
  $(pkg-config --cflags --libs numaheap_core)
"$work/pc-core-consumer"
# (__cxa_finalize is the C start-up files' own weak reference.)
undef=$(nm -u "$work/pc-core-consumer")
bad=$(grep -v '__cxa_finalize' <<<"$undef" | grep 'GLIBCXX\|CXXABI\|_Zn\|_Zd\|__cxa_\|__gxx' || true)
if [ -n "$bad" ]; then
  echo "consumer.install: the core consumer links C++ runtime symbols: $bad" >&2
  exit 1
fi
echo "consumer.install: ok"
