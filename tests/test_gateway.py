"""The gateway for real: upstream and gateway on loopback, the official SDKs as clients."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import upstream as up

from wattlens.gateway.app import create_app
from wattlens.gateway.config import ApiKey, GatewayConfig, Upstream
from wattlens.ledger import LedgerWriter, open_ledger, verify
from wattlens.metering import ModelParams, Serving
from wattlens.receipt import LLMRequest, Place, estimate_footprint

UPSTREAM_KEY = "sk-upstream-SECRET-never-logged-42"
CLIENT_KEY = "wl-client-key"
ADMIN_KEY = "wl-admin-key"


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[up.ServerThread]:
    with up.ServerThread(up.app) as s:
        yield s


@pytest.fixture()
def gateway(upstream_server: up.ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    base = upstream_server.url + "/v1"
    cfg = GatewayConfig(
        upstreams=(
            Upstream(
                "oai",
                "openai",
                base,
                api_key_env="FAKE_UPSTREAM_KEY",
                models=(
                    "gpt-4o-mini",
                    "gpt-4o",
                    "fail-*",
                    "slow",
                    "badstream",
                    "cutoff",
                    "nousage",
                    "text-embedding-*",
                    "mystery",
                ),
                place=Place(zone="FR"),
                timeout_s=1.0,
                serving=Serving(
                    model_params={
                        "text-embedding-3-small": ModelParams(0.3),
                        "fail-500": ModelParams(1),
                        "badstream": ModelParams(1),
                        "cutoff": ModelParams(1),
                        "nousage": ModelParams(1),
                    }
                ),
            ),
            Upstream(
                "claude",
                "anthropic",
                base,
                api_key_env="FAKE_UPSTREAM_KEY",
                models=("claude-*",),
                place=Place(region="us-east-1"),
            ),
            Upstream("dead", "openai", "http://127.0.0.1:9/v1", models=("dead-model",)),
        ),
        keys=(
            ApiKey("k1", hashlib.sha256(CLIENT_KEY.encode()).hexdigest(), team="research", user="alice"),
            ApiKey("ops", hashlib.sha256(ADMIN_KEY.encode()).hexdigest(), admin=True),
        ),
    )
    db = tmp_path / "ledger.db"
    writer = LedgerWriter(open_ledger(db))
    with up.ServerThread(create_app(cfg, writer)) as gw:
        yield {"url": gw.url, "db": db, "writer": writer}


def records(db: Path) -> list[dict[str, Any]]:
    led = open_ledger(db)
    try:
        return list(led.records())
    finally:
        led.close()


def oai(gw: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw["url"] + "/v1", api_key=CLIENT_KEY, max_retries=0)


def test_openai_chat_non_streaming(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "what powers the grid"}]
    )
    resp = raw.parse()
    fp = resp.usage.footprint  # type: ignore[union-attr]
    # Tokens come from the upstream's usage: 14 prompt (4 cached), 10 completion of which 2 reasoning.
    assert fp["tokens"] == {"input": 14, "cached_input": 4, "output": 8, "reasoning": 2}
    want = estimate_footprint(
        LLMRequest(model="gpt-4o-mini", input_tokens=14, cached_input_tokens=4, output_tokens=8, reasoning_tokens=2),
        Place(zone="FR"),
    ).as_dict()
    assert fp == json.loads(json.dumps(want))
    assert fp["grid"]["zone"] == "FR" and fp["method"] == "estimated"
    assert raw.headers["x-wattlens-method"] == "estimated"
    assert float(raw.headers["x-wattlens-energy-wh"].split(";")[0]) == pytest.approx(want["energy_wh"]["mid"], rel=1e-5)
    # The upstream got the upstream key, never the client's gateway key.
    seen = up.SEEN[-1]["headers"]
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_openai_chat_streaming_with_and_without_usage(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(up.WORDS)
    final = [c for c in chunks if c.usage is not None]
    assert len(final) == 1 and final[0].usage.footprint["tokens"]["output"] == 8  # type: ignore[union-attr]
    assert up.SEEN[-1]["body"]["stream_options"]["include_usage"] is True
    # Without include_usage the client sees no usage chunk, exactly as it asked.
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(up.WORDS)


def test_completions_embeddings_and_models(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    c = client.completions.create(model="gpt-4o-mini", prompt="the grid is")
    assert c.usage.footprint["tokens"]["output"] == 3  # type: ignore[union-attr]
    e = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    assert len(e.data) == 2 and e.usage.footprint["tokens"]["input"] == 5  # type: ignore[attr-defined]
    assert e.usage.footprint["tokens"]["output"] == 0  # type: ignore[attr-defined]
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "gpt-4o", "dead-model"} <= ids and "not-routed" not in ids


def test_anthropic_messages(gateway: dict[str, Any]) -> None:
    client = anthropic.Anthropic(base_url=gateway["url"], api_key=CLIENT_KEY, max_retries=0)
    msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    fp = msg.footprint  # type: ignore[attr-defined]
    # All input fields added up: 20 + 5 cache creation + 100 cache read; 100 of them cached.
    assert fp["tokens"] == {"input": 125, "cached_input": 100, "output": 9, "reasoning": 0}
    assert fp["grid"]["zone"] == "US-VA"  # us-east-1
    assert up.SEEN[-1]["headers"]["x-api-key"] == UPSTREAM_KEY
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        deltas = [ev for ev in stream if ev.type == "message_delta"]
        text = stream.get_final_text()
    assert text == "".join(up.WORDS)
    assert deltas[0].footprint["tokens"]["input"] == 125  # type: ignore[attr-defined]


def test_ledger_records_every_request_and_verifies(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-wattlens-team": "ignored-when-key-has-team"},
        )
    gateway["writer"].close()  # flush
    recs = records(gateway["db"])
    assert len(recs) == 3
    r = recs[0]
    assert r["team"] == "research" and r["user"] == "alice" and r["key_id"] == "k1"
    assert "team" not in r["tags"]  # with keys, the key says who: the header is not recorded as a tag either
    assert r["status"] == 200 and r["footprint"]["tokens"]["input"] == 11 and r["latency_s"] > 0
    led = open_ledger(gateway["db"])
    assert verify(list(led.rows())) == []
    led.close()
    raw = gateway["db"].read_bytes()
    assert UPSTREAM_KEY.encode() not in raw and CLIENT_KEY.encode() not in raw


def test_failures_become_api_errors(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="fail-500", messages=[{"role": "user", "content": "x"}])
    assert "exploded" in str(e.value)
    with pytest.raises(openai.APIStatusError) as e2:
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    assert e2.value.status_code == 504
    with pytest.raises(openai.APIStatusError) as e3:
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert e3.value.status_code == 502 and UPSTREAM_KEY not in str(e3.value.body)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as e4:
        client.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    assert "/v1/messages" in str(e4.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="wrong", max_retries=0).models.list()
    h = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}
    r = httpx.post(gateway["url"] + "/v1/chat/completions", content=b"{not json", headers=h)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(gateway["url"] + "/v1/chat/completions", content=b"x" * (9 * 1024 * 1024), headers=h)
    assert r.status_code == 413
    r = httpx.post(gateway["url"] + "/v1/chat/completions", json={"messages": []}, headers=h)
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]


def test_broken_streams_are_reported_and_recorded(gateway: dict[str, Any]) -> None:
    h = {"authorization": f"Bearer {CLIENT_KEY}"}
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    r = httpx.post(gateway["url"] + "/v1/chat/completions", json={**body, "model": "badstream"}, headers=h)
    assert "malformed stream" in r.text
    r = httpx.post(gateway["url"] + "/v1/chat/completions", json={**body, "model": "cutoff"}, headers=h)
    assert "broke off" in r.text
    gateway["writer"].close()
    outcomes = {(x["model_requested"], x["outcome"]) for x in records(gateway["db"])}
    assert ("badstream", "upstream_error") in outcomes and ("cutoff", "upstream_error") in outcomes
    cut = next(x for x in records(gateway["db"]) if x["model_requested"] == "cutoff")
    assert cut["tokens"]["output"] == 3  # three chunks arrived before the break


def test_metrics_and_health(gateway: dict[str, Any]) -> None:
    oai(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert httpx.get(gateway["url"] + "/metrics").status_code == 401  # team and model names: not for anyone
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    m = httpx.get(gateway["url"] + "/metrics", headers=admin).text
    assert 'wattlens_requests_total{method="estimated",model="gpt-4o-mini",status="200",team="research"' in m
    assert "wattlens_energy_joules_total" in m and UPSTREAM_KEY not in m
    assert httpx.get(gateway["url"] + "/healthz").json() == {"status": "ok"}  # public, without details
    assert httpx.get(gateway["url"] + "/healthz", headers=admin).json()["ledger"]["degraded"] is False


def test_responses_api_unary_and_streaming(gateway: dict[str, Any]) -> None:
    client = oai(gateway)
    r = client.responses.create(model="gpt-4o-mini", input="what powers the grid")
    assert r.output_text == "".join(up.WORDS)
    assert r.usage.footprint["tokens"] == {"input": 30, "cached_input": 10, "output": 8, "reasoning": 4}  # type: ignore[union-attr]
    events = list(client.responses.create(model="gpt-4o-mini", input="x", stream=True))
    done = [e for e in events if e.type == "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "".join(up.WORDS)
    assert done[0].response.usage.footprint["tokens"]["reasoning"] == 4  # type: ignore[union-attr]


def test_local_upstream_is_measured_by_the_meter(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    cfg = GatewayConfig(
        upstreams=(
            Upstream("here", "openai", upstream_server.url + "/v1", models=("*",), place=Place(zone="FR"), local=True),
        )
    )
    with up.ServerThread(create_app(cfg, None)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)
        r = client.chat.completions.create(model="my-local-llm", messages=[{"role": "user", "content": "x"}])
    fp = r.usage.footprint  # type: ignore[union-attr]
    # On a machine without counters the Meter's power model answers: estimated, and it says so.
    assert fp["method"] in ("measured", "estimated", "mixed")
    assert "host" in fp["boundary"] and fp["energy_wh"]["mid"] > 0
    assert fp["tokens"]["input"] == 11 and fp["model"] == "my-local-llm"


def test_dashboard_needs_an_admin_or_team_key_beyond_loopback(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    admin, user = "wl-admin-key", "wl-user-key"
    keys = (
        ApiKey("a", hashlib.sha256(admin.encode()).hexdigest(), admin=True),
        ApiKey("u", hashlib.sha256(user.encode()).hexdigest()),  # no team: sees no one's records
    )
    cfg = GatewayConfig(
        upstreams=(Upstream("oai", "openai", upstream_server.url + "/v1", place=Place(zone="FR")),),
        host="0.0.0.0",
        keys=keys,
        ledger=str(tmp_path / "l.db"),
    )
    with up.ServerThread(create_app(cfg, LedgerWriter(open_ledger(cfg.ledger)))) as gw:
        assert httpx.get(gw.url + "/dashboard").status_code == 401
        assert httpx.get(gw.url + "/dashboard", headers={"authorization": f"Bearer {user}"}).status_code == 403
        ok = httpx.get(gw.url + "/wattlens/api/summary", headers={"authorization": f"Bearer {admin}"})
        assert ok.status_code == 200 and ok.json()["total"]["requests"] == 0
        assert httpx.get(gw.url + "/").status_code == 200  # the playground page itself is public


def test_a_stream_without_usage_still_brings_its_receipt(gateway: dict[str, Any]) -> None:
    """Like llama.cpp's server: no usage chunk at all. The gateway counts text events and sends the usage chunk."""
    client = oai(gateway)
    msgs: Any = [{"role": "user", "content": "hi"}]
    chunks = list(
        client.chat.completions.create(model="nousage", messages=msgs, stream=True, stream_options={"include_usage": True})
    )
    final = [c for c in chunks if c.usage is not None]
    assert len(final) == 1 and final[0].choices == []
    u = final[0].usage
    assert u.completion_tokens == len(up.WORDS)  # type: ignore[union-attr]  # not the role and finish chunks
    assert u.footprint["tokens"]["output"] == len(up.WORDS) and u.footprint["energy_wh"]["mid"] > 0  # type: ignore[union-attr]
    # Not asked for: the client's chunks stay as the upstream sent them.
    plain = list(client.chat.completions.create(model="nousage", messages=msgs, stream=True))
    assert all(c.usage is None for c in plain)
