"""OpenTelemetry for receipts: one span and the energy, carbon and water counters per settled call.

Spans follow the GenAI semantic conventions (`gen_ai.*`, the current ones: `gen_ai.provider.name`,
not the deprecated `gen_ai.system`) plus the `wattlens.*` energy attributes that
docs/energy-attributes.md proposes. Metrics are counters modelled on the hardware conventions'
`hw.energy` (a monotonic sum in J), so an OTLP collector gets them without Prometheus.

Each signal is on only when the application has configured an OpenTelemetry SDK provider for it
(a TracerProvider for spans, a MeterProvider for metrics) before the gateway or the instrumented
client is created. Otherwise nothing beyond the API's provider check is imported and nothing is
recorded; this module does no work at import.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wattlens.footprint import Footprint, Tokens
from wattlens.units import J_PER_WH

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter
    from opentelemetry.trace import Tracer

    from wattlens.metering import Settlement
    from wattlens.protocols import WireProtocol

SCOPE = "wattlens"

# The counters (name, unit, description). Units are UCUM, as OpenTelemetry asks; a collector's
# Prometheus exporter turns them into suffixes (docs/deploy.md has the translation).
OPERATIONS = ("wattlens.gen_ai.operations", "{operation}", "GenAI operations settled by wattlens, receipt or not")
ENERGY = ("wattlens.gen_ai.energy", "J", "IT energy of GenAI operations (mid estimate), like hw.energy")
CARBON = ("wattlens.gen_ai.carbon", "g", "Location-based greenhouse-gas emissions of GenAI operations, gCO2e (mid)")
WATER = ("wattlens.gen_ai.water", "mL", "On-site plus off-site water consumed by GenAI operations (mid)")
INSTRUMENTS = (OPERATIONS, ENERGY, CARBON, WATER)

# The API's own providers: what get_*_provider() returns until an application sets an SDK's.
_API_PROVIDERS = frozenset({"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"})


def tracing_enabled() -> bool:
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return type(trace.get_tracer_provider()).__name__ not in _API_PROVIDERS


def metrics_enabled() -> bool:
    try:
        from opentelemetry import metrics
    except ImportError:
        return False
    return type(metrics.get_meter_provider()).__name__ not in _API_PROVIDERS


def enabled() -> bool:
    """Whether an application configured OpenTelemetry traces or metrics (then SpanObserver is worth adding)."""
    return tracing_enabled() or metrics_enabled()


def gen_ai_attributes(provider: str, operation: str, model: str, served: str | None) -> dict[str, Any]:
    """The GenAI conventions' identifying attributes, shared by spans and metrics."""
    attrs: dict[str, Any] = {
        "gen_ai.provider.name": provider,
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
    }
    if served:  # unknown when no response came back: omitted rather than guessed
        attrs["gen_ai.response.model"] = served
    return attrs


def usage_attributes(tokens: Tokens) -> dict[str, int]:
    """gen_ai.usage.*: input includes cached tokens and output includes reasoning, as the conventions ask.

    The receipt's Tokens cannot tell a zero from "not reported", so the cache-read and reasoning
    counts are set only when positive; cache creation is not in the receipt and is never set.
    """
    attrs = {
        "gen_ai.usage.input_tokens": tokens.input,
        "gen_ai.usage.output_tokens": tokens.output + tokens.reasoning,
    }
    if tokens.cached_input:
        attrs["gen_ai.usage.cache_read.input_tokens"] = tokens.cached_input
    if tokens.reasoning:
        attrs["gen_ai.usage.reasoning.output_tokens"] = tokens.reasoning
    return attrs


def energy_attributes(fp: Footprint) -> dict[str, Any]:
    """The wattlens.* attributes of a receipt: each interval as .low/.mid/.high, energy in J."""
    attrs: dict[str, Any] = {}
    for name, iv, scale in (
        ("wattlens.energy", fp.energy_wh, J_PER_WH),
        ("wattlens.energy.facility", fp.facility_wh, J_PER_WH),
        ("wattlens.carbon.location", fp.carbon_location_g, 1.0),
        ("wattlens.carbon.market", fp.carbon_market_g, 1.0),
        ("wattlens.carbon.embodied", fp.embodied_g, 1.0),
        ("wattlens.water", fp.water_ml, 1.0),
    ):
        attrs[f"{name}.low"] = iv.low * scale
        attrs[f"{name}.mid"] = iv.mid * scale
        attrs[f"{name}.high"] = iv.high * scale
    attrs["wattlens.method"] = fp.method
    attrs["wattlens.boundary"] = list(fp.boundary)
    attrs["wattlens.grid.zone"] = fp.grid.zone
    attrs["wattlens.grid.year"] = fp.grid.year
    attrs["wattlens.grid.intensity"] = fp.grid.intensity_g_per_kwh
    attrs["wattlens.factors.version"] = fp.factors_version
    if fp.warnings:
        attrs["wattlens.warnings"] = list(fp.warnings)
    return attrs


