#!/usr/bin/env python3
"""Runs the allocator benchmarks and writes docs/benchmarks.md + docs/benchmarks.svg.

Every built BUILD/bin/numaheap-bench-<allocator> of the allocator set (numaheap
and its peers) is run with --benchmark_format=json, or its JSON is taken from
--json-dir. The report: machine, date, exact commands, medians per workload
and allocator, ratios numaheap / peer, issue 8's bars marked met / not met
with the figure, and a chart of numaheap's advantage per workload and peer.
BUILD/bin/numaheap-bench-migrate (frame-swap migration against memcpy of the
same bytes) is run in --migrate-runs alternating runs (default 5: migrate,
memcpy, memcpy, migrate, ... one benchmark per process), medians taken over
the runs, for issues 6 and 17's bars (JSON: migrate.json). bench/threads.py
runs the threads_n binaries (numaheap-bench-threads-<allocator>) for the
Scaling section (JSON: threads.json; --threads-ops sets its op count).

    bench/report.py [--build DIR] [--json-dir DIR] [--repetitions N] [--min-time S]
    bench/report.py --migrate-only [--migrate-runs 5]   # migration medians and ratios only

Standard library only.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys

ALLOCATORS = ["numaheap", "jemalloc", "glibc", "mimalloc", "tcmalloc", "libnuma"]
PEERS = ALLOCATORS[1:]

# workload -> (metric, unit shown, higher_is_better, what)
WORKLOADS = {
    "order0_pair": ("cpu_time", "ns", False, "alloc + free of one 4 KiB block"),
    "order9_pair": ("cpu_time", "ns", False, "alloc + free of one 2 MiB block"),
    "mixed_orders": ("cpu_time", "ns", False, "one free + one alloc, 256 live, 4 KiB..2 MiB"),
    "populate_1g": ("ns_per_page", "ns/page", False,
                    "262144 x 4 KiB exact-node frames, then their frees (numaheap: one "
                    "alloc_bulk + one free_bulk; peers: one call per block)"),
    "populate_1g_single": ("ns_per_page", "ns/page", False,
                           "the same, one alloc and one free call per frame (the peers' "
                           "figure is their populate_1g)"),
    "populate_1g_2m": ("cpu_time", "us", False, "512 x 2 MiB allocations, then frees"),
    "churn": ("largest_order", "order", True,
              "largest 2^k x 4 KiB block still allocatable after churn in 256 MiB"),
    "threads2": ("relative", "x", True,
                 "2-thread/1-thread scaling / share-nothing scaling, same run"),
}

# Workloads numaheap runs in two ways: the peers' figure for the variant is
# the one of their own (only) way.
PEER_WORKLOAD = {"populate_1g_single": "populate_1g"}

# Issues 6 and 17: frame-swap migration (numaheap-bench-migrate) as a share
# of a plain memcpy of the same bytes between the same nodes' frames.
# (label, migrate workload, memcpy workload, bar)
MIGRATE_BARS = [
    ("4 KiB pages, batches of 64", "migrate_4k", "memcpy_4k", 0.90),
    ("2 MiB blocks", "migrate_2m", "memcpy_2m", 0.95),
]

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


def machine():
    info = {"model": platform.processor() or "unknown", "cpus": str(os.cpu_count()),
            "memory": "unknown", "kernel": platform.release(), "numa_nodes": "unknown"}
    try:
        out = run(["lscpu"]).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            val = val.strip()
            if key == "Model name":
                info["model"] = val
            elif key == "CPU(s)":
                info["cpus"] = val
            elif key == "NUMA node(s)":
                info["numa_nodes"] = val
            elif key == "Thread(s) per core":
                info["threads_per_core"] = val
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    info["memory"] = f"{kib / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return info


def git_revision():
    r = run(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def bench_command(binary, args):
    cmd = [binary, "--benchmark_format=json"]
    if args.repetitions > 1:
        cmd += [f"--benchmark_repetitions={args.repetitions}",
                "--benchmark_report_aggregates_only=true"]
    cmd.append(f"--benchmark_min_time={args.min_time}")
    return cmd


def collect_one(args, json_dir, name, binary, extra, results, commands):
    """Runs (or reuses the JSON of) one benchmark binary into results[name]."""
    path = os.path.join(json_dir, f"{name}.json")
    if args.json_dir and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            results[name] = json.load(f)
        print(f"report: {name}: reusing {path}", file=sys.stderr)
        commands.append(f"# {name}: reused {os.path.relpath(path, ROOT)}")
        return
    if not os.access(binary, os.X_OK):
        print(f"report: {name}: {binary} not built, skipped", file=sys.stderr)
        return
    cmd = bench_command(binary, args) + extra
    print(f"report: running {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr)
    r = run(cmd)
    if r.returncode != 0 or not r.stdout.strip():
        print(f"report: {name} failed ({r.returncode}):\n{r.stderr}", file=sys.stderr)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(r.stdout)
    results[name] = json.loads(r.stdout)
    commands.append(" ".join(shlex.quote(os.path.relpath(c, ROOT) if i == 0 else c)
                             for i, c in enumerate(cmd)))


def collect(args):
    """{allocator: parsed JSON}, the migrator's JSON (or None), the commands run."""
    json_dir = args.json_dir or os.path.join(args.build, "bench-json")
    os.makedirs(json_dir, exist_ok=True)
    results, commands = {}, []
    for alloc in ALLOCATORS:
        binary = os.path.join(args.build, "bin", f"numaheap-bench-{alloc}")
        collect_one(args, json_dir, alloc, binary, [], results, commands)
    return results, collect_migrate(args, json_dir, commands), commands, json_dir


