#!/usr/bin/env bash
# `numaheap topology` against every real machine's tree: the text rendering
# is byte-identical to what numactl -H printed there, from the sysfs tree and
# from the numactl text itself; JSON parses back to the same text; bad input
# gives a clear error on stderr and exit status 1.
set -euo pipefail
bin=$1/numaheap
data=$2/topologies
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
for dir in "$data"/*/; do
  name=$(basename "$dir")
  expected=$dir/numactl-H.txt
  if [ -d "$dir/sys" ]; then
    "$bin" topology --sysfs-root "$dir" >"$work/out" 2>"$work/err"
    cmp -s "$work/out" "$expected" || { echo "FAIL $name: --sysfs-root differs"; diff "$expected" "$work/out" | head; fail=1; }
  fi
  "$bin" topology --numactl-file "$expected" >"$work/out" 2>/dev/null
  cmp -s "$work/out" "$expected" || { echo "FAIL $name: --numactl-file differs"; fail=1; }
  "$bin" topology --numactl-file "$expected" --json >"$work/json" 2>/dev/null
  "$bin" topology --json-file "$work/json" >"$work/out" 2>/dev/null
  cmp -s "$work/out" "$expected" || { echo "FAIL $name: JSON round trip differs"; fail=1; }
  [ $fail -eq 0 ] && echo "ok $name"
done

# Default source: the live host, or the built-in seed machine on one node;
# the choice is said on stderr only.
"$bin" topology >"$work/out" 2>"$work/err"
grep -q "^available: " "$work/out" || { echo "FAIL default: no numactl text"; fail=1; }
[ -s "$work/err" ] || { echo "FAIL default: source not said on stderr"; fail=1; }
"$bin" topology --builtin | cmp -s - "$data/seed-4node-libvirt/numactl-H.txt" ||
  { echo "FAIL --builtin differs from the seed machine"; fail=1; }

# Bad input: exit 1, a message naming the problem, nothing on stdout.
printf 'available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: lots MB\n' >"$work/bad.txt"
if "$bin" topology --numactl-file "$work/bad.txt" >"$work/out" 2>"$work/err"; then
  echo "FAIL bad numactl text accepted"; fail=1
fi
[ -s "$work/out" ] && { echo "FAIL output on stdout for bad input"; fail=1; }
grep -q "bad.txt:3" "$work/err" || { echo "FAIL error does not name file:line: $(cat "$work/err")"; fail=1; }
if "$bin" topology --sysfs-root "$work/nonexistent" >/dev/null 2>"$work/err"; then
  echo "FAIL missing sysfs root accepted"; fail=1
fi
grep -q "nonexistent" "$work/err" || { echo "FAIL error does not name the path"; fail=1; }
exit $fail
