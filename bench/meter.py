"""Overhead of measuring: wattlens Meter windows against CodeCarbon's tracker, same run.

python bench/meter.py [--n 2000] [--idle-s 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time

from common import table, write


def fresh_ms(code: str, runs: int = 10) -> float:
    """Median wall time of a fresh interpreter running code, minus a bare interpreter."""

    def once(c: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", c], check=True)
        return (time.perf_counter() - t0) * 1000

    base = statistics.median(once("pass") for _ in range(runs))
    return statistics.median(once(code) for _ in range(runs)) - base


def idle_cpu_ms(start: object, stop: object, idle_s: float) -> float:
    """Process CPU time spent while the meter/tracker is running and the program does nothing."""
    start()  # type: ignore[operator]
    t0 = time.process_time()
    time.sleep(idle_s)
    used = (time.process_time() - t0) * 1000
    stop()  # type: ignore[operator]
    return used


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--cc-n", type=int, default=5, help="CodeCarbon start/stop repetitions (each is slow)")
    ap.add_argument("--idle-s", type=float, default=3.0)
    args = ap.parse_args()
    rows = []

    t0 = time.perf_counter()
    from wattlens.measure.meter import Meter

    m = Meter(zone="FR")
    w = m.window("first").open()
    w.close()
    first_ms = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(args.n):
        t = time.perf_counter()
        w = m.window("w").open()
        w.close()
        times.append((time.perf_counter() - t) * 1e6)
    warm_us = statistics.median(times)
    methods = ", ".join(f"{s.device}={s.method}" for s in m.sensors)
    ours_idle = idle_cpu_ms(Meter(zone="FR").start, lambda: None, args.idle_s)
    ours_import = fresh_ms("from wattlens.measure.meter import Meter")
    rows.append(["wattlens `Meter` window", f"{ours_import:.1f}", f"{first_ms:.1f}", f"{warm_us:.1f}", f"{ours_idle:.2f}"])

    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        rows.append(["CodeCarbon", "not installed (pip install -e '.[bench]')", "-", "-", "-"])
        ratio = None
    else:
        logging.getLogger("codecarbon").setLevel(logging.ERROR)

        def tracker() -> OfflineEmissionsTracker:
            return OfflineEmissionsTracker(
                country_iso_code="FRA", save_to_file=False, log_level="error", measure_power_secs=15
            )

        t0 = time.perf_counter()
        tr = tracker()
        tr.start()
        tr.stop()
        cc_first_ms = (time.perf_counter() - t0) * 1000
        # A stopped tracker ignores a second start(), so each measurement needs a fresh tracker
        # (constructed outside the timing: only start+stop is counted).
        cc = []
        for _ in range(args.cc_n):
            tr = tracker()
            t = time.perf_counter()
            tr.start()
            tr.stop()
            cc.append((time.perf_counter() - t) * 1e6)
        cc_warm_us = statistics.median(cc)
        # Its named-task API on a running tracker is the closest thing to a window.
        tr = tracker()
        tr.start()
        tasks = []
        for i in range(max(args.cc_n * 4, 20)):
            t = time.perf_counter()
            tr.start_task(f"t{i}")
            tr.stop_task()
            tasks.append((time.perf_counter() - t) * 1e6)
        tr.stop()
        cc_task_us = statistics.median(tasks)
        tr = tracker()
        cc_idle = idle_cpu_ms(tr.start, tr.stop, args.idle_s)
        cc_import = fresh_ms("from codecarbon import OfflineEmissionsTracker")
        rows.append(
            [
                "CodeCarbon 3.3.2 `OfflineEmissionsTracker` start+stop",
                f"{cc_import:.1f}",
                f"{cc_first_ms:.1f}",
                f"{cc_warm_us:.0f}",
                f"{cc_idle:.2f}",
            ]
        )
        rows.append(["CodeCarbon 3.3.2 `start_task`+`stop_task` (running tracker)", "-", "-", f"{cc_task_us:.0f}", "-"])
        ratio = cc_warm_us / warm_us
        task_ratio = cc_task_us / warm_us
    body = table(
        [
            "what",
            "import, ms",
            "first window (probe + open + close), ms",
            "warm open+close, µs (median)",
            f"CPU used while idle {args.idle_s:.0f} s, ms",
        ],
        rows,
    )
    body += f"\n\nwattlens sensors here: {methods}."
    if ratio is not None:
        body += (
            f"\n\nWarm open+close: wattlens is **{ratio:,.0f}x** faster than CodeCarbon's start+stop "
            f"and {task_ratio:,.0f}x faster than its start_task+stop_task."
        )
    write("meter.md", "Meter overhead", body, f"python bench/meter.py --n {args.n} --idle-s {args.idle_s:g}")


if __name__ == "__main__":
    main()
