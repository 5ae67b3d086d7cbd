"""The receipt as HTTP response headers (`x-wattlens-*`), for clients that read no body."""

from __future__ import annotations

from wattlens.footprint import Footprint
from wattlens.units import Interval


def headers(fp: Footprint | None, why: str | None) -> dict[str, str]:
    if fp is None:
        return {"x-wattlens-warning": (why or "no receipt")[:300]}

    def h(iv: Interval) -> str:
        return f"{iv.mid:.6g}; low={iv.low:.6g}; high={iv.high:.6g}"

    return {
        "x-wattlens-energy-wh": h(fp.energy_wh),
        "x-wattlens-carbon-g": h(fp.carbon_location_g),
        "x-wattlens-water-ml": h(fp.water_ml),
        "x-wattlens-method": fp.method,
        "x-wattlens-zone": fp.grid.zone,
    }
