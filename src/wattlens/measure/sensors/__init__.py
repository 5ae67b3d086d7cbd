"""Energy sensors: detect what this machine can read, once per process.

Order: NVIDIA (NVML), AMD (amdsmi) for accelerators; RAPL for CPU and DRAM; the fallback
power model for the host when RAPL is not readable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattlens.measure.sensors.base import NullSensor, Probe, Sensor

if TYPE_CHECKING:
    from wattlens.factors import FactorSet


@dataclass(frozen=True, slots=True)
class Detection:
    sensors: tuple[Sensor, ...]
    probes: tuple[Probe, ...]

    @property
    def method(self) -> str:
        methods = {s.method for s in self.sensors}
        return methods.pop() if len(methods) == 1 else "mixed"


def probe_all(factors: FactorSet) -> Detection:
    """Every backend in order; the factor set gives the fallback model its CPU power table."""
    from wattlens.measure.sensors import amdsmi, fallback, nvml, rapl

    probes = [nvml.probe(), amdsmi.probe(), rapl.probe()]
    host = any(s.kind in ("cpu", "dram", "host") for p in probes for s in p.sensors)
    if not host:
        probes.append(fallback.probe(factors))
    sensors = tuple(s for p in probes for s in p.sensors) or (NullSensor(),)
    return Detection(sensors, tuple(probes))


@functools.lru_cache(maxsize=4)
def detect(factors: FactorSet) -> Detection:
    """The sensors of this machine, probed once per process (and factor set)."""
    return probe_all(factors)


__all__ = ["Detection", "NullSensor", "Probe", "Sensor", "detect", "probe_all"]
