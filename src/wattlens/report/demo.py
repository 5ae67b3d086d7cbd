"""`wattlens demo`: replay one hour of production LLM traffic through the estimator into a demo ledger.

The Azure LLM inference trace (Azure/AzurePublicDataset, CC BY 4.0; Patel et al., Splitwise,
ISCA 2024) gives each request's time, context tokens and generated tokens. Each request is
served, in the replay, by one of the models and zones the user picks (round-robin), tagged
with a team, and its receipt is written to the ledger exactly as the gateway would.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from wattlens.context import Context, Place
from wattlens.errors import InputError
from wattlens.footprint import Tokens

TRACES = {"conv": "azure_llm_inference_trace_2023_conv.csv.gz", "code": "azure_llm_inference_trace_2023_code.csv.gz"}
CITATION = (
    "Azure LLM inference trace 2023 (Azure/AzurePublicDataset, CC BY 4.0; Patel et al., "
    "'Splitwise: Efficient Generative LLM Inference Using Phase Splitting', ISCA 2024)"
)


@dataclass(frozen=True, slots=True)
class TraceRequest:
    ts: dt.datetime
    context_tokens: int
    generated_tokens: int
    kind: str


def trace(kinds: Sequence[str] = ("conv", "code")) -> Iterator[TraceRequest]:
    """The shipped trace, request by request, in time order within each kind."""
    for kind in kinds:
        raw = resources.files("wattlens.data").joinpath(TRACES[kind]).read_bytes()
        for row in csv.DictReader(io.StringIO(gzip.decompress(raw).decode())):
            ts = dt.datetime.fromisoformat(row["TIMESTAMP"][:26]).replace(tzinfo=dt.UTC)
            yield TraceRequest(ts, int(row["ContextTokens"]), int(row["GeneratedTokens"]), kind)


def records(
    models: Sequence[str],
    zones: Sequence[str],
    start: dt.datetime | None = None,
    limit: int | None = None,
    context: Context | None = None,
) -> Iterator[dict[str, Any]]:
    """Ledger records of the replayed trace, settled exactly as the gateway's are."""
    from wattlens.metering import Call, settle

    if not models or not zones:
        raise InputError("give at least one --model and one --zone")
    base = context or Context()
    contexts = {z: base.at(Place(zone=z)) for z in zones}
    teams = {"conv": ("support", "search"), "code": ("engineering",)}
    first: dt.datetime | None = None
    for i, r in enumerate(trace()):
        if limit is not None and i >= limit:
            return
        first = first or r.ts
        ts = r.ts if start is None else start + (r.ts - first)
        model, zone = models[i % len(models)], zones[(i // len(models)) % len(zones)]
        call = Call(
            "demo",
            "openai",
            "/chat/completions",
            model,
            upstream="demo",
            tokens=Tokens(input=r.context_tokens, output=r.generated_tokens),
            ts=ts.isoformat(timespec="microseconds"),
            request_id=uuid.UUID(int=i + 1).hex,
            team=teams[r.kind][i % len(teams[r.kind])],
            user=f"user{i % 97:02d}",
            tags={"source": "demo", "trace": r.kind},
            timed=False,  # a replay has no latency of its own
        )
        s = settle(call, contexts[zone])
        fp = s.footprint
        if fp is None:
            raise InputError(s.error or f"no receipt for {model}")
        call.served_model = fp.model or model
        yield s.record_dict()


def write_demo(
    ledger_path: str,
    models: Sequence[str],
    zones: Sequence[str],
    start: dt.datetime | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    context: Context | None = None,
) -> int:
    from wattlens.ledger import open_ledger

    led = open_ledger(ledger_path)
    n, batch = 0, []
    try:
        for rec in records(models, zones, start, limit, context):
            batch.append(rec)
            if len(batch) >= 2000:
                led.append(batch)
                n += len(batch)
                batch = []
                if progress:
                    progress(n)
        led.append(batch)
        n += len(batch)
        if progress:
            progress(n)
    finally:
        led.close()
    return n
