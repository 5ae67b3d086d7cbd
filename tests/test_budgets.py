"""Budgets and tags through the real gateway, driven by the official OpenAI SDK.

Each limit is set from the cost of one call computed by hand here (the estimator on the
upstream's token counts), so every crossing happens at a known request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import upstream as up
from test_ledger import postgres  # noqa: F401 - the PostgreSQL server fixture (skips when absent)

from wattlens.errors import ConfigError
from wattlens.gateway.app import create_app
from wattlens.gateway.budget_rules import Budget, parse_budget, period_bounds
from wattlens.gateway.config import ApiKey, GatewayConfig, Route, Upstream
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.metering import Call
from wattlens.receipt import LLMRequest, Place, estimate_footprint

KEY, ADMIN = "wl-research-key", "wl-admin-key"
PROMPT = [{"role": "user", "content": "what powers the grid"}]  # the upstream counts 4 words + 10 = 14 tokens
TZ = "Europe/Paris"


def cost_wh(model: str) -> float:
    """One call's energy, by hand: the upstream reports 14 prompt (4 cached) and 10 completion (2 reasoning) tokens."""
    req = LLMRequest(model=model, input_tokens=14, cached_input_tokens=4, output_tokens=8, reasoning_tokens=2)
    return float(estimate_footprint(req, Place(zone="FR")).as_dict()["energy_wh"]["mid"])  # as the receipt has it


