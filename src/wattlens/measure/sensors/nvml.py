"""NVIDIA GPUs through NVML (nvidia-ml-py).

Uses the cumulative energy counter (Volta and newer). Where a GPU has none (older or some
virtual GPUs), a background thread integrates power samples - never a silent zero.
Honours CUDA_VISIBLE_DEVICES (indices or UUIDs).
"""

from __future__ import annotations

import os
import threading
import time
from types import ModuleType
from typing import Any

from wattlens.errors import SensorError
from wattlens.measure.sensors.base import Probe, Sensor, relative
from wattlens.units import Interval

# NVIDIA documents board power readings as accurate to +/-5 % (nvidia-smi, power.draw).
ACCURACY = (0.95, 1.05)
SAMPLE_S = 0.05  # power-sampling period where there is no energy counter


def _load() -> ModuleType | None:
    try:
        import pynvml  # nvidia-ml-py

        return pynvml  # type: ignore[no-any-return]
    except ImportError:
        return None


class NvmlEnergySensor(Sensor):
    """The GPU's own millijoule counter: reading it costs one driver call, and no thread runs."""

    def __init__(self, nvml: Any, handle: Any, index: str, name: str) -> None:
        self.nvml, self.handle = nvml, handle
        self.device = f"gpu:{index}"
        self.kind = "accelerator"
        self.method = "measured"
        self.model = name
        self.reason = f"{name}: NVML total energy counter"

    def energy_j(self) -> Interval:
        try:
            mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except self.nvml.NVMLError as e:
            raise SensorError(f"{self.device}: NVML energy read failed: {e}") from e
        return relative(mj / 1000.0, *ACCURACY)


class NvmlPowerSensor(Sensor):
    """Integrates NVML power samples (trapezoids) in a daemon thread; reads add the partial sample."""

    def __init__(self, nvml: Any, handle: Any, index: str, name: str, period_s: float = SAMPLE_S) -> None:
        self.nvml, self.handle, self.period_s = nvml, handle, period_s
        self.device = f"gpu:{index}"
        self.kind = "accelerator"
        self.method = "measured"
        self.model = name
        self.reason = f"{name}: no energy counter; power sampled every {period_s * 1000:.0f} ms and integrated"
        self._lock = threading.Lock()
        self._t, self._p = time.perf_counter(), self._power_w()
        self._j = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wattlens-{self.device}", daemon=True)
        self._thread.start()

    def _power_w(self) -> float:
        try:
            return float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0
        except self.nvml.NVMLError as e:
            raise SensorError(f"{self.device}: NVML power read failed: {e}") from e

    def _advance(self) -> float:
        now, p = time.perf_counter(), self._power_w()
        with self._lock:
            self._j += (self._p + p) / 2.0 * (now - self._t)
            self._t, self._p = now, p
            return self._j

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._advance()

    def energy_j(self) -> Interval:
        return relative(self._advance(), *ACCURACY)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def visible_handles(nvml: Any, env: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    """(label, handle) for each GPU this process may use, in CUDA_VISIBLE_DEVICES order."""
    env = dict(os.environ) if env is None else env
    count = nvml.nvmlDeviceGetCount()
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return [(str(i), nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    out = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        if item.isdigit():
            if int(item) >= count:
                break  # CUDA stops at the first invalid entry
            out.append((item, nvml.nvmlDeviceGetHandleByIndex(int(item))))
        elif item.startswith(("GPU-", "MIG-")):
            try:
                out.append((item, nvml.nvmlDeviceGetHandleByUUID(item)))
            except nvml.NVMLError:
                break
        else:
            break
    return out


def probe(nvml: Any = None, env: dict[str, str] | None = None, period_s: float = SAMPLE_S) -> Probe:
    nvml = nvml if nvml is not None else _load()
    if nvml is None:
        return Probe("nvml", (), "nvidia-ml-py is not installed (pip install 'wattlens[nvidia]')")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return Probe("nvml", (), f"NVML did not initialise ({e}): no NVIDIA driver or GPU")
    sensors: list[Sensor] = []
    for label, handle in visible_handles(nvml, env):
        name = nvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            sensors.append(NvmlEnergySensor(nvml, handle, label, name))
        except nvml.NVMLError:
            sensors.append(NvmlPowerSensor(nvml, handle, label, name, period_s))
    if not sensors:
        return Probe("nvml", (), "NVML found no visible GPU (check CUDA_VISIBLE_DEVICES)")
    return Probe("nvml", tuple(sensors), f"{len(sensors)} NVIDIA GPU(s)")
