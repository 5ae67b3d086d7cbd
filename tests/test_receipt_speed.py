"""The receipt's fast path changes no number: plans cached per model and context, prepared estimates,
the grid memo and the cheaper rounding give exactly the receipts the step-by-step path gives."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from wattlens import receipt
from wattlens.context import Context, Place
from wattlens.estimate import estimate_request, prepare_request
from wattlens.estimate.spread import input_spreads
from wattlens.factors import builtin, load
from wattlens.receipt import LLMRequest, estimate_footprint
from wattlens.units import Interval

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "llama3.1:8b", "gpt-oss-120b", "no-such-model-xyz"]
PLACES = [Place(), Place(zone="FR"), Place(region="europe-west9"), Place(zone="PL", pue=1.3, market_g_per_kwh=50.0)]
TOKENS = [(0, 0, 0, 0), (1, 1, 0, 0), (250, 350, 0, 0), (1155, 211, 500, 60), (100_000, 500, 0, 0)]


def _cold(req: LLMRequest, ctx: Context, **kw: object) -> dict[str, object]:
    receipt._PLANS.clear()
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
