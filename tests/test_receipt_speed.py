"""The receipt's fast path changes no number: plans cached per model and context, prepared estimates,
the grid memo, the float path (MidModel, receipt._Fast) and the cheaper rounding give exactly the
receipts the step-by-step path gives (the reference below: model.request_parts through Case.run, then
Interval arithmetic through scale_to_boundary and impacts.footprint)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from wattlens import receipt
from wattlens.context import Context, Place
from wattlens.estimate import RequestEstimate, estimate_request, prepare_request, scale_to_boundary
from wattlens.estimate.spread import MidModel, bucket, input_spreads, log_spread
from wattlens.factors import builtin, load
from wattlens.footprint import Footprint, Tokens
from wattlens.impacts import EmbodiedShare, footprint
from wattlens.receipt import LLMRequest, estimate_footprint, estimate_receipt
from wattlens.units import Interval

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "llama3.1:8b", "gpt-oss-120b", "no-such-model-xyz"]
PLACES = [Place(), Place(zone="FR"), Place(region="europe-west9"), Place(zone="PL", pue=1.3, market_g_per_kwh=50.0)]
TOKENS = [(0, 0, 0, 0), (1, 1, 0, 0), (250, 350, 0, 0), (1155, 211, 500, 60), (100_000, 500, 0, 0)]


def _cold(req: LLMRequest, ctx: Context, **kw: object) -> dict[str, object]:
    receipt._PLANS.clear()  # the prepared requests with their own spread caches go too
    input_spreads.cache_clear()
    return estimate_footprint(req, ctx, unknown_generic=True, **kw).as_dict()  # type: ignore[arg-type]


def test_warm_receipts_equal_cold_ones() -> None:
    for model in MODELS:
        for place in PLACES:
            ctx = Context(place)
            for boundary in ("accelerator", "server", "datacenter"):
                for i, o, c, r in TOKENS:
                    req = LLMRequest(model=model, input_tokens=i, output_tokens=o, cached_input_tokens=c, reasoning_tokens=r)
                    cold = _cold(req, ctx, boundary=boundary)
                    # warm: the plan from a request with other token counts, then this one
                    estimate_footprint(
                        LLMRequest(model=model, input_tokens=7, output_tokens=9),
                        ctx,
                        boundary=boundary,
                        unknown_generic=True,
                    )
                    warm = estimate_footprint(req, ctx, boundary=boundary, unknown_generic=True).as_dict()
                    assert warm == cold, (model, place, boundary, i, o)


def test_a_plan_is_not_reused_for_another_factor_set(tmp_path: Path) -> None:
    """Two factor sets with the same place: the second one's zone figures must reach its receipt."""
    import csv
    import io

    text = (Path(__file__).parents[1] / "src/wattlens/factors/data/zones.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    fr = next(r for r in rows if r["zone"] == "FR")
    fr["intensity_g_per_kwh"] = "560.0"
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(fr))
    w.writeheader()
    w.writerow(fr)
    zones = tmp_path / "zones_ours.csv"
    zones.write_text(out.getvalue(), encoding="utf-8")
    ours = load([zones])
    req = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
    a = estimate_footprint(req, Context(Place(zone="FR")))
    b = estimate_footprint(req, Context(Place(zone="FR"), factors=ours))
    assert b.grid.intensity_g_per_kwh == 560.0 != a.grid.intensity_g_per_kwh
    ratio = b.carbon_location_g.mid / a.carbon_location_g.mid
    assert math.isclose(ratio, 560.0 / a.grid.intensity_g_per_kwh, rel_tol=1e-9)


