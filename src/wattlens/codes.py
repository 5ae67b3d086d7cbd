"""Stable warning codes carried in receipts; each one is documented in docs/warnings.md."""

from __future__ import annotations

WARNINGS: dict[str, str] = {
    "zone-unknown-world-average": "No zone or region was given: the world-average grid was used.",
    "zone-assumed-from-provider": "No zone was given: the provider's usual serving zone from the model catalogue was used.",
    "market-equals-location": "No contractual factor or renewable share was given: market-based carbon equals location-based.",
    "market-from-renewable-share": "Market-based carbon applies a declared renewable share to the location-based intensity (residual mix approximated by the grid average).",
    "market-from-provider-cfe": "Market-based carbon applies the cloud region's published carbon-free-energy share.",
    "intensity-direct-combustion": "The zone's intensity counts direct combustion only (eGRID), not the life cycle of generation.",
    "mix-from-parent-zone": "The zone has no mix of its own in the data: the parent country's mix is shown.",
    "water-derived-from-mix": "The zone has no published water intensity: it was derived from the mix and per-source factors.",
    "params-estimated": "The model's architecture is not published: parameter counts are estimates, and the interval covers their range.",
    "batch-unknown": "Serving concurrency is unknown: the interval spans a realistic production range of batch sizes.",
    "hardware-assumed": "The serving hardware is not published: the catalogue's assumed hardware was used.",
    "boundary-excludes-facility": "The boundary excludes the facility: no PUE overhead was added.",
    "model-not-in-catalogue": "The model is not in the catalogue: the parameters given on the command line were used.",
    "grid-feed-no-data": "The configured grid feed has no value for this zone and time: the annual tables were used.",
    "grid-mix-annual": "The grid feed gives an intensity but no generation mix for this interval: the zone's annual mix is shown.",
    "usage-invalid": "The upstream reported a token usage that cannot be true (negative, not a number, or over 10^8): tokens were counted from the answer instead.",
    "hardware-uncalibrated": "The accelerator is not in the calibration data: it is modelled from its datasheet and the interval widened by 30%.",
}