def collect_threads(args, json_dir, commands):
    """bench/threads.py's merged JSON (threads_n), or None."""
    path = os.path.join(json_dir, "threads.json")
    if args.json_dir and os.path.exists(path):
        print(f"report: threads: reusing {path}", file=sys.stderr)
        commands.append(f"# threads: reused {os.path.relpath(path, ROOT)}")
    else:
        if not os.access(os.path.join(args.build, "bin", "numaheap-bench-threads-numaheap"), os.X_OK):
            print("report: threads: numaheap-bench-threads-numaheap not built, skipped", file=sys.stderr)
            return None
        cmd = [sys.executable, os.path.join(ROOT, "bench", "threads.py"), "--bin-dir",
               os.path.join(args.build, "bin"), "--ops", str(args.threads_ops), "--json", path]
        print(f"report: running {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr)
        r = run(cmd)
        if r.returncode != 0 or not os.path.exists(path):
            print(f"report: threads failed ({r.returncode}):\n{r.stderr}", file=sys.stderr)
            return None
        commands.append("bench/threads.py --bin-dir " + os.path.relpath(os.path.join(args.build, "bin"), ROOT)
                        + f" --ops {args.threads_ops} --json " + os.path.relpath(path, ROOT))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


THREADS_WORKLOADS = {
    "order0_pair": "alloc + free of one 4 KiB block",
    "mixed_orders": "one free + one alloc, 256 live, 4 KiB..2 MiB",
    "bulk": "64 x 4 KiB in one call, freed in one call (numaheap: alloc_bulk/free_bulk; "
            "peers: a loop of 64 each)",
    "cross_cpu": "thread i allocates 64 x 4 KiB at a time, thread (i+1) % n frees them "
                 "(lock-free SPSC ring, the same for every allocator)",
    "cross_bulk": "as cross_cpu, 64 x 4 KiB in one call each way (numaheap: alloc_bulk/free_bulk; "
                  "peers: a loop of 64 each)",
}


def scaling_markdown(threads):
    """The Scaling section from bench/threads.py's JSON."""
    md = ["## Scaling: threads_n\n"]
    if not threads or not threads.get("allocators"):
        md.append("Not measured (`numaheap-bench-threads-*` not built).\n")
        return md
    runs = threads["allocators"]
    names = [a for a in ALLOCATORS if a in runs] + [a for a in runs if a not in ALLOCATORS]
    cpus = runs[names[0]]["cpus"]
    nodes = sorted({c["node"] for c in cpus})
    md.append(
        f"`{threads.get('command', 'bench/threads.py')}` on {len(cpus)} CPU(s), "
        f"{len(nodes)} NUMA node(s) ({threads.get('ops_per_thread')} ops per thread, median of "
        f"{threads.get('reps')} runs, wall time). One thread per CPU, pinned; numaheap asks for "
        "its CPU's node, the peers keep their defaults (jemalloc: automatic arenas and "
        "tcache; tcmalloc: per-thread caches; mimalloc: a heap per thread). Each cell: "
        "millions of ops/s **per thread** (wall time), then the scaling efficiency "
        "(throughput at n / (n x throughput at 1); 1.00 is perfect) and, after the slash, "
        "the CPU-time efficiency (ops per CPU second of the threads at n / at 1: the cost of "
        "sharing without the time a thread was not running). An op is one allocation and "
        "its free. On a machine shared with other work the wall-time rows at n > 1 say more "
        "about the machine than about the allocator.\n")
    md.append("| workload | what | n | " + " | ".join(names) + " |")
    md.append("|---|---|---|" + "---|" * len(names))
    pts = {a: {(r["workload"], r["threads"]): r for r in runs[a]["results"]} for a in names}
    counts = sorted({k[1] for p in pts.values() for k in p})
    for w, what in THREADS_WORKLOADS.items():
        for i, n in enumerate(counts):
            cells = []
            for a in names:
                r = pts[a].get((w, n))
                cells.append("-" if r is None else
                             f"{r['ops_per_s_per_thread'] / 1e6:.2f} ({r['efficiency']:.2f} / "
                             f"{r.get('cpu_efficiency', 0):.2f})")
            md.append(f"| {w if i == 0 else ''} | {what if i == 0 else ''} | {n} | " + " | ".join(cells) + " |")
    md.append("")
    return md


def collect_migrate(args, json_dir, commands):
    """Every run of numaheap-bench-migrate's bar workloads, as one Google
    Benchmark JSON ({"benchmarks": [...]}, one entry per run), or None.
    Runs alternate: in run i each migrate/memcpy pair goes migrate first
    when i is even, memcpy first when odd, one process per benchmark, so
    drift on a shared machine falls on both sides alike."""
    path = os.path.join(json_dir, "migrate.json")
    if args.json_dir and os.path.exists(path):
        print(f"report: migrate: reusing {path}", file=sys.stderr)
        commands.append(f"# migrate: reused {os.path.relpath(path, ROOT)}")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    binary = os.path.join(args.build, "bin", "numaheap-bench-migrate")
    if not os.access(binary, os.X_OK):
        print(f"report: migrate: {binary} not built, skipped", file=sys.stderr)
        return None
    out = {"benchmarks": []}
    for i in range(args.migrate_runs):
        for _, mw, cw, _ in MIGRATE_BARS:
            pair = [f"^{mw}/", f"^{cw}$"]
            for flt in (pair if i % 2 == 0 else pair[::-1]):
                cmd = [binary, "--benchmark_format=json", f"--benchmark_min_time={args.min_time}",
                       f"--benchmark_filter={flt}"]
                r = run(cmd)
                if r.returncode != 0 or not r.stdout.strip():
                    print(f"report: migrate failed ({r.returncode}):\n{r.stderr}", file=sys.stderr)
                    return None
                for b in json.loads(r.stdout).get("benchmarks", []):
                    b["repetition_index"] = i
                    out["benchmarks"].append(b)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    commands.append(f"# migrate: {args.migrate_runs} alternating runs, one process per benchmark:")
    commands.append(f"{os.path.relpath(binary, ROOT)} --benchmark_format=json "
                    f"--benchmark_min_time={args.min_time} --benchmark_filter=<one of "
                    + ", ".join(f"^{mw}/, ^{cw}$" for _, mw, cw, _ in MIGRATE_BARS) + ">")
    return out


def migrate_figures(data):
    """{workload: {"bytes_per_second": median over runs, "runs": [...]}}."""
    per = {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred") or b.get("run_type") == "aggregate":
            continue
        per.setdefault(b["name"].split("/")[0], []).append(float(b["bytes_per_second"]))
    return {w: {"bytes_per_second": median(v), "runs": v} for w, v in per.items()}


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def figures(data):
    """{workload: {metric: value}} for one allocator: medians when aggregated."""
    out = {}
    benches = data.get("benchmarks", [])
    aggregated = any(b.get("run_type") == "aggregate" for b in benches)
    for b in benches:
        if b.get("error_occurred"):
            continue
        if aggregated and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        workload = name.split("/")[0]
        scale = UNIT_NS.get(b.get("time_unit", "ns"), 1.0)
        vals = {"cpu_time": b["cpu_time"] * scale, "real_time": b["real_time"] * scale}
        for k, v in b.items():
            if isinstance(v, (int, float)) and k not in vals and k not in (
                    "iterations", "repetitions", "repetition_index", "threads",
                    "family_index", "per_family_instance_index"):
                vals[k] = float(v)
        if "ns_per_page" in vals:
            vals["ns_per_page"] *= 1e9  # the JSON holds seconds per page
        out[workload] = vals
    return out


def fmt_value(workload, v):
    metric, unit, _, _ = WORKLOADS[workload]
    if v is None:
        return "-"
    if metric == "largest_order":
        return f"{int(v)} ({human_bytes(4096 << int(v))})" if v >= 0 else "none"
    if unit == "us":
        return f"{v / 1e3:,.1f} us"
    if unit == "x":
        return f"{v:.2f}"
    if v >= 1e4:
        return f"{v:,.0f} {unit}"
    return f"{v:.1f} {unit}"


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    return f"{n:g}"


def value(figs, alloc, workload):
    metric = WORKLOADS[workload][0]
    if alloc != "numaheap":
        workload = PEER_WORKLOAD.get(workload, workload)
    return figs.get(alloc, {}).get(workload, {}).get(metric)


def ratio(figs, workload, peer):
    """numaheap / peer on the workload's metric (block size for churn)."""
    nh, pv = value(figs, "numaheap", workload), value(figs, peer, workload)
    if nh is None or pv is None:
        return None
    if WORKLOADS[workload][0] == "largest_order":
        return 2.0 ** (nh - pv)
    if pv == 0:
        return None
    return nh / pv


def advantage(workload, r):
    """How many times better numaheap is (> 1: numaheap better)."""
    if r is None or r <= 0:
        return None
    return r if WORKLOADS[workload][2] else 1.0 / r


# Why a peer beats numaheap on a workload, by workload (the same cause for
# every peer that wins it). "Where a peer wins" lists every (workload,
# peer) the figures say numaheap loses, with this text; a loss with no
# entry here says so, so a new one cannot go unexplained unnoticed.
WHY_PEER_WINS = {
    "order0_pair": (
        "tcmalloc's per-CPU caches keep no per-block state: its free is a push. numaheap's "
        "free must also take the frame from its owner -- one compare-and-swap of the frame's "
        "descriptor word (used by this owner -> cached), which is what catches a double free "
        "racing on another CPU, a re-allocation or an offline -- and that locked instruction "
        "alone costs about as much as tcmalloc's whole pair (the cycle-budget bar above; "
        "docs/fast-path.md counts the rest, instruction by instruction)."),
    "mixed_orders": (
        "the same compare-and-swap on every free. The heap does not come into it: the window "
        "of 256 live blocks is a multiple of the orders' cycle of 16, so in the steady state "
        "each op frees and allocates a block of one order on the calling CPU's cache, and a "
        "profile of this workload (perf, session 19) puts 69% of the time in free, 20% in "
        "alloc and no heap or refill function above 0.5%."),
    "churn": (
        "glibc serves large blocks with their own mmap (its threshold starts at 128 KiB and "
        "rises as such blocks are freed) and libnuma maps every block separately: a freed "
        "block gives its address space back whole, so their largest block after the churn is "
        "bounded by the address-space budget, not by where the live blocks sit. numaheap "
        "(like jemalloc, mimalloc and tcmalloc in their arenas) carves every block from one "
        "fixed stretch of frames -- what a hypervisor has: physical memory -- so live blocks "
        "scattered over it bound the largest free one."),
    "threads2": (
        "threads2 divides two wall-clock ratios, each from runs of a few seconds on a shared "
        "2-vCPU host; its spread between runs (0.98 to 1.02 for every allocator on quiet "
        "runs; numaheap 0.81 and 0.99 on two runs of the same code in session 18) is larger "
        "than the differences between allocators. threads_n's order0_pair rows measure the "
        "same with 10M ops per thread."),
    "populate_1g_2m": (
        "every 2 MiB block beyond the 4 an order-9 cache holds is taken from and merged "
        "back into the buddy heap under the node lock, its descriptor written and checked; "
        "the peers hand out and take back spans of memory they have already mapped."),
}
# The same for threads_n's rows, by (workload, "throughput" per thread at
# the most threads | "scaling" efficiency).
_NO_SHARED_STATE = (
    "in the steady state each CPU pops and pushes its own per-CPU cache and writes only its "
    "own frames' descriptors (no lock, no shared counter). Descriptors are 24 bytes, so "
    "neighbouring frames share cache lines; refills keep aligned groups of 8 frames (3 "
    "lines) whole, so frames two CPUs got by refill never share one (neighbour_cpus, in the "
    "table of bars: far against refill neighbour), but a frame freed on another CPU joins "
    "that CPU's cache wherever its neighbours are (neighbour_cpus' cross-CPU figure). The "
    "rest is the host: a 2-vCPU VM shared with other work, whose wall-clock efficiency "
    "moves between runs of the same code; the CPU-time efficiency beside it leaves out the "
    "time the threads were not running.")
WHY_PEER_WINS_THREADS = {
    ("order0_pair", "throughput"): WHY_PEER_WINS["order0_pair"],
    ("order0_pair", "scaling"): _NO_SHARED_STATE,
    ("mixed_orders", "throughput"): WHY_PEER_WINS["mixed_orders"],
    ("mixed_orders", "scaling"): (
        "no shared lock or counter was found: in the steady state each op stays on the "
        "calling CPU's caches (a profile of threads_n, session 19: no heap or refill function "
        "above 0.3%) and writes only its own frames' descriptors, and refills keep the "
        "8-frame groups of orders 0-2 whole. The efficiency moved between 0.58 and 0.98 over "
        "runs of one binary that session, and tcmalloc's fell to 0.06 in one run: on this "
        "shared 2-vCPU host the loss is the machine's as far as anything measured shows."),
    ("bulk", "throughput"): (
        "the peers' 64 single pops and pushes touch no per-block state; numaheap's "
        "free_bulk checks and takes every frame with one compare-and-swap of its "
        "descriptor (see order0_pair)."),
    ("bulk", "scaling"): "a cache's worth goes through the calling CPU's cache (no heap "
                         "lock in the steady state), as for order0_pair: " + _NO_SHARED_STATE,
    ("cross_cpu", "throughput"): (
        "each frame freed on the other CPU is taken from its owner with a compare-and-swap "
        "on a descriptor the allocating CPU has just written: the load before it fetches "
        "that line from the other core and the locked instruction, a full barrier, waits "
        "for it, one frame after another. Both threads allocate and free alike, so neither "
        "cache runs dry or over: a profile of threads_n (session 20) has no heap, refill or "
        "lock function above 0.1%. A prefetch-for-write of the descriptor at the start of "
        "free() made this workload about 35% faster in one A/B run but every same-CPU "
        "order-0 pair 0.4 ns (4%) slower, so free() does not do it (docs/fast-path.md); "
        "free_bulk does (cross_bulk). A peer's free writes the freed block's own memory, a "
        "store that waits for nothing."),
    ("cross_bulk", "throughput"): (
        "free_bulk takes every frame with a compare-and-swap of its descriptor, which the "
        "allocating CPU has just written; it asks for a chunk's descriptors first so their "
        "fetches overlap (about 1.5x on this workload at 2 threads, at about 5% of the "
        "same-CPU bulk workload), but each compare-and-swap still waits for its line. A "
        "peer's free writes the freed block's own memory, a store that waits for nothing."),
}
WHY_PEER_WINS_THREADS[("cross_cpu", "scaling")] = WHY_PEER_WINS_THREADS[("cross_cpu", "throughput")]
WHY_PEER_WINS_THREADS[("cross_bulk", "scaling")] = WHY_PEER_WINS_THREADS[("cross_bulk", "throughput")]
# Why the frame-swap mover falls behind memcpy where it does, by
# migrate_rows' label; shown under the migration table when a bar is missed.
MIGRATE_WHY = {
    "2 MiB blocks": (
        "besides the copy, each 2 MiB block costs three passes of 512 compare-and-swaps over "
        "its p2m entries -- mark migrating, swap the frame, release -- because the p2m keeps "
        "one entry per 4 KiB page and every writer checks its own entry's flags: about 1536 "
        "locked operations of ~6-7 ns (locked_rmw_floor) against a ~140 us copy at 14-15 "
        "GB/s, some 6-7%. The ratio therefore sits within a few percent of the 95% bar, and a "
        "single run on this shared host lands on either side of it (101.4% on 2026-12-05 "
        "09:27 UTC, 94.7% at 11:20 UTC, the same mover code). Marking the block once, as one "
        "entry, would change the p2m's protocol; not done."),
}
# Differences smaller than these are within one run's noise on a shared VM
# and are not listed: 5% on a time or a throughput, 0.05 on an efficiency.
WIN_MARGIN = 0.05


def peer_wins_markdown(figs, present, threads):
    """Where a peer beats numaheap on the figures of this run, and why."""
    md = ["## Where a peer wins, and why\n",
          "Every workload of this run on which a peer does better than numaheap by more "
          f"than {WIN_MARGIN:.0%} (CPU-time medians above; threads_n: per-thread throughput "
          f"at the most threads, or a scaling efficiency higher by more than {WIN_MARGIN:.2f}), "
          "with the cause as far as it is known.\n"]
    rows = []
    for w in WORKLOADS:
        winners = []
        for p in (p for p in PEERS if p in present):
            a = advantage(w, ratio(figs, w, p))
            if a is not None and a < 1.0 - WIN_MARGIN:
                winners.append(f"{p} ({1 / a:.2f}x better)")
        if winners:
            rows.append((w, ", ".join(winners), WHY_PEER_WINS.get(w, "no cause recorded yet (bench/report.py, WHY_PEER_WINS): to be investigated.")))
    if threads and threads.get("allocators"):
        runs = threads["allocators"]
        pts = {a: {(r["workload"], r["threads"]): r for r in runs[a]["results"]} for a in runs}
        nmax = max((k[1] for p in pts.values() for k in p), default=0)
        for w in THREADS_WORKLOADS:
            nh = pts.get("numaheap", {}).get((w, nmax))
            if not nh:
                continue
            for kind in ("throughput", "scaling"):
                winners = []
                for p in (p for p in runs if p != "numaheap"):
                    r = pts[p].get((w, nmax))
                    if not r:
                        continue
                    if kind == "throughput" and \
                            r["ops_per_s_per_thread"] > nh["ops_per_s_per_thread"] * (1 + WIN_MARGIN):
                        winners.append(f"{p} ({r['ops_per_s_per_thread'] / nh['ops_per_s_per_thread']:.2f}x "
                                       "the throughput per thread)")
                    if kind == "scaling" and nmax > 1 and r["efficiency"] > nh["efficiency"] + WIN_MARGIN:
                        winners.append(f"{p} ({r['efficiency']:.2f} against {nh['efficiency']:.2f})")
                if winners:
                    rows.append((f"threads_n {w}, {nmax} threads, {kind}", "; ".join(winners),
                                 WHY_PEER_WINS_THREADS.get((w, kind), "no cause recorded yet (bench/report.py, "
                                                                      "WHY_PEER_WINS_THREADS): to be investigated.")))
    if not rows:
        md.append("None on this run.\n")
        return md
    md.append("| workload | peer(s) ahead | why |")
    md.append("|---|---|---|")
    for w, who, why in rows:
        md.append(f"| {w} | {who} | {why} |")
    md.append("")
    return md


def migrate_rows(mig):
    """(label, migrate B/s, memcpy B/s, ratio, bar) per MIGRATE_BARS row."""
    rows = []
    for label, mw, cw, bar in MIGRATE_BARS:
        m = mig.get(mw, {}).get("bytes_per_second") if mig else None
        c = mig.get(cw, {}).get("bytes_per_second") if mig else None
        r = m / c if m and c else None
        rows.append((label, m, c, r, bar))
    return rows


def bars(figs, mig=None):
    out = []

    def bar(text, r, limit, fig):
        if r is None:
            out.append((text, "not measured", "-"))
        else:
            out.append((text, "**met**" if r <= limit else "**not met**", fig))

    def rel(workload, peer, limit):
        r = ratio(figs, workload, peer)
        fig = "-" if r is None else (
            f"{r:.3f}x ({fmt_value(workload, value(figs, 'numaheap', workload))} vs "
            f"{fmt_value(workload, value(figs, peer, workload))})")
        return r, limit, fig

    bar("order-0 pair <= 1.0x jemalloc", *rel("order0_pair", "jemalloc", 1.0))
    bar("order-0 pair <= 0.5x glibc", *rel("order0_pair", "glibc", 0.5))
    bar("order-9 pair <= 0.2x jemalloc", *rel("order9_pair", "jemalloc", 0.2))
    bar("populate_1g <= 0.1x jemalloc per page", *rel("populate_1g", "jemalloc", 0.1))
    # Issue 17: tcmalloc's per-thread caches are the target; 1.3x is the
    # bar's fallback when the ownership checks' cycle budget (docs/fast-path.md)
    # rules 1.0x out.
    bar("order-0 pair <= 1.0x tcmalloc (issue 17)", *rel("order0_pair", "tcmalloc", 1.0))
    bar("order-0 pair <= 1.3x tcmalloc (issue 17's fallback)", *rel("order0_pair", "tcmalloc", 1.3))
    # The cycle budget: one load + compare-and-swap of a word (free's
    # ownership transition, alone: numaheap's locked_rmw_floor) against the
    # peer's whole pair. Above 1.3x, no pair that catches a racing double
    # free can meet the fallback on this machine.
    floor = figs.get("numaheap", {}).get("locked_rmw_floor", {}).get("cpu_time")
    tc = value(figs, "tcmalloc", "order0_pair")
    if floor is not None and tc:
        out.append(("cycle budget: free's load + compare-and-swap alone <= 1.3x tcmalloc's pair "
                     "(else the fallback is out of reach while free catches racing double frees)",
                     "**fits**" if floor / tc <= 1.3 else "**does not fit**",
                     f"{floor / tc:.3f}x ({floor:.1f} ns vs {tc:.1f} ns)"))
    bar("order-0 pair <= 0.5x jemalloc (issue 17)", *rel("order0_pair", "jemalloc", 0.5))
    bar("mixed_orders <= 1.0x mimalloc (issue 17)", *rel("mixed_orders", "mimalloc", 1.0))
    # Issue 17: start-up of a 1 TiB machine (8 nodes) and what each 4 KiB
    # frame costs in metadata (init_1tib: wall time; bytes per frame = all
    # metadata over all frames, a few fixed bytes amortised over 2^28 frames).
    init = figs.get("numaheap", {}).get("init_1tib", {})
    if "real_time" in init:
        ms = init["real_time"] / 1e6
        out.append(("1 TiB init <= 50 ms (issue 17)", "**met**" if ms <= 50 else "**not met**",
                    f"{ms:.1f} ms wall"))
    else:
        out.append(("1 TiB init <= 50 ms (issue 17)", "not measured", "-"))
    if "metadata_bytes_per_frame" in init:
        per = init["metadata_bytes_per_frame"]
        out.append(("metadata <= 24 B per 4 KiB frame (issue 17)",
                    "**met**" if round(per, 2) <= 24 else "**not met**",
                    f"{per:.6f} B (all metadata / {int(init.get('frames', 0)):,} frames: "
                    f"{(per - 24) * init.get('frames', 0):,.0f} B over 24 per frame, machine-wide)"))
    else:
        out.append(("metadata <= 24 B per 4 KiB frame (issue 17)", "not measured", "-"))
    t = figs.get("numaheap", {}).get("threads2", {})
    if "relative" in t:
        fig = (f"{t['relative']:.2f} (2-thread/1-thread {t.get('ratio_numaheap', 0):.2f}, "
               f"share-nothing {t.get('ratio_share_nothing', 0):.2f})")
        out.append(("threads2: scaling >= 0.9x share-nothing's",
                    "**met**" if t["relative"] >= 0.9 else "**not met**", fig))
    else:
        out.append(("threads2: scaling >= 0.9x share-nothing's", "not measured", "-"))
    # Not an issue's bar: the descriptor false sharing found in session 18
    # (24-byte descriptors; refills keep 8-frame groups whole since).
    nb = figs.get("numaheap", {}).get("neighbour_cpus", {})
    if "relative" in nb and nb.get("set_up_ok") == 1:
        fig = (f"{nb['relative']:.2f} (far {nb['ns_far']:.1f} ns, neighbour by refill "
               f"{nb['ns_refill_neighbour']:.1f} ns; neighbour by a cross-CPU free "
               f"{nb['ns_handed_neighbour']:.1f} ns, not covered)")
        out.append(("neighbour_cpus: a pair costs the same when another CPU cycles the "
                    "neighbouring frame it got by refill (far / neighbour >= 0.9)",
                    "**met**" if nb["relative"] >= 0.9 else "**not met**", fig))
    else:
        out.append(("neighbour_cpus: far / refill neighbour >= 0.9", "not measured", "-"))
    for label, m, c, r, bar in migrate_rows(mig):
        text = f"migration, {label}: >= {bar:.0%} of memcpy's bytes/s (issues 6, 17)"
        if r is None:
            out.append((text, "not measured", "-"))
        else:
            out.append((text, "**met**" if r >= bar else "**not met**",
                        f"{r:.1%} ({gbps(m)} vs {gbps(c)})"))
    return out


def migrate_only(args):
    """Prints per-run bytes/s, medians and the migrate/memcpy ratios."""
    json_dir = args.json_dir or os.path.join(args.build, "bench-json")
    os.makedirs(json_dir, exist_ok=True)
    data = collect_migrate(args, json_dir, [])
    if not data:
        return 1
    mig = migrate_figures(data)
    for label, m, c, r, bar in migrate_rows(mig):
        mw, cw = next((b[1], b[2]) for b in MIGRATE_BARS if b[0] == label)
        print(f"{label}:")
        for w in (mw, cw):
            runs = mig.get(w, {}).get("runs", [])
            print(f"  {w:<11} median {gbps(mig.get(w, {}).get('bytes_per_second'))}  runs: "
                  + ", ".join(f"{v / 1e9:.2f}" for v in runs) + " GB/s")
        pairs = [a / b for a, b in zip(mig.get(mw, {}).get("runs", []), mig.get(cw, {}).get("runs", []))]
        met = r is not None and r >= bar
        print(f"  ratio of medians {'-' if r is None else f'{r:.1%}'} (bar >= {bar:.0%}: "
              f"{'met' if met else 'not met'}); per-run ratios: "
              + ", ".join(f"{x:.1%}" for x in pairs))
    return 0


def gbps(v):
    return "-" if v is None else f"{v / 1e9:.1f} GB/s"


def svg_chart(figs, present):
    rows = []
    for w in WORKLOADS:
        for p in PEERS:
            if p not in present:
                continue
            a = advantage(w, ratio(figs, w, p))
            if a is not None:
                rows.append((w, p, a))
    left, bar_w, row_h, top = 250, 560, 20, 60
    width, height = left + bar_w + 90, top + row_h * len(rows) + 50
    span = max([abs(math.log10(a)) for _, _, a in rows] + [1.0])
    span = math.ceil(span)
    mid = left + bar_w / 2
    scale = (bar_w / 2) / span
    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">')
    e.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    e.append(f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" '
             f'font-weight="bold">numaheap vs peers: how many times better numaheap is '
             f'(log scale)</text>')
    e.append(f'<text x="{width / 2}" y="38" text-anchor="middle" fill="#555">right of 1x: '
             f'numaheap better (less time, larger block after churn, better scaling); '
             f'left: the peer</text>')
    for k in range(-span, span + 1):
        x = mid + k * scale
        e.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" '
                 f'y2="{top + row_h * len(rows)}" stroke="{"#000" if k == 0 else "#ddd"}"/>')
        label = f"{10.0 ** k:g}x"
        e.append(f'<text x="{x:.1f}" y="{top + row_h * len(rows) + 16}" '
                 f'text-anchor="middle" fill="#555">{label}</text>')
    prev = None
    for i, (w, p, a) in enumerate(rows):
        y = top + i * row_h
        if prev is not None and w != prev:
            e.append(f'<line x1="10" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#eee"/>')
        prev = w
        lg = math.log10(a)
        x0, x1 = (mid, mid + lg * scale) if lg >= 0 else (mid + lg * scale, mid)
        colour = "#2e7d32" if a >= 1 else "#c62828"
        e.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{w} vs {p}</text>')
        e.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" '
                 f'height="{row_h - 6}" fill="{colour}"/>')
        tx = x1 + 4 if lg >= 0 else x0 - 4
        anchor = "start" if lg >= 0 else "end"
        e.append(f'<text x="{tx:.1f}" y="{y + 14}" text-anchor="{anchor}">{a:.3g}x</text>')
    e.append("</svg>")
    return "\n".join(e) + "\n"