def test_a_prepared_request_equals_the_whole_estimate() -> None:
    kw = dict(active_params_b=Interval(20, 40, 80), total_params_b=Interval(100, 200, 400), hardware="H100", gpus=None)
    prepared = prepare_request(factors=builtin(), provider="openai", hardware_alternatives=("H200", "B200"), **kw)  # type: ignore[arg-type]
    for i, o, c in [(0, 0, 0), (10, 1, 0), (2000, 300, 1000), (100_000, 50, 0)]:
        whole = estimate_request(
            input_tokens=i, output_tokens=o, cached_input_tokens=c, factors=builtin(), provider="openai",
            hardware_alternatives=("H200", "B200"), **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        part = prepared.evaluate(i, o, c)
        assert (part.accelerator_wh, part.accelerator_s, part.warnings, part.assumptions) == (
            whole.accelerator_wh, whole.accelerator_s, whole.warnings, whole.assumptions,
        )  # fmt: skip


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_rounding_to_six_significant_digits_is_the_decimal_rule(x: float) -> None:
    expected = x if x == 0 else round(x, 5 - math.floor(math.log10(abs(x))))
    assert Interval(x, x, x).as_dict() == {"low": expected, "mid": expected, "high": expected}


def _reference_estimate(plan: receipt._Plan, i: int, o: int, c: int) -> RequestEstimate:
    """PreparedRequest.evaluate as it was before the float path: Case.run (model.request_parts)."""
    pr = plan.prepared
    case = pr.case
    fin, fout, fcached = float(i), float(o), float(c)
    w_mid, pj, dj, ps, ds, step = case.run(case.active[1], case.total[1], pr.b_mid, pr.acc, pr.n_gpus, fin, fout, fcached)
    j_mid = pj + dj
    down, up = [-pr.q_low], [pr.q_high]
    if pr.unknown:
        for d, u in input_spreads(case, bucket(fin), bucket(fout), bucket(fcached)):
            down.append(d)
            up.append(u)
    e_lo, e_mid, e_hi = case.profile.prefill_efficiency
    if pj > 0:
        d, u = log_spread(j_mid, [dj + pj * e_mid / e for e in (e_lo, e_hi)])
        down.append(d)
        up.append(u)
    if not pr.calibrated:
        down.append(math.log(1.3))
        up.append(math.log(1.3))
    lo_f, hi_f = math.exp(-math.hypot(*down)), math.exp(math.hypot(*up))
    energy = Interval(j_mid * lo_f / 3600.0, j_mid / 3600.0, j_mid * hi_f / 3600.0)
    s_mid = ps + ds
    basis = (*pr.basis_name, e_mid, pr.fleet.mid, w_mid, step)
    accelerator_s = Interval(s_mid * lo_f, s_mid, s_mid * hi_f)
    return RequestEstimate(energy, accelerator_s, pr.n_gpus, pr.acc.name, pr.warnings, basis, pr.fleet)


def _reference(req: LLMRequest, ctx: Context, boundary: str, embodied: bool = True) -> Footprint:
    """estimate_footprint step by step, on Interval arithmetic."""
    plan = receipt._plan(req, ctx, boundary, embodied, True)
    est = _reference_estimate(plan, req.input_tokens, req.output_tokens + req.reasoning_tokens, req.cached_input_tokens)
    shares = ()
    if plan.hosts is not None:
        acc_hw, host_hw = plan.hosts
        shares = (EmbodiedShare(acc_hw, 1.0, est.accelerator_s), EmbodiedShare(host_hw, 1.0 / 8, est.accelerator_s))
    return footprint(
        scale_to_boundary(est.accelerator_wh, boundary, fleet=est.fleet),
        plan.site.at(ctx, None),
        method="estimated",
        boundary=plan.boundary_parts,
        factors_version=ctx.factors.version,
        embodied=shares,
        model=plan.model,
        tokens=Tokens(req.input_tokens, req.cached_input_tokens, req.output_tokens, req.reasoning_tokens),
        warnings=plan.warnings + est.warnings if est.warnings else plan.warnings,
        assumptions=est.assumptions,
    )


REQUESTS = [
    *(LLMRequest(model=m) for m in MODELS),
    LLMRequest(model="my-8b", active_params_b=8.0, batch_size=16.0, hardware="A100-80GB", gpus=1),
    LLMRequest(model="my-moe", active_params_b=12.0, total_params_b=120.0, precision="fp8", hardware="H200"),
    LLMRequest(model="gpt-4o-mini", hardware="B200", gpus=8),
    LLMRequest(model="claude-sonnet-4-5", batch_size=4.0),
]
MORE_PLACES = [
    *PLACES,
    Place(zone="DE", renewable_share=0.4),
    Place(region="us-east-1"),
    Place(zone="US-CA", pue=1.1, wue_l_per_kwh=0.2),
]


def _receipts_equal(req: LLMRequest, ctx: Context, boundary: str, embodied: bool = True) -> None:
    fast = estimate_footprint(req, ctx, boundary=boundary, unknown_generic=True, embodied=embodied)
    ref = _reference(req, ctx, boundary, embodied)
    assert fast == ref, (req, ctx.place, boundary)  # every float of every field, bit for bit
    assert fast.as_dict() == ref.as_dict()
    assert Footprint.from_dict(fast.as_dict()).as_dict() == fast.as_dict()
    # the JSON form built straight from the figures (metering's Settlement.receipt), with a caller's codes too
    figures = estimate_receipt(req, ctx, boundary=boundary, unknown_generic=True, embodied=embodied)
    assert json.dumps(figures.as_dict()) == json.dumps(ref.as_dict())  # key order included
    extra = ("usage-invalid", "market-equals-location")
    merged = dataclasses.replace(ref, warnings=tuple(dict.fromkeys((*ref.warnings, *extra))))
    assert json.dumps(figures.as_dict(extra)) == json.dumps(merged.as_dict())
    assert figures.footprint == ref


def test_the_float_path_gives_the_reference_receipt() -> None:
    for base in REQUESTS:
        for place in MORE_PLACES:
            ctx = Context(place)
            for boundary in ("accelerator", "server", "datacenter"):
                for i, o, c, r in [*TOKENS, (3, 100_000, 0, 0), (40_000, 2_000, 39_000, 500)]:
                    req = dataclasses.replace(
                        base, input_tokens=i, output_tokens=o, cached_input_tokens=c, reasoning_tokens=r
                    )
                    _receipts_equal(req, ctx, boundary)
            _receipts_equal(dataclasses.replace(base, input_tokens=500, output_tokens=90), ctx, "datacenter", False)


@given(
    st.sampled_from(REQUESTS),
    st.sampled_from(MORE_PLACES),
    st.sampled_from(["accelerator", "server", "datacenter"]),
    st.integers(0, 300_000),
    st.integers(0, 50_000),
    st.integers(0, 5_000),
    st.floats(0, 1),
)
def test_the_float_path_gives_the_reference_receipt_for_any_tokens(
    base: LLMRequest, place: Place, boundary: str, i: int, o: int, r: int, cached_share: float
) -> None:
    req = dataclasses.replace(
        base, input_tokens=i, output_tokens=o, reasoning_tokens=r, cached_input_tokens=int(i * cached_share)
    )
    _receipts_equal(req, Context(place), boundary)


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1))
def test_the_mid_model_is_case_run_bit_for_bit(fin: float, fout: float, cached_share: float) -> None:
    fcached = fin * cached_share
    for base in REQUESTS:
        plan = receipt._plan(base, Context(Place()), "datacenter", True, True)
        pr = plan.prepared
        case = pr.case
        w, pj, dj, ps, ds, step = case.run(case.active[1], case.total[1], pr.b_mid, pr.acc, pr.n_gpus, fin, fout, fcached)
        mid = MidModel(case, pr.b_mid, pr.n_gpus)
        assert mid.parts(fin, fout, fcached) == (pj, dj, ps, ds, step, w.batch_size)


