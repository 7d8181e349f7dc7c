#!/usr/bin/env bash
# minivmm runs a one-second private workload in MODE on this host and its
# JSON passes numaheap-vmcompare --check (every key compare.sh reads, the
# right types, no page lost a write); the table line is shown.
#   minivmm_smoke.sh MINIVMM VMCOMPARE MODE
set -euo pipefail
minivmm=$1 vmcompare=$2 mode=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$minivmm" --live --workload private --seconds 1 --mode "$mode" --json "$work/out.json"
"$vmcompare" --check "$work/out.json"
grep -q "\"mode\":\"$mode\"" "$work/out.json"
# The check itself must refuse a result that lost writes or lacks a key.
sed 's/"data_errors":0/"data_errors":1/' "$work/out.json" >"$work/lost.json"
sed 's/"pages_bounced":[0-9]*,//' "$work/out.json" >"$work/nokey.json"
for bad in lost nokey; do
  if "$vmcompare" --check "$work/$bad.json" 2>/dev/null; then
    echo "minivmm_smoke: numaheap-vmcompare --check accepted $bad.json" >&2
    exit 1
  fi
done
