"""The receipt of one proxied request: which upstream, which model, which tokens -> Footprint."""

from __future__ import annotations

from typing import Any

from wattlens.errors import WattlensError
from wattlens.footprint import Footprint, Tokens
from wattlens.gateway.config import Upstream
from wattlens.receipt import LLMRequest, Place, estimate_footprint


def footprint_for(upstream: Upstream, model: str, tokens: Tokens) -> tuple[Footprint | None, str | None]:
    """(receipt, None), or (None, why) when the model can be neither found nor described."""
    params = upstream.model_params.get(model)
    req = LLMRequest(
        model=model,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cached_input_tokens=tokens.cached_input,
        reasoning_tokens=tokens.reasoning,
        active_params_b=params.active_params_b if params else None,
        total_params_b=params.total_params_b if params else None,
        precision=params.precision if params else None,
        hardware=upstream.hardware,
        gpus=upstream.gpus,
        batch_size=upstream.batch_size,
    )
    place = Place(zone=upstream.zone, region=upstream.region, facility=upstream.facility, pue=upstream.pue)
    try:
        return estimate_footprint(req, place), None
    except WattlensError as e:
        return None, f"{e} (describe it under [upstreams.model_params] in the gateway config)"


def measured_footprint(window: Any, u: Upstream, model: str, tokens: Tokens) -> tuple[Footprint | None, str | None]:
    """The receipt of a request to an upstream on this host: its fair share of what the sensors read."""
    import dataclasses

    m = window.close()
    fp = m.footprint(zone=u.zone, region=u.region, facility=u.facility, pue=u.pue)
    return dataclasses.replace(fp, model=model, tokens=tokens), None


def headers(fp: Footprint | None, why: str | None) -> dict[str, str]:
    if fp is None:
        return {"x-wattlens-warning": (why or "no receipt")[:300]}

    def h(iv: Any) -> str:
        return f"{iv.mid:.6g}; low={iv.low:.6g}; high={iv.high:.6g}"

    return {
        "x-wattlens-energy-wh": h(fp.energy_wh),
        "x-wattlens-carbon-g": h(fp.carbon_location_g),
        "x-wattlens-water-ml": h(fp.water_ml),
        "x-wattlens-method": fp.method,
        "x-wattlens-zone": fp.grid.zone,
    }
