#!/usr/bin/env bash
# numaheap's set-up and entry points on a Debian 12 machine.
#
#   ./numaheap.sh demo    install what the demo needs, build the command, run the demo
#   ./numaheap.sh test    install what is missing (test tooling too), build all, run the test suite
#   ./numaheap.sh build   install what is missing and build everything (build/)
#   ./numaheap.sh packages [PKG...]   only install what is missing (and PKG...)
#
# Idempotent and non-interactive: packages already present are not touched,
# an existing build/ is reused. BUILD_DIR and BUILD_TYPE may be overridden;
# NUMAHEAP_WERROR=ON makes compiler warnings errors (as CI does).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=${BUILD_DIR:-$here/build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-2}

# Debian 12 packages, by job. The demo needs only what builds the library
# and the command and draws the plot; the test suite adds the test,
# benchmark and fuzzing libraries, clang (sanitizers, libFuzzer), qemu and
# busybox (the VM tests), doxygen (the API reference), help2man (man pages).
DEMO_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libnuma-dev libboost-dev libxxhash-dev
  libcli11-dev nlohmann-json3-dev libpugixml-dev
  gnuplot-nox
)
TEST_PACKAGES=(
  git numactl
  libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev
  libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
  clang libclang-rt-14-dev
  qemu-system-x86 busybox-static cpio
  doxygen help2man
)
PACKAGES=("${DEMO_PACKAGES[@]}")

log() { printf 'numaheap.sh: %s\n' "$*" >&2; }

install_packages() {  # install_packages [EXTRA_PACKAGE...]
  local missing=()
  for p in "${PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {  # build [CMAKE_OPTION...] [-- TARGET...]
  install_packages
  local options=() targets=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; targets=("$@"); break; fi
    options+=("$1"); shift
  done
  [ -n "${NUMAHEAP_WERROR:-}" ] && options+=("-DNUMAHEAP_WERROR=$NUMAHEAP_WERROR")
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$here" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${options[@]}"
  elif [ ${#options[@]} -gt 0 ]; then
    cmake -S "$here" -B "$BUILD_DIR" "${options[@]}"  # an existing build/ takes the options too
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS" ${targets[@]:+--target "${targets[@]}"}
}

# True when the test packages are installed (then a build configures the
# tests and benchmarks too, whichever job asked for it).
have_test_packages() {
  local p
  for p in "${TEST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}

case "${1:-}" in
  build)
    shift; PACKAGES+=("${TEST_PACKAGES[@]}"); build "$@" ;;
  packages)
    shift; PACKAGES+=("${TEST_PACKAGES[@]}"); install_packages "$@" ;;
  demo)
    # Only the command: a fresh build/ is configured without the tests and
    # benchmarks (their libraries are not installed for the demo); a build/
    # that has them keeps them.
    if [ -f "$BUILD_DIR/build.ninja" ] || have_test_packages; then
      build -- numaheap-cli
    else
      build -DNUMAHEAP_BUILD_TESTS=OFF -DNUMAHEAP_BUILD_BENCH=OFF -- numaheap-cli
    fi
    log "demo: the built-in seed 4-node machine, then the workload simulator on it:"
    log "      guests with private and shared sets; halfway two vCPUs move node;"
    log "      none, naive, autonuma, numaheap and an oracle compared"
    "$BUILD_DIR/bin/numaheap" topology --builtin
    echo
    "$BUILD_DIR/bin/numaheap" sim --topology builtin --scenario mixed --plot "$BUILD_DIR/sim-demo.svg"
    log "plot (local ratio, MiB moved and cost over time): $BUILD_DIR/sim-demo.svg"
    ;;
  test)
    PACKAGES+=("${TEST_PACKAGES[@]}")
    build -DNUMAHEAP_BUILD_TESTS=ON -DNUMAHEAP_BUILD_BENCH=ON
    cd "$BUILD_DIR"
    ctest -j "$JOBS" --output-on-failure ${CTEST_ARGS:-}
    ;;
  *)
    echo "usage: $0 {demo|test|build|packages}" >&2
    exit 2
    ;;
esac
