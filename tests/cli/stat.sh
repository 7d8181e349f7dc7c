#!/usr/bin/env bash
# `numaheap stat`: a recorded /proc + sysfs tree (tests/data/proc/), then a
# real qemu process started here (skipped, exit 77, without qemu): its 4
# vCPU threads are listed and its memory per node agrees with numa_maps
# read independently and with `numastat -p`.
set -euo pipefail
bin=$1/numaheap
data=$2
work=$(mktemp -d)
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
tree=$data/proc/kvm-4vcpu-3node
rec=(--proc-root "$tree" --sysfs-root "$tree")

# --- Recorded tree -------------------------------------------------------
"$bin" stat "${rec[@]}" >"$work/text" 2>"$work/err"
check 'grep -q "^guest vm1 (pid 4242, qemu-system-x86): 4 vCPU threads, 1073.42 MB" "$work/text"' "text: guest line"
check 'grep -q "vCPUs: 0@cpu1(node 0) 1@cpu2(node 0) 2@cpu3(node 0) 3@cpu9(node 2)" "$work/text"' "text: vCPUs"
check 'grep -q "would move 440.47 MB: from node 1 440 MB; to node 0 330 MB, node 2 110 MB" "$work/text"' "text: move"
check 'grep -q "^guest qemu-system-x86 (pid 6001" "$work/text"' "text: qemu without named threads not listed"
check '! grep -q "bash" "$work/text"' "text: a shell listed as a guest"
check 'grep -q "sysfs tree" "$work/err"' "stderr does not say where CPU -> node came from"

# One line per report with --watch; the JSON fields.
"$bin" stat "${rec[@]}" --pid 4242 --json --watch 0.05 --count 2 >"$work/watch" 2>/dev/null
check '[ "$(wc -l <"$work/watch")" -eq 2 ]' "--watch --count 2 did not print two lines"
line=$(head -1 "$work/watch")
for want in '"pid":4242,"name":"vm1"' '{"index":3,"tid":4253,"accel":"KVM","cpu":9,"node":2}' \
            '{"id":1,"memory_bytes":461864960,"memory_mb":440.47,"vcpus":0,"hugepages":[{"size_kb":2048,"pages":212}]}' \
            '"local_fraction":0.4422' '"move":{"bytes":461864960,"from":{"1":461864960},"to":{"0":346398720,"2":115466240}}'; do
  check 'grep -qF -- "$want" <<<"$line"' "JSON lacks $want"
done
# Another CPU -> node map: the seed machine puts CPU 9 on node 2 as well, CPU 1-3 on node 0.
"$bin" stat --proc-root "$tree" --topology builtin --pid 4242 >"$work/builtin" 2>"$work/err"
check 'grep -q "built-in seed" "$work/err"' "--topology builtin not said on stderr"
# Errors: no such process is bad input (1); --pid with --qemu is usage (2).
set +e
"$bin" stat "${rec[@]}" --pid 99999 >"$work/out" 2>"$work/err"; rc=$?
"$bin" stat "${rec[@]}" --pid 1 --qemu >/dev/null 2>&1; rc2=$?
"$bin" stat --proc-root "$tree" --sysfs-root "$work/none" >/dev/null 2>&1; rc3=$?
set -e
check '[ $rc -eq 1 ] && grep -q 99999 "$work/err" && [ ! -s "$work/out" ]' "missing pid: exit $rc, $(cat "$work/err")"
check '[ $rc2 -eq 2 ]' "--pid with --qemu: exit $rc2, expected 2"
check '[ $rc3 -eq 1 ]' "missing sysfs tree: exit $rc3, expected 1"
[ $fail -eq 0 ] && echo "ok recorded tree"

# --- A real qemu ---------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "qemu-system-x86_64 not installed: live check skipped"
  [ $fail -eq 0 ] && exit 77
  exit $fail
fi
# debug-threads=on names the vCPU threads "CPU n/TCG" (libvirt always sets it).
qemu-system-x86_64 -accel tcg -smp 4 -m 256 -nographic -display none -nodefaults -serial none -monitor none -S \
  -name numaheap-stat-test,debug-threads=on </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!
