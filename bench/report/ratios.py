#!/usr/bin/env python3
"""ratios.py — each shmbus figure next to its floor, from Google Benchmark JSON.

How to run (after the benchmarks wrote their JSON):

    ./tools/dev bench                      # builds Release, writes bench/results/*.json
    python3 bench/report/ratios.py         # or: python3 bench/report/ratios.py DIR

    SHMBUS_BENCH_SCALE=10 ./tools/dev bench   # 10x the iterations, for a final report

It reads every *.json in bench/results/ (or DIR): ring_bench.json gives the
shmbus figures, each with its floor measured interleaved with it (same two
processes, same run); floors_bench.json gives the floors measured alone. Latencies
are one-way nanoseconds (round trip / 2; p50/p99 from per-round-trip samples).
Ratio = shmbus figure / floor (lower is better); throughput is compared with
its target instead (higher is better). Python 3 standard library only.
"""

import json
import os
import statistics
import sys

# shmbus benchmark -> (floor benchmark, what it is, p50 target ratio, stretch ratio).
# Each ring_bench latency benchmark measures its floor itself, one floor round trip
# before each of its own (counters floor_p50_ns / floor_p99_ns), so a ratio holds even
# when a virtual machine moves its vCPUs between benchmarks; floors_bench's figures are
# the fallback and are printed for reference.
LATENCY = [
    ("BM_LatencyBusyPoll", "BM_CacheLinePingPong", "busy-poll latency", 3.0, 1.5),
    ("BM_LatencyPark", "BM_FutexPingPong", "parking latency", 1.1, None),
    ("BM_LatencySpinThenPark", "BM_CacheLinePingPong", "spin-then-park latency (back to back)", None, None),
    ("BM_LatencyTryReceiveSpin", "BM_CacheLinePingPong", "busy, try_receive() spin (ring alone)", None, None),
]
THROUGHPUT_TARGET = 10e6  # records/s, 64 B, between two processes


def load(results_dir):
    """{(base name, trusted or None): [run dict, ...]} over every JSON file."""
    runs = {}
    files = sorted(f for f in os.listdir(results_dir) if f.endswith(".json"))
    if not files:
        sys.exit(f"ratios.py: no *.json in {results_dir}: run ./tools/dev bench first")
    for name in files:
        with open(os.path.join(results_dir, name)) as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                print(f"ratios.py: skipping {name}: {e}", file=sys.stderr)
                continue
        for b in doc.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue  # aggregates of --benchmark_repetitions: the runs are used instead
            parts = b["name"].split("/")
            trusted = None
            for p in parts[1:]:
                if p.startswith("trusted:"):
                    trusted = int(p.split(":")[1])
            runs.setdefault((parts[0], trusted), []).append(b)
    return runs


def value(runs, key, field):
    """Median of `field` over the runs of `key` (None if missing or failed)."""
    got = [r[field] for r in runs.get(key, []) if not r.get("error_occurred") and field in r]
    return statistics.median(got) if got else None


def error_of(runs, key):
    for r in runs.get(key, []):
        if r.get("error_occurred"):
            return r.get("error_message", "error")
    return None


def fmt_ns(v):
    if v is None:
        return "-"
    if v >= 10000:
        return f"{v / 1000:.2f} us"
    return f"{v:.1f} ns" if v < 10 else f"{v:.0f} ns"


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def verdict(ratio, target, stretch):
    if ratio is None or target is None:
        return ""
    if stretch is not None and ratio <= stretch:
        return f"meets stretch (<= {stretch}x)"
    return f"meets target (<= {target}x)" if ratio <= target else f"MISSES target (<= {target}x)"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    results_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "results")
    runs = load(results_dir)

    header = ["figure", "bus", "p50", "floor p50", "ratio", "p99", "floor p99", "ratio", "p50 target"]
    rows = []
    for bench, floor, what, target, stretch in LATENCY:
        for trusted in (0, 1):
            key = (bench, trusted)
            if key not in runs:
                continue
            bus = "trusted" if trusted else "verified"
            err = error_of(runs, key)
            if err:
                rows.append([what, bus, "ERROR: " + err, "", "", "", "", "", ""])
                continue
            p50 = value(runs, key, "p50_ns")
            p99 = value(runs, key, "p99_ns")
            # The floor interleaved with this benchmark's own round trips, else floors_bench's.
            f50 = value(runs, key, "floor_p50_ns") or value(runs, (floor, None), "p50_ns")
            f99 = value(runs, key, "floor_p99_ns") or value(runs, (floor, None), "p99_ns")
            ratio = p50 / f50 if p50 is not None and f50 else None
            rows.append([what, bus, fmt_ns(p50), fmt_ns(f50), fmt_ratio(p50, f50), fmt_ns(p99),
                         fmt_ns(f99), fmt_ratio(p99, f99), verdict(ratio, target, stretch)])

    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    print("One-way latency, 64 B SendEmail, two processes on two cores (ratio = shmbus / floor)")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print("(floor: cache-line ping-pong for busy figures, futex ping-pong for parking; measured")
    print(" interleaved with the figure's own round trips between the same two processes)")
    for floor, what in (("BM_CacheLinePingPong", "cache-line"), ("BM_FutexPingPong", "futex")):
        f50, f99 = value(runs, (floor, None), "p50_ns"), value(runs, (floor, None), "p99_ns")
        if f50 is not None:
            print(f"floors_bench alone: {what} ping-pong p50 {fmt_ns(f50)}, p99 {fmt_ns(f99)}")

    print()
    print("Throughput, 64 B records streamed from one process to the other")
    for trusted in (0, 1):
        key = ("BM_Throughput", trusted)
        if key not in runs:
            continue
        bus = "trusted" if trusted else "verified"
        err = error_of(runs, key)
        if err:
            print(f"  {bus:9} ERROR: {err}")
            continue
        rate = value(runs, key, "items_per_second")
        if rate is None:
            continue
        ok = "meets" if rate >= THROUGHPUT_TARGET else "MISSES"
        median = value(runs, key, "median_batch_records_per_s")
        line_ns = value(runs, key, "floor_p50_ns")
        extra = f"; median batch {median / 1e6:.2f} M/s" if median else ""
        extra += f"; cache-line one-way {fmt_ns(line_ns)} meanwhile" if line_ns else ""
        print(f"  {bus:9} {rate / 1e6:7.2f} M records/s  = {rate / THROUGHPUT_TARGET:.2f}x the "
              f"target of {THROUGHPUT_TARGET / 1e6:.0f} M/s ({ok} it){extra}")

    memcpy = value(runs, ("BM_Memcpy", None), "real_time")
    reads = [(t, value(runs, ("BM_ReadMessage", t), "real_time")) for t in (0, 1)]
    if any(v is not None for _, v in reads):
        print()
        print("Receiver's read_message<SendEmail> alone (one process; floor: memcpy of 64 B)")
        for t, v in reads:
            if v is not None:
                bus = "trusted" if t else "verified"
                print(f"  {bus:9} {v:6.1f} ns   memcpy {fmt_ns(memcpy) if memcpy else '-':>6}   "
                      f"ratio {fmt_ratio(v, memcpy)}")
    pause = value(runs, ("BM_Pause", None), "real_time")
    if pause is not None:
        unit = runs[("BM_Pause", None)][0].get("time_unit", "us")
        print()
        print(f"1000 pause instructions take {pause:.1f} {unit} here "
              f"(spin-then-park spins for a 10 us time budget before it parks)")


if __name__ == "__main__":
    main()
