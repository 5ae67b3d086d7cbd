"""Test doubles for hardware that this machine does not have: NVML, amdsmi, a power trace."""

from __future__ import annotations

from wattlens.measure.sensors.base import Sensor
from wattlens.units import Interval


class FakeNVMLError(Exception):
    pass


class FakeGpu:
    def __init__(self, name: str, uuid: str, energy_mj: int | None, power_mw: int = 300_000) -> None:
        self.name, self.uuid, self.energy_mj, self.power_mw = name, uuid, energy_mj, power_mw


class FakeNVML:
    """The subset of pynvml that wattlens calls, over a list of fake GPUs."""

    NVMLError = FakeNVMLError

    def __init__(self, gpus: list[FakeGpu], fail_init: bool = False) -> None:
        self.gpus, self.fail_init, self.inited = gpus, fail_init, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise FakeNVMLError("Driver Not Loaded")
        self.inited = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise FakeNVMLError("Not Found")

    def nvmlDeviceGetName(self, h: FakeGpu) -> bytes:
        return h.name.encode()

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        if h.energy_mj is None:
            raise FakeNVMLError("Not Supported")
        return h.energy_mj

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        return h.power_mw


class FakeAmdSmiException(Exception):
    pass


class FakeAmdSmi:
    AmdSmiException = FakeAmdSmiException

    def __init__(self, accumulators: list[int], resolution_uj: float = 15.3) -> None:
        self.acc, self.res = accumulators, resolution_uj

    def amdsmi_init(self) -> None:
        pass

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.acc)))

    def amdsmi_get_energy_count(self, h: int) -> dict[str, float]:
        return {"energy_accumulator": self.acc[h], "counter_resolution": self.res, "timestamp": 0}


class ScriptedSensor(Sensor):
    """A counter whose cumulative joules the test sets by hand: a known power trace."""

    def __init__(self, device: str = "gpu:0", kind: str = "accelerator", method: str = "measured") -> None:
        self.device, self.kind, self.method = device, kind, method  # type: ignore[assignment]
        self.reason = "scripted"
        self.joules = 0.0
        self.reads = 0

    def energy_j(self) -> Interval:
        self.reads += 1
        return Interval.point(self.joules)
