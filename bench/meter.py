"""Overhead of measuring: wattlens Meter windows against CodeCarbon's tracker, same run.

python bench/meter.py [--n 2000] [--cc-n 20] [--idle-s 35] [--idle-runs 3]

CodeCarbon is run with its default `measure_power_secs=15` (set explicitly here), so the idle
window (default 35 s) spans at least two of its sampler intervals; its 1 s power monitor runs
too. Both meters run through the same idle windows: wattlens's sampler threads (named
`wattlens-*`, started only where a sensor needs power sampling, e.g. NVML) are timed by their
own CPU clocks, CodeCarbon's (short-lived `threading.Timer` threads) as the process's CPU less
the main thread's and wattlens's.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import threading
import time

from common import load, spread, table, write

CC_INTERVAL_S = 15.0  # CodeCarbon's default measure_power_secs, passed explicitly


def fresh_ms(code: str, runs: int = 10) -> list[float]:
    """Wall times of a fresh interpreter running code, less a bare interpreter's median."""

    def once(c: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", c], check=True)
        return (time.perf_counter() - t0) * 1000

    base = statistics.median(once("pass") for _ in range(runs))
    return [once(code) - base for _ in range(runs)]


FIRST = {
    "wattlens": "import time; t0 = time.perf_counter()\n"
    "from wattlens.measure.meter import Meter\n"
    "t1 = time.perf_counter(); m = Meter(zone='FR'); w = m.window('first').open(); w.close()\n"
    "print((time.perf_counter() - t1) * 1000)",
    "codecarbon": "import logging, time\n"
    "from codecarbon import OfflineEmissionsTracker\n"
    "logging.getLogger('codecarbon').setLevel(logging.ERROR)\n"
    "t1 = time.perf_counter()\n"
    f"tr = OfflineEmissionsTracker(country_iso_code='FRA', save_to_file=False, log_level='error', "
    f"measure_power_secs={CC_INTERVAL_S:g})\n"
    "tr.start(); tr.stop()\n"
    "print((time.perf_counter() - t1) * 1000)",
}


def first_ms(peer: str, runs: int) -> list[float]:
    """Construct + first open/close (or start/stop) in a fresh process, after the import."""
    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", FIRST[peer]], capture_output=True, text=True, check=True)
        out.append(float(done.stdout.split()[-1]))
    return out


def thread_cpu_s(t: threading.Thread) -> float:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(t.ident))  # type: ignore[arg-type]
    except (OSError, TypeError):  # the thread has ended
        return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Time wattlens Meter windows and CodeCarbon's tracker (same run) and the CPU each uses "
        "while the program idles; write bench/results/meter.md."
    )
    ap.add_argument("--n", type=int, default=2000, help="wattlens open+close per batch (5 batches)")
    ap.add_argument("--cc-n", type=int, default=20, help="CodeCarbon start+stop samples (each a fresh tracker)")
    ap.add_argument("--idle-s", type=float, default=35.0, help=f"idle window, s (≥ 2 × {CC_INTERVAL_S:g} s)")
    ap.add_argument("--idle-runs", type=int, default=3, help="idle windows")
    ap.add_argument("--first-runs", type=int, default=5, help="fresh processes for the first window")
    args = ap.parse_args()
    if args.idle_s < 2 * CC_INTERVAL_S:
        ap.error(f"--idle-s must be at least 2 × CodeCarbon's {CC_INTERVAL_S:g} s sampler interval")
    loads = [load()]
    from codecarbon import OfflineEmissionsTracker

    from wattlens.measure.meter import Meter

    logging.getLogger("codecarbon").setLevel(logging.ERROR)

    def tracker() -> OfflineEmissionsTracker:
        return OfflineEmissionsTracker(
            country_iso_code="FRA", save_to_file=False, log_level="error", measure_power_secs=CC_INTERVAL_S
        )

    # Warm open+close: 5 batches of n, each batch's median.
    m = Meter(zone="FR")
    m.window("warm-up").open().close()
    batches = []
    for _ in range(5):
        times = []
        for _ in range(args.n):
            t = time.perf_counter()
            w = m.window("w").open()
            w.close()
            times.append((time.perf_counter() - t) * 1e6)
        batches.append(statistics.median(times))
    methods = ", ".join(f"{s.device}={s.method}" for s in m.sensors)

    tr = tracker()
    tr.start()
    tr.stop()  # warm CodeCarbon's own caches before its timed samples
    # A stopped tracker ignores a second start(), so each sample is a fresh tracker
    # (constructed outside the timing: only start+stop is counted).
    cc = []
    for _ in range(args.cc_n):
        tr = tracker()
        t = time.perf_counter()
        tr.start()
        tr.stop()
        cc.append((time.perf_counter() - t) * 1e6)
    # Its named-task API on a running tracker is the closest thing to a window.
    tr = tracker()
    tr.start()
    tasks = []
    for i in range(max(args.cc_n * 3, 50)):
        t = time.perf_counter()
        tr.start_task(f"t{i}")
        tr.stop_task()
        tasks.append((time.perf_counter() - t) * 1e6)
    tr.stop()
    loads.append(load())

    # Idle: both meters running, the program asleep.
    ours_idle, cc_idle, fires, monitors, nthreads = [], [], [], [], []
    for _ in range(args.idle_runs):
        before = set(threading.enumerate())
        meter = Meter(zone="FR").start()
        ours = [t for t in set(threading.enumerate()) - before if t.name.startswith("wattlens")]
        tr = tracker()
        counts = {"sample": 0, "monitor": 0}
        for key, sched in (("sample", tr._scheduler), ("monitor", tr._scheduler_monitor_power)):
            fn = sched.function

            def counted(
                *a: object, _fn: object = fn, _key: str = key, _counts: dict[str, int] = counts, **k: object
            ) -> object:
                _counts[_key] += 1
                return _fn(*a, **k)  # type: ignore[operator]

            sched.function = counted
        tr.start()
        ours0 = [thread_cpu_s(t) for t in ours]
        p0, m0 = time.process_time(), time.thread_time()
        time.sleep(args.idle_s)
        process_ms = (time.process_time() - p0) * 1000
        main_ms = (time.thread_time() - m0) * 1000
        ours_ms = sum(thread_cpu_s(t) - c for t, c in zip(ours, ours0, strict=True)) * 1000
        tr.stop()
        meter.stop()
        ours_idle.append(ours_ms)
        cc_idle.append(process_ms - main_ms - ours_ms)
        fires.append(counts["sample"])
        monitors.append(counts["monitor"])
        nthreads.append(len(ours))
        loads.append(load())

    ours_import, cc_import = (
        fresh_ms("from wattlens.measure.meter import Meter"),
        fresh_ms("from codecarbon import OfflineEmissionsTracker"),
    )
    ours_first, cc_first = first_ms("wattlens", args.first_runs), first_ms("codecarbon", args.first_runs)
    loads.append(load())

    per_s = f"CPU used while idle {args.idle_s:g} s, ms"
    rows = [
        [
            "wattlens `Meter` window",
            spread(ours_import),
            spread(ours_first),
            spread(batches),
            spread(ours_idle, ".2f") + f" ({max(nthreads)} sampler thread(s))",
        ],
        [
            f"CodeCarbon 3.3.2 `OfflineEmissionsTracker` start+stop (measure_power_secs={CC_INTERVAL_S:g})",
            spread(cc_import),
            spread(cc_first),
            spread(cc, ".0f"),
            spread(cc_idle, ".2f") + f" ({min(fires)}–{max(fires)} samples, {min(monitors)}–{max(monitors)} monitor ticks)",
        ],
        [
            "CodeCarbon 3.3.2 `start_task`+`stop_task` (running tracker)",
            "-",
            "-",
            spread([statistics.median(tasks[i::5]) for i in range(5)], ".0f"),
            "-",
        ],
    ]
    body = table(
        ["what", "import, ms", "first window (construct + open + close), ms", "warm open+close, µs", per_s],
        rows,
    )
    ratio = statistics.median(cc) / statistics.median(batches)
    task_ratio = statistics.median(tasks) / statistics.median(batches)
    body += (
        f"\n\nEach cell: median (min–max). Import: {len(ours_import)} fresh interpreters each, less a bare one's "
        f"median. First window: {args.first_runs} fresh processes each, after the import. Warm open+close: "
        f"wattlens 5 batches of {args.n} (each batch's median); CodeCarbon {args.cc_n} start+stop samples, each on "
        f"a fresh tracker (construction not timed), and {len(tasks)} start_task+stop_task samples (ranges of 5 "
        f"interleaved slices' medians). Idle: {args.idle_runs} windows of {args.idle_s:g} s with both meters "
        f"running and the program asleep; CodeCarbon samples every {CC_INTERVAL_S:g} s "
        + (
            f"(its sampler fired {min(fires)}–{max(fires)} times per window) "
            if min(fires) >= 2
            else f"(**its sampler fired only {min(fires)} time(s) in a window: lengthen --idle-s**) "
        )
        + "and monitors power every 1 s; "
        "its CPU is the process's less the main thread's and wattlens's sampler threads'."
        f"\n\nwattlens sensors here: {methods}. "
        + (
            "With no sensor that needs power sampling (NVML) wattlens starts no thread, so its idle CPU is zero "
            "by construction on this machine."
            if max(nthreads) == 0
            else f"wattlens's {max(nthreads)} sampler thread(s) are timed by their own CPU clocks."
        )
        + f"\n\nWarm open+close: CodeCarbon's start+stop takes **{ratio:,.0f}×** as long as a wattlens window "
        f"(medians; {min(cc) / max(batches):,.0f}–{max(cc) / min(batches):,.0f}× over the ranges), its "
        f"start_task+stop_task {task_ratio:,.0f}× "
        f"({min(tasks) / max(batches):,.0f}–{max(tasks) / min(batches):,.0f}×)."
        f"\n\nLoad average (1, 5, 15 min) at the start, after the timings, after each idle window and at the end: "
        f"{'; '.join(loads)} (2 cores, shared with other engineers' work)."
    )
    write(
        "meter.md",
        "Meter overhead",
        body,
        f"python bench/meter.py --n {args.n} --cc-n {args.cc_n} --idle-s {args.idle_s:g} --idle-runs {args.idle_runs}",
    )


if __name__ == "__main__":
    main()