vcpu_tids() {
  for t in /proc/$qemu_pid/task/*; do
    # `if`, not `&&`: under pipefail a loop whose last task is not a vCPU
    # thread would otherwise fail the whole pipeline (CI stop 29).
    if grep -qE '^CPU [0-9]+/(TCG|KVM)$' "$t/comm" 2>/dev/null; then basename "$t"; fi
  done | sort -n
}
for _ in $(seq 100); do
  [ "$(vcpu_tids | wc -l)" -eq 4 ] && break
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$(vcpu_tids | wc -l)" -ne 4 ]; then
  echo "FAIL: qemu did not start 4 named vCPU threads: $(cat "$work/qemu.log")"
  exit 1
fi

# Memory per node from numa_maps, summed here independently of numaheap.
awk_nodes() {
  awk '{ kb = 4; for (i = 1; i <= NF; i++) if ($i ~ /^kernelpagesize_kB=/) { split($i, a, "="); kb = a[2] }
         for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+=/) { split(substr($i, 2), a, "="); b[a[1]] += a[2] * kb * 1024 } }
       END { for (n in b) print n, b[n] }' "/proc/$qemu_pid/numa_maps" | sort -n
}
ours_nodes() { grep -oE '\{"id":[0-9]+,"memory_bytes":[0-9]+' "$1" | sed -E 's/\{"id":([0-9]+),"memory_bytes":([0-9]+)/\1 \2/' | awk '$2 > 0'; }
# qemu is paused (-S), but its own threads may still allocate: take the
# reading where numaheap before, awk, and numaheap after agree.
agree=0
for _ in 1 2 3 4 5; do
  "$bin" stat --pid "$qemu_pid" --json --watch 1 --count 1 >"$work/a.json" 2>/dev/null
  awk_nodes >"$work/awk"
  numastat -p "$qemu_pid" >"$work/numastat" 2>/dev/null || true
  "$bin" stat --pid "$qemu_pid" --json --watch 1 --count 1 >"$work/b.json" 2>/dev/null
  ours_nodes "$work/a.json" >"$work/a"
  ours_nodes "$work/b.json" >"$work/b"
  if cmp -s "$work/a" "$work/b" && cmp -s "$work/a" "$work/awk"; then agree=1; break; fi
  sleep 0.2
done
check '[ $agree -eq 1 ]' "memory per node differs from numa_maps: ours $(tr '\n' ' ' <"$work/a"), awk $(tr '\n' ' ' <"$work/awk")"
check '[ -s "$work/a" ]' "no memory found for the qemu process"
# vCPU threads: the same four tids, each with a CPU and a node.
grep -oE '"tid":[0-9]+' "$work/a.json" | cut -d: -f2 | sort -n >"$work/tids"
check 'vcpu_tids | cmp -s - "$work/tids"' "vCPU tids $(tr '\n' ' ' <"$work/tids") != /proc's $(vcpu_tids | tr '\n' ' ')"
check '[ "$(grep -oE "\"accel\":\"TCG\",\"cpu\":[0-9]+,\"node\":[0-9]+" "$work/a.json" | wc -l)" -eq 4 ]' "vCPUs lack cpu/node"
# numastat -p: its Total row, per node and overall, in MB with two decimals
# (a node without memory of this process is 0.00 there).
if [ -s "$work/numastat" ] && [ $agree -eq 1 ]; then
  want=$(awk '/^Total/ { for (i = 2; i <= NF; i++) printf "%s ", $i }' "$work/numastat")
  got=
  for n in $(awk '/Node [0-9]/ { for (i = 1; i < NF; i++) if ($i == "Node") print $(i + 1); exit }' "$work/numastat"); do
    mb=$(grep -oE "\{\"id\":$n,\"memory_bytes\":[0-9]+,\"memory_mb\":[0-9.]+" "$work/a.json" | sed 's/.*://')
    got+=$(printf '%.2f ' "${mb:-0}")
  done
  got+=$(printf '%.2f ' "$(grep -oE '"total_mb":[0-9.]+' "$work/a.json" | cut -d: -f2)")
  check '[ "$want" = "$got" ]' "numastat -p says '$want', numaheap '$got'"
else
  echo "numastat not available or no stable reading: numastat comparison skipped"
fi
[ $fail -eq 0 ] && echo "ok live qemu (pid $qemu_pid, $(wc -l <"$work/tids") vCPUs)"
exit $fail
