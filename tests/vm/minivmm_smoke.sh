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
