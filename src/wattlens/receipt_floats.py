"""A receipt on plain floats: the fast path of `estimate_footprint`, the same operations in the same
order as the Interval arithmetic of scale_to_boundary and impacts.footprint (receipt.py's reference
path; tests/test_receipt_speed.py checks every figure against it)."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from wattlens.estimate.boundary import _HOST_FACTOR, _IDLE_FACTOR
from wattlens.footprint import Grid
from wattlens.units import S_PER_YEAR, WH_PER_KWH, Interval, independent_product, spread_factor

if TYPE_CHECKING:
    from wattlens.context import Context
    from wattlens.grid import GridReading
    from wattlens.receipt import LLMRequest, _Plan

GPUS_PER_HOST = 8


class _Priced:
    """What a receipt takes from one grid reading (the annual feed returns the same one every time)."""

    __slots__ = ("grid", "k_location", "k_marginal", "k_market", "reading", "warnings", "water_offsite")

    def __init__(self, plan: _Plan, reading: GridReading, include_facility: bool) -> None:
        site, g = plan.site, reading
        self.reading = reading
        self.grid = Grid(
            g.zone, g.year, g.intensity_g_per_kwh, dict(g.mix), g.resolution, g.basis, g.source, g.at, g.marginal_g_per_kwh
        )
        # impacts.footprint's codes: the plan's, the estimator's, the site's (zone, reading, other), the boundary's
        sw = (
            site.zone_warnings + g.warnings + site.other_warnings if g.warnings else site.zone_warnings + site.other_warnings
        )
        codes = [*plan.warnings, *plan.prepared.warnings, *sw]
        if not include_facility:
            codes.append("boundary-excludes-facility")
        self.warnings = tuple(dict.fromkeys(codes))
        # impacts.carbon_g and market_carbon_g: a scalar per kWh
        intensity = g.intensity_g_per_kwh
        self.k_location = float(intensity / WH_PER_KWH)
        if site.market_g_per_kwh is not None:
            self.k_market = float(site.market_g_per_kwh / WH_PER_KWH)
        elif site.renewable_share is not None:
            self.k_market = float(intensity * (1.0 - site.renewable_share) / WH_PER_KWH)
        else:
            self.k_market = self.k_location
        m = g.marginal_g_per_kwh
        self.k_marginal = float(m / WH_PER_KWH) if m is not None else None
        self.water_offsite = float(site.zone.water_offsite_l_per_kwh)


class _Fast:
    """The receipt on plain floats: the same operations, in the same order, as the Interval arithmetic
    of scale_to_boundary and impacts.footprint, with one Interval built per figure. Taken only where
    every factor is non-negative (where Interval arithmetic multiplies bound by bound)."""

    __slots__ = (
        "assumed",
        "chain",
        "embodied",
        "facility",
        "it",
        "priced",
        "pue",
        "wue",
    )

    def __init__(self, plan: _Plan, boundary: str) -> None:
        site, prepared = plan.site, plan.prepared
        # scale_to_boundary's factors (fleet, host, idle), the PUE and the WUE, log spreads worked out once
        it: list[Interval] = []
        if boundary != "accelerator":
            it += [prepared.fleet, _HOST_FACTOR]
            if boundary == "datacenter":
                it.append(_IDLE_FACTOR)
        self.it = tuple(spread_factor(f.low, f.mid, f.high) for f in it)
        self.facility = "facility" in plan.boundary_parts
        self.pue = (spread_factor(site.pue.low, site.pue.mid, site.pue.high),)
        self.wue = (spread_factor(site.wue_l_per_kwh.low, site.wue_l_per_kwh.mid, site.wue_l_per_kwh.high),)
        # independent_product's operations, unrolled, where every factor has log spreads (all lows > 0):
        # the boundary factors' mids and spreads, then the PUE's and the WUE's (mid, down, up)
        p, w = self.pue[0], self.wue[0]
        self.chain = (
            (
                tuple(f[1] for f in self.it),
                tuple(f[3] for f in self.it),
                tuple(f[4] for f in self.it),
                (p[1], p[3], p[4]),
                (w[1], w[3], w[4]),
            )
            if all(f[0] > 0 for f in (*self.it, p, w)) and self.it
            else None
        )
        # impacts.embodied_g per share: emissions per occupied second (low, mid, high) and 1000 x count
        emb: list[tuple[float, float, float, float]] = []
        for hw, count in zip(plan.hosts or (), (1.0, 1.0 / GPUS_PER_HOST), strict=False):
            kg, life = hw.embodied_kg, hw.lifetime_years
            emb.append(
                (
                    kg.low / (life.high * S_PER_YEAR),
                    kg.mid / (life.mid * S_PER_YEAR),
                    kg.high / (life.low * S_PER_YEAR),
                    1000.0 * count,
                )
            )
        self.embodied = tuple(emb)
        case = prepared.case
        # RequestEstimate.assumptions, with the two figures that depend on the tokens still to be set
        self.assumed: dict[str, Any] = {
            "serving_profile": prepared.basis_name[0],
            "hardware": prepared.acc.name,
            "gpus": prepared.n_gpus,
            "batch_per_gpu": None,
            "precision": case.precision,
            "active_params_b": round(case.active[1], 3),
            "kv_kb_per_token": round(prepared.mid.c_kv / 1e3, 1),
            "architecture": prepared.basis_name[1],
            "prefill_efficiency": case.profile.prefill_efficiency[1],
            "tokens_per_s_per_gpu": None,
            "fleet_factor": prepared.fleet.mid,
        }
        self.priced: _Priced | None = None

    @staticmethod
    def eligible(plan: _Plan) -> bool:
        site = plan.site
        lows = [site.pue.low, site.wue_l_per_kwh.low, _HOST_FACTOR.low, _IDLE_FACTOR.low]
        for hw in plan.hosts or ():
            lows += [hw.embodied_kg.low, hw.lifetime_years.low]
        return (
            all(x >= 0 for x in lows)
            and float(site.zone.water_offsite_l_per_kwh) >= 0
            and (site.market_g_per_kwh is None or site.market_g_per_kwh >= 0)
        )

    def figures(self, plan: _Plan, request: LLMRequest, ctx: Context, at: dt.datetime | None) -> _Figures | None:
        """Every figure of the receipt as floats, or None where the float path does not apply."""
        site = plan.site
        reading = ctx.grid.reading(site.zone, site.region_row, at)
        priced = self.priced
        if priced is None or priced.reading is not reading:
            priced = self.priced = _Priced(plan, reading, self.facility)
        k_loc, k_mkt, k_marg = priced.k_location, priced.k_market, priced.k_marginal
        if not (k_loc >= 0 and k_mkt >= 0 and (k_marg is None or k_marg >= 0)):
            return None
        inp, out, cached, reasoning = (
            request.input_tokens,
            request.output_tokens,
            request.cached_input_tokens,
            request.reasoning_tokens,
        )
        a_lo, a_mid, a_hi, s_lo, s_mid, s_hi, batch, step = plan.prepared.figures(inp, out + reasoning, cached)
        if not (a_lo >= 0 and s_lo >= 0):
            return None
        # scale_to_boundary: x fleet factor, x (1 + host ratio), x (1 + idle ratio), each an independent
        # factor; then x PUE (facility) and x WUE (on-site water), likewise
        chain = self.chain
        got = _chained(a_lo, a_mid, a_hi, chain, self.facility) if chain is not None and a_lo > 0 else None
        if got is not None:
            e_lo, e_mid, e_hi, f_lo, f_mid, f_hi, wo = got
        else:
            e_lo, e_mid, e_hi = independent_product(a_lo, a_mid, a_hi, self.it) if self.it else (a_lo, a_mid, a_hi)
            if self.facility:
                f_lo, f_mid, f_hi = independent_product(e_lo, e_mid, e_hi, self.pue)
            else:
                f_lo, f_mid, f_hi = e_lo, e_mid, e_hi
            wo = independent_product(e_lo, e_mid, e_hi, self.wue)
        lo = mid = hi = 0.0
        for p_lo, p_mid, p_hi, k in self.embodied:
            lo, mid, hi = lo + p_lo * s_lo * k, mid + p_mid * s_mid * k, hi + p_hi * s_hi * k
        x = priced.water_offsite
        return (
            priced,
            (inp, cached, out, reasoning),
            (
                e_lo,
                e_mid,
                e_hi,
                f_lo,
                f_mid,
                f_hi,
                f_lo * k_loc,
                f_mid * k_loc,
                f_hi * k_loc,
                f_lo * k_mkt,
                f_mid * k_mkt,
                f_hi * k_mkt,
                lo,
                mid,
                hi,
                *wo,
                f_lo * x,
                f_mid * x,
                f_hi * x,
            ),
            (f_lo * k_marg, f_mid * k_marg, f_hi * k_marg) if k_marg is not None else None,
            self.assumptions(batch, step),
        )

    def assumptions(self, batch: float, step: float) -> dict[str, Any]:
        """RequestEstimate.assumptions from the replica's batch and the decode step: the plan's own
        entries copied (in their order), the two that depend on the tokens set."""
        d = self.assumed.copy()
        per_gpu = batch / d["gpus"]
        d["batch_per_gpu"] = round(per_gpu, 2)
        d["tokens_per_s_per_gpu"] = round(per_gpu / step, 1)
        return d


_Trio = tuple[float, float, float]
_Chain = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], _Trio, _Trio]  # mids, downs, ups, PUE, WUE
_log, _exp, _hypot = math.log, math.exp, math.hypot


def _chained(
    a_lo: float, a_mid: float, a_hi: float, chain: _Chain, facility: bool
) -> tuple[float, float, float, float, float, float, tuple[float, float, float]] | None:
    """independent_product through the boundary factors, then by the PUE and by the WUE: the same
    operations on the same floats in the same order (so the same bits), without its checks and lists.
    The server-boundary energy's log spreads are computed once for both of its products."""
    mids, downs, ups, (p_mid, p_down, p_up), (w_mid, w_down, w_up) = chain
    mid = a_mid
    for m in mids:
        mid *= m
    e_lo, e_hi = mid * _exp(-_hypot(_log(a_mid / a_lo), *downs)), mid * _exp(_hypot(_log(a_hi / a_mid), *ups))
    if not e_lo > 0:  # underflow: no log spread below; the general path takes it
        return None
    d, u = _log(mid / e_lo), _log(e_hi / mid)
    w = mid * w_mid
    water = (w * _exp(-_hypot(d, w_down)), w, w * _exp(_hypot(u, w_up)))
    if not facility:
        return e_lo, mid, e_hi, e_lo, mid, e_hi, water
    f = mid * p_mid
    return e_lo, mid, e_hi, f * _exp(-_hypot(d, p_down)), f, f * _exp(_hypot(u, p_up)), water


# (grid and warnings, tokens (input, cached, output, reasoning), the 21 bounds in the receipt's order,
#  the marginal carbon bounds or None, the assumptions)
_Figures = tuple[_Priced, tuple[int, int, int, int], tuple[float, ...], tuple[float, float, float] | None, dict[str, Any]]
