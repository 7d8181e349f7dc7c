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

# Default source: this host, one node or many (never the seed machine);
# the source is said on stderr only. Where numactl is installed the text
# is what it prints (free memory may move between the two reads).
"$bin" topology >"$work/out" 2>"$work/err"
grep -q "^available: " "$work/out" || { echo "FAIL default: no numactl text"; fail=1; }
grep -q "live host" "$work/err" || { echo "FAIL default: source not said on stderr: $(cat "$work/err")"; fail=1; }
"$bin" topology --live 2>/dev/null | grep -v " free: " >"$work/live"
grep -v " free: " "$work/out" | cmp -s - "$work/live" || { echo "FAIL default differs from --live"; fail=1; }
"$bin" topology -H 2>/dev/null | grep -v " free: " | cmp -s - "$work/live" || { echo "FAIL -H differs from the default"; fail=1; }
if command -v numactl >/dev/null && numactl -H >"$work/numactl" 2>/dev/null; then
  grep -v " free: " "$work/numactl" | cmp -s - "$work/live" ||
    { echo "FAIL default differs from numactl -H on this host"; diff "$work/numactl" "$work/out"; fail=1; }
  nodes=$(sed -n 's/^available: \([0-9]*\) nodes.*/\1/p' "$work/numactl")
  "$bin" topology --json 2>/dev/null >"$work/host.json"
  got=$(grep -o '"id":' "$work/host.json" | wc -l)
  [ "$got" -eq "$nodes" ] || { echo "FAIL --json lists $got nodes, numactl -H $nodes"; fail=1; }
fi
"$bin" topology --builtin 2>/dev/null | cmp -s - "$data/seed-4node-libvirt/numactl-H.txt" ||
  { echo "FAIL --builtin differs from the seed machine"; fail=1; }
"$bin" topology --builtin --json 2>/dev/null | grep -q '^{"nodes":\[{"id":0,"cpus":\[0,1,2,3\],"memory_mb":2007,"free_mb":1931,"hugepages":null}' ||
  { echo "FAIL --json key order is not the documented one"; fail=1; }

# Exit status: 2 for usage (no subcommand: usage on stderr, nothing on
# stdout), 0 for --version and --help.
expect_rc() {  # expect_rc RC WHAT ARGS...
  local want=$1 what=$2 rc
  shift 2
  set +e
  "$bin" "$@" >"$work/rc.out" 2>"$work/rc.err"
  rc=$?
  set -e
  [ "$rc" -eq "$want" ] || { echo "FAIL $what: exit status $rc, expected $want"; fail=1; }
}
expect_rc 2 "no subcommand"
[ -s "$work/rc.out" ] && { echo "FAIL no subcommand: output on stdout"; fail=1; }
grep -q "Usage:" "$work/rc.err" || { echo "FAIL no subcommand: no usage on stderr"; fail=1; }
expect_rc 2 "unknown option" topology --frobnicate
expect_rc 2 "unknown subcommand" frobnicate
expect_rc 2 "conflicting sources" topology --builtin --sysfs-root /
expect_rc 2 "-H with --json" topology -H --json
expect_rc 2 "place without --guests" place --topology builtin
expect_rc 0 "--help" --help
expect_rc 0 "--version" --version
grep -qE '^numaheap [0-9]+\.[0-9]+\.[0-9]+' "$work/rc.out" || { echo "FAIL --version prints $(cat "$work/rc.out")"; fail=1; }
expect_rc 1 "missing json file" topology --json-file "$work/none.json"
printf '{"guests":[{"name":"small","memory_mb":64,"vcpus":1}]}' >"$work/small.json"
expect_rc 0 "place --topology builtin" place --topology builtin --guests "$work/small.json"

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
