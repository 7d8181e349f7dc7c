#!/usr/bin/env bash
# Boots a multi-node Linux guest under qemu (TCG, no KVM needed) that mirrors
# a topology, runs numaheap-vmtest inside it and exits with its status.
#
#   tests/vm/run.sh [--topology FILE] [--build DIR] [--timeout S]
#                   [--guest-script FILE] [--payload FILE]... [--vmplan-arg ARG]...
#                   [-- test args]
#
# --guest-script: /init runs FILE (as /guest.sh, its exit status is the
# guest's) instead of numaheap-vmtest; --payload copies FILE into the
# guest's / (compare.sh: minivmm); --vmplan-arg passes ARG to vmplan (e.g.
# --cpus-per-node 2).
# FILE is numactl -H text (default: the seed 4-node machine). The guest gets
# the same nodes (ids renumbered densely, as Linux does), which nodes have
# CPUs and memory, and the distances; memory is scaled down and CPUs capped
# (numaheap-vmplan). qemu's own exit status says nothing about the guest, so
# /init prints "NUMAHEAP_VM_EXIT=<status>" and a missing marker is a failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
topology=$repo/tests/data/topologies/seed-4node-libvirt/numactl-H.txt
build=${NUMAHEAP_BUILD_DIR:-$repo/build}
timeout_s=180
test_args=()
guest_script=""
payload=()
vmplan_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --topology) topology=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --guest-script) guest_script=$2; shift 2 ;;
    --payload) payload+=("$2"); shift 2 ;;
    --vmplan-arg) vmplan_args+=("$2"); shift 2 ;;
    --) shift; test_args=("$@"); break ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in qemu-system-x86_64 cpio gzip; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool missing (./numaheap.sh build installs it)" >&2; exit 1; }
done
busybox=/bin/busybox   # from busybox-static: the guest has no shared libraries
[ -x "$busybox" ] || { echo "run.sh: $busybox missing (package busybox-static)" >&2; exit 1; }
vmtest=$build/bin/numaheap-vmtest
vmplan=$build/bin/numaheap-vmplan
[ -x "$vmtest" ] && [ -x "$vmplan" ] || { echo "run.sh: build numaheap-vmtest and numaheap-vmplan first ($build/bin)" >&2; exit 1; }

kernel=$("$here/fetch-kernel.sh" "${NUMAHEAP_VM_CACHE:-$build/vm-cache}")

work=$(mktemp -d)
trap '[ -n "${NUMAHEAP_VM_KEEP:-}" ] && echo "run.sh: kept $work" >&2 || rm -rf "$work"' EXIT
mapfile -t qemu_topo < <("$vmplan" --topology "$topology" --expected "$work/expected.txt" ${vmplan_args[@]+"${vmplan_args[@]}"})
[ ${#qemu_topo[@]} -gt 0 ] || { echo "run.sh: numaheap-vmplan failed" >&2; exit 1; }

root=$work/root
mkdir -p "$root/bin"
cp "$busybox" "$root/bin/busybox"
cp "$vmtest" "$root/numaheap-vmtest"
cp "$work/expected.txt" "$root/expected.txt"
for f in ${payload[@]+"${payload[@]}"}; do cp "$f" "$root/"; done
if [ -n "$guest_script" ]; then
  cp "$guest_script" "$root/guest.sh"
  chmod +x "$root/guest.sh"
fi
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "NUMAHEAP_VM_BEGIN"
if [ -x /guest.sh ]; then
  /guest.sh
else
  # shellcheck disable=SC2086
  /numaheap-vmtest --expected /expected.txt $TEST_ARGS
fi
echo "NUMAHEAP_VM_EXIT=$?"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")

log=$work/serial.log
# A boot that never reaches /init's NUMAHEAP_VM_BEGIN within boot_timeout_s
# is the emulator's (twice in full -j2 suites, vm.cpuless: no output after
# the BIOS, numaheap never ran), not the test's: it is retried once, the
# second time without `quiet` so that a hang shows where the kernel stopped.
# A guest that reached /init is never retried.
boot_timeout_s=${NUMAHEAP_VM_BOOT_TIMEOUT:-90}
boot() {  # $1: kernel quiet flag; sets qemu_rc and booted
  local pid waited=0
  booted=0
  timeout "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu max \
    "${qemu_topo[@]}" \
    -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 $1 numa_balancing=disable TEST_ARGS=\"${test_args[*]:-}\"" \
    -nographic -no-reboot -nic none -monitor none </dev/null >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if grep -aq NUMAHEAP_VM_BEGIN "$log"; then booted=1; break; fi
    if [ "$waited" -ge "$boot_timeout_s" ]; then kill "$pid" 2>/dev/null; break; fi
    sleep 1  # a watchdog's poll, not a synchronisation
    waited=$((waited + 1))
  done
  wait "$pid"
  qemu_rc=$?
  grep -aq NUMAHEAP_VM_BEGIN "$log" && booted=1
  return 0
}
set +e
boot quiet
if [ "$booted" -eq 0 ]; then
  echo "run.sh: the guest did not reach /init in ${boot_timeout_s} s (qemu status $qemu_rc); booting again without quiet. Last serial output:" >&2
  tr -d '\r' <"$log" | tail -n 20 >&2
  boot ""
fi
set -e
tr -d '\r' <"$log" >"$log.clean"
# Show what the test printed (between the markers).
# The serial console may put terminal escapes before a marker on its line.
sed -n '/NUMAHEAP_VM_BEGIN/,/NUMAHEAP_VM_EXIT=/p' "$log.clean" | grep -v 'NUMAHEAP_VM_BEGIN' || true
status=$(sed -n 's/.*NUMAHEAP_VM_EXIT=\([0-9][0-9]*\).*/\1/p' "$log.clean" | tail -n 1)
if [ -z "$status" ]; then
  echo "run.sh: no exit marker from the guest (qemu status $qemu_rc); last serial output:" >&2
  tail -n 40 "$log.clean" >&2
  exit 1
fi
exit "$status"
