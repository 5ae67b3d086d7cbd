"""The receipt: one immutable type with one JSON form everywhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from wattlens.units import Interval

Method = Literal["measured", "estimated", "mixed"]


@dataclass(frozen=True, slots=True)
class Grid:
    """The grid behind the energy: zone, data year, intensity and generation mix (shares sum to 1).

    resolution (annual, hourly, ...), basis (life-cycle or direct combustion) and source say what
    the intensity is; `at` is the start of the interval used when the feed is time-resolved.
    """

    zone: str
    year: int
    intensity_g_per_kwh: float
    mix: dict[str, float]
    resolution: str = "annual"
    basis: str = "life-cycle"
    source: str = ""
    at: str | None = None
    marginal_g_per_kwh: float | None = None
    # The rounded form, made on first use: receipts of one grid reading share their Grid (receipt.py).
    _dict: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        d = self._dict
        if d is None:
            d = self._as_dict()
            object.__setattr__(self, "_dict", d)
        return {**d, "mix": dict(d["mix"])}  # a fresh dict each time: callers add to it

    def _as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "zone": self.zone,
            "year": self.year,
            "intensity_g_per_kwh": round(self.intensity_g_per_kwh, 3),
            "resolution": self.resolution,
            "basis": self.basis,
            "source": self.source,
        }
        if self.at is not None:
            d["at"] = self.at
        if self.marginal_g_per_kwh is not None:
            d["marginal_g_per_kwh"] = round(self.marginal_g_per_kwh, 3)
        d["mix"] = {k: round(v, 5) for k, v in self.mix.items()}
        return d

    @classmethod
    def from_dict(cls, g: dict[str, Any]) -> Grid:
        marginal = g.get("marginal_g_per_kwh")
        return cls(
            g["zone"],
            int(g["year"]),
            float(g["intensity_g_per_kwh"]),
            dict(g["mix"]),
            str(g.get("resolution", "annual")),
            str(g.get("basis", "life-cycle")),
            str(g.get("source", "")),
            g.get("at"),
            float(marginal) if marginal is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int = 0
    cached_input: int = 0
    output: int = 0
    reasoning: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "reasoning": self.reasoning,
        }


@dataclass(frozen=True, slots=True)
class Footprint:
    """Energy, carbon and water of one unit of work, each an Interval.

    energy_wh is IT energy (what the boundary includes short of the facility);
    facility_wh adds the data-centre overhead (x PUE) when "facility" is in the boundary.
    """

    energy_wh: Interval
    facility_wh: Interval
    carbon_location_g: Interval
    carbon_market_g: Interval
    embodied_g: Interval
    water_onsite_ml: Interval
    water_offsite_ml: Interval
    grid: Grid
    method: Method
    boundary: tuple[str, ...]
    factors_version: str
    model: str | None = None
    tokens: Tokens | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    carbon_marginal_g: Interval | None = None  # where the grid feed gives a marginal intensity
    assumptions: dict[str, Any] | None = None  # an estimate's serving assumptions (batch, chips, tokens/s)
    measurement: dict[str, Any] | None = None  # a measured receipt's window: seconds, devices, joules (measure/meter.py)

    @property
    def water_ml(self) -> Interval:
        return self.water_onsite_ml + self.water_offsite_ml

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "energy_wh": self.energy_wh.as_dict(),
            "facility_wh": self.facility_wh.as_dict(),
            "carbon_g": {
                "location": self.carbon_location_g.as_dict(),
                "market": self.carbon_market_g.as_dict(),
                "embodied": self.embodied_g.as_dict(),
            },
            "water_ml": {"onsite": self.water_onsite_ml.as_dict(), "offsite": self.water_offsite_ml.as_dict()},
            "grid": self.grid.as_dict(),
            "method": self.method,
            "boundary": list(self.boundary),
        }
        if self.carbon_marginal_g is not None:
            d["carbon_g"]["marginal"] = self.carbon_marginal_g.as_dict()
        if self.grid.resolution != "annual" and "grid-mix-annual" not in self.warnings:
            # The interval's own carbon-free share: the grid part of a 24/7 CFE score (docs/grid.md).
            from wattlens.grid import CARBON_FREE

            d["grid"]["cfe_share"] = round(sum(self.grid.mix.get(k, 0.0) for k in CARBON_FREE), 5)
        if self.model is not None:
            d["model"] = self.model
        if self.tokens is not None:
            d["tokens"] = self.tokens.as_dict()
        if self.assumptions is not None:
            d["assumptions"] = self.assumptions
        if self.measurement is not None:
            d["measurement"] = self.measurement
        d["factors_version"] = self.factors_version
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Footprint:
        tokens = d.get("tokens")
        marginal = d["carbon_g"].get("marginal")
        return cls(
            energy_wh=Interval.from_dict(d["energy_wh"]),
            facility_wh=Interval.from_dict(d["facility_wh"]),
            carbon_location_g=Interval.from_dict(d["carbon_g"]["location"]),
            carbon_market_g=Interval.from_dict(d["carbon_g"]["market"]),
            embodied_g=Interval.from_dict(d["carbon_g"]["embodied"]),
            water_onsite_ml=Interval.from_dict(d["water_ml"]["onsite"]),
            water_offsite_ml=Interval.from_dict(d["water_ml"]["offsite"]),
            grid=Grid.from_dict(d["grid"]),
            method=d["method"],
            boundary=tuple(d["boundary"]),
            factors_version=d["factors_version"],
            model=d.get("model"),
            tokens=Tokens(**tokens) if tokens else None,
            warnings=tuple(d.get("warnings", ())),
            carbon_marginal_g=Interval.from_dict(marginal) if marginal else None,
            assumptions=d.get("assumptions"),
            measurement=d.get("measurement"),
        )


def positional_builder(cls: type) -> Any:
    """A positional constructor of a frozen slots dataclass that sets each slot through its descriptor:
    what the dataclass's own __init__ does (no __post_init__, no defaults), less its per-field
    object.__setattr__ look-ups. For the hot paths (receipt.py, metering's record); the fields in their order."""
    names: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]  # a slots dataclass: its fields in order
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    ns.update({f"_set_{n}": vars(cls)[n].__set__ for n in names})
    body = "".join(f"    _set_{n}(o, {n})\n" for n in names)
    exec(f"def new({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", ns)
    return ns["new"]


new_footprint: Callable[..., Footprint] = positional_builder(Footprint)
new_tokens: Callable[[int, int, int, int], Tokens] = positional_builder(Tokens)