def test_a_negative_factor_takes_the_interval_path(tmp_path: Path) -> None:
    """A user's table with a negative water factor: no float path, and the receipt is the reference's."""
    import csv
    import io

    text = (Path(__file__).parents[1] / "src/wattlens/factors/data/zones.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    fr = next(r for r in rows if r["zone"] == "FR")
    fr["water_offsite_l_per_kwh"] = "-0.5"
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(fr))
    w.writeheader()
    w.writerow(fr)
    zones = tmp_path / "zones_ours.csv"
    zones.write_text(out.getvalue(), encoding="utf-8")
    ctx = Context(Place(zone="FR"), factors=load([zones]))
    req = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
    assert receipt._plan(req, ctx, "datacenter", True, False).fast is None
    fp = estimate_footprint(req, ctx)
    assert fp == _reference(req, ctx, "datacenter")
    assert fp.water_offsite_ml.high < 0


def test_a_time_resolved_feed_gives_the_reference_receipt(tmp_path: Path) -> None:
    """An hourly CSV feed: a reading per hour (the float path keeps the last one), cfe_share in the JSON form."""
    import datetime as dt

    from wattlens.grid.csvfeed import CsvFeed

    rows = ["zone,timestamp,intensity_g_per_kwh,marginal_g_per_kwh,nuclear_share,wind_share,gas_share"]
    for h in range(4):
        rows.append(f"FR,2026-01-01T{h:02d}:00:00Z,{30 + 10 * h},{300 + h},0.7,0.2,0.1")
    path = tmp_path / "hourly.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ctx = Context(Place(zone="FR"), grid=CsvFeed(str(path)))
    req = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
    for h in (0, 1, 1, 3, 0):
        at = dt.datetime(2026, 1, 1, h, 30, tzinfo=dt.UTC)
        fast = estimate_footprint(req, ctx, at=at)
        plan = receipt._plan(req, ctx, "datacenter", True, False)
        est = _reference_estimate(plan, 250, 350, 0)
        shares = (
            EmbodiedShare(plan.hosts[0], 1.0, est.accelerator_s),  # type: ignore[index]
            EmbodiedShare(plan.hosts[1], 1.0 / 8, est.accelerator_s),  # type: ignore[index]
        )
        ref = footprint(
            scale_to_boundary(est.accelerator_wh, "datacenter", fleet=est.fleet),
            plan.site.at(ctx, at),
            method="estimated",
            boundary=plan.boundary_parts,
            factors_version=ctx.factors.version,
            embodied=shares,
            model=plan.model,
            tokens=Tokens(250, 0, 350, 0),
            warnings=plan.warnings + est.warnings,
            assumptions=est.assumptions,
        )
        assert fast == ref and fast.as_dict() == ref.as_dict()
        assert json.dumps(estimate_receipt(req, ctx, at=at).as_dict()) == json.dumps(ref.as_dict())
        assert fast.grid.intensity_g_per_kwh == 30 + 10 * h
        assert fast.carbon_marginal_g is not None and "cfe_share" in fast.as_dict()["grid"]


