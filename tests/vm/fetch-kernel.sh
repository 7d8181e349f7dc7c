#!/usr/bin/env bash
# Prints the path of a Linux kernel for the NUMA test guest, fetching
# Debian's cloud kernel (CONFIG_NUMA, ACPI NUMA, migration, serial console,
# no modules needed) into CACHE_DIR on first use. /boot is never touched.
#   fetch-kernel.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
mkdir -p "$cache"
if [ -s "$cache/vmlinuz" ]; then
  echo "$cache/vmlinuz"
  exit 0
fi
resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
pkg=$(resolve || true)
if [ -z "$pkg" ]; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  pkg=$(resolve)
fi
[ -n "$pkg" ] || { echo "fetch-kernel.sh: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"   # apt-get download drops to the _apt user when it can
(cd "$work" && apt-get download -q "$pkg" >&2 2>/dev/null) ||
  (cd "$work" && apt-get download "$pkg" >&2)
dpkg-deb -x "$work"/*.deb "$work/x"
cp "$work"/x/boot/vmlinuz-* "$cache/vmlinuz.tmp"
mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
echo "$pkg" >"$cache/kernel-package"
echo "$cache/vmlinuz"
