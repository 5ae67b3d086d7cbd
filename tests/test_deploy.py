"""deploy/: every Grafana query against the metric names really exported; compose.yaml, prometheus.yml, Dockerfile checked.

The gateway dashboard's queries are checked against the /metrics of a real gateway (one request
sent through it); the OpenTelemetry dashboard's against the names an OTLP-to-Prometheus translation
gives the instruments wattlens.otel really creates (read back from an SDK MeterProvider).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import upstream as up
from prometheus_client.parser import text_string_to_metric_families

from wattlens.context import Place
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = {"gateway": GRAFANA / "wattlens-gateway.json", "otel": GRAFANA / "wattlens-otel.json"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus (scrape target, or OTLP resource)

# --- a small PromQL reader: metric names, label matchers, grouping labels, functions ----------------
FUNCTIONS = {
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "group",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs", "clamp_min",
    "clamp_max", "round", "vector", "scalar", "label_replace", "sort", "sort_desc", "time",
}  # fmt: skip
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
STRING = r'"(?:[^"\\]|\\.)*"'


@dataclass
class Query:
    metrics: set[str] = field(default_factory=set)
    matchers: list[tuple[str | None, str]] = field(default_factory=list)  # (metric or None, label)
    grouping: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def parse_promql(expr: str) -> Query:
    q = Query()
    rest = expr
    for m in re.finditer(rf"({IDENT})?\s*\{{((?:[^}}\"]|{STRING})*)\}}", expr):
        metric = m.group(1)
        if metric in KEYWORDS:
            metric = None
        body = m.group(2)
        pairs = re.findall(rf"({IDENT})\s*(?:=~|!~|!=|=)\s*{STRING}", body)
        assert len(pairs) == body.count('"') // 2, f"cannot read the matchers {body!r}"
        q.matchers += [(metric, label) for label in pairs]
        if metric:
            q.metrics.add(metric)
        rest = rest.replace(m.group(0), " ", 1)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range selectors: [$__rate_interval], [5m]
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", rest):
        q.grouping |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    rest = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    for m in re.finditer(rf"\b({IDENT})\b(\s*\()?", rest):
        name, call = m.group(1), m.group(2)
        if call:
            q.functions.add(name)
        elif name not in KEYWORDS:
            q.metrics.add(name)
    return q


def test_the_promql_reader() -> None:
    q = parse_promql(
        'histogram_quantile(0.9, sum by (le, model) (rate(a_bucket{model=~"$m", x!="}"}[$__rate_interval])))'
        " / on (model) group_left sum by (model) (b_total)"
    )
    assert q.metrics == {"a_bucket", "b_total"} and q.grouping == {"le", "model"}
    assert q.matchers == [("a_bucket", "model"), ("a_bucket", "x")]
    assert q.functions == {"histogram_quantile", "sum", "rate"}


# --- what the dashboards ask for -----------------------------------------------------------------
def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend format) of every panel target and query variable."""
    for p in panels(board):
        for t in p.get("targets", []):
            yield f"panel {p['title']!r} {t['refId']}", t["expr"], t.get("legendFormat", "")
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(rf"label_values\(\s*({IDENT})\s*,\s*({IDENT})\s*\)", v["definition"])
            assert m, v["definition"]
            yield f"variable {v['name']}", f"sum by ({m.group(2)}) ({m.group(1)})", ""


def check_board(board: dict[str, Any], labels_of: dict[str, set[str]]) -> int:
    """Every metric a query names is exported, with every label the query matches, groups or shows."""
    n = 0
    for where, expr, legend in queries(board):
        q = parse_promql(expr)
        assert q.metrics, f"{where}: no metric in {expr}"
        assert q.functions <= FUNCTIONS, f"{where}: unknown function {q.functions - FUNCTIONS}"
        for metric in q.metrics:
            assert metric in labels_of, f"{where}: {metric} is not exported (have {sorted(labels_of)})"
            have = labels_of[metric] | TARGET_LABELS
            assert q.grouping <= have, f"{where}: {metric} has no label {q.grouping - have}"
        for metric, label in q.matchers:
            assert metric is not None, f"{where}: a selector without a metric name"
            assert label in labels_of[metric] | TARGET_LABELS, f"{where}: {metric} has no label {label}"
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert shown <= q.grouping, f"{where}: the legend shows {shown - q.grouping}, which the query drops"
        n += 1
    return n


