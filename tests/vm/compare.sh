#!/usr/bin/env bash
# Head to head on a real kernel (issue 14): boots the multi-node qemu guest
# of a topology (run.sh, numaheap-vmplan) and runs examples/minivmm's
# workload in it three ways -- numaheap (userfaultfd sampler + migrator +
# kernel mover, kernel NUMA balancing off), Linux's NUMA balancing
# (kernel.numa_balancing=1, numaheap off), neither -- with the same
# workload, durations and defaults. Writes
# {"runs": {"numaheap": {...}, "autonuma": {...}, "none": {...}}, "bar": ...},
# prints a table and whether issue 14's bar holds, and draws the local
# ratio over time per mode (OUT with .png instead of .json).
#
#   tests/vm/compare.sh [--topology FILE] --workload NAME --json OUT
#                       [--seconds S] [--build DIR] [--assert-bar] [--min-final R]
#                       [-- minivmm args]
#
# Exit: 0 when the three results are there and valid (the bar is printed,
# not enforced, unless --assert-bar: then 3 when it does not hold); 4 with
# --min-final R when numaheap's final local ratio is under R or it never
# reached 90% (whatever Linux did); 1 on a missing or invalid result or a
# failed guest; 2 usage.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
topology=$repo/tests/data/topologies/seed-4node-libvirt/numactl-H.txt
build=${NUMAHEAP_BUILD_DIR:-$repo/build}
workload="" out="" seconds=40 assert=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --topology) topology=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --json) out=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --assert-bar) assert+=(--assert-bar); shift ;;
    --min-final) assert+=(--min-final "$2"); shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$workload" ] && [ -n "$out" ] || { echo "usage: compare.sh [--topology FILE] --workload NAME --json OUT [--seconds S]" >&2; exit 2; }
minivmm=$build/bin/minivmm
vmcompare=$build/bin/numaheap-vmcompare
[ -x "$minivmm" ] && [ -x "$vmcompare" ] || { echo "compare.sh: build minivmm and numaheap-vmcompare first ($build/bin)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
payload=(--payload "$minivmm")
trace_arg=""
if [ "$workload" = trace ]; then
  # --workload trace needs `-- --trace FILE`: the file goes into the guest.
  for ((i = 0; i < ${#extra[@]}; i++)); do
    if [ "${extra[$i]}" = --trace ]; then
      payload+=(--payload "${extra[$((i + 1))]}")
      trace_arg="--trace /$(basename "${extra[$((i + 1))]}")"
      extra=("${extra[@]:0:$i}" "${extra[@]:$((i + 2))}")
      break
    fi
  done
fi
# The guest: one boot, the three modes in turn, each result printed on one
# marked line (the serial console is the only way out).
cat >"$work/guest.sh" <<GUEST
#!/bin/busybox sh
if [ ! -e /proc/sys/kernel/numa_balancing ]; then
  echo "compare: this kernel has no NUMA balancing (/proc/sys/kernel/numa_balancing missing)"
  exit 1
fi
status=0
for mode in numaheap autonuma none; do
  /minivmm --live --workload $workload --seconds $seconds --mode \$mode --json /tmp/\$mode.json $trace_arg ${extra[*]:-} || status=1
  [ -s /tmp/\$mode.json ] && echo "NUMAHEAP_JSON_\$mode \$(cat /tmp/\$mode.json)"
done
exit \$status
GUEST
# Guest time: three runs, about 20 s of boot, populate and teardown.
timeout_s=$(awk -v s="$seconds" 'BEGIN { printf "%d", 3 * s * 1.5 + 120 }')
set +e
bash "$here/run.sh" --topology "$topology" --build "$build" --timeout "$timeout_s" \
  --guest-script "$work/guest.sh" "${payload[@]}" --vmplan-arg --cpus-per-node --vmplan-arg 2 >"$work/guest.log" 2>&1
guest_rc=$?
set -e
grep -v '^NUMAHEAP_JSON_' "$work/guest.log" || true
for mode in numaheap autonuma none; do
  sed -n "s/.*NUMAHEAP_JSON_$mode //p" "$work/guest.log" | tail -n 1 >"$work/$mode.json"
done
plot=${out%.json}.png
rc=0
"$vmcompare" --merge "$out" --numaheap "$work/numaheap.json" --autonuma "$work/autonuma.json" \
  --none "$work/none.json" --plot-data "$work/series" ${assert[@]+"${assert[@]}"} || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && [ "$rc" -ne 4 ]; then
  echo "compare.sh: results missing or invalid (guest exit $guest_rc)" >&2
  exit 1
fi
[ "$guest_rc" -eq 0 ] || { echo "compare.sh: the guest failed (exit $guest_rc)" >&2; exit 1; }
move_at=$(sed -n 's/.*"move_at_s":\([0-9.]*\).*/\1/p' "$work/numaheap.json" | head -n 1)
if command -v gnuplot >/dev/null; then
  {
    echo "set terminal pngcairo size 900,500 background rgb 'white' noenhanced"
    echo "set output '$plot'"
    echo "set title '$workload on $(basename "$(dirname "$topology")") (qemu TCG guest)'"
    echo "set xlabel 'seconds'; set ylabel 'local access ratio'; set yrange [0:1.05]; set key bottom right"
    echo "set grid"
    [ -n "$move_at" ] && echo "set arrow from $move_at,0 to $move_at,1.05 nohead dt 2 lc rgb 'black'" &&
      echo "set label 'vCPU move' at $move_at,1.02 offset 0.5,0"
    echo "plot '$work/series-numaheap.dat' w l lw 2 t 'numaheap', '$work/series-autonuma.dat' w l lw 2 t 'Linux NUMA balancing', '$work/series-none.dat' w l lw 2 t 'none'"
  } | gnuplot && echo "compare.sh: plot $plot"
fi
echo "compare.sh: results $out"
exit "$rc"
