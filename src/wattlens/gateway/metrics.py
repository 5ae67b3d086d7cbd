"""Prometheus metrics of the gateway; labels kept to model, upstream, team and method."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from wattlens.metering import Settlement

LABELS = ("model", "upstream", "team", "method")
MAX_LABEL_VALUES = 200  # distinct models (or teams) kept as labels; the rest are counted under "other"


class Metrics:
    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("wattlens_requests", "Requests through the gateway", (*LABELS, "status"), registry=r)
        self.energy = Counter("wattlens_energy_joules", "IT energy of requests (mid estimate)", LABELS, registry=r)
        self.carbon = Counter("wattlens_carbon_grams", "Location-based carbon (mid)", LABELS, registry=r)
        self.water = Counter("wattlens_water_millilitres", "On- plus off-site water (mid)", LABELS, registry=r)
        self.latency = Histogram(
            "wattlens_request_duration_seconds",
            "End-to-end request latency",
            ("model", "upstream"),
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )

    def _bounded(self, kind: str, value: str) -> str:
        """Clients choose model names: a bounded set of label values keeps /metrics small."""
        seen = self._seen.setdefault(kind, set())
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return "other"
        seen.add(value)
        return value

    def observe(self, s: Settlement) -> None:
        """An observer of settled calls (wattlens.metering)."""
        call, fp = s.call, s.footprint
        team = self._bounded("team", call.team or "-")
        method = fp.method if fp else "none"
        model = self._bounded("model", call.served_model or call.model)
        upstream = call.upstream or "-"
        self.requests.labels(model, upstream, team, method, str(call.status)).inc()
        self.latency.labels(model, upstream).observe(s.latency_s)
        if fp is not None:
            self.energy.labels(model, upstream, team, method).inc(fp.energy_wh.mid * 3600.0)
            self.carbon.labels(model, upstream, team, method).inc(fp.carbon_location_g.mid)
            self.water.labels(model, upstream, team, method).inc(fp.water_ml.mid)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