class Hooks:
    """A real HTTP server on loopback that records the webhook POSTs it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", 0))
                bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.time() + timeout_s
        while len(self.bodies) < n and time.time() < deadline:
            time.sleep(0.02)
        return list(self.bodies)


def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.time() + timeout_s
    while not check():
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[up.ServerThread]:
    with up.ServerThread(up.app) as s:
        yield s


@pytest.fixture()
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.server.shutdown()


def config(upstream_url: str, ledger: str, budgets: tuple[Budget, ...]) -> GatewayConfig:
    return GatewayConfig(
        upstreams=(
            Upstream("oai", "openai", upstream_url + "/v1", models=("gpt-4o-mini", "gpt-4o"), place=Place(zone="FR")),
            Upstream("claude", "anthropic", upstream_url + "/v1", models=("claude-*",), place=Place(zone="FR")),
        ),
        keys=(
            ApiKey("k1", hashlib.sha256(KEY.encode()).hexdigest(), team="research", tags=(("project", "atlas"),)),
            ApiKey("ops", hashlib.sha256(ADMIN.encode()).hexdigest(), admin=True),
        ),
        routes=(Route("always-small", "gpt-4o-mini", "gpt-4o", threshold=0.0),),
        ledger=ledger,
        budgets=budgets,
    )


class Gw:
    """A gateway on loopback over a ledger; several can share one ledger (replicas)."""

    def __init__(self, cfg: GatewayConfig) -> None:
        assert cfg.ledger is not None
        self.writer = LedgerWriter(open_ledger(cfg.ledger), flush_s=0.05)
        self.app = create_app(cfg, self.writer)
        self.app.state.gateway.budgets.sync_s = 0.1  # replicas see each other within a tenth of a second here
        self.thread = up.ServerThread(self.app)

    def __enter__(self) -> Gw:
        self.thread.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.__exit__()

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.thread.url + "/v1", api_key=key, max_retries=0)

    def used(self, name: str) -> float:
        r = httpx.get(self.thread.url + "/wattlens/api/budgets", headers={"authorization": f"Bearer {ADMIN}"})
        return float(next(b["used"] for b in r.json()["data"] if b["name"] == name))


def refused_until_period_end(period: str, send: Callable[[], object], error: type[Exception]) -> Any:
    """Send a request that must be refused; its Retry-After is the time left in the period when it was answered."""
    t0 = time.time()
    with pytest.raises(error) as ei:
        send()
    t1 = time.time()
    _, end = period_bounds(period, TZ, dt.datetime.fromtimestamp(t0, dt.UTC))
    retry = int(ei.value.response.headers["retry-after"])  # type: ignore[attr-defined]
    assert end.timestamp() - t1 <= retry <= end.timestamp() - t0 + 1  # whole seconds, rounded up
    return ei.value


def test_soft_limit_header_webhook_hard_limit_429_and_restart(
    upstream_server: up.ServerThread, hooks: Hooks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wattlens.gateway.budgets.PAGE", 2)  # the ledger is read back in several pages
    e1 = cost_wh("gpt-4o-mini")
    b = parse_budget(
        {
            "name": "research-day",
            "scope": "team",
            "match": "research",
            "unit": "energy_wh",
            "period": "day",
            "timezone": TZ,
            "soft": 1.5 * e1,  # crossed by the 2nd call
            "hard": 2.5 * e1,  # crossed by the 3rd; the 4th is refused
            "webhook": hooks.url,
        },
        "test",
    )
    cfg = config(upstream_server.url, str(tmp_path / "ledger.db"), (b,))
    with Gw(cfg) as gw:
        c = gw.client()
        r1 = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
        assert "x-wattlens-budget-warning" not in r1.headers
        assert r1.parse().usage.footprint["energy_wh"]["mid"] == pytest.approx(e1, rel=1e-9)  # type: ignore[union-attr]
        r2 = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
        warning = r2.headers["x-wattlens-budget-warning"]
        assert warning.startswith("research-day;") and "unit=energy_wh" in warning
        assert float(warning.split("used=")[1].split(";")[0]) == pytest.approx(2 * e1, rel=1e-5)
        soft = hooks.wait(1)
        assert soft[0]["event"] == "budget.soft_limit" and soft[0]["budget"] == "research-day"
        assert soft[0]["used"] == pytest.approx(2 * e1) and soft[0]["soft"] == pytest.approx(1.5 * e1)
        start, _ = period_bounds("day", TZ, dt.datetime.now(dt.UTC))
        assert soft[0]["period_start"] == start.astimezone(dt.UTC).isoformat(timespec="microseconds")
        assert "secret" not in json.dumps(soft[0])  # the webhook's token is not echoed anywhere
        c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # 2 e1 < hard before it: allowed
        hard = hooks.wait(2)
        assert [h["event"] for h in hard] == ["budget.soft_limit", "budget.hard_limit"]
        send = lambda: c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # noqa: E731
        err = refused_until_period_end("day", send, openai.RateLimitError)
        assert err.status_code == 429 and err.code == "budget_exceeded"
        # Prometheus: use over the hard limit, for Alertmanager
        share = gw.app.state.gateway.budgets.used_share(Call("gateway", "openai", "/x", "m", team="research"))
        assert share == pytest.approx(3 / 2.5)  # what the router's budget pressure reads
        # The Anthropic protocol's own 429 shape, for the same team
        import anthropic

        claude = anthropic.Anthropic(base_url=gw.thread.url, api_key=KEY, max_retries=0)
        ask = lambda: claude.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=PROMPT)  # type: ignore[arg-type]  # noqa: E731
        aerr = refused_until_period_end("day", ask, anthropic.RateLimitError)
        assert aerr.body["error"]["type"] == "rate_limit_error"
        m = httpx.get(gw.thread.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
        line = next(x for x in m.splitlines() if x.startswith('wattlens_budget_used_ratio{budget="research-day"}'))
        assert float(line.split()[-1]) == pytest.approx(3 * e1 / (2.5 * e1), rel=1e-6)
        gw.writer.flush()
    assert len(hooks.bodies) == 2  # once per crossing
    recs = list(open_ledger(cfg.ledger).records())
    refused = [r for r in recs if r["status"] == 429]
    assert len(recs) == 5 and len(refused) == 2  # the refused requests have their records too
    assert refused[0]["outcome"] == "rejected" and refused[0]["tags"]["budget"] == "research-day"
    assert refused[0]["footprint"] is None
    # A restart reads the period's use from the ledger: still refused, and no second alert.
    with Gw(cfg) as again:
        assert again.used("research-day") == pytest.approx(3 * e1)
        with pytest.raises(openai.RateLimitError):
            again.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        time.sleep(0.3)
    assert len(hooks.bodies) == 2


def test_reroute_to_a_smaller_model_is_in_the_receipt(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    big = cost_wh("gpt-4o")
    b = parse_budget(
        {
            "name": "atlas-month",
            "scope": "tag:project",
            "match": "atlas",  # the key's default tag
            "unit": "energy_wh",
            "period": "month",
            "hard": 0.5 * big,  # the first gpt-4o call passes it
            "on_hard": "reroute",
            "reroute_to": "gpt-4o-mini",
        },
        "test",
    )
    cfg = config(upstream_server.url, str(tmp_path / "ledger.db"), (b,))
    with Gw(cfg) as gw:
        c = gw.client()
        first = c.chat.completions.create(model="gpt-4o", messages=PROMPT)
        assert first.model == "gpt-4o" and "routing" not in first.usage.footprint  # type: ignore[union-attr,operator]
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=PROMPT)
        second = raw.parse()
        routing = second.usage.footprint["routing"]  # type: ignore[union-attr]
        assert second.model == "gpt-4o-mini"
        assert routing["budget"] == "atlas-month" and routing["instead_of"] == "gpt-4o"
        assert routing["chosen"] == "gpt-4o-mini" and routing["reason"] == "hard-limit"
        assert routing["energy_saved_wh"]["mid"] == pytest.approx(
            big - cost_wh("gpt-4o-mini"), rel=1e-5
        )  # the receipt rounds to 6 digits
        assert "atlas-month" in raw.headers["x-wattlens-budget-warning"]


def test_reroute_to_a_route_set_at_run_time(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    """A route as the target, set through the admin API: the router is asked for the `energy` preference."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:  # found, not imported: importing it takes seconds
        pytest.skip("the router's second stage needs the 'local' extra")
    hi = [{"role": "user", "content": "hi"}]  # a greeting: the router's cheap first stage is sure, no embedding
    cfg = config(upstream_server.url, str(tmp_path / "ledger.db"), ())
    with Gw(cfg) as gw:
        url, admin = gw.thread.url + "/wattlens/api/budgets/cap", {"authorization": f"Bearer {ADMIN}"}
        body = {"scope": "team", "match": "research", "unit": "water_ml", "period": "day", "hard": 1e-12}
        bad = httpx.put(url, json={**body, "on_hard": "reroute"}, headers=admin)
        assert bad.status_code == 400 and "reroute_to" in bad.json()["error"]["message"]
        assert httpx.put(url, json=body, headers={"authorization": f"Bearer {KEY}"}).status_code == 403
        ok = httpx.put(url, json={**body, "on_hard": "reroute", "reroute_to": "always-small"}, headers=admin)
        assert ok.status_code == 200 and ok.json()["name"] == "cap"
        c = gw.client()
        c.chat.completions.create(model="gpt-4o", messages=PROMPT)  # nothing used yet: served as asked
        r = c.chat.completions.create(model="gpt-4o", messages=hi)  # type: ignore[arg-type]
        routing = r.usage.footprint["routing"]  # type: ignore[union-attr]
        assert r.model == "gpt-4o-mini" and routing["preference"] == "energy"
        assert routing["budget"] == "cap" and routing["requested"] == "gpt-4o"
        assert routing["budget_used_share"] >= 1.0  # the router is told how much of the budget is gone
        assert httpx.delete(url, headers=admin).status_code == 200
        r = c.chat.completions.create(model="gpt-4o", messages=PROMPT)
        assert r.model == "gpt-4o" and "routing" not in r.usage.footprint  # type: ignore[union-attr,operator]