# --- what the gateway really exports ------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from the /metrics of a real gateway that served one request."""
    with up.ServerThread(up.app) as upstream:
        cfg = GatewayConfig(upstreams=(Upstream("oai", "openai", upstream.url + "/v1", place=Place(zone="FR")),))
        with up.ServerThread(create_app(cfg, None)) as gw:
            r = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-wattlens-team": "t"},
            )
            assert r.status_code == 200 and r.json()["usage"]["footprint"]
            text = httpx.get(gw.url + "/metrics").text
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def prometheus_name(name: str, unit: str, monotonic_counter: bool) -> str:
    """An OTLP metric's Prometheus name, as the Collector's Prometheus exporter and Prometheus' own OTLP
    receiver give it (prometheus/otlptranslator, UnderscoreEscapingWithSuffixes): invalid characters
    to _, the unit's Prometheus word appended (none for {annotations}), then _total for counters."""
    units = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "J": "joules", "W": "watts", "g": "grams", "1": ""}
    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]+", name) if t]
    main = unit.split("/", 1)[0].strip()
    suffix = "" if not main or "{" in main else units.get(main, main)
    suffix = re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", suffix)).strip("_")
    if suffix and suffix not in tokens:
        tokens.append(suffix)
    if monotonic_counter:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    return "_".join(tokens)


def test_prometheus_names_of_otlp_metrics() -> None:
    assert prometheus_name("hw.energy", "J", True) == "hw_energy_joules_total"
    assert prometheus_name("http.server.request.duration", "s", False) == "http_server_request_duration_seconds"
    assert prometheus_name("wattlens.gen_ai.operations", "{operation}", True) == "wattlens_gen_ai_operations_total"
    assert prometheus_name("wattlens.gen_ai.water", "mL", True) == "wattlens_gen_ai_water_mL_total"


