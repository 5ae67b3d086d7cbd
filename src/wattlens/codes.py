"""Stable warning codes carried in receipts; each one is documented in docs/warnings.md."""

from __future__ import annotations

WARNINGS: dict[str, str] = {
    "zone-unknown-world-average": "No zone or region was given: the world-average grid was used.",
    "zone-assumed-from-provider": "No zone was given: the provider's usual serving zone from the model catalogue was used.",
    "market-equals-location": "No contractual factor or renewable share was given: market-based carbon equals location-based.",
    "market-from-renewable-share": "Market-based carbon applies a declared renewable share to the location-based intensity (residual mix approximated by the grid average).",
    "market-from-provider-cfe": "Market-based carbon applies the cloud region's published carbon-free-energy share.",
    "intensity-direct-combustion": "The intensity counts direct combustion only (as eGRID, the GB Carbon Intensity API and some live feeds publish it), not the life cycle of generation.",
    "mix-from-parent-zone": "The zone has no mix of its own in the data: the parent country's mix is shown.",
    "water-derived-from-mix": "The zone has no published water intensity: it was derived from the mix and per-source factors.",
    "params-estimated": "The model's architecture is not published: parameter counts are estimates, and the interval covers their range.",
    "batch-unknown": "Serving concurrency is unknown: the mid assumes the serving profile's sequences per accelerator and the interval spans its range (receipt: assumptions; docs/estimator.md).",
    "hardware-assumed": "The serving hardware is not published: the catalogue's assumed hardware was used.",
    "boundary-excludes-facility": "The boundary excludes the facility: no PUE overhead was added.",
    "model-not-in-catalogue": "The model is not in the catalogue: the parameters given (command line, gateway configuration, model_params) were used.",
    "model-params-from-name": "The model is not in the catalogue: its parameter count (and precision) were read from its name (8b, 135m, 8x7b, a3b, q4_K_M, awq, fp8).",
    "model-params-from-upstream": "The model is not in the catalogue: its parameter count and precision are what the serving upstream reported (Ollama /api/show, llama.cpp /v1/models, vLLM /v1/models).",
    "model-unknown-generic": "Nothing is known about the model (not in the catalogue, no size in its name, nothing from the upstream): a generic model spanning the catalogue's 10th-90th percentile of parameters was assumed, so the interval is wide.",
    "grid-feed-no-data": "The configured grid feed has no value for this zone and time: the annual tables were used.",
    "grid-mix-annual": "The grid feed gives an intensity but no generation mix for this interval: the zone's annual mix is shown.",
    "usage-invalid": "The upstream reported a token usage that cannot be true (negative, not a number, or over 10^8): tokens were counted from the answer instead.",
    "hardware-uncalibrated": "The accelerator is not in the calibration data: it is modelled from its datasheet and the interval widened by 30%.",
    "grid-feed-unauthorised": "The live grid feed refused its credentials (HTTP 401 or 403): the annual tables were used; check the token (docs/grid.md).",
    "grid-feed-unavailable": "The live grid feed failed or did not answer in time: the annual tables were used; re-price later with `wattlens report --grid`.",
    "grid-feed-rate-limited": "The live grid feed is rate-limiting this client (HTTP 429): the annual tables were used until its back-off ends.",
    "grid-marginal-only": "The grid feed gives a marginal intensity only (WattTime MOER): location-based carbon uses the annual average; marginal carbon is shown beside it.",
    "grid-feed-pending": "The live grid feed's value for this hour was not cached yet (fetch = background): the annual tables were used while it is fetched; re-price later with `wattlens report --grid`.",
    "market-residual-approximated": "Hourly matching: consumption no contract covers is priced at the grid-average intensity of its hour, standing in for the residual mix.",
}