def test_two_replicas_on_postgresql_share_a_budget(
    upstream_server: up.ServerThread,
    hooks: Hooks,
    postgres: str,  # noqa: F811 - the fixture
) -> None:
    e1 = cost_wh("gpt-4o-mini")
    b = parse_budget(
        {
            "name": "shared-week",
            "scope": "key",
            "match": "k1",
            "unit": "energy_wh",
            "period": "week",
            "timezone": TZ,
            "soft": 1.5 * e1,
            "hard": 2.5 * e1,
            "webhook": hooks.url,
        },
        "test",
    )
    cfg = config(upstream_server.url, postgres, (b,))
    with Gw(cfg) as a, Gw(cfg) as b_:
        for _ in range(2):
            a.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        until(lambda: abs(b_.used("shared-week") - 2 * e1) < 1e-9 * e1 + 1e-12)  # B reads A's records
        b_.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # 2 e1 < hard: allowed
        with pytest.raises(openai.RateLimitError):
            b_.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        until(lambda: a.used("shared-week") >= 2.5 * e1)  # and A reads B's
        send = lambda: a.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # noqa: E731
        refused_until_period_end("week", send, openai.RateLimitError)
        hooks.wait(2)
        time.sleep(0.5)  # time for a duplicate to show, if the replicas fired one each
    assert sorted(h["event"] for h in hooks.bodies) == ["budget.hard_limit", "budget.soft_limit"]
    with Gw(cfg) as c:  # a restart: the week's use comes back from PostgreSQL
        assert c.used("shared-week") == pytest.approx(3 * e1)
        with pytest.raises(openai.RateLimitError):
            c.client().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)


