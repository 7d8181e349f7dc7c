#!/usr/bin/env bash
# minivmm runs a one-second WORKLOAD (default private) in MODE on this host
# and its JSON passes numaheap-vmcompare --check (every key compare.sh reads,
# the right types, no page lost a write); the table line is shown. numaheap
# mode: the timeline is there too, and after a vCPU move its summary.
#   minivmm_smoke.sh MINIVMM VMCOMPARE MODE [WORKLOAD]
set -euo pipefail
minivmm=$1 vmcompare=$2 mode=$3 workload=${4:-private}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$minivmm" --live --workload "$workload" --seconds 1 --mode "$mode" --json "$work/out.json"
"$vmcompare" --check "$work/out.json"
grep -q "\"mode\":\"$mode\"" "$work/out.json"
if [ "$mode" = numaheap ]; then
  grep -q '"timeline":\[{' "$work/out.json" || { echo "minivmm_smoke: no timeline" >&2; exit 1; }
  if [ "$workload" = vcpu-move ]; then
    grep -q '"after_move":{' "$work/out.json" || { echo "minivmm_smoke: no after_move" >&2; exit 1; }
    # (unless this host refuses userfaultfd: then minivmm runs without a sampler and says why)
    if grep -q '"sampler_error":""' "$work/out.json"; then
      grep -q '"bursts":[1-9]' "$work/out.json" || { echo "minivmm_smoke: the vCPU move opened no burst" >&2; exit 1; }
    fi
  fi
fi
# The check itself must refuse a result that lost writes or lacks a key.
sed 's/"data_errors":0/"data_errors":1/' "$work/out.json" >"$work/lost.json"
sed 's/"pages_bounced":[0-9]*,//' "$work/out.json" >"$work/nokey.json"
for bad in lost nokey; do
  if "$vmcompare" --check "$work/$bad.json" 2>/dev/null; then
    echo "minivmm_smoke: numaheap-vmcompare --check accepted $bad.json" >&2
    exit 1
  fi
done
