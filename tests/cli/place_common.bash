# Sourced by the `numaheap place` CLI tests (place*.sh; not a test itself):
# $1 = the directory holding numaheap, $2 = tests/data. Sets bin, data, a
# scratch dir `work` (removed on exit), the seed topology `topo`, `fail`,
# and the helpers check (CONDITION MESSAGE) and run (FILE [args...]: sets
# rc; stdout in $work/out, stderr in $work/err).
bin=$1/numaheap
data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
topo=$data/topologies/seed-4node-libvirt/numactl-H.txt
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
run() {
  set +e
  "$bin" place --topology "$topo" --guests "$@" >"$work/out" 2>"$work/err"
  rc=$?
  set -e
}
