#!/usr/bin/env bash
# `numaheap place`: guests from JSON, libvirt XML and xl.cfg, placed in
# order on the seed machine; JSON output shape; bad input handling.
set -euo pipefail
bin=$1/numaheap
data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
topo=$data/topologies/seed-4node-libvirt/numactl-H.txt
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

cat >"$work/g.json" <<'JSON'
{"guests":[{"name":"g0","memory_mb":1024,"vcpus":2},
           {"name":"g1","memory_mb":3000,"vcpus":4},
           {"name":"g9","memory_mb":99999,"vcpus":1}]}
JSON
set +e
"$bin" place --topology "$topo" --guests "$work/g.json" --json >"$work/out.json" 2>"$work/err"
rc=$?
set -e
check '[ $rc -eq 3 ]' "exit status $rc, expected 3 (one guest unplaced)"
check 'grep -q "\"placements\"" "$work/out.json"' "no placements key"
check 'grep -q "\"name\": \"g9\"" "$work/out.json"' "g9 not listed"
check 'grep -q "\"error\": \"guest .g9. needs 99999 MB" "$work/out.json"' "g9 error text"
check 'grep -q "\"vcpu_nodes\"" "$work/out.json"' "no vcpu_nodes"
check 'grep -q "\"memory_mb\": {" "$work/out.json"' "memory_mb is not an object"

"$bin" place --topology "$topo" --guests "$data/guests/domain.xml" >"$work/out.txt"
check 'grep -q "^libvirt-vm: nodes 0-1" "$work/out.txt"' "libvirt guest not on its pinned nodes 0-1"
"$bin" place --topology "$topo" --guests "$data/guests/guest.xl.cfg" >"$work/out.txt"
check 'grep -q "^xl-vm: nodes 2-3" "$work/out.txt"' "xl.cfg guest not on its pinned nodes 2-3"
# A sysfs tree works as a topology too.
"$bin" place --topology "$data/topologies/amd-4s-opteron6276-8n" --guests "$data/guests/batch.json" >"$work/out.txt" || true
check 'grep -q "^db: nodes" "$work/out.txt"' "db not placed on the 8-node machine"

# Bad input: exit 1, message names file and problem, nothing on stdout.
printf '{"guests":[{"name":"x","memory_mb":"lots","vcpus":1}]}' >"$work/bad.json"
set +e
"$bin" place --topology "$topo" --guests "$work/bad.json" >"$work/out" 2>"$work/err"
rc=$?
set -e
check '[ $rc -eq 1 ]' "bad guests file: exit $rc"
check '[ ! -s "$work/out" ]' "output on stdout for bad input"
check 'grep -q "bad.json:1:36: \$.guests\[0\].memory_mb" "$work/err"' "error does not name the place: $(cat "$work/err")"
printf 'name = "x"\nmemory = 512\nvcpus = 2\nvnuma = [ "pnode=0, size=256, vcpus=0" ]\n' >"$work/bad.cfg"
set +e
"$bin" place --topology "$topo" --guests "$work/bad.cfg" >"$work/out" 2>"$work/err"
rc=$?
set -e
check '[ $rc -eq 1 ]' "invalid xl vnuma is bad input (exit 1), got $rc"
check '[ ! -s "$work/out" ]' "output on stdout for an invalid xl vnuma"
check 'grep -q "bad.cfg:3:9: vcpus (2) exceeds the 1 vCPUs vnuma lists" "$work/err"' "xl vnuma error text: $(cat "$work/err")"
[ $fail -eq 0 ] && echo "place: ok"
exit $fail
