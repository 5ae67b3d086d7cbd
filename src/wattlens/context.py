"""Where and how work ran, and the data that prices it: passed explicitly from the edges.

`Place` says where (zone or cloud region, facility, contracts); `Context` adds the boundary,
the factor set (built-in tables plus the user's files) and the grid feed. The CLI, the gateway
and `instrument()` build one from the configuration (wattlens.config) and hand it down to
`impacts` and `estimate`; no core function reads a global factor set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.grid import GridFeed

Boundary = Literal["accelerator", "server", "datacenter"]
BOUNDARIES: tuple[str, ...] = ("accelerator", "server", "datacenter")


@dataclass(frozen=True, slots=True)
class Place:
    """Where the work ran and under which contracts; unset fields are looked up or assumed (and said so)."""

    zone: str | None = None
    region: str | None = None
    provider: str | None = None
    facility: str | None = None
    pue: float | None = None
    wue_l_per_kwh: float | None = None
    market_g_per_kwh: float | None = None
    renewable_share: float | None = None

    def over(self, base: Place) -> Place:
        """This place with the base's values where this one says nothing.

        A zone or a region given here replaces both of the base's: they name one location.
        """
        located = self.zone is not None or self.region is not None
        return Place(
            zone=self.zone if located else base.zone,
            region=self.region if located else base.region,
            **{
                f.name: v if (v := getattr(self, f.name)) is not None else getattr(base, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("zone", "region")
            },
        )


def _builtin_factors() -> FactorSet:
    from wattlens.factors import builtin

    return builtin()


def _annual_feed() -> GridFeed:
    from wattlens.grid import AnnualFeed

    return AnnualFeed()


@dataclass(frozen=True)
class Context:
    """Everything a receipt depends on besides the work itself."""

    place: Place = field(default_factory=Place)
    boundary: str = "datacenter"
    factors: FactorSet = field(default_factory=_builtin_factors)
    grid: GridFeed = field(default_factory=_annual_feed)

    def at(self, place: Place) -> Context:
        """The same context at a more specific place (the given fields win)."""
        return dataclasses.replace(self, place=place.over(self.place))


__all__ = ["BOUNDARIES", "Boundary", "Context", "Place"]