def markdown(figs, mig, present, info, commands, argv, json_dir, args, threads=None, run_info=None):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = []
    md.append("# Allocator benchmarks: numaheap as a standalone allocator\n")
    md.append("Generated by `bench/report.py` (do not edit by hand; rerun it).\n")
    if run_info and (run_info.get("date"), run_info.get("revision")) != (now, git_revision()):
        # The figures come from an earlier run's JSON: its date and revision.
        md.append(f"- Date: {run_info.get('date', '?')}; source revision `{run_info.get('revision', '?')}` "
                  f"(the run that measured these figures; this text was regenerated from its JSON "
                  f"on {now} at `{git_revision()}`)")
    else:
        md.append(f"- Date: {now}; source revision `{git_revision()}`")
    md.append(f"- Machine: {info['model']}, {info['cpus']} CPUs"
              f" ({info.get('threads_per_core', '?')} thread(s) per core), "
              f"{info['numa_nodes']} NUMA node(s), {info['memory']} RAM, "
              f"Linux {info['kernel']}")
    md.append(f"- Allocators measured: {', '.join(a for a in ALLOCATORS if a in present)}")
    missing = [a for a in ALLOCATORS if a not in present]
    if missing:
        md.append(f"- Not measured (binary not built): {', '.join(missing)}")
    md.append("- Report command: `" + " ".join(shlex.quote(a) for a in argv) + "`")
    if run_info and run_info.get("commands") and all(": reused " in c for c in commands):
        commands = run_info["commands"]  # how that run measured them
    if commands:
        md.append("- Benchmark commands (one binary per allocator; JSON kept in "
                  f"`{os.path.relpath(json_dir, ROOT)}`):\n")
        md.append("```")
        md.extend(commands)
        md.append("```")
    else:
        md.append(f"- Figures from existing JSON in `{os.path.relpath(json_dir, ROOT)}`")
    md.append("")
    md.append(
        f"Figures are medians of {args.repetitions} repetition(s) and **CPU time** "
        "(Google Benchmark's cpu_time; `ns_per_page` is per CPU time too): the machine is "
        "a 2-vCPU VM that may be shared with other work, so wall-clock times are noisy. "
        "`threads2` is a wall-clock ratio by nature and the noisiest figure; `churn` "
        "is a size, not a time. numaheap runs in host-memory mode on node 0, owner 1, "
        "no_scrub; jemalloc and mimalloc use a node-0 arena (mbind), libnuma "
        "numa_alloc_onnode(node 0); glibc and tcmalloc have no placement (first touch).\n")
    md.append("## Bars (issues 8, 6 and 17)\n")
    md.append("| bar | result | figure |")
    md.append("|---|---|---|")
    for text, res, fig in bars(figs, mig):
        md.append(f"| {text} | {res} | {fig} |")
    md.append("")
    md.append("## numaheap / peer\n")
    md.append("Time workloads: numaheap's time divided by the peer's (< 1: numaheap faster). "
              "`churn`: numaheap's largest allocatable block divided by the peer's (> 1: "
              "numaheap less fragmented). `threads2`: numaheap's relative scaling divided by "
              "the peer's (> 1: numaheap scales better).\n")
    peers = [p for p in PEERS if p in present]
    md.append("| workload | metric | " + " | ".join(peers) + " |")
    md.append("|---|---|" + "---|" * len(peers))
    for w, (metric, _, hib, _) in WORKLOADS.items():
        cells = []
        for p in peers:
            r = ratio(figs, w, p)
            cells.append("-" if r is None else f"{r:.3g}")
        better = "higher better" if hib else "lower better"
        md.append(f"| {w} | {metric} ({better}) | " + " | ".join(cells) + " |")
    md.append("")
    md.append("![numaheap's advantage per workload and peer](benchmarks.svg)\n")
    md.append("## Medians per allocator\n")
    allocs = [a for a in ALLOCATORS if a in present]
    md.append("| workload | what | " + " | ".join(allocs) + " |")
    md.append("|---|---|" + "---|" * len(allocs))
    for w, (_, _, _, what) in WORKLOADS.items():
        cells = [fmt_value(w, value(figs, a, w)) for a in allocs]
        md.append(f"| {w} | {what} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("## Migrator: frame swap against memcpy (issues 6, 17)\n")
    md.append(
        "`build/bin/numaheap-bench-migrate`: a 64 MiB guest on node 0 of a two-node "
        "host-memory allocator moved to node 1 and back by the frame-swap mover (allocate "
        "exact-node, mark, copy, swap the p2m entry, free the old frame; the embedder's "
        "write-protect and flush hooks are no-ops), against a plain memcpy of the same "
        "guest frames to frames of the other node. The mover copies with non-temporal stores "
        "(its own host-memory copy); the baseline stays plain memcpy. Both sides pre-faulted "
        "(`page_faults` in the timed loops: 0); on a one-node "
        "host both \"nodes\" are the same memory. Bytes/s per CPU time, medians of "
        f"{args.migrate_runs} alternating runs (one process per benchmark; the order of "
        "migrate and memcpy flips every run). Per-run figures: `--migrate-only`.\n")
    md.append("| moved as | migrate (frame swap) | memcpy | migrate / memcpy | bar | result |")
    md.append("|---|---|---|---|---|---|")
    for label, m, c, r, bar in migrate_rows(mig):
        res = "not measured" if r is None else ("**met**" if r >= bar else "**not met**")
        md.append(f"| {label} | {gbps(m)} | {gbps(c)} | "
                  f"{'-' if r is None else f'{r:.1%}'} | >= {bar:.0%} | {res} |")
    missed = [(label, r) for label, m, c, r, bar in migrate_rows(mig) if r is not None and r < bar]
    for label, r in missed:
        md.append(f"\n{label} at {r:.1%} of memcpy, below its bar, and why: "
                  + MIGRATE_WHY.get(label, "no cause recorded yet."))
    md.append("")
    md.extend(scaling_markdown(threads))
    md.extend(peer_wins_markdown(figs, present, threads))
    md.append("## How the workloads are measured\n")
    md.append(
        "- One binary per allocator (`build/bin/numaheap-bench-<allocator>`): jemalloc, "
        "mimalloc and tcmalloc replace malloc when linked. Names are `<workload>/<allocator>`; "
        "the peers' workloads are one template (`bench/peer_bench.h`) over the peer's "
        "alloc/free, numaheap's are in `bench/numaheap_bench.cc`; shapes are shared "
        "(`bench/bench_common.h`). Peers allocate 4 KiB-aligned blocks.")
    md.append(
        "- `churn`: within a 256 MiB budget, fill to 3/4 with blocks of orders 0-4 and 9 "
        "(weighted to 4 KiB, fixed seed), replace random live blocks 4x the live count, free "
        "random blocks down to 1/2 (128 MiB live), then ask for the largest 2^k x 4 KiB "
        "block that still succeeds. numaheap: its own 256 MiB node (the largest free order "
        "from `PageAllocator::stats` after `drain_all` is reported too as "
        "`largest_free_order`). mimalloc: its own exclusive 256 MiB arena with OS "
        "allocation off. glibc, jemalloc, tcmalloc, libnuma: a forked child whose "
        "address space is capped (RLIMIT_AS) at what it had mapped + 256 MiB, so the "
        "figure is what fits in the same budget next to the memory the allocator keeps; "
        "libnuma maps each block separately and so never fragments its address space.")
    md.append(
        "- `populate_1g`: numaheap takes 262144 exact-node 4 KiB frames of owner 1 with one "
        "`PageAllocator::alloc_bulk` and gives them back with one `free_bulk` -- what a "
        "hypervisor populating a guest's 4 KiB extents calls; every frame is still an "
        "order-0 block of the owner (its descriptor written on the way out, checked with a "
        "compare-and-swap on the way back), carved from and merged back into whole buddy "
        "blocks. `populate_1g_single` is the same with one `alloc` and one `free` per frame "
        "(per-CPU caches). The peers have no bulk call: both rows compare with their "
        "262144 single allocations, then frees.")
    md.append(
        "- `threads2`: 2 threads pinned to CPUs 0 and 1 each run 2,000,000 order-0 pairs; "
        "the 2-thread/1-thread throughput ratio is divided by the same ratio of a loop "
        "that shares nothing, measured in the same run (`relative`).")
    md.append(
        "- `neighbour_cpus`: two threads pinned to CPUs 0 and 1 each cycle an order-0 "
        "pair for 2,000,000 pairs (wall time per pair per thread, median of 5, a fresh "
        "allocator each time). `far`: the second thread's hot frame is >= 64 frames from "
        "the first's; `refill`: it is the first's neighbour (frame number +-1) from the "
        "second CPU's own refill; `handed`: the first CPU allocated both neighbours and "
        "the second freed one (a cross-CPU free) and cycles it. Descriptors are 24 bytes, "
        "so neighbours share a cache line unless a line boundary falls between them; "
        "refills keep aligned 8-frame groups (3 lines) whole, which covers `refill`; a "
        "cross-CPU free puts a frame in the freeing CPU's cache wherever its neighbours "
        "are, so `handed` shows what the line sharing costs where it remains.")
    md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="build directory (default: build)")
    ap.add_argument("--json-dir", help="reuse <allocator>.json from DIR; missing ones are "
                    "run and saved there (default: run all, save in BUILD/bench-json)")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per benchmark")
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs"),
                    help="where benchmarks.md and benchmarks.svg go")
    ap.add_argument("--migrate-runs", type=int, default=5,
                    help="alternating runs of the migration benchmarks (median)")
    # 10M: at ~100M ops/s a 1M-op run lasts 10 ms, within one scheduler
    # tick's noise on a shared VM.
    ap.add_argument("--threads-ops", type=int, default=10000000,
                    help="ops per thread of bench/threads.py (threads_n)")
    ap.add_argument("--migrate-only", action="store_true",
                    help="run only the migration benchmarks; print medians and ratios")
    args = ap.parse_args()
    if args.migrate_runs < 1:
        ap.error("--migrate-runs must be >= 1")
    argv = ["bench/report.py"] + sys.argv[1:]

    if args.migrate_only:
        return migrate_only(args)

    results, mig_data, commands, json_dir = collect(args)
    threads = collect_threads(args, json_dir, commands)
    if "numaheap" not in results:
        print("report: no numaheap results; nothing to compare", file=sys.stderr)
        return 1
    # Which run measured the figures: run.json in the JSON directory, written
    # when this invocation ran every benchmark itself, read when it reuses
    # an earlier run's JSON (--json-dir), so the header names that run.
    # A mix (some reused, some run now) names no single run: today's date.
    run_path = os.path.join(json_dir, "run.json")
    run_info = None
    reused = [c.startswith("# ") and ": reused " in c for c in commands]
    if all(reused) and os.path.exists(run_path):
        with open(run_path, encoding="utf-8") as f:
            run_info = json.load(f)
    elif not any(reused):
        run_info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "revision": git_revision(), "commands": commands}
        with open(run_path, "w", encoding="utf-8") as f:
            json.dump(run_info, f)
    figs = {a: figures(d) for a, d in results.items()}
    mig = migrate_figures(mig_data) if mig_data else None
    present = set(results)
    os.makedirs(args.docs, exist_ok=True)
    # The markdown (and the git revision in it) first: writing the chart
    # first made every report's revision read "-dirty".
    text = markdown(figs, mig, present, machine(), commands, argv, json_dir, args, threads, run_info)
    with open(os.path.join(args.docs, "benchmarks.svg"), "w", encoding="utf-8") as f:
        f.write(svg_chart(figs, present))
    with open(os.path.join(args.docs, "benchmarks.md"), "w", encoding="utf-8") as f:
        f.write(text)
    for text, res, fig in bars(figs, mig):
        print(f"{text}: {re.sub(r'[*]', '', res)} -- {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
