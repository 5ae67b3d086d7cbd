"""What the estimator assumes when a request does not say: a model's published configuration
(architectures.csv) and how kinds of service run models (serving.json). Loaded lazily, cached."""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class Architecture:
    """What the estimator reads from a model's published configuration."""

    family: str
    kv_bytes_per_token: float  # bf16 KV cache, all attention layers
    attn_width_layers: float  # attention layers x heads x head dim
    source: str
    route_share: float = 0.0  # routed experts per token / routed experts (MoE); 0: dense or unknown


@functools.lru_cache(maxsize=1)
def _architectures() -> dict[str, Architecture]:
    text = resources.files("wattlens.estimate").joinpath("architectures.csv").read_text(encoding="utf-8")
    out: dict[str, Architecture] = {}
    for r in csv.DictReader(io.StringIO(text)):
        attn, kv_heads, head = int(r["attention_layers"]), int(r["kv_heads"]), int(r["head_dim"])
        latent = int(r["kv_latent_dim"])
        # K and V per KV head in bf16; MLA caches one compressed latent (+ rope key) per layer instead.
        kv = attn * latent * 2.0 if latent else 2.0 * attn * kv_heads * head * 2.0
        experts, per_token = int(r["routed_experts"] or 0), int(r["experts_per_token"] or 0)
        share = per_token / experts if experts else 0.0
        arch = Architecture(r["family"], kv, float(attn * int(r["attention_heads"]) * head), r["source"], share)
        for mid in r["model_ids"].split(";"):
            out[mid.lower()] = arch
    return out


def architecture(model_id: str | None) -> Architecture | None:
    """The published configuration of a model, when the table has it (case-insensitive id)."""
    return _architectures().get(model_id.lower()) if model_id else None


@dataclass(frozen=True, slots=True)
class ServingProfile:
    """How a kind of service runs models when the request does not say (estimate/serving.json)."""

    name: str
    batch_per_gpu: tuple[float, float, float]
    hardware: tuple[str, ...]
    prefill_efficiency: tuple[float, float, float]
    moe_replica_gpus: int  # the widest expert-parallel MoE replica (0: only the fewest that hold it)
    known_moe_replica_gpus: int  # the provider's published layout, 0 when unpublished
    fleet_factor: tuple[float, float, float] = (1.0, 1.0, 1.0)  # fleet accelerator energy / the batch's


@functools.lru_cache(maxsize=1)
def _profiles() -> dict[str, Any]:
    text = resources.files("wattlens.estimate").joinpath("serving.json").read_text(encoding="utf-8")
    return dict(json.loads(text)["profiles"])


@functools.lru_cache(maxsize=64)
def serving_profile(provider: str | None) -> ServingProfile:
    """Production concurrency for API providers, a team's own server for everything else."""
    profiles = _profiles()
    name = "production" if provider and provider in profiles["production"]["applies_to"] else "self-hosted"
    p = profiles[name]
    lo, mid, hi = (float(x) for x in p["batch_per_gpu"])
    e_lo, e_mid, e_hi = (float(x) for x in p["prefill_efficiency"])
    hardware = tuple(p["hardware"].get(provider or "", ()))
    known = int(p["known_moe_replica_gpus"].get(provider or "", 0))
    f_lo, f_mid, f_hi = (float(x) for x in p.get("fleet_factor", (1.0, 1.0, 1.0)))
    return ServingProfile(
        name, (lo, mid, hi), hardware, (e_lo, e_mid, e_hi), int(p["moe_replica_gpus"]), known, (f_lo, f_mid, f_hi)
    )
