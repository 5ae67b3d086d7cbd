"""AMD Instinct/Radeon GPUs through amdsmi's energy accumulator."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from wattlens.errors import SensorError
from wattlens.measure.sensors.base import Probe, Sensor, relative
from wattlens.units import Interval

ACCURACY = (0.95, 1.05)


def _load() -> ModuleType | None:
    try:
        import amdsmi

        return amdsmi  # type: ignore[no-any-return]
    except ImportError:
        return None


class AmdSmiSensor(Sensor):
    def __init__(self, smi: Any, handle: Any, index: int) -> None:
        self.smi, self.handle = smi, handle
        self.device = f"gpu:amd{index}"
        self.kind = "accelerator"
        self.method = "measured"
        self.reason = "amdsmi energy accumulator"

    def energy_j(self) -> Interval:
        try:
            e = self.smi.amdsmi_get_energy_count(self.handle)
        except self.smi.AmdSmiException as ex:
            raise SensorError(f"{self.device}: amdsmi energy read failed: {ex}") from ex
        # The accumulator counts in units of counter_resolution microjoules.
        acc = e.get("energy_accumulator", e.get("power"))
        return relative(float(acc) * float(e["counter_resolution"]) / 1e6, *ACCURACY)


def probe(smi: Any = None) -> Probe:
    smi = smi if smi is not None else _load()
    if smi is None:
        return Probe("amdsmi", (), "amdsmi is not installed (it ships with ROCm)")
    try:
        smi.amdsmi_init()
        handles = smi.amdsmi_get_processor_handles()
    except smi.AmdSmiException as e:
        return Probe("amdsmi", (), f"amdsmi did not initialise ({e}): no AMD GPU driver")
    sensors = tuple(AmdSmiSensor(smi, h, i) for i, h in enumerate(handles))
    if not sensors:
        return Probe("amdsmi", (), "amdsmi found no AMD GPU")
    return Probe("amdsmi", sensors, f"{len(sensors)} AMD GPU(s)")
