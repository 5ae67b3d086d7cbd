"""A power model for when no counter is readable (as in most VMs): estimated, never passed off as measured.

CPU:    P = P_idle + (P_max - P_idle) x utilisation, integrated exactly as
        E = P_idle x t + (P_max - P_idle) / threads x busy CPU-seconds   (busy from /proc/stat)
        P_max = the CPU model's TDP x sockets (factors/data/cpu_power.csv, x0.8-1.2 since real
        draw departs from TDP), or 2/4/8 W per hardware thread when the model is not in the table;
        P_idle = 0.2/0.3/0.45 x P_max (servers idle at 20-45 % of peak: SPECpower_ssj2008 results;
        Barroso, Hoelzle & Ranganathan, The Datacenter as a Computer, 3rd ed., 2018).
Memory: 0.2/0.375/0.5 W per GB installed (CodeCarbon's 3 W per 8 GB, bracketed by DDR4/DDR5
        vendor power calculators).
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from wattlens.measure.sensors.base import Probe, Sensor
from wattlens.units import Interval

if TYPE_CHECKING:
    from wattlens.factors import FactorSet

IDLE_FRACTION = Interval(0.2, 0.3, 0.45)
W_PER_THREAD = Interval(2.0, 4.0, 8.0)
TDP_SPREAD = (0.8, 1.2)
W_PER_GB = Interval(0.2, 0.375, 0.5)
PROC_STAT = Path("/proc/stat")
BUSY_REFRESH_S = 0.001
CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
_NOISE = re.compile(r"\(r\)|\(tm\)|\bcpu\b|\bprocessor\b|@.*$|\d+-core|\bwith\b.*$", re.I)


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def busy_cpu_s(stat: Path = PROC_STAT, fd: int | None = None) -> float:
    """CPU-seconds spent busy by all CPUs since boot (user, nice, system, irq, softirq)."""
    try:
        head = os.pread(fd, 200, 0).decode() if fd is not None else stat.read_text()[:200]
    except OSError:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system
    fields = head.split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) * _TICK_S


def cpu_model(cpuinfo: Path = CPUINFO) -> tuple[str, int]:
    """(model name, sockets) from /proc/cpuinfo; ("", 1) when unknown."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "", 1
    names = re.findall(r"^model name\s*:\s*(.+)$", text, re.M)
    sockets = len(set(re.findall(r"^physical id\s*:\s*(\d+)$", text, re.M))) or 1
    return (names[0].strip() if names else ""), sockets


@functools.lru_cache(maxsize=8192)
def normalise(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name).lower().split())


def match_tdp(model: str, table: dict[str, float]) -> tuple[str, float] | None:
    """The table row whose name is the longest one contained, word for word, in the CPU's name."""
    n = f" {normalise(model)} "
    if not n.strip():
        return None
    best: tuple[str, float] | None = None
    best_len = 0
    for name, tdp in table.items():
        k = normalise(name)
        if k and len(k) > best_len and f" {k} " in n:
            best, best_len = (name, tdp), len(k)
    # A bare family name ("AMD EPYC") says nothing about the part: only accept rows with a model number.
    if best is not None and not re.search(r"\d", best[0]):
        return None
    return best


def mem_gb(meminfo: Path = MEMINFO) -> float:
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)
    except OSError:
        return 0.0
    return int(m.group(1)) / 1024 / 1024 if m else 0.0


class CpuModelSensor(Sensor):
    def __init__(self, p_max_w: Interval, threads: int, reason: str, stat: Path = PROC_STAT) -> None:
        self.device = "cpu:model"
        self.kind = "cpu"
        self.method = "estimated"
        self.reason = reason
        self.p_max_w, self.threads, self.stat = p_max_w, threads, stat
        self.p_idle_w = p_max_w * IDLE_FRACTION
        pi, pm = self.p_idle_w, p_max_w
        # Energy per busy CPU-second; the low bound pairs low P_max with low idle share, so clamp at 0.
        self._per_busy = Interval(
            max(pm.low - pi.low, 0.0) / threads,
            (pm.mid - pi.mid) / threads,
            max(pm.high - pi.high, pm.mid - pi.mid) / threads,
        )
        try:
            self._fd: int | None = os.open(stat, os.O_RDONLY)  # pread on a kept fd: ~5 us a read
        except OSError:
            self._fd = None
        self._t0 = time.perf_counter()
        self._busy0 = busy_cpu_s(stat, self._fd)

        self._busy_cache = (self._t0, 0.0)

    def busy_cpu_s(self) -> float:
        return busy_cpu_s(self.stat, self._fd) - self._busy0

    def _busy_recent(self, now: float) -> float:
        # /proc/stat counts in 10 ms ticks and costs ~9 us to generate: re-read at most once a ms.
        t, busy = self._busy_cache
        if now - t >= BUSY_REFRESH_S:
            busy = self.busy_cpu_s()
            self._busy_cache = (now, busy)
        return busy

    def read(self) -> tuple[float, float, float]:
        now = time.perf_counter()
        elapsed, busy = now - self._t0, self._busy_recent(now)
        pi, pb = self.p_idle_w, self._per_busy
        return (pi.low * elapsed + pb.low * busy, pi.mid * elapsed + pb.mid * busy, pi.high * elapsed + pb.high * busy)

    def energy_j(self) -> Interval:
        return Interval(*self.read())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MemoryModelSensor(Sensor):
    def __init__(self, gb: float) -> None:
        self.device = "dram:model"
        self.kind = "dram"
        self.method = "estimated"
        self.reason = f"{gb:.1f} GB installed x 0.2-0.5 W/GB"
        self.power_w = W_PER_GB * gb
        self._t0 = time.perf_counter()

    def read(self) -> tuple[float, float, float]:
        dt, p = time.perf_counter() - self._t0, self.power_w
        return (p.low * dt, p.mid * dt, p.high * dt)

    def energy_j(self) -> Interval:
        return Interval(*self.read())


def probe(factors: FactorSet, cpuinfo: Path = CPUINFO, stat: Path = PROC_STAT, meminfo: Path = MEMINFO) -> Probe:
    """The power model, with the CPU's TDP from the factor set's cpu_power table."""
    model, sockets = cpu_model(cpuinfo)
    threads = os.cpu_count() or 1
    table = {r.cpu_model: r.tdp_w for r in factors.cpu_power.list()}
    hit = match_tdp(model, table)
    if hit is not None:
        name, tdp = hit
        p_max = Interval(tdp * sockets * TDP_SPREAD[0], tdp * sockets, tdp * sockets * TDP_SPREAD[1])
        why = f"{model!r} matched {name!r}: TDP {tdp:.0f} W x {sockets} socket(s), utilisation from {stat}"
    else:
        p_max = W_PER_THREAD * threads
        why = f"CPU {model or 'unknown'!r} not in the TDP table: {threads} threads x 2-8 W, utilisation from {stat}"
    cpu = CpuModelSensor(p_max, threads, why, stat)
    cpu.model = model
    sensors: list[Sensor] = [cpu]
    gb = mem_gb(meminfo)
    if gb > 0:
        sensors.append(MemoryModelSensor(gb))
    return Probe("fallback", tuple(sensors), "no readable counter: power model (estimated, wide interval)")
