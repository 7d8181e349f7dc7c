#!/usr/bin/env bash
# `numaheap sim`: text and JSON reports, CSV, the plot (when gnuplot is
# installed), trace replay, and bad input (exit 1, a message, no report).
set -euo pipefail
bin=$1/numaheap
data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
quick=(--seconds 8 --guest-scale 0.05 --no-progress)

"$bin" sim --topology builtin --scenario vcpu-move "${quick[@]}" >"$work/out.txt"
for p in none naive autonuma numaheap oracle; do
  check "grep -q '^  $p ' '$work/out.txt'" "text report lacks policy $p"
done
check 'grep -q "vcpu-move on builtin:seed-4node-libvirt" "$work/out.txt"' "text report names scenario and topology"

"$bin" sim --scenario mixed --topology "$data/topologies/amd-4s-opteron6276-8n" --policy numaheap,oracle \
  --json --csv "$work/out.csv" "${quick[@]}" >"$work/out.json"
for k in local_ratio_final local_ratio_mean access_cost_mean pages_migrated pages_bounced; do
  check "grep -q '\"$k\"' '$work/out.json'" "JSON lacks $k"
done
check 'grep -q "\"numaheap\": {" "$work/out.json"' "JSON lacks policies.numaheap"
check '! grep -q "\"naive\": {" "$work/out.json"' "JSON has a policy that was not asked for"
check '[ "$(head -1 "$work/out.csv")" = "time_s,numaheap_local_ratio,oracle_local_ratio,numaheap_access_cost,oracle_access_cost,numaheap_mib_moved,oracle_mib_moved" ]' \
  "CSV header"
check '[ "$(wc -l <"$work/out.csv")" -eq 9 ]' "CSV has a header and 8 periods"

"$bin" sim --topology builtin --trace "$data/traces/example.trace" --seconds 20 --no-progress >"$work/trace.txt"
check 'grep -q "trace:.*example.trace" "$work/trace.txt"' "trace report names the trace"
check 'grep -q "guest 0 vCPU 1 -> node 3" "$work/trace.txt"' "trace report shows the vCPU move"

if command -v gnuplot >/dev/null; then
  "$bin" sim --topology builtin --scenario phases --plot "$work/plot.svg" "${quick[@]}" >/dev/null
  check 'grep -q "<svg" "$work/plot.svg"' "plot is not an SVG"
  check 'grep -q "numaheap" "$work/plot.svg"' "plot has no numaheap line"
else
  echo "gnuplot not installed: plot not checked"
fi

# The cost model's parameters are in the JSON and the table's footer.
"$bin" sim --topology builtin --scenario vcpu-move --page-overhead-us 2.5 --sample-us 0.5 --node-bandwidth-gbs 30 \
  --split-page-cost 0.07 "${quick[@]}" \
  >"$work/model.txt"
check 'grep -q "per-page overhead 2.5 us, sample (hinting fault) 0.5 us" "$work/model.txt"' "footer lacks the model"
check 'grep -q "node memory bandwidth 30 GB/s" "$work/model.txt"' "footer lacks the node bandwidth"
check 'grep -q "split-page cost 0.07" "$work/model.txt"' "footer lacks the split-page cost"
for k in page_overhead_us sample_us node_bandwidth_gb_s split_page_cost cost_moves cost_samples cost_contention cost_split \
         blocks_coalesced mib_moved; do
  check "grep -q '\"$k\"' '$work/out.json'" "JSON lacks $k"
done

# vCPU advice: numaheap reports it; --follow-advice adds the lane that
# follows it, next to numaheap, with its vCPU moves in the JSON.
"$bin" sim --topology builtin --scenario vcpu-move --follow-advice "${quick[@]}" >"$work/follow.txt"
check "grep -q '^  numaheap-follow ' '$work/follow.txt'" "--follow-advice lacks the numaheap-follow lane"
check "grep -q 'vCPU advice: numaheap advised' '$work/follow.txt'" "text report lacks the advice line"
check "grep -q 'vCPU move 1000 us' '$work/follow.txt'" "footer lacks the vCPU move cost"
"$bin" sim --topology builtin --scenario vcpu-move --policy numaheap,numaheap-follow --vcpu-move-us 50 --json "${quick[@]}" \
  >"$work/follow.json"
