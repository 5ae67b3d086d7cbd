"""OpenTelemetry: spans and metrics read back from the SDK's in-memory exporters, number for number with the receipt.

OpenTelemetry's global providers can be set only once per process, so one module-scoped fixture
sets them (before any observer here reads them); the check that nothing happens without them runs
in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
import upstream as up

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

import wattlens
from wattlens import otel
from wattlens.context import Context, Place
from wattlens.footprint import Footprint, Tokens
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.metering import Serving, Settlement, estimated_footprint

Point = tuple[str, frozenset[tuple[str, Any]]]


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def points(self) -> dict[Point, float]:
        """Every counter's data points now: (metric name, attributes) -> cumulative value."""
        out: dict[Point, float] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                if sm.scope.name != otel.SCOPE:
                    continue
                for m in sm.metrics:
                    for p in m.data.data_points:  # type: ignore[union-attr]
                        out[(m.name, frozenset((p.attributes or {}).items()))] = p.value  # type: ignore[union-attr]
        return out

    def span_of(self, record_id: str) -> ReadableSpan:
        found = [s for s in self.spans.get_finished_spans() if (s.attributes or {}).get("wattlens.record.id") == record_id]
        assert len(found) == 1, record_id
        return found[0]


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    current = trace.get_tracer_provider()
    if current is not tp:  # another test module set it first: listen on its provider instead
        current.add_span_processor(SimpleSpanProcessor(spans))  # type: ignore[attr-defined]
    if type(metrics.get_meter_provider()) is not MeterProvider or not any(
        r is reader
        for r in metrics.get_meter_provider()._all_metric_readers  # type: ignore[attr-defined]
    ):
        pytest.skip("another test module set OpenTelemetry's global MeterProvider first")
    return Telemetry(spans, reader)


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[up.ServerThread]:
    with up.ServerThread(up.app) as s:
        yield s


def with_attrs(points: dict[Point, float], **want: Any) -> dict[str, float]:
    """name -> value of the points whose attributes include `want` (dots spelled as __ in keys)."""
    need = {k.replace("__", "."): v for k, v in want.items()}
    return {name: v for (name, attrs), v in points.items() if need.items() <= dict(attrs).items()}


def check_span_against(span: ReadableSpan, fp: Footprint, tokens: Tokens) -> None:
    """Every wattlens.* and gen_ai.usage.* number of the span is the receipt's, exactly."""
    a = dict(span.attributes or {})
    for name, iv, scale in (
        ("wattlens.energy", fp.energy_wh, 3600.0),
        ("wattlens.energy.facility", fp.facility_wh, 3600.0),
        ("wattlens.carbon.location", fp.carbon_location_g, 1.0),
        ("wattlens.carbon.market", fp.carbon_market_g, 1.0),
        ("wattlens.carbon.embodied", fp.embodied_g, 1.0),
        ("wattlens.water", fp.water_ml, 1.0),
    ):
        assert (a[f"{name}.low"], a[f"{name}.mid"], a[f"{name}.high"]) == (iv.low * scale, iv.mid * scale, iv.high * scale)
    assert a["wattlens.method"] == fp.method and tuple(a["wattlens.boundary"]) == fp.boundary
    assert a["wattlens.grid.zone"] == fp.grid.zone and a["wattlens.grid.year"] == fp.grid.year
    assert a["wattlens.grid.intensity"] == fp.grid.intensity_g_per_kwh
    assert a["wattlens.factors.version"] == fp.factors_version
    assert a["gen_ai.usage.input_tokens"] == tokens.input  # cached tokens included
    assert a["gen_ai.usage.output_tokens"] == tokens.output + tokens.reasoning  # reasoning included
    assert a.get("gen_ai.usage.cache_read.input_tokens") == (tokens.cached_input or None)
    assert a.get("gen_ai.usage.reasoning.output_tokens") == (tokens.reasoning or None)
    assert "gen_ai.usage.cache_creation.input_tokens" not in a  # not in the receipt: omitted, never a made-up 0
    assert "gen_ai.system" not in a  # deprecated: gen_ai.provider.name replaces it


