"""From the accelerators' energy to a boundary: the servers as operated (fleet factor, host) and the
datacenter (idle capacity, PUE), each an independent factor combined in quadrature."""

from __future__ import annotations

from wattlens.context import BOUNDARIES
from wattlens.errors import InputError
from wattlens.units import Interval, IntervalLike

# Host CPU + DRAM + network per unit of accelerator energy. Google (arXiv 2508.15734) reports
# 0.06 Wh host for 0.14 Wh accelerator on a median Gemini prompt (0.43); DGX H100's non-GPU
# power budget is 4.6 of 10.2 kW at full load; 0.25 covers well-packed hosts at low load.
HOST_RATIO = Interval(0.25, 0.43, 0.60)
# Idle and reserved capacity per unit of active server energy: Google 0.02 / 0.20 Wh (0.10);
# fleets with more headroom for peaks and failover run up to ~0.3.
IDLE_RATIO = Interval(0.05, 0.10, 0.30)
NO_FLEET = Interval(1.0, 1.0, 1.0)  # a given batch, or a team's own server: no fleet factor


# The parts of the work each boundary counts (facility: the PUE overhead, added by impacts).
BOUNDARY_PARTS: dict[str, tuple[str, ...]] = {
    "accelerator": ("accelerator",),
    "server": ("accelerator", "host"),
    "datacenter": ("accelerator", "host", "idle", "facility"),
}


_HOST_FACTOR = HOST_RATIO + 1.0
_IDLE_FACTOR = IDLE_RATIO + 1.0


def scale_to_boundary(
    accelerator_wh: Interval, boundary: str, pue: IntervalLike = 1.0, fleet: Interval = NO_FLEET
) -> Interval:
    """accelerator -> server (x fleet factor x (1 + host ratio)) -> datacenter (x (1 + idle ratio) x PUE).

    Each ratio is an independent unknown: its log spread adds to the energy's in quadrature."""
    if boundary == "accelerator":
        return accelerator_wh
    if boundary not in ("server", "datacenter"):
        raise InputError(f"unknown boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")
    factors = [fleet, _HOST_FACTOR]
    if boundary == "datacenter":
        factors.append(_IDLE_FACTOR)
        if not (isinstance(pue, int | float) and pue == 1.0):
            factors.append(Interval.of(pue))
    return accelerator_wh.times_independent(*factors)