for k in vcpu_advice vcpus_moved vcpu_move_us; do
  check "grep -q '\"$k\"' '$work/follow.json'" "JSON lacks $k"
done

# --sweep: a table of winners over the grid, its JSON, its plot (small: 25
# runs each, and a Debug sanitizer build is ~300x slower than this one).
"$bin" sim --topology builtin --sweep --scenario vcpu-move --policy naive,numaheap --seconds 2 --guest-scale 0.02 --no-progress \
  >"$work/sweep.txt"
check 'grep -q "overhead" "$work/sweep.txt"' "sweep table lacks its header"
check '[ "$(grep -c " us  " "$work/sweep.txt")" -eq 5 ]' "sweep table lacks its five overhead rows"
check 'grep -q "numaheap is cheapest (or tied) at" "$work/sweep.txt"' "sweep table lacks its summary"
"$bin" sim --topology builtin --sweep --scenario vcpu-move --policy naive,numaheap --seconds 2 --guest-scale 0.02 --no-progress --json \
  >"$work/sweep.json"
check '[ "$(grep -c "\"winner\"" "$work/sweep.json")" -eq 25 ]' "sweep JSON lacks its 25 points"
if command -v gnuplot >/dev/null; then
  "$bin" sim --topology builtin --sweep --scenario vcpu-move --policy naive,numaheap --seconds 2 --guest-scale 0.02 --no-progress \
    --plot "$work/sweep.svg" >/dev/null
  check 'grep -q "<svg" "$work/sweep.svg"' "sweep plot is not an SVG"
fi

# Bad input: exit 1, a message on stderr, nothing on stdout.
bad() {
  local what=$1 expect=$2
  shift 2
  set +e
  "$bin" sim "$@" >"$work/bad.out" 2>"$work/bad.err"
  local rc=$?
  set -e
  check "[ $rc -eq 1 ]" "$what: exit status $rc, expected 1"
  if ! grep -qF -- "$expect" "$work/bad.err"; then
    echo "FAIL: $what: message lacks \"$expect\": $(cat "$work/bad.err")"
    fail=1
  fi
  check "[ ! -s '$work/bad.out' ]" "$what: wrote a report"
}
bad "no workload" "give --scenario NAME or --trace FILE" --no-progress
bad "unknown scenario" "unknown scenario 'nope'" --topology builtin --scenario nope
bad "unknown policy" "unknown policy 'smart'" --topology builtin --scenario vcpu-move --policy none,smart "${quick[@]}"
bad "zero seconds" "seconds must be" --scenario vcpu-move --seconds 0
bad "missing topology" "nonexistent" --scenario vcpu-move --topology /nonexistent
bad "missing trace" "cannot open" --trace /nonexistent.trace
printf '# vcpu 0 node 0\n0 0 0xzz R\n' >"$work/bad.trace"
bad "malformed trace" "bad.trace:2: address '0xzz' is not hex" --trace "$work/bad.trace"
bad "negative overhead" "per-page overhead must be" --topology builtin --scenario vcpu-move --page-overhead-us -1
bad "negative vCPU move cost" "vCPU move cost must be" --topology builtin --scenario vcpu-move --vcpu-move-us -1
bad "sweep with a trace" "--sweep runs the scenarios" --topology builtin --sweep --trace "$data/traces/example.trace"
bad "plot name" "must end in .svg or .png" --topology builtin --scenario vcpu-move --plot "$work/plot.pdf" "${quick[@]}"
set +e
"$bin" sim --scenario vcpu-move --trace x >/dev/null 2>&1
rc=$?
set -e
check "[ $rc -eq 2 ]" "--scenario and --trace together: exit status $rc, expected 2 (usage)"

exit $fail
