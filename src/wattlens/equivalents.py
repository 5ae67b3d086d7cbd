"""Plain-language equivalents of a receipt, each constant cited (docs/methodology.md lists them).

Pure functions; the chat page fetches the same constants from /wattlens/api/equivalents so the
browser and Python always agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Constant:
    value: float
    unit: str
    source: str


CONSTANTS: dict[str, Constant] = {
    "led_bulb_w": Constant(
        10.0,
        "W",
        "A 10 W LED bulb gives about 800 lm, the light of a 60 W incandescent bulb (US DOE, LED Lighting, energy.gov, 2024)",
    ),
    "phone_charge_wh": Constant(
        15.0,
        "Wh",
        "One full charge of a recent smartphone battery, about 4,000 mAh at 3.85 V (manufacturer specifications, 2023-2024)",
    ),
    "car_g_per_km": Constant(
        108.2,
        "gCO2/km",
        "Average CO2 of new passenger cars registered in the EU in 2023, WLTP (European Environment Agency, 2024)",
    ),
    "drop_ml": Constant(0.05, "mL", "One drop as defined in pharmacy: 20 drops per mL (USP/Ph. Eur. convention)"),
}


def led_seconds(energy_wh: float) -> float:
    """Seconds a 10 W LED bulb runs on this energy."""
    return energy_wh / CONSTANTS["led_bulb_w"].value * 3600.0


def phone_charge_share(energy_wh: float) -> float:
    """Share of one smartphone charge (0.01 = 1 %)."""
    return energy_wh / CONSTANTS["phone_charge_wh"].value


def car_metres(carbon_g: float) -> float:
    """Metres an average new EU car drives for the same CO2."""
    return carbon_g / CONSTANTS["car_g_per_km"].value * 1000.0


def drops(water_ml: float) -> float:
    return water_ml / CONSTANTS["drop_ml"].value


def as_json() -> dict[str, dict[str, object]]:
    return {k: {"value": c.value, "unit": c.unit, "source": c.source} for k, c in CONSTANTS.items()}
