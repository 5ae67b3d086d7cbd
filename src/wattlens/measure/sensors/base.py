"""The Sensor seam: one class per kind of energy counter, a probe, and a null object."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from wattlens.units import Interval

Kind = Literal["accelerator", "cpu", "dram", "host"]
SensorMethod = Literal["measured", "estimated"]


@dataclass(frozen=True, slots=True)
class Probe:
    """What a backend found: its sensors, or why it has none (shown by `wattlens sensors`)."""

    backend: str
    sensors: tuple[Sensor, ...]
    reason: str


class Sensor(ABC):
    """A cumulative energy counter for one device.

    ``energy_j()`` returns joules since an arbitrary origin as an Interval (counter accuracy,
    or a model's uncertainty); differences between two calls are the energy in between.
    """

    device: str  # e.g. "gpu:0", "cpu:package-0", "dram:0"
    kind: Kind
    method: SensorMethod
    reason: str  # why this method: shown to users
    model: str = ""  # the device's product name when the backend knows it, e.g. "NVIDIA H100 80GB HBM3"

    @abstractmethod
    def energy_j(self) -> Interval: ...

    def read(self) -> tuple[float, float, float]:
        """energy_j() as (low, mid, high): the Meter's hot path; backends may override it."""
        iv = self.energy_j()
        return (iv.low, iv.mid, iv.high)

    def close(self) -> None:  # noqa: B027 - most sensors hold nothing to release
        """Release handles or stop sampling threads."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device} {self.method}>"


class NullSensor(Sensor):
    """Nothing readable: reports no energy, and says so."""

    def __init__(self, reason: str = "no energy counter found") -> None:
        self.device = "none"
        self.kind = "host"
        self.method = "estimated"
        self.reason = reason

    def energy_j(self) -> Interval:
        return Interval(0.0, 0.0, 0.0)


def relative(value: float, low: float, high: float) -> Interval:
    """A counter reading with its relative accuracy (e.g. 0.95, 1.05 for +/-5%)."""
    return Interval(value * low, value, value * high)
