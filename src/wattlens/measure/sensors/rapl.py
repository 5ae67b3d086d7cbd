"""Intel/AMD RAPL through the Linux powercap sysfs tree.

Counts each package once and each DRAM domain once; core/uncore are inside the package and
psys covers the whole platform, so they are never added on top (psys is used only when the
machine exposes no package domain). Counter wrap-around is handled with max_energy_range_uj.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from wattlens.errors import SensorError
from wattlens.measure.sensors.base import Probe, Sensor, relative
from wattlens.units import Interval

POWERCAP = Path("/sys/class/powercap")
ACCURACY = (0.95, 1.05)  # RAPL tracks plug power within a few percent on recent CPUs (Khan et al. 2018)
GRANT_HINT = (
    "RAPL energy files are readable by root only on most kernels (since CVE-2020-8694). Grant read access "
    "with `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`, "
    "or a udev rule, or run as root."
)


class RaplSensor(Sensor):
    def __init__(self, domain: Path, device: str, kind: str) -> None:
        self.path = domain / "energy_uj"
        self.device = device
        self.kind = "dram" if kind == "dram" else "cpu"
        self.method = "measured"
        self.reason = f"RAPL counter {domain.name} ({device})"
        try:
            self.range_uj = int((domain / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            self.range_uj = 2**32  # the architectural counter width when the kernel does not say
        self._fd = os.open(self.path, os.O_RDONLY)
        self._lock = threading.Lock()
        self._last = self._raw()
        self._wraps = 0

    def _raw(self) -> int:
        return int(os.pread(self._fd, 32, 0))

    def energy_j(self) -> Interval:
        with self._lock:
            raw = self._raw()
            if raw < self._last:  # the counter wrapped since the last read
                self._wraps += 1
            self._last = raw
            total_uj = self._wraps * self.range_uj + raw
        return relative(total_uj / 1e6, *ACCURACY)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _domains(root: Path) -> list[tuple[Path, str]]:
    out = []
    for d in sorted(root.glob("intel-rapl*")):
        try:
            out.append((d, (d / "name").read_text().strip()))
        except OSError:
            continue
    return out


def probe(root: Path = POWERCAP) -> Probe:
    if not root.is_dir():
        return Probe("rapl", (), f"{root} not present (no RAPL: not Linux, a VM without powercap, or no driver)")
    domains = _domains(root)
    if not domains:
        return Probe("rapl", (), f"{root} has no intel-rapl domains")
    packages = [(d, n) for d, n in domains if n.startswith("package")]
    dram = [(d, n) for d, n in domains if n == "dram"]
    psys = [(d, n) for d, n in domains if n == "psys"]
    chosen = [(d, f"cpu:{n}", "package") for d, n in packages]
    chosen += [(d, f"dram:{d.name}", "dram") for d, _ in dram]
    if not packages and psys:
        chosen = [(d, "host:psys", "psys") for d, _ in psys]
    sensors: list[Sensor] = []
    try:
        for d, device, kind in chosen:
            sensors.append(RaplSensor(d, device, kind))
    except PermissionError as e:
        for s in sensors:
            s.close()
        return Probe("rapl", (), f"{e.filename}: permission denied. {GRANT_HINT}")
    except OSError as e:
        raise SensorError(f"cannot read RAPL counter {e.filename}: {e.strerror}") from e
    names = ", ".join(s.device for s in sensors)
    return Probe("rapl", tuple(sensors), f"powercap counters: {names} (core, uncore and psys not added on top)")