OTEL_PROBE = textwrap.dedent(
    """
    import json
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    from wattlens import otel
    from wattlens.context import Context, Place
    from wattlens.footprint import Tokens
    from wattlens.metering import Call, Serving, settle
    from wattlens.protocols import protocols

    observer = otel.SpanObserver(protocols())
    ctx = Context().at(Place(zone="FR"))
    ok = Call("gateway", "openai", "/chat/completions", "gpt-4o-mini", served_model="gpt-4o-mini", upstream="oai",
              team="t", tokens=Tokens(10, 2, 5, 1))
    failed = Call("sdk", "anthropic", "/messages", "claude-sonnet-4-6", upstream="u", status=502, outcome="upstream_error")
    for call in (ok, failed):
        settle(call, ctx, Serving(), [observer])
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                keys = set().union(*(p.attributes for p in m.data.data_points))
                out[m.name] = {"unit": m.unit, "monotonic": m.data.is_monotonic, "attributes": sorted(keys)}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def otel_labels() -> dict[str, set[str]]:
    """Prometheus name -> label names of the instruments wattlens.otel creates (in a fresh interpreter:
    OpenTelemetry's global MeterProvider can be set only once per process)."""
    pytest.importorskip("opentelemetry.sdk")
    from wattlens import otel

    run = subprocess.run([sys.executable, "-c", OTEL_PROBE], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(run.stdout)
    assert set(seen) == {name for name, _, _ in otel.INSTRUMENTS}
    return {
        prometheus_name(name, m["unit"], m["monotonic"]): {re.sub(r"[^a-zA-Z0-9_]", "_", a) for a in m["attributes"]}
        for name, m in seen.items()
    }


def test_gateway_dashboard_queries_use_the_gateways_metrics(gateway_labels: dict[str, set[str]]) -> None:
    board = json.loads(DASHBOARDS["gateway"].read_text())
    assert check_board(board, gateway_labels) >= 20
    used = {m for _, expr, _ in queries(board) for m in parse_promql(expr).metrics}
    # Every metric of the gateway is on the dashboard (the _created series aside).
    assert {n for n in gateway_labels if n.startswith("wattlens_") and not n.endswith("_created")} <= used


def test_otel_dashboard_queries_use_the_translated_instrument_names(otel_labels: dict[str, set[str]]) -> None:
    board = json.loads(DASHBOARDS["otel"].read_text())
    assert set(otel_labels) == {
        "wattlens_gen_ai_operations_total",
        "wattlens_gen_ai_energy_joules_total",
        "wattlens_gen_ai_carbon_grams_total",
        "wattlens_gen_ai_water_mL_total",
    }
    assert {"gen_ai_provider_name", "gen_ai_request_model", "error_type"} <= otel_labels["wattlens_gen_ai_operations_total"]
    assert check_board(board, otel_labels) >= 15
    used = {m for _, expr, _ in queries(board) for m in parse_promql(expr).metrics}
    assert set(otel_labels) <= used
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert all(f"`{name}`" in doc for name in otel_labels), "docs/deploy.md names every translated metric"


def test_dashboards_are_well_formed() -> None:
    uids = set()
    for path in DASHBOARDS.values():
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[0] == "datasource" and board["templating"]["list"][0]["query"] == "prometheus"
        for p in panels(board):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{path.name}: {p['title']}"
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"])
                for t in p["targets"]:
                    for var in re.findall(r"\$(\w+)", t["expr"]):
                        assert var in names or var.startswith("__"), f"{path.name}: ${var} is not a variable"
    assert len(uids) == len(DASHBOARDS)


# --- compose.yaml, prometheus.yml, provisioning ---------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_compose_services_and_their_references(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "prometheus", "grafana"}
    named_volumes = set(compose.get("volumes") or {})
    for name, s in services.items():
        assert s.get("build") or re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.]+)?", s["image"]), f"{name}: pin the image"
        deps = s.get("depends_on") or {}
        assert set(deps) <= set(services), f"{name}: depends on an unknown service"
        for v in s.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in named_volumes, f"{name}: volume {src} is not declared"
        for p in s.get("ports", []):
            assert re.fullmatch(r"\d+:\d+", p), f"{name}: port {p}"
        for c in s.get("configs", []):
            assert c["source"] in compose["configs"]
        for c in s.get("secrets", []):
            assert c["source"] in compose["secrets"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    ports = [p.split(":") for s in services.values() for p in s.get("ports", [])]
    assert len({host for host, _ in ports}) == len(ports), "two services publish the same host port"


def test_compose_wires_the_gateway_to_postgres_prometheus_and_its_keys(compose: dict[str, Any], tmp_path: Path) -> None:
    from wattlens.config import load_settings
    from wattlens.gateway.config import gateway_config

    gw, pg = compose["services"]["gateway"], compose["services"]["postgres"]
    env = gw["environment"]
    ledger = env["WATTLENS_LEDGER"]
    user, db = pg["environment"]["POSTGRES_USER"], pg["environment"]["POSTGRES_DB"]
    assert re.fullmatch(rf"postgresql://{user}:\$\{{WATTLENS_DB_PASSWORD:-\w+\}}@postgres:5432/{db}", ledger)
    assert pg["environment"]["POSTGRES_PASSWORD"] == ledger.split(":", 2)[2].split("@")[0]
    # OTLP metrics go to the Prometheus service, which was told to receive them.
    prom = compose["services"]["prometheus"]
    assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == "http://prometheus:9090/api/v1/otlp/v1/metrics"
    assert "--web.enable-otlp-receiver" in prom["command"] and "9090:9090" in prom["ports"]
    assert gw["entrypoint"][:4] == ["opentelemetry-instrument", "--", "wattlens", "serve"] and "0.0.0.0" in gw["entrypoint"]
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf" and env["OTEL_TRACES_EXPORTER"] == "none"
    # The gateway's configuration, with the keys file where the secret is mounted, loads and binds 0.0.0.0 with keys.
    target = next(c["target"] for c in gw["configs"] if c["source"] == "gateway_config")
    assert gw["command"] == ["--config", target]
    content = compose["configs"]["gateway_config"]["content"]
    secret = "/run/secrets/" + gw["secrets"][0]["target"]
    assert f'keys_file = "{secret}"' in content
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nid = "k"\nsha256 = "' + "0" * 64 + '"\nteam = "t"\n')
    (tmp_path / "gateway.toml").write_text(content.replace(secret, str(keys)))
    cfg = gateway_config(load_settings(str(tmp_path / "gateway.toml")))
    assert cfg.keys and cfg.port == 8787 and cfg.upstreams[0].api_key_env in env
    assert any(p.split(":")[1] == str(cfg.port) for p in gw["ports"])
    # Grafana: provisioning and dashboards where the provisioning files say they are.
    graf = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in graf["volumes"] if v.startswith("."))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "wattlens.yaml").read_text())["providers"][0]
    assert mounts["./deploy/grafana"] == provider["options"]["path"]
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / Path(home).name).is_file() and home.startswith(provider["options"]["path"] + "/")
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]


