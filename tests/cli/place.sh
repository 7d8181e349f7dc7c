#!/usr/bin/env bash
# `numaheap place`: guests from JSON, libvirt XML and xl.cfg, placed in
# order on the seed machine; JSON output shape; bad input handling.
set -euo pipefail
source "$(dirname "$0")/place_common.bash"

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

# The seed case of issue 19: four vnodes of 4 vCPUs / 500 MB, four nodes.
cat >"$work/four.json" <<'JSON'
{"guests":[{"name":"four","memory_mb":2000,"vcpus":16,"vnodes":[
  {"memory_mb":500,"vcpus":[0,1,2,3]},{"memory_mb":500,"vcpus":[4,5,6,7]},
  {"memory_mb":500,"vcpus":[8,9,10,11]},{"memory_mb":500,"vcpus":[12,13,14,15]}]},
  {"name":"plain","memory_mb":3000,"vcpus":6}]}
JSON
"$bin" place --topology "$topo" --guests "$work/four.json" --json >"$work/four.out"
check 'python3 - "$work/four.out" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
four, plain = d["placements"]
assert len(set(four["vnode_pnodes"])) == 4, four
v = four["vnodes"]
assert [c["id"] for c in v] == [0, 1, 2, 3], v
assert all(c["memory_mb"] == 500 and len(c["distances"]) == 4 for c in v), v
assert v[1]["vcpus"] == [4, 5, 6, 7] and v[1]["distances"][1] == 10, v
assert sorted(c["node"] for c in v) == [0, 1, 2, 3], v
assert sum(c["memory_mb"] for c in plain["vnodes"]) == 3000, plain
assert sum(plain["memory_mb"].values()) == 3000, plain
assert sorted(x for c in plain["vnodes"] for x in c["vcpus"]) == list(range(6)), plain
PY' "--json vnodes: $(cat "$work/four.out")"

# --emit xl: parsed back by the xl reader (numaheap place itself), the same
# layout comes out pinned where it was placed.
"$bin" place --topology "$topo" --guests "$work/four.json" --emit xl >"$work/emit.xl"
check 'grep -q "^vnuma = \[ \[ \"pnode=" "$work/emit.xl"' "no vnuma line: $(cat "$work/emit.xl")"
check 'grep -q "^cpus = \"" "$work/emit.xl"' "no cpus line"
csplit -s -z -f "$work/xl." "$work/emit.xl" '/^# numaheap place: /' '{*}'
for f in "$work"/xl.0*; do
  cp "$f" "$f.cfg"
  "$bin" place --topology "$topo" --guests "$f.cfg" --json >"$f.json" || { echo "FAIL: $f.cfg not placed: $(cat "$f.cfg")"; fail=1; }
done
check 'python3 - "$work/four.out" "$work"/xl.0*.json <<PY
import json, sys
first = json.load(open(sys.argv[1]))["placements"]
for want, path in zip(first, sys.argv[2:]):
    got = json.load(open(path))["placements"][0]
    strip = lambda vs: [(c["memory_mb"], c["vcpus"], c["distances"], c["node"]) for c in vs]
    assert strip(got["vnodes"]) == strip(want["vnodes"]), (want["vnodes"], got["vnodes"])
PY' "--emit xl does not parse back to the same layout"

# --emit libvirt: well-formed, and parsed back by the libvirt reader.
"$bin" place --topology "$topo" --guests "$work/four.json" --emit libvirt >"$work/emit.xml"
csplit -s -z -f "$work/lv." "$work/emit.xml" '/^<!-- numaheap place: /' '{*}'
for f in "$work"/lv.0*; do
  cp "$f" "$f.xml"
  check 'python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$f.xml"' "$f.xml is not XML"
  "$bin" place --topology "$topo" --guests "$f.xml" --json >"$f.json" || { echo "FAIL: $f.xml not placed: $(cat "$f.xml")"; fail=1; }
done
check 'grep -q "<vcpupin vcpu=.0. cpuset=" "$work/emit.xml"' "no vcpupin"
check 'grep -q "<memnode cellid=.3. mode=.strict." "$work/emit.xml"' "no memnode for cell 3"

# --load: recorded /proc/stat samples (nodes 0, 1, 3 busy, node 2 idle):
# a one-node guest goes to node 2.
printf '{"guests":[{"name":"calm","memory_mb":512,"vcpus":2}]}' >"$work/calm.json"
"$bin" place --topology "$topo" --guests "$work/calm.json" \
  --stat-samples "$data/procstat/seed-t0.stat" "$data/procstat/seed-t1.stat" >"$work/out"
check 'grep -q "^calm: nodes 2$" "$work/out"' "--stat-samples: not on the idle node: $(cat "$work/out")"
"$bin" place --topology "$topo" --guests "$work/calm.json" --load auto --interval-ms 20 >"$work/out"
check 'grep -q "^calm: nodes" "$work/out"' "--load auto on this machine"
set +e
"$bin" place --topology "$topo" --guests "$work/calm.json" --load auto --proc-root "$work/none" >"$work/out" 2>"$work/err"
rc=$?
set -e
check '[ $rc -eq 1 ]' "--load auto with a missing proc root: exit $rc"
check 'grep -q "proc/stat" "$work/err"' "missing proc root message: $(cat "$work/err")"
[ $fail -eq 0 ] && echo "place: ok"
exit $fail
