#!/usr/bin/env bash
# `numaheap place` with guest specs as libvirt and xl write them: good files
# place (exit 0) with their warnings on stderr; every kind of spec error in
# every format is bad input -- exit 1, FILE:LINE on stderr, nothing placed
# (stdout empty); exit 3 only for a valid guest that does not fit.
set -euo pipefail
source "$(dirname "$0")/place_common.bash"

# Good: the libvirt guest and its xl twin, and a bare JSON list.
# (numa4.xml allows nodes 0, 1 and 3 only: four 1 GiB cells need bigger
# nodes than the seed machine's.)
topo=$data/topologies/amd-4s-opteron6276-8n
run "$data/guests/numa4.xml" --sysfs-root "$data/guests/sysfs"
topo=$data/topologies/seed-4node-libvirt/numactl-H.txt
check '[ $rc -eq 0 ]' "numa4.xml: exit $rc: $(cat "$work/err")"
check 'grep -q "^numa4: nodes" "$work/out"' "numa4.xml not placed: $(cat "$work/out")"
check 'grep -q "warning: .*numa4.xml:49: .*<interface type=.network.> ignored" "$work/err"' \
  "no warning for the ignored <interface>: $(cat "$work/err")"
run "$data/guests/numa4.xl.cfg"
check '[ $rc -eq 0 ]' "numa4.xl.cfg: exit $rc: $(cat "$work/err")"
check 'grep -q "^numa4: nodes" "$work/out"' "numa4.xl.cfg not placed"
run "$data/guests/list.json"
check '[ $rc -eq 0 ]' "list.json: exit $rc: $(cat "$work/err")"
printf '\xef\xbb\xbf<domain><name>bom</name><memory unit="MiB">64</memory></domain>\n' >"$work/bom.xml"
run "$work/bom.xml"
check '[ $rc -eq 0 ]' "a byte-order mark is refused: $(cat "$work/err")"

# Bad: name, content, expected FILE:LINE prefix and message part.
bad() {
  local file=$1 at=$3 what=$4
  printf '%b' "$2" >"$work/$file"
  run "$work/$file"
  check '[ $rc -eq 1 ]' "$file: exit $rc, expected 1"
  check '[ ! -s "$work/out" ]' "$file: something on stdout: $(cat "$work/out")"
  check 'grep -q "^numaheap place: $work/$file:$at" "$work/err"' "$file: no FILE:LINE $at in: $(cat "$work/err")"
  check 'grep -qF "$what" "$work/err"' "$file: no '$what' in: $(cat "$work/err")"
}
# syntax, each format
bad syntax.json '[\n {"memory_mb": 1,\n' '3:1: ' 'JSON syntax error'
bad syntax.xml '<domain>\n <memory>1</memory>\n <vcpu>1</vcpu\n</domain>\n' '4:1: ' 'XML syntax error'
bad syntax.cfg 'memory = 512\nvcpus = [1\n' '2:9: ' 'list not closed'
# vCPUs out of range
bad vcpus.json '[\n{"name": "v", "memory_mb": 1024, "vcpus": 2,\n "vnodes": [{"memory_mb": 1024, "vcpus": [0, 5]}]}]\n' \
  '2: ' 'vnode 0 lists vCPU 5 but the guest has 2 vCPUs'
bad vcpus.xml '<domain><vcpu>2</vcpu><cpu><numa>\n<cell cpus="0-2" memory="1" unit="GiB"/>\n</numa></cpu></domain>\n' \
  '1: ' 'lists vCPU 2 but the guest has 2'
bad vcpus.cfg 'maxvcpus = 4\nvnuma = [ ["size=512", "vcpus=0-1"] ]\n' '1:12: ' 'vnuma lists 2 vCPUs but maxvcpus is 4'
# sizes not summing
bad sizes.json '[{"memory_mb": 1024, "vcpus": 1, "vnodes": [{"memory_mb": 512, "vcpus": [0]}]}]' \
  '1: ' 'vnode sizes sum to 512 MB'
bad sizes.cfg 'maxmem = 1024\nvnuma = [ ["size=512", "vcpus=0"] ]\n' '1:10: ' 'vnuma sizes sum to 512 MiB but maxmem is 1024'
# bad distances
bad dist.xml '<domain><vcpu>2</vcpu><cpu><numa><cell cpus="0" memory="1" unit="G">\n<distances><sibling id="1" value="300"/></distances></cell>\n<cell cpus="1" memory="1" unit="G"/></numa></cpu></domain>\n' \
  '2: ' "value '300': expected 10..255"
bad dist.cfg 'vnuma = [ ["size=512", "vcpus=0", "vdistances=20,10"],\n ["size=512", "vcpus=1", "vdistances=10,20"] ]\n' \
  '1: ' 'local distance 20 exceeds'
bad dist.json '[{"memory_mb": 1024, "vcpus": 2, "vnodes": [{"memory_mb": 512, "vcpus": [0], "distances": [10]},\n{"memory_mb": 512, "vcpus": [1], "distances": [20, 10]}]}]' \
  '1: ' 'vnode 0 has 1 distances for 2 vnodes'
# unknown pnode / node
bad pnode.cfg 'vnuma = [ ["pnode=9", "size=512", "vcpus=0"] ]\n' '1: ' 'pnode 9 does not exist'
bad pnode.xml '<domain>\n<memory>1048576</memory>\n<numatune><memory nodeset="0-5"/></numatune></domain>\n' \
  '1: ' 'allowed node 4 does not exist'
bad pnode.json '[\n{"memory_mb": 64, "vcpus": 1, "devices": [{"name": "nic", "node": 12}]}]' '2: ' \
  "device 'nic' is on node 12, which does not exist"
# a file that does not exist
run "$work/missing.xml"
check '[ $rc -eq 1 ]' "missing file: exit $rc"

# A valid guest that does not fit: exit 3, listed on stdout.
printf '[{"name": "huge", "memory_mb": 99999, "vcpus": 1}]' >"$work/huge.json"
run "$work/huge.json"
check '[ $rc -eq 3 ]' "a guest too big for the host: exit $rc, expected 3"
check 'grep -q "^huge: not placed" "$work/out"' "huge not listed as not placed: $(cat "$work/out")"

[ $fail -eq 0 ] && echo "place_specs: ok"
exit $fail