def check_counters(got: dict[str, float], fp: Footprint, calls: int = 1) -> None:
    assert got == {
        "wattlens.gen_ai.operations": calls,
        "wattlens.gen_ai.energy": fp.energy_wh.mid * 3600.0,
        "wattlens.gen_ai.carbon": fp.carbon_location_g.mid,
        "wattlens.gen_ai.water": fp.water_ml.mid,
    }


def test_nothing_is_imported_or_recorded_without_an_sdk_provider() -> None:
    code = textwrap.dedent(
        """
        import sys
        from wattlens import otel
        assert not [m for m in sys.modules if m.startswith("opentelemetry")], "import-time work"
        from wattlens.gateway.app import Gateway
        from wattlens.gateway.config import GatewayConfig, Upstream
        gw = Gateway(GatewayConfig(upstreams=(Upstream("u", "openai", "http://127.0.0.1:9/v1"),)))
        assert not otel.enabled() and not any(isinstance(o, otel.SpanObserver) for o in gw.observers)
        assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_gateway_span_and_metrics_equal_the_receipt(telemetry: Telemetry, upstream_server: up.ServerThread) -> None:
    place = Place(zone="FR")
    cfg = GatewayConfig(upstreams=(Upstream("oai", "openai", upstream_server.url + "/v1", models=("*",), place=place),))
    with up.ServerThread(create_app(cfg, None)) as gw:
        client = openai.OpenAI(
            base_url=gw.url + "/v1", api_key="x", max_retries=0, default_headers={"x-wattlens-team": "otel-gw"}
        )
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        prom = httpx.get(gw.url + "/metrics").text
    receipt = r.usage.footprint  # type: ignore[union-attr]
    tokens = Tokens(**receipt["tokens"])
    assert tokens == Tokens(input=11, cached_input=4, output=8, reasoning=2)
    # The unrounded receipt, recomputed the way the gateway did; its JSON form is the response's receipt.
    ctx: Context = cfg.context.at(place)
    fp = estimated_footprint("gpt-4o-mini", tokens, ctx, Serving())
    assert json.loads(json.dumps(fp.as_dict())) == receipt

    spans = [s for s in telemetry.spans.get_finished_spans() if (s.attributes or {}).get("wattlens.team") == "otel-gw"]
    assert len(spans) == 1
    span = spans[0]
    a = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini" and span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "wattlens"
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.stream"] is False
    assert a["wattlens.source"] == "gateway" and a["wattlens.upstream"] == "oai" and "error.type" not in a
    check_span_against(span, fp, tokens)
    assert span.start_time is not None and span.end_time is not None and span.start_time < span.end_time

    got = with_attrs(telemetry.points(), wattlens__team="otel-gw")
    check_counters(got, fp)
    attrs = next(dict(k[1]) for k in telemetry.points() if ("wattlens.team", "otel-gw") in k[1])
    assert attrs == {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "wattlens.source": "gateway",
        "wattlens.upstream": "oai",
        "wattlens.team": "otel-gw",
        "wattlens.method": "estimated",
        "wattlens.grid.zone": "FR",
    }
    # The same energy as the gateway's own Prometheus counter, to the bit.
    prom_energy = {
        s.labels["team"]: s.value
        for f in text_string_to_metric_families(prom)
        if f.name == "wattlens_energy_joules"
        for s in f.samples
        if s.name == "wattlens_energy_joules_total"
    }
    assert prom_energy["otel-gw"] == got["wattlens.gen_ai.energy"]


def test_gateway_anthropic_stream_and_upstream_errors(telemetry: Telemetry, upstream_server: up.ServerThread) -> None:
    cfg = GatewayConfig(
        upstreams=(
            Upstream(
                "claude", "anthropic", upstream_server.url + "/v1", models=("claude-*",), place=Place(region="us-east-1")
            ),
            Upstream("oai", "openai", upstream_server.url + "/v1", models=("fail-*",), place=Place(zone="FR")),
        )
    )
    team = {"x-wattlens-team": "otel-anthropic"}
    with up.ServerThread(create_app(cfg, None)) as gw:
        client = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0, default_headers=team)
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            receipt = next(ev for ev in s if ev.type == "message_delta").footprint  # type: ignore[attr-defined]
        with pytest.raises(openai.InternalServerError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, default_headers=team).chat.completions.create(
                model="fail-500", messages=[{"role": "user", "content": "x"}]
            )
    spans = {
        s.name: s
        for s in telemetry.spans.get_finished_spans()
        if (s.attributes or {}).get("wattlens.team") == "otel-anthropic"
    }
    assert set(spans) == {"chat claude-sonnet-4-6", "chat fail-500"}

    ok = spans["chat claude-sonnet-4-6"]
    a = dict(ok.attributes or {})
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.request.stream"] is True
    tokens = Tokens(**receipt["tokens"])
    assert tokens == Tokens(input=125, cached_input=100, output=9)  # 20 + 5 cache creation + 100 cache read
    fp = estimated_footprint("claude-sonnet-4-6", tokens, cfg.context.at(Place(region="us-east-1")), Serving())
    assert json.loads(json.dumps(fp.as_dict())) == receipt
    check_span_against(ok, fp, tokens)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100 and "gen_ai.usage.reasoning.output_tokens" not in a
    assert isinstance(a["gen_ai.response.time_to_first_chunk"], float)

    bad = spans["chat fail-500"]
    b = dict(bad.attributes or {})
    assert bad.status.status_code is StatusCode.ERROR and b["error.type"] == "upstream_error"
    assert not [k for k in b if k.startswith("gen_ai.usage.")]  # no usage came back: none is made up
    points = telemetry.points()
    check_counters(with_attrs(points, wattlens__team="otel-anthropic", gen_ai__provider__name="anthropic"), fp)
    failed = with_attrs(points, wattlens__team="otel-anthropic", error__type="upstream_error")
    assert failed["wattlens.gen_ai.operations"] == 1


def test_instrumented_sdk_span_and_metrics_equal_the_receipt(telemetry: Telemetry, upstream_server: up.ServerThread) -> None:
    client = wattlens.instrument(
        openai.OpenAI(base_url=upstream_server.url + "/v1", api_key="sk-test", max_retries=0),
        zone="FR",
        tags={"team": "otel-sdk"},
        context=Context(),
    )
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "what powers the grid"}])
    settled: Settlement = r.__dict__["_wattlens_settlement"]
    fp = settled.footprint
    assert fp is not None and json.loads(json.dumps(fp.as_dict())) == r.footprint  # type: ignore[attr-defined]
    tokens = settled.call.tokens
    assert tokens == Tokens(input=14, cached_input=4, output=8, reasoning=2)

    span = telemetry.span_of(settled.call.request_id)
    a = dict(span.attributes or {})
    assert a["wattlens.source"] == "sdk" and a["gen_ai.provider.name"] == "openai" and span.kind is SpanKind.CLIENT
    assert a["gen_ai.response.model"] == "gpt-4o-mini" and a["wattlens.upstream"] == upstream_server.url + "/v1"
    check_span_against(span, fp, tokens)
    check_counters(with_attrs(telemetry.points(), wattlens__team="otel-sdk"), fp)

    wattlens.uninstrument(client)


def test_counters_are_the_declared_instruments(telemetry: Telemetry) -> None:
    from wattlens.metering import Call, settle
    from wattlens.protocols import protocols

    call = Call("test", "openai", "/completions", "gpt-4o-mini", upstream="u", tokens=Tokens(input=5, output=3))
    s = settle(call, Context().at(Place(zone="FR")), Serving(), [otel.SpanObserver(protocols())])
    assert s.footprint is not None
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    ours = [m for rm in data.resource_metrics for sm in rm.scope_metrics if sm.scope.name == "wattlens" for m in sm.metrics]
    assert {(m.name, m.unit, m.description) for m in ours} == set(otel.INSTRUMENTS)
    assert all(m.data.is_monotonic for m in ours)  # type: ignore[union-attr]
    assert telemetry.span_of(call.request_id).name == "text_completion gpt-4o-mini"
