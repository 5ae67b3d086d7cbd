"""Prometheus metrics of the gateway; labels kept to model, upstream, team and method, tags and budgets apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wattlens.gateway.tags import Bounded

if TYPE_CHECKING:
    from wattlens.metering import Settlement

LABELS = ("model", "upstream", "team", "method")
MAX_LABEL_VALUES = 200  # distinct models (or teams) kept as labels; the rest are counted under "other"
MAX_LABEL_CHARS = 200  # a label value's length: a 500 KB model name appears on ~26 lines of /metrics


class BudgetCollector(Collector):
    """Each budget's use this period, read when Prometheus scrapes (Alertmanager rules compare the ratio)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        budgets = self.metrics.budgets
        if budgets is None:
            return
        used = GaugeMetricFamily(
            "wattlens_budget_used", "Use of the budget this period (mid values, in its unit)", labels=("budget", "unit")
        )
        limit = GaugeMetricFamily(
            "wattlens_budget_limit", "The budget's limits, in its unit", labels=("budget", "unit", "level")
        )
        ratio = GaugeMetricFamily(
            "wattlens_budget_used_ratio", "Use over the hard limit (the soft one when there is no hard)", labels=("budget",)
        )
        for b in budgets.snapshot():
            used.add_metric((b["name"], b["unit"]), b["used"])
            for level in ("soft", "hard"):
                if b.get(level) is not None:
                    limit.add_metric((b["name"], b["unit"], level), b[level])
            if b["used_ratio"] is not None:
                ratio.add_metric((b["name"],), b["used_ratio"])
        yield used
        yield limit
        yield ratio


class Metrics:
    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}
        self.tag_values = Bounded()
        self._tag_series: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.budgets: Any = None  # wattlens.gateway.budgets.Budgets, set by the gateway
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
        # Tags have their own series (one per tag name and bounded value), not extra labels on the others.
        self.tag_requests = Counter("wattlens_tag_requests", "Requests by tag", ("tag", "value"), registry=r)
        self.tag_energy = Counter("wattlens_tag_energy_joules", "IT energy by tag (mid)", ("tag", "value"), registry=r)
        r.register(BudgetCollector(self))

    def _bounded(self, kind: str, value: str) -> str:
        """Clients choose model names: a bounded set of label values keeps /metrics small."""
        if len(value) > MAX_LABEL_CHARS or not value.isascii():  # a lone surrogate broke every later scrape
            from wattlens.ledger.chain import scrub

            value = scrub(value)[:MAX_LABEL_CHARS]
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
        for name, value in call.tags.items():
            series = self._tag_series.get((name, value))
            if series is None:  # labels() costs microseconds: each (tag, value)'s children are kept
                tag, v = self.tag_values.label(name, value)
                series = (self.tag_requests.labels(tag, v), self.tag_energy.labels(tag, v))
                if len(self._tag_series) < 10_000:  # values past the bound share `other`'s children
                    self._tag_series[(name, value)] = series
            series[0].inc()
            if fp is not None:
                series[1].inc(fp.energy_wh.mid * 3600.0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