@example(5e-324, 50.0, 1.0, [(0.05, 1.0, 1.0)], (1.0, 1.0, 1.0), True)  # the low underflows to zero
@given(
    st.floats(1e-300, 1e6),
    st.floats(1.0, 50.0),
    st.floats(1.0, 50.0),
    st.lists(st.tuples(st.floats(0.05, 5.0), st.floats(1.0, 3.0), st.floats(1.0, 3.0)), min_size=1, max_size=3),
    st.tuples(st.floats(0.5, 3.0), st.floats(1.0, 2.0), st.floats(1.0, 2.0)),
    st.booleans(),
)
def test_the_unrolled_chain_is_independent_product_bit_for_bit(
    a_lo: float,
    up_a: float,
    up_b: float,
    factors: list[tuple[float, float, float]],
    pue_wue: tuple[float, float, float],
    facility: bool,
) -> None:
    """receipt_floats._chained: the boundary factors, then the PUE and the WUE, as independent_product
    computes them one after the other (the same floats), or None where a low underflows to zero."""
    from wattlens.receipt_floats import _chained
    from wattlens.units import independent_product, spread_factor

    a_mid = a_lo * up_a
    a_hi = a_mid * up_b
    it = tuple(spread_factor(low, low * m, low * m * h) for low, m, h in factors)
    low, m, h = pue_wue
    pue = spread_factor(low, low * m, low * m * h)
    wue = spread_factor(low / 2, low / 2 * h, low / 2 * h * m)
    chain = (
        tuple(f[1] for f in it),
        tuple(f[3] for f in it),
        tuple(f[4] for f in it),
        (pue[1], pue[3], pue[4]),
        (wue[1], wue[3], wue[4]),
    )
    got = _chained(a_lo, a_mid, a_hi, chain, facility)
    e = independent_product(a_lo, a_mid, a_hi, it)
    if not e[0] > 0:
        assert got is None
        return
    f = independent_product(*e, (pue,)) if facility else e
    assert got == (*e, *f, independent_product(*e, (wue,)))
