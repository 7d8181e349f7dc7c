#!/usr/bin/env bash
# `numaheap place` honours the spec's constraints (issue 19): memnode
# nodesets and modes (bind / prefer / interleave), the guest's numatune
# nodeset, vCPU pins; a bound guest that does not fit is "not placed"
# (exit 3) naming the constraint; --json and --emit libvirt / xl carry the
# constraints, and what they emit reads back to the same layout.
set -euo pipefail
source "$(dirname "$0")/place_common.bash"
jq_ok() { python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(0 if ($1) else 1)"; }
# Places what --emit printed ($work/out) again, as a guest file ending in .EXT
# (--json into $work/out); the caller checks the layout it reads back to.
read_back() {
  cp "$work/out" "$work/back.$1"
  run "$work/back.$1" --json
  check '[ $rc -eq 0 ]' "emitted .$1 does not place: exit $rc: $(cat "$work/err")"
}

# libvirt: cells 0, 1 bound to 2-3, cell 2 interleaved over 0-1, vCPU 0 pinned to node 2.
run "$data/guests/constraints.xml" --json
check '[ $rc -eq 0 ]' "constraints.xml: exit $rc: $(cat "$work/err") $(cat "$work/out")"
check 'jq_ok "sorted(d[\"placements\"][0][\"vnode_pnodes\"][:2]) == [2, 3]"' "cells 0-1 not on nodes 2-3: $(cat "$work/out")"
check 'jq_ok "d[\"placements\"][0][\"vnodes\"][2][\"nodes\"] == [0, 1] and d[\"placements\"][0][\"vnodes\"][2][\"memory_mode\"] == \"interleave\""' \
  "cell 2 not interleaved over 0-1 in --json: $(cat "$work/out")"
check 'jq_ok "d[\"placements\"][0][\"memory_mb\"] == {\"0\": 256, \"1\": 256, \"2\": 384, \"3\": 384}"' \
  "memory per node: $(cat "$work/out")"
check 'jq_ok "d[\"placements\"][0][\"vcpu_nodes\"][0] == 2"' "vCPU 0 not on its pinned node 2: $(cat "$work/out")"
run "$data/guests/constraints.xml" --emit libvirt
check '[ $rc -eq 0 ]' "--emit libvirt: exit $rc"
check 'grep -q "<memnode cellid=.2. mode=.interleave. nodeset=.0-1./>" "$work/out"' "no interleave memnode: $(cat "$work/out")"
check 'grep -q "<vcpupin vcpu=.0. cpuset=.8-9./>" "$work/out"' "vCPU 0's pin not emitted: $(cat "$work/out")"
read_back xml
check 'jq_ok "d[\"placements\"][0][\"memory_mb\"] == {\"0\": 256, \"1\": 256, \"2\": 384, \"3\": 384}"' \
  "emitted libvirt reads back to another layout: $(cat "$work/out")"
run "$data/guests/constraints.xml" --emit xl
check 'grep -q "# warning: vnode 2 spans nodes 0-1 (interleave)" "$work/out"' "xl: no interleave warning: $(cat "$work/out")"
check 'grep -q "^cpus = \[ \"8-9\", " "$work/out"' "xl: no per-vCPU cpus list: $(cat "$work/out")"

# xl: hard pins per vCPU decide each vCPU's node; memory goes to node 1.
run "$data/guests/constraints.xl.cfg" --json
check '[ $rc -eq 0 ]' "constraints.xl.cfg: exit $rc: $(cat "$work/err")"
check 'jq_ok "d[\"placements\"][0][\"vcpu_nodes\"] == [1, 1, 1, 1] and d[\"placements\"][0][\"nodes\"] == [1]"' \
  "xl pins not honoured: $(cat "$work/out")"
run "$data/guests/constraints.xl.cfg" --emit xl
check 'grep -q "^cpus = \[ \"4-5\", \"4-5\", \"6\", \"4-7\" \]" "$work/out"' "xl cpus list: $(cat "$work/out")"
check 'grep -q "^cpus_soft = \[ \"4-7\", \"4-7\", \"4-7\", \"4-7\" \]" "$work/out"' "xl cpus_soft list: $(cat "$work/out")"
read_back cfg
check 'jq_ok "d[\"placements\"][0][\"vcpu_nodes\"] == [1, 1, 1, 1]"' "emitted xl reads back differently: $(cat "$work/out")"

# A strict memnode over two nodes, too big for one: spread over both.
run "$data/guests/memnode_spread.xml" --json
check '[ $rc -eq 0 ]' "memnode_spread.xml: exit $rc: $(cat "$work/out")"
check 'jq_ok "d[\"placements\"][0][\"vnodes\"][0][\"nodes\"] == [0, 3] and d[\"placements\"][0][\"vnodes\"][0][\"memory_mb\"] == 3072"' \
  "cell 0 not spread over 0,3: $(cat "$work/out")"

# xl passthrough: memory goes to the device's node (1 in the sysfs snapshot).
run "$data/guests/passthrough.xl.cfg" --sysfs-root "$data/guests/sysfs" --json
check '[ $rc -eq 0 ] && jq_ok "d[\"placements\"][0][\"nodes\"] == [1] and \"all devices local\" in d[\"placements\"][0][\"reason\"]"' \
  "xl pci device not honoured: $(cat "$work/out")"
check 'grep -q "PCI device 0000:07:00.0: sysfs gives no NUMA node" "$work/err"' "no warning for the node-less device: $(cat "$work/err")"

# A strict nodeset too small: not placed (exit 3), the constraint named.
printf '<domain><name>big</name><memory unit="MiB">3000</memory>\n<numatune><memory mode="strict" nodeset="1"/></numatune></domain>\n' >"$work/strict.xml"
run "$work/strict.xml"
check '[ $rc -eq 3 ]' "strict nodeset too small: exit $rc, expected 3"
check 'grep -q "^big: not placed: .*(nodeset 1, memory mode bind)" "$work/out"' "constraint not named: $(cat "$work/out")"
# The same guest preferring node 1: placed elsewhere, with a warning.
sed 's/strict/preferred/' "$work/strict.xml" >"$work/prefer.xml"
run "$work/prefer.xml" --json
check '[ $rc -eq 0 ]' "preferred nodeset: exit $rc"
check 'grep -q "warning: preferred nodes 1 could not hold it" "$work/out"' "no fallback warning: $(cat "$work/out")"
# Interleave over a nodeset: even shares.
sed 's/strict/interleave/; s/nodeset="1"/nodeset="0-2"/' "$work/strict.xml" >"$work/inter.xml"
run "$work/inter.xml" --json
check '[ $rc -eq 0 ] && jq_ok "d[\"placements\"][0][\"memory_mb\"] == {\"0\": 1000, \"1\": 1000, \"2\": 1000}"' \
  "interleave not even over 0-2: $(cat "$work/out")"
run "$work/inter.xml" --emit libvirt
check 'grep -q "<memory mode=.interleave. nodeset=.0-2./>" "$work/out"' "emitted guest mode: $(cat "$work/out")"

[ $fail -eq 0 ] && echo "place_constraints: ok"
exit $fail
