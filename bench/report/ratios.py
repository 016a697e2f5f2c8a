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
its target instead (higher is better). call_bench.json gives the service
figures: call round trips (whole round trips, not halved) against the
cache-line or futex round trip interleaved with them, cast throughput (next
to ring_bench's mailbox-alone throughput), and the pool of 1 ms servers as a
ratio to N x one server. share_bench.json gives the copy-vs-share table
(copy_share.py, which also runs alone). Python 3 standard library only.
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

# call_bench: round-trip benchmark -> (what it is, p50 target ratio, stretch ratio).
CALLS = [
    ("BM_CallBusyPoll", "busy-poll call (floor: cache line)", 5.0, 2.5),
    ("BM_CallPark", "parking call, both parked (floor: futex)", 1.1, None),
    ("BM_CallSpinThenPark", "spin-then-park call, back to back (floor: cache line)", None, None),
]
CAST_TARGET = 10e6  # casts/s, 64 B, from one producer process
POOL_TARGET = 0.85  # pool of N >= 0.85 x N x one server


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
            args = {}
            for p in parts[1:]:
                k, sep, v = p.partition(":")
                if sep and v.isdigit():
                    args[k] = int(v)
            b["_args"] = args  # every name:value argument (producers, servers, …)
            runs.setdefault((parts[0], args.get("trusted")), []).append(b)
    return runs


def select(runs, key, **args):
    """{key: the runs of `key` whose arguments include `args`}, for value() and error_of()."""
    return {key: [r for r in runs.get(key, [])
                  if all(r["_args"].get(k) == v for k, v in args.items())]}


def value(runs, key, field):
    """Median of `field` over the runs of `key` (None if missing or failed)."""
    got = [r[field] for r in runs.get(key, []) if not r.get("error_occurred") and field in r]
    return statistics.median(got) if got else None


def error_of(runs, key):
    for r in runs.get(key, []):
        if r.get("error_occurred"):
            return r.get("error_message", "error")
    return None


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def print_calls(runs):
    """call_bench: call round trips, cast throughput, the pool of slow servers."""
    rows = []
    for bench, what, target, stretch in CALLS:
        for trusted in (0, 1):
            key = (bench, trusted)
            if key not in runs:
                continue
            bus = "trusted" if trusted else "verified"
            err = error_of(runs, key)
            if err:
                rows.append([what, bus, "ERROR: " + err, "", "", "", "", "", ""])
                continue
            p50, p99 = value(runs, key, "rtt_p50_ns"), value(runs, key, "rtt_p99_ns")
            f50, f99 = value(runs, key, "floor_rtt_p50_ns"), value(runs, key, "floor_rtt_p99_ns")
            ratio = p50 / f50 if p50 is not None and f50 else None
            wait = value(runs, key, "server_cpu_wait")
            note = verdict(ratio, target, stretch)
            if wait is not None and wait > 0.05:
                note = "; ".join(x for x in (note, f"BUSY MACHINE: server waited for a CPU {wait:.0%}") if x)
            rows.append([what, bus, fmt_ns(p50), fmt_ns(f50), fmt_ratio(p50, f50), fmt_ns(p99),
                         fmt_ns(f99), fmt_ratio(p99, f99), note])
    if rows:
        print()
        print("Call round trip, 64 B SendEmail -> 64 B EmailSent, two processes on two cores")
        print("(whole round trips; floor = the same processes' round trip interleaved with the calls)")
        print_table(["figure", "bus", "p50", "floor p50", "ratio", "p99", "floor p99", "ratio",
                     "p50 target"], rows)

    lines = []
    for producers in (1, 4):
        for trusted in (0, 1):
            key = ("BM_CastThroughput", trusted)
            sel = select(runs, key, producers=producers)
            if not sel[key]:
                continue
            bus = "trusted" if trusted else "verified"
            err = error_of(sel, key)
            if err:
                lines.append(f"  {producers} producer(s)  {bus:9} ERROR: {err}")
                continue
            rate = value(sel, key, "items_per_second")
            if rate is None:
                continue
            ring = value(runs, ("BM_Throughput", trusted), "items_per_second")
            vs_ring = f"; {rate / ring:.2f}x the mailbox alone ({ring / 1e6:.2f} M/s)" if ring else ""
            line_rtt = value(sel, key, "floor_rtt_p50_ns")
            if line_rtt:
                vs_ring += f"; cache-line round trip {fmt_ns(line_rtt)} meanwhile"
            wait = value(sel, key, "server_cpu_wait")
            if wait is not None and wait > 0.05:
                vs_ring += f"; BUSY MACHINE: the server waited for a CPU {wait:.0%} of the time"
            goal = ""
            if producers == 1:
                ok = "meets" if rate >= CAST_TARGET else "MISSES"
                goal = f" = {rate / CAST_TARGET:.2f}x the target of {CAST_TARGET / 1e6:.0f} M/s ({ok} it)"
            lines.append(f"  {producers} producer(s)  {bus:9} {rate / 1e6:6.2f} M casts/s{goal}{vs_ring}")
    sides = []
    for serve, what in ((0, "producer: cast()"), (1, "server: serve_one()")):
        for trusted in (0, 1):
            sel = select(runs, ("BM_CastOneSide", trusted), serve=serve)
            v = value(sel, ("BM_CastOneSide", trusted), "seconds_per_cast")
            if v is not None:
                sides.append(f"{what} {'trusted' if trusted else 'verified'} {v * 1e9:.0f} ns")
    if lines:
        print()
        print("Cast throughput, 64 B SendEmail, producers on CPU 0, one busy server on CPU 1")
        for l in lines:
            print(l)
        if sides:
            print("  CPU time per cast, each side alone in one process: " + ", ".join(sides))

    rows = []
    for servers in (1, 2, 4, 8, 16):
        key = ("BM_PoolThroughput", None)
        sel = select(runs, key, servers=servers)
        if not sel[key]:
            continue
        err = error_of(sel, key)
        if err:
            rows.append([str(servers), "ERROR: " + err, "", "", "", "", ""])
            continue
        rate = value(sel, key, "calls_per_s")
        one = value(sel, key, "one_server_calls_per_s")
        ratio = value(sel, key, "ratio_to_n_x_one")
        handler = value(sel, key, "handler_mean_us")
        ok = "" if ratio is None else ("meets" if ratio >= POOL_TARGET else "MISSES")
        rows.append([str(servers), f"{rate:,.0f}" if rate else "-", f"{one:,.0f}" if one else "-",
                     f"{ratio:.3f}" if ratio is not None else "-",
                     f"{handler:.0f} us" if handler else "-",
                     f"{ok} (>= {POOL_TARGET})" if ok else ""])
    if rows:
        print()
        print("Pool of N parked servers, handler sleeps 1 ms, 4 calls in flight per server")
        print_table(["N", "calls/s", "one server alone", "ratio to N x one", "handler mean",
                     "target"], rows)


def fmt_ns(v):
    if v is None:
        return "-"
    if v >= 1e7:
        return f"{v / 1e6:.2f} ms"
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

    print("One-way latency, 64 B SendEmail, two processes on two cores (ratio = shmbus / floor)")
    print_table(header, rows)
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

    print_calls(runs)

    # share_bench's copy-vs-share table and issue 5's targets (copy_share.py).
    from copy_share import context_of, print_copy_share
    print_copy_share(runs, context_of(results_dir))


if __name__ == "__main__":
    main()
