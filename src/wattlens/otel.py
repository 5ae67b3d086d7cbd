"""OpenTelemetry spans for receipts: gen_ai.* semantic conventions plus wattlens.* attributes.

Active only when an OpenTelemetry SDK tracer provider has been configured by the application;
otherwise nothing is imported beyond the API check and nothing is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wattlens.footprint import Footprint, Tokens

if TYPE_CHECKING:
    from wattlens.metering import Settlement
    from wattlens.protocols import WireProtocol


def enabled() -> bool:
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    name = type(trace.get_tracer_provider()).__name__
    return name not in ("ProxyTracerProvider", "NoOpTracerProvider")


def attributes(
    system: str, operation: str, model: str, served: str | None, tokens: Tokens, fp: Footprint | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.system": system,
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
        "gen_ai.response.model": served or model,
        "gen_ai.usage.input_tokens": tokens.input,
        "gen_ai.usage.output_tokens": tokens.output + tokens.reasoning,
    }
    if fp is not None:
        for name, iv in (("energy_wh", fp.energy_wh), ("carbon_g", fp.carbon_location_g), ("water_ml", fp.water_ml)):
            attrs[f"wattlens.{name}"] = iv.mid
            attrs[f"wattlens.{name}.low"] = iv.low
            attrs[f"wattlens.{name}.high"] = iv.high
        attrs["wattlens.carbon_market_g"] = fp.carbon_market_g.mid
        attrs["wattlens.method"] = fp.method
        attrs["wattlens.grid.zone"] = fp.grid.zone
        attrs["wattlens.factors_version"] = fp.factors_version
    return attrs


def record_span(name: str, started_s: float, attrs: dict[str, Any], error: str | None = None) -> None:
    """One span for a finished request; started_s is a time.perf_counter() reading."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tracer = trace.get_tracer("wattlens")
    start_ns = time.time_ns() - int((time.perf_counter() - started_s) * 1e9)
    span = tracer.start_span(name, start_time=start_ns, attributes=attrs)
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


class SpanObserver:
    """One span per settled call (an observer for wattlens.metering)."""

    def __init__(self, protocols: Mapping[str, WireProtocol]) -> None:
        self.protocols = protocols

    def observe(self, s: Settlement) -> None:
        c = s.call
        proto = self.protocols.get(c.protocol)
        op = proto.operation(c.endpoint) if proto else c.endpoint.strip("/")
        attrs = attributes(c.protocol, op, c.model, c.served_model, c.tokens, s.footprint)
        record_span(f"{op} {c.model}", c.started, attrs, None if c.outcome == "ok" else c.outcome)