def test_prometheus_scrapes_the_gateway(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    prom = compose["services"]["prometheus"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "wattlens-gateway")
    assert job["static_configs"][0]["targets"] == ["gateway:8787"] and job.get("metrics_path", "/metrics") == "/metrics"
    # /metrics needs an admin key beyond loopback: Prometheus reads it from the secret compose mounts.
    secret = next(x["target"] for x in prom["secrets"] if x["source"] == "wattlens_scrape_key")
    assert job["authorization"] == {"type": "Bearer", "credentials_file": f"/run/secrets/{secret}"}
    assert config["otlp"]["translation_strategy"] == "UnderscoreEscapingWithSuffixes"  # the names the OTel dashboard uses


# --- Dockerfile (hadolint-style checks) ---------------------------------------------------------------
def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def test_dockerfile() -> None:
    ins = instructions()
    args = dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)
    bases = [a.split()[0] for op, a in ins if op == "FROM"]
    for base in bases:
        image = args.get(base.strip("${}"), base) if base.startswith("$") else base
        # A release tag (x.y.z and a Debian suite) or a digest: never latest, never a bare major.
        assert "@sha256:" in image or re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), image
    assert not [a for op, a in ins if op == "ADD"], "COPY, not ADD (no URLs, no archives unpacked)"
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM") :]
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the final stage runs as a non-root user"
    assert re.fullmatch(r"\d+:\d+", users[-1]), "a numeric user (Kubernetes runAsNonRoot)"
    by_op = {op: a for op, a in final}
    assert json.loads(by_op["ENTRYPOINT"]) == ["wattlens", "serve", "--host", "0.0.0.0"]
    assert json.loads(by_op["CMD"])[:1] == ["--config"]
    port = by_op["EXPOSE"]
    health = by_op["HEALTHCHECK"]
    assert "CMD [" in health and f"http://127.0.0.1:{port}/healthz" in health
    assert re.search(r"--timeout=\d+s", health) and re.search(r"--interval=\d+s", health)
    # Exec-form JSON everywhere a process starts (signals reach the gateway, which flushes its ledger).
    json.loads(health.split("CMD", 1)[1])
    copied = [src for op, a in ins if op == "COPY" and not a.startswith("--from") for src in a.split()[:-1]]
    ignore = [x for x in (ROOT / ".dockerignore").read_text().split("\n") if x.strip() and not x.startswith("#")]
    assert ignore[0] == "*", ".dockerignore: an allowlist"
    assert {f"!{c.rstrip('/')}" for c in copied} <= {i.rstrip("/") for i in ignore}, "COPY only what .dockerignore lets in"
    assert not [op for op, a in final if op == "RUN" and "pip install" in a], "installed in the build stage only"
