"""`wattlens run -- CMD`: run a command under the meter and attribute the host's energy to it."""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace

from wattlens.errors import InputError
from wattlens.measure.meter import Measurement, Meter
from wattlens.measure.sensors.fallback import PROC_STAT, busy_cpu_s

POLL_S = 30.0  # read the counters this often so RAPL wrap-around is never missed


@dataclass(frozen=True)
class RunResult:
    returncode: int
    measurement: Measurement  # what the command is charged with
    whole: Measurement  # every device, whole, while it ran
    cpu_share: float | None  # the command's share of busy CPU time, when it could be told
    attribution: str  # a sentence for the user


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_command(argv: Sequence[str], meter: Meter) -> RunResult:
    if not argv:
        raise InputError("give a command to run after --, e.g. wattlens run -- python train.py")
    meter.sensors  # noqa: B018 - probe hardware before the clock starts
    cpu0, busy0 = children_cpu_s(), busy_cpu_s(PROC_STAT)
    meter.start()
    try:
        proc = subprocess.Popen(list(argv))
    except FileNotFoundError as e:
        meter.stop()
        raise InputError(f"command not found: {argv[0]}") from e
    except PermissionError as e:
        meter.stop()
        raise InputError(f"cannot execute {argv[0]}: permission denied") from e
    while True:
        try:
            code = proc.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            for s in meter.sensors:
                s.energy_j()
        except KeyboardInterrupt:
            proc.wait()  # the child got the same SIGINT; let it finish and report
    whole = meter.stop()
    cpu_s, busy_s = children_cpu_s() - cpu0, busy_cpu_s(PROC_STAT) - busy0
    share = min(cpu_s / busy_s, 1.0) if busy_s > 0 and os.path.exists(PROC_STAT) else None
    host_kinds = {"cpu", "dram", "host"}
    if share is None:
        charged = whole
        why = "no /proc/stat" if not os.path.exists(PROC_STAT) else "the run was shorter than one CPU-time tick"
        note = f"measured the whole devices ({why}, so the command's share of CPU time could not be told)"
    else:
        attributed = {d: (iv * share if whole.kinds[d] in host_kinds else iv) for d, iv in whole.energy_j.items()}
        charged = replace(whole, name=" ".join(argv), attributed_j=attributed)
        gpu = any(k == "accelerator" for k in whole.kinds.values())
        note = (
            f"attributed by process: the command used {share:.0%} of the busy CPU time, so it is charged that "
            f"share of CPU and memory energy" + ("; accelerators are charged whole" if gpu else "")
        )
    return RunResult(code if code >= 0 else 128 - code, charged, whole, share, note)
