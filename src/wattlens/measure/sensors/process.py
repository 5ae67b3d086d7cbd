"""Process-scoped host energy for machines without energy counters: charge a process its own CPU time.

The fallback model (fallback.py) charges the whole host: idle power x wall time plus every busy
CPU-second on the machine, so a measurement moves with unrelated load (a neighbour's CPU-seconds are
charged, and a contended run lasts longer so it also collects more idle power). For a score or any
measurement of one process, wattlens charges instead the process's own CPU-seconds (all its threads):

    E_cpu = CPU-seconds of the process x P_max / hardware threads
    E_mem = CPU-seconds of the process x P_mem / hardware threads

One CPU-second is 1/threads of the machine for one second, so it carries that fraction of the CPU's
full power (idle share included) and of the memory's power: the core-hours x power-per-core rule of
Green Algorithms (Lannelongue, Grealey & Inouye, Advanced Science 8, 2100707, 2021) and of the Cloud
Carbon Footprint methodology. A process that keeps every thread busy is charged what the host model
charges the whole machine; idle power that no one uses is charged to no one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from wattlens.errors import SensorError
from wattlens.measure.sensors.base import Sensor
from wattlens.measure.sensors.fallback import CpuModelSensor, MemoryModelSensor
from wattlens.units import Interval

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
PROC = Path("/proc")


def process_cpu_s(pid: int | None = None, proc: Path = PROC) -> float:
    """CPU-seconds (user + system, all threads) used so far by a process; None: this process.

    This process: time.process_time() (CLOCK_PROCESS_CPUTIME_ID, nanosecond resolution). Another
    process: utime + stime of /proc/PID/stat (fields 14 and 15, in clock ticks).
    """
    if pid is None or pid == os.getpid():
        return time.process_time()
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError as e:
        raise SensorError(f"cannot read the CPU time of process {pid}: {e}") from e
    # The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime: fields 14 and 15 overall


class ProcessCpuSensor(Sensor):
    """A process's share of the CPU model: its CPU-seconds x P_max / threads (estimated)."""

    def __init__(self, p_max_w: Interval, threads: int, pid: int | None = None, reason: str = "") -> None:
        who = "this process" if pid is None else f"process {pid}"
        self.device = "cpu:process" if pid is None else f"cpu:process-{pid}"
        self.kind = "cpu"
        self.method = "estimated"
        self.pid, self.threads = pid, threads
        self.per_cpu_s_w = p_max_w / threads  # joules per CPU-second
        self.reason = f"{who}'s own CPU time x {self.per_cpu_s_w.mid:.3g} W per busy thread" + (
            f" ({reason})" if reason else ""
        )
        self._cpu0 = process_cpu_s(pid)

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid) - self._cpu0

    def read(self) -> tuple[float, float, float]:
        c, p = self.cpu_s(), self.per_cpu_s_w
        return (p.low * c, p.mid * c, p.high * c)

    def energy_j(self) -> Interval:
        return Interval(*self.read())


class ProcessMemorySensor(Sensor):
    """A process's share of the memory model, in proportion to its share of the CPU-seconds."""

    def __init__(self, power_w: Interval, threads: int, pid: int | None = None) -> None:
        self.device = "dram:process" if pid is None else f"dram:process-{pid}"
        self.kind = "dram"
        self.method = "estimated"
        self.pid = pid
        self.per_cpu_s_w = power_w / threads
        self.reason = f"memory power x the process's share of CPU time ({self.per_cpu_s_w.mid:.3g} W per busy thread)"
        self._cpu0 = process_cpu_s(pid)

    def read(self) -> tuple[float, float, float]:
        c, p = process_cpu_s(self.pid) - self._cpu0, self.per_cpu_s_w
        return (p.low * c, p.mid * c, p.high * c)

    def energy_j(self) -> Interval:
        return Interval(*self.read())


def for_process(sensors: Sequence[Sensor], pid: int | None = None) -> tuple[Sensor, ...]:
    """The same sensors with the host power models scoped to one process (None: this one).

    Counters (NVML, amdsmi, RAPL) are kept as they are: they measure whole devices.
    """
    out: list[Sensor] = []
    for s in sensors:
        if isinstance(s, CpuModelSensor):
            cpu = ProcessCpuSensor(s.p_max_w, s.threads, pid, s.reason.split(",")[0])
            cpu.model = s.model
            out.append(cpu)
        elif isinstance(s, MemoryModelSensor):
            threads = next((c.threads for c in sensors if isinstance(c, CpuModelSensor)), os.cpu_count() or 1)
            out.append(ProcessMemorySensor(s.power_w, threads, pid))
        else:
            out.append(s)
    return tuple(out)
