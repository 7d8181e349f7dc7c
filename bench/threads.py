#!/usr/bin/env python3
"""threads_n: runs numaheap-bench-threads-<allocator> for every allocator,
merges their JSON into one file and prints per-thread throughput and
scaling efficiency side by side (numaheap first, then the peers).

  bench/threads.py --json threads.json              # N = every CPU
  bench/threads.py --threads 16 --ops 2000000 --json out.json
  bench/threads.py --check ...                      # exit 1 unless the JSON has
                                                    # every allocator x workload x N

Exit codes: 0 ok, 1 a run failed or --check found a hole, 2 usage.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

WORKLOADS = ["order0_pair", "mixed_orders", "bulk", "cross_cpu", "cross_bulk"]
ALLOCATORS = ["numaheap", "jemalloc", "tcmalloc", "mimalloc"]


def thread_counts(n):
    """The counts threads_bench.h runs: 1, 2, 4, ... below n, then n."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return out + [n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join("build", "bin"))
    ap.add_argument("--allocators", nargs="+", default=ALLOCATORS)
    ap.add_argument("--threads", type=int, default=0, help="most threads (default: every CPU)")
    ap.add_argument("--ops", type=int, default=1000000, help="ops per thread per run")
    ap.add_argument("--reps", type=int, default=3, help="runs per point (median)")
    ap.add_argument("--json", help="merged JSON output")
    ap.add_argument("--check", action="store_true", help="fail unless every point is present")
    a = ap.parse_args()
    if a.threads < 0 or a.ops <= 0 or a.reps <= 0:
        ap.error("--threads, --ops and --reps must be positive")

    merged = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.node(), "cpus_online": os.cpu_count(),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
              "ops_per_thread": a.ops, "reps": a.reps, "allocators": {}}
    failed = False
    for name in a.allocators:
        exe = os.path.join(a.bin_dir, "numaheap-bench-threads-" + name)
        if not os.path.exists(exe):
            print(f"threads.py: {exe} not built, skipped", file=sys.stderr)
            failed |= a.check
            continue
        out = os.path.join(a.bin_dir, f".threads-{name}.json")
        cmd = [exe, "--ops", str(a.ops), "--reps", str(a.reps), "--json", out]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            print(f"threads.py: {' '.join(cmd)} exited {r.returncode}", file=sys.stderr)
            failed = True
            continue
        with open(out) as f:
            merged["allocators"][name] = json.load(f)
        os.remove(out)

    table(merged)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(merged, f, indent=1)
    if a.check:
        failed |= not complete(merged, a.allocators, a.threads)
    return 1 if failed else 0


def points(run):
    return {(r["workload"], r["threads"]): r for r in run["results"]}


def table(merged):
    runs = merged["allocators"]
    names = list(runs)
    if not names:
        return
    print("millions of ops/s per thread (wall), scaling efficiency (throughput at n / (n x at 1)),"
          " CPU-time efficiency (ops per CPU second at n / at 1)")
    print(f"{'workload':<13} {'n':>3} " + " ".join(f"{n:>26}" for n in names))
    pts = {n: points(runs[n]) for n in names}
    keys = sorted({k for p in pts.values() for k in p}, key=lambda k: (WORKLOADS.index(k[0])
                                                                        if k[0] in WORKLOADS else 99, k[1]))
    for k in keys:
        cells = []
        for n in names:
            r = pts[n].get(k)
            cells.append(f"{r['ops_per_s_per_thread'] / 1e6:12.2f} {r['efficiency']:6.2f} {r['cpu_efficiency']:6.2f}"
                         if r else f"{'-':>26}")
        print(f"{k[0]:<13} {k[1]:>3} " + " ".join(cells))


def complete(merged, allocators, threads):
    ok = True
    for name in allocators:
        run = merged["allocators"].get(name)
        if run is None:
            print(f"check: no results for {name}", file=sys.stderr)
            ok = False
            continue
        n = threads or len(run["cpus"])
        if len(run["cpus"]) != n:
            print(f"check: {name} ran on {len(run['cpus'])} CPUs, expected {n}", file=sys.stderr)
            ok = False
        pts = points(run)
        for w in WORKLOADS:
            for t in thread_counts(n):
                r = pts.get((w, t))
                if r is None or not r["ops_per_s"] > 0 or not 0 < r["efficiency"]:
                    print(f"check: {name} {w} at {t} threads missing or empty", file=sys.stderr)
                    ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