def attributes(
    provider: str, operation: str, model: str, served: str | None, tokens: Tokens, fp: Footprint | None
) -> dict[str, Any]:
    """Span attributes of one call: GenAI identity and usage, then the receipt's wattlens.* attributes."""
    attrs = gen_ai_attributes(provider, operation, model, served)
    attrs.update(usage_attributes(tokens))
    if fp is not None:
        attrs.update(energy_attributes(fp))
    return attrs


def _ns_at(perf: float) -> int:
    """A time.perf_counter() reading as wall-clock nanoseconds (spans take wall-clock times)."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


class SpanObserver:
    """An observer of settled calls (wattlens.metering): a span per call, and the energy, carbon and water counters.

    Which signals it records is decided once, here: the providers configured at construction.
    """

    def __init__(self, protocols: Mapping[str, WireProtocol]) -> None:
        self.protocols = protocols
        self.tracer: Tracer | None = None
        self.counters: tuple[Counter, Counter, Counter, Counter] | None = None
        from wattlens import __version__

        if tracing_enabled():
            from opentelemetry import trace

            self.tracer = trace.get_tracer(SCOPE, __version__)
        if metrics_enabled():
            from opentelemetry import metrics

            # Creating the same instrument again returns the provider's existing one: every gateway
            # and instrumented client adds to the same counters.
            meter = metrics.get_meter(SCOPE, __version__)
            ops, energy, carbon, water = (meter.create_counter(n, unit=u, description=d) for n, u, d in INSTRUMENTS)
            self.counters = (ops, energy, carbon, water)

    def operation(self, s: Settlement) -> str:
        c = s.call
        proto = self.protocols.get(c.protocol)
        return proto.operation(c.endpoint) if proto else c.endpoint.strip("/")

    def observe(self, s: Settlement) -> None:
        op = self.operation(s)
        if self.tracer is not None:
            self.span(s, op)
        if self.counters is not None:
            self.count(s, op)

    def span(self, s: Settlement, op: str) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        assert self.tracer is not None
        c, fp = s.call, s.footprint
        attrs = gen_ai_attributes(c.protocol, op, c.model, c.served_model)
        attrs["gen_ai.request.stream"] = c.stream
        # Usage is known on success, or when tokens were seen before a failure (a cut-off stream).
        if c.outcome == "ok" or c.tokens != Tokens():
            attrs.update(usage_attributes(c.tokens))
        if c.stream and c.ttft_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = c.ttft_s
        attrs["wattlens.record.id"] = c.request_id  # the ledger record's id
        attrs["wattlens.source"] = c.source
        if c.upstream:
            attrs["wattlens.upstream"] = c.upstream
        if c.team:
            attrs["wattlens.team"] = c.team
        if fp is not None:
            attrs.update(energy_attributes(fp))
        elif s.error:
            attrs["wattlens.footprint.error"] = s.error
        if c.outcome != "ok":
            attrs["error.type"] = c.outcome
        # CLIENT: the conventions' kind for a call to a model service (the gateway calls its upstream).
        span = self.tracer.start_span(
            f"{op} {c.model}", kind=SpanKind.CLIENT, start_time=_ns_at(c.started), attributes=attrs
        )
        if c.outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, f"{c.outcome} (status {c.status})"))
        span.end(end_time=_ns_at(s.ended))

    def count(self, s: Settlement, op: str) -> None:
        assert self.counters is not None
        c, fp = s.call, s.footprint
        # Low-cardinality attributes only: no record ids, users or keys on metrics.
        attrs = gen_ai_attributes(c.protocol, op, c.model, c.served_model)
        attrs["wattlens.source"] = c.source
        if c.upstream:
            attrs["wattlens.upstream"] = c.upstream
        if c.team:
            attrs["wattlens.team"] = c.team
        if fp is not None:
            attrs["wattlens.method"] = fp.method
            attrs["wattlens.grid.zone"] = fp.grid.zone
        if c.outcome != "ok":
            attrs["error.type"] = c.outcome
        ops, energy, carbon, water = self.counters
        ops.add(1, attrs)
        if fp is not None:
            energy.add(fp.energy_wh.mid * J_PER_WH, attrs)
            carbon.add(fp.carbon_location_g.mid, attrs)
            water.add(fp.water_ml.mid, attrs)


__all__ = [
    "CARBON",
    "ENERGY",
    "INSTRUMENTS",
    "OPERATIONS",
    "WATER",
    "SpanObserver",
    "attributes",
    "enabled",
    "energy_attributes",
    "gen_ai_attributes",
    "metrics_enabled",
    "tracing_enabled",
    "usage_attributes",
]
