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
# The command, its man page and the docs are installed too.
for f in bin/numaheap share/man/man1/numaheap.1 share/doc/numaheap/README.md \
         share/doc/numaheap/integrating.md include/numaheap/version.h; do
  [ -e "$work/prefix/$f" ] || { echo "consumer.install: $f not installed" >&2; exit 1; }
done
"$work/prefix/bin/numaheap" --version | grep -q '^numaheap [0-9]' || {
  echo "consumer.install: the installed command has no --version" >&2; exit 1; }

cmake -S "$src_dir" -B "$work/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
# needs_lib EXE yes|no: whether EXE loads libnumaheap.so (and which SONAME).
needs_lib() {
  local needed
  needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(libnumaheap[^]]*\)\]/\1/p')
  if [ "$2" = yes ] && ! grep -Eq '^libnumaheap\.so\.[0-9]+(\.[0-9]+)?$' <<<"$needed"; then
    echo "consumer.install: $1 does not load libnumaheap.so.N (NEEDED: ${needed:-none})" >&2
    exit 1
  elif [ "$2" = no ] && [ -n "$needed" ]; then
    echo "consumer.install: $1 should link the archive but loads $needed" >&2
    exit 1
  fi
}
"$work/cmake-build/consumer"
needs_lib "$work/cmake-build/consumer" no
"$work/cmake-build/consumer_shared"
needs_lib "$work/cmake-build/consumer_shared" yes

# The shared library exports the public API only: the C functions and the
# C++ API's classes, none of the allocator's internals.
so=$(find "$work/prefix" -name 'libnumaheap.so.*' -type f | head -1)
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] || { echo "consumer.install: $so has no SONAME" >&2; exit 1; }
exported=$(nm -D --defined-only "$so" | awk '{print $3}' | c++filt)
internal=$(grep -E '^numaheap::(NodeHeap|FrameTable|PerCpuCache|CpuCache|capi::|host::|rseq::|fault::)|^(non-virtual thunk to )?numaheap::[A-Za-z]+::Impl::' <<<"$exported" || true)
if [ -n "$internal" ]; then
  echo "consumer.install: $soname exports internals:" >&2
  head -20 <<<"$internal" >&2
  exit 1
fi
echo "consumer.install: $soname exports $(wc -l <<<"$exported") symbols, $(grep -c '^numaheap_' <<<"$exported") of them C functions"

mv "$work/prefix" "$work/moved"
pc_dir=$(dirname "$(find "$work/moved" -name numaheap.pc | head -1)")
export PKG_CONFIG_PATH="$pc_dir"
libdir=$(pkg-config --variable=libdir numaheap)
# numaheap.pc: the shared library.
# shellcheck disable=SC2046
c++ -std=c++20 "$src_dir/consumer.cc" -o "$work/pc-consumer" $(pkg-config --cflags --libs numaheap)
LD_LIBRARY_PATH="$libdir" "$work/pc-consumer"
needs_lib "$work/pc-consumer" yes
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src_dir/consumer_c.c" -o "$work/c-consumer" $(pkg-config --cflags --libs numaheap)
LD_LIBRARY_PATH="$libdir" "$work/c-consumer"
needs_lib "$work/c-consumer" yes
# numaheap-static.pc: the archive, from C++ and from C.
# shellcheck disable=SC2046
c++ -std=c++20 "$src_dir/consumer.cc" -o "$work/pc-static-consumer" $(pkg-config --cflags --libs numaheap-static)
"$work/pc-static-consumer"
needs_lib "$work/pc-static-consumer" no
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src_dir/consumer_c.c" -o "$work/c-static-consumer" $(pkg-config --cflags --libs numaheap-static)
"$work/c-static-consumer"
needs_lib "$work/c-static-consumer" no
# The freestanding core from C only: a C-only CMake project through
# find_package(numaheap) (numaheap::core), and cc through pkg-config
# (numaheap_core.pc); neither names libstdc++, and the link proves nothing
# needs it.
cmake -S "$src_dir/core" -B "$work/core-build" -G Ninja -DCMAKE_PREFIX_PATH="$work/moved" >/dev/null
cmake --build "$work/core-build" >/dev/null
"$work/core-build/core_consumer"
# The region check catches a leak: an embedder that never destroys its heap.
if leak_out=$("$work/core-build/core_consumer" --break-leak); then
  echo "consumer.install: the region check missed a leaked heap: $leak_out" >&2
  exit 1
fi
grep -q 'LEAKED' <<<"$leak_out" || { echo "consumer.install: no leak reported: $leak_out" >&2; exit 1; }
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