def test_tags_from_headers_metadata_and_key(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    cfg = config(upstream_server.url, str(tmp_path / "ledger.db"), ())
    with Gw(cfg) as gw:
        c = gw.client()
        r = c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=PROMPT,
            metadata={"feature": "search-box"},
            extra_headers={"x-wattlens-tag-env": "prod", "x-wattlens-tag-project": "zephyr"},
        )
        rid = r.headers["x-wattlens-record"]
        for bad, why in (
            ({"x-wattlens-tag-_x": "x"}, "tag name"),
            ({"x-wattlens-tag-env": "a" * 65}, "1-64 characters"),
            ({"x-wattlens-tag-env": "tab\there"}, "1-64 characters"),
            ({"x-wattlens-tag-team": "other"}, "reserved"),
        ):
            with pytest.raises(openai.BadRequestError) as ei:
                c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, extra_headers=bad)
            if why:
                assert why in str(ei.value)
        with pytest.raises(openai.BadRequestError, match="at most 16 tags"):
            c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, metadata={f"k{i}": "v" for i in range(17)})
        import anthropic

        msg = anthropic.Anthropic(base_url=gw.thread.url, api_key=KEY, max_retries=0).messages.with_raw_response.create(
            model="claude-3-5-haiku",
            max_tokens=10,
            messages=PROMPT,  # type: ignore[arg-type]
            metadata={"user_id": "u-42"},
        )
        claude_id = msg.headers["x-wattlens-record"]
        m = httpx.get(gw.thread.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
        assert 'wattlens_tag_requests_total{tag="env",value="prod"} 1.0' in m
        gw.writer.flush()
    rec = next(x for x in open_ledger(cfg.ledger).records() if x["id"] == rid)
    # the key's default (project=atlas) is overridden by the request; its metadata and headers are kept
    assert rec["tags"] == {"project": "zephyr", "feature": "search-box", "env": "prod"}
    assert rec["team"] == "research"
    rec = next(x for x in open_ledger(cfg.ledger).records() if x["id"] == claude_id)
    assert rec["tags"] == {"project": "atlas", "user_id": "u-42"}  # Anthropic's metadata.user_id, the key's default


def test_anthropic_user_id_must_be_a_string() -> None:
    from wattlens.gateway.errors import ApiError
    from wattlens.gateway.tags import from_request

    assert from_request({}, {"metadata": {"user_id": "u-1"}}, "anthropic") == {"user_id": "u-1"}
    assert from_request({}, {"metadata": {}}, "anthropic") == {}
    with pytest.raises(ApiError, match="user_id must be a string"):  # was dropped silently (Anthropic: 400)
        from_request({}, {"metadata": {"user_id": 42}}, "anthropic")


def test_tag_values_are_bounded_for_metrics() -> None:
    from wattlens.gateway.tags import Bounded

    b = Bounded(max_names=2, max_values=3)
    got = [b.label("user", f"u{i}") for i in range(5)]
    assert got == [("user", "u0"), ("user", "u1"), ("user", "u2"), ("user", "other"), ("user", "other")]
    assert b.label("user", "u1") == ("user", "u1")
    assert b.label("env", "prod") == ("env", "prod")
    assert b.label("third", "x") == ("other", "other")


def test_budget_definitions_are_checked() -> None:
    ok = {"name": "b", "scope": "team", "match": "t", "unit": "carbon_g", "period": "month", "hard": 5}
    assert parse_budget(ok, "t").hard == 5.0
    for change, msg in (
        ({"unit": "kwh"}, "unit must be one of"),
        ({"period": "year"}, "period must be"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hard": -1}, "positive number"),
        ({"soft": 9}, "above hard"),
        ({"match": None}, "needs match"),
        ({"on_hard": "reroute"}, "needs reroute_to"),
        ({"webhook": "ftp://x"}, "http:// or https://"),
        ({"limit": 3}, "unknown key 'limit'"),
    ):
        with pytest.raises(ConfigError, match=msg):
            parse_budget({**ok, **change}, "t")


def test_calendar_periods_in_a_time_zone() -> None:
    # 2026-03-29 is the day Paris moves to summer time: 23 hours long.
    now = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
    start, end = period_bounds("day", "Europe/Paris", now)
    assert end.timestamp() - start.timestamp() == 23 * 3600  # real seconds (same-zone subtraction is wall time)
    assert start.astimezone(dt.UTC) == dt.datetime(2026, 3, 28, 23, 0, tzinfo=dt.UTC)
    ws, we = period_bounds("week", "UTC", now)  # a Sunday: its week began on Monday the 23rd
    assert ws.date() == dt.date(2026, 3, 23) and we.date() == dt.date(2026, 3, 30)
    ms, me = period_bounds("month", "America/New_York", dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC))
    assert ms.date() == dt.date(2026, 12, 1) and me.date() == dt.date(2027, 1, 1)


def test_budgets_and_key_tags_from_the_config_files(tmp_path: Path) -> None:
    from wattlens.gateway.config import load_gateway_config

    keys = tmp_path / "keys.toml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    keys.write_text(f'[[keys]]\nid = "k1"\nsha256 = "{digest}"\nteam = "research"\ntags = {{project = "atlas"}}\n')
    cfg = tmp_path / "wattlens.toml"
    base = '[server]\nkeys_file = "keys.toml"\n[[upstreams]]\nbase_url = "http://127.0.0.1:9/v1"\n'
    cfg.write_text(
        base + '[[budgets]]\nname = "d"\nscope = "team"\nmatch = "research"\nunit = "water_ml"\nperiod = "week"\n'
        'timezone = "Asia/Tokyo"\nhard = 2.5\n'
    )
    g = load_gateway_config(cfg)
    assert g.keys[0].tags == (("project", "atlas"),)
    assert g.budgets == (Budget("d", "team", "research", "water_ml", "week", "Asia/Tokyo", None, 2.5),)
    cfg.write_text(base + '[[budgets]]\nname = "d"\nscope = "team"\nmatch = "r"\nunit = "wh"\nperiod = "day"\nhard = 1\n')
    with pytest.raises(ConfigError, match="unit must be one of energy_wh"):
        load_gateway_config(cfg)
    cfg.write_text(base + '[budgets]\nname = "d"\n')
    with pytest.raises(ConfigError, match=r"\[\[budgets\]\]"):
        load_gateway_config(cfg)
    keys.write_text(f'[[keys]]\nsha256 = "{digest}"\ntags = {{"Bad Name" = "x"}}\n')
    cfg.write_text(base)
    with pytest.raises(ConfigError, match="tag name"):
        load_gateway_config(cfg)


def test_a_stream_that_crosses_the_hard_limit_finishes(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    b = parse_budget(
        {"name": "tiny", "scope": "key", "match": "k1", "unit": "carbon_g", "period": "day", "hard": 1e-9}, "test"
    )
    cfg = config(upstream_server.url, str(tmp_path / "ledger.db"), (b,))
    with Gw(cfg) as gw:
        c = gw.client()
        chunks = list(
            c.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True, stream_options={"include_usage": True})
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "".join(up.WORDS)  # the whole answer, though it took the use past the limit
        fp = chunks[-1].usage.footprint  # type: ignore[union-attr]
        assert fp["carbon_g"]["location"]["mid"] > 1e-9
        assert gw.used("tiny") == pytest.approx(fp["carbon_g"]["location"]["mid"])  # counted when it settled
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True)


def test_without_a_ledger_budgets_count_in_memory(upstream_server: up.ServerThread) -> None:
    e1 = cost_wh("gpt-4o-mini")
    b = parse_budget({"name": "mem", "scope": "all", "unit": "energy_wh", "period": "day", "hard": 1.5 * e1}, "test")
    cfg = GatewayConfig(
        upstreams=(Upstream("oai", "openai", upstream_server.url + "/v1", place=Place(zone="FR")),), budgets=(b,)
    )
    app = create_app(cfg)  # no ledger writer
    with up.ServerThread(app) as gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        for _ in range(2):
            c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        usage = app.state.gateway.budgets._usage["mem"]
        assert usage.synced == pytest.approx(2 * e1) and not usage.pending  # nothing waits for a ledger


def test_the_ledger_reduces_records_to_what_budgets_count(tmp_path: Path) -> None:
    """usage_after (JSON extracted by SQLite) counts exactly what the whole records would."""
    from wattlens.gateway.budget_rules import UNITS, amount
    from wattlens.ledger import open_ledger
    from wattlens.report.demo import write_demo

    db = tmp_path / "d.db"
    assert write_demo(str(db), ["gpt-4o-mini"], ["FR"], limit=40) == 40
    led = open_ledger(db)
    try:
        whole = list(led.records())
        reduced = [r for _, r in led.usage_after(0)]
    finally:
        led.close()
    assert len(reduced) == len(whole) == 40
    for w, r in zip(whole, reduced, strict=True):
        assert {k: r[k] for k in ("id", "ts", "key_id", "team", "user", "tags")} == {
            k: w.get(k) for k in ("id", "ts", "key_id", "team", "user", "tags")
        }
        for unit in UNITS:
            assert amount(r["footprint"], unit) == pytest.approx(amount(w["footprint"], unit), rel=1e-12)
