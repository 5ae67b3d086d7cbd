"""One number formatter for reports, plans, disclosures and the terminal: a sensible unit and significant digits.

A quantity is scaled to the unit of its ladder (mL → L → m³, Wh → kWh → MWh, W → kW → MW,
g → kg → t) that puts it between 1 and 1,000, then shown with two significant digits by default:
intervals are wide, so more digits would claim a precision the figures do not have. An interval's
bounds are shown in the unit of its middle, so "2.2 L (0.45–18 L)" reads at a glance.
web/common.js has the same rules for the pages (tested against this module).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Each ladder: (unit, size in the base unit), smallest first. Values below 1 stay in the base unit.
LADDERS: dict[str, tuple[tuple[str, float], ...]] = {
    "Wh": (("Wh", 1.0), ("kWh", 1e3), ("MWh", 1e6), ("GWh", 1e9), ("TWh", 1e12)),
    "W": (("W", 1.0), ("kW", 1e3), ("MW", 1e6), ("GW", 1e9)),
    "mL": (("mL", 1.0), ("L", 1e3), ("m³", 1e6)),
    "gCO2e": (("gCO2e", 1.0), ("kgCO2e", 1e3), ("tCO2e", 1e6), ("ktCO2e", 1e9)),
}
# Units a caller may start from, as (ladder, size in its base unit).
ALIASES: dict[str, tuple[str, float]] = {unit: (base, size) for base, ladder in LADDERS.items() for unit, size in ladder}
ALIASES.update({"g": ("gCO2e", 1.0), "kg": ("gCO2e", 1e3), "t": ("gCO2e", 1e6), "m3": ("mL", 1e6), "kL": ("mL", 1e6)})


def number(x: float, sig: int = 2) -> str:
    """x with `sig` significant digits; whole digits are never rounded away (448, not 450); 12,345 grouped."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    a = abs(x)
    if a >= 10 ** (sig - 1):
        return f"{x:,.0f}"
    if a < 1e-4:  # as web/common.js's toExponential(sig - 1): 7.0e-05
        return f"{x:.{sig - 1}e}"
    decimals = sig - 1 - math.floor(math.log10(a))
    rounded = round(x, decimals)
    if abs(rounded) >= 10 ** (sig - 1):  # 9.96 rounds up to 10, not 10.0
        return f"{rounded:,.0f}"
    decimals = sig - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{decimals}f}"


def scale(x: float, unit: str) -> tuple[float, str]:
    """The divisor and the unit label that put |x| (given in `unit`) in [1, 1000), or the base unit below 1."""
    if unit not in ALIASES:
        return 1.0, unit
    base, size = ALIASES[unit]
    ladder = LADDERS[base]
    a = abs(x) * size
    chosen = ladder[0]
    for step in ladder:
        if a >= step[1]:
            chosen = step
    return chosen[1] / size, chosen[0]


def quantity(x: float, unit: str, sig: int = 2) -> str:
    """ "2.2 L" for quantity(2170, "mL")."""
    div, label = scale(x, unit)
    return f"{number(x / div, sig)} {label}"


def interval(mid: float, low: float, high: float, unit: str, sig: int = 2) -> str:
    """ "2.2 L (0.45–18 L)": the bounds in the unit of the middle."""
    if low == mid == high:
        return quantity(mid, unit, sig)
    div, label = scale(mid if mid else high, unit)
    return f"{number(mid / div, sig)} {label} ({number(low / div, sig)}–{number(high / div, sig)} {label})"


def iv(d: Mapping[str, float] | None, unit: str, sig: int = 2) -> str:
    """An interval dict {low, mid, high} (or None: "–")."""
    return "–" if d is None else interval(float(d["mid"]), float(d["low"]), float(d["high"]), unit, sig)


def share(part: float, whole: float) -> str:
    """A share as a percentage with enough digits to tell 0.3 % from 0 %."""
    if whole <= 0:
        return "–"
    p = part / whole * 100
    if p == 0 or p >= 10 or p == 100:
        return f"{p:.0f} %"
    return f"{number(p, 2)} %"


def counts(items: Mapping[str, int], noun: str = "") -> str:
    """ "estimated 1 (100 %)" from {"estimated": 1}: counts in words, never a Python dict."""
    n = sum(items.values())
    if not n:
        return f"no {noun}".strip() if noun else "none"
    return ", ".join(f"{k} {v:,} ({share(v, n)})" for k, v in items.items() if v)
