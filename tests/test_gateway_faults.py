"""Upstream faults and hostile input through the gateway: each answered in the protocol's shape and recorded once.

The upstream is an in-memory MockTransport speaking the real wire formats (SSE chunks as
OpenAI and Anthropic send them), so each fault is exact and the test is fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wattlens.context import Context, Place
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.gateway.transport import MockRequest, MockTransport
from wattlens.ledger import LedgerWriter, open_ledger

MSG = [{"role": "user", "content": "hi"}]


def sse(*events: Any, done: bool = True) -> bytes:
    out = b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(text: str | None, usage: dict[str, int] | None = None, choices: bool = True) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "created": 0}
    c["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}] if choices else []
    c["usage"] = usage
    return c


USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


class Gw:
    def __init__(self, tmp: Path, answer: Any) -> None:
        async def handler(req: MockRequest) -> tuple[int, bytes]:
            return answer(req) if callable(answer) else answer

        cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1"),), context=Context(Place(zone="FR")))
        self.writer = LedgerWriter(open_ledger(tmp / "l.db"), flush_s=0.01)
        self.app = create_app(cfg, self.writer, transports={"u": MockTransport(handler)})
        self.db = tmp / "l.db"

    def post(self, body: Any, path: str = "/v1/chat/completions", raw: bytes | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://127.0.0.1") as c:
                if raw is not None:
                    return await c.post(path, content=raw, headers={"content-type": "application/json"})
                return await c.post(path, json=body)

        return asyncio.run(go())

    def records(self) -> list[dict[str, Any]]:
        self.writer.flush()
        led = open_ledger(self.db)
        try:
            return list(led.records())
        finally:
            led.close()


@pytest.fixture()
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def stream_req(include_usage: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def data_lines(r: httpx.Response) -> list[str]:
    return [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]


def test_usage_on_every_chunk_gives_one_record_and_keeps_the_text(tmp: Path) -> None:
    # vLLM's continuous_usage_stats: a running usage on every content chunk, then the final one.
    events = [chunk("a", {**USAGE, "completion_tokens": 1}), chunk("b", {**USAGE, "completion_tokens": 2})]
    gw = Gw(tmp, (200, sse(*events, chunk(None, USAGE, choices=False))))
    r = gw.post(stream_req())  # the client did not ask for usage
    texts = [
        json.loads(d)["choices"][0]["delta"]["content"] for d in data_lines(r) if d != "[DONE]" and json.loads(d)["choices"]
    ]
    assert texts == ["a", "b"]  # no answer text dropped
    recs = gw.records()
    assert len(recs) == 1 and recs[0]["tokens"]["output"] == 3 and recs[0]["outcome"] == "ok"
    # Without the final usage-only chunk the last running usage settles it, once.
    (tmp / "b").mkdir()
    gw2 = Gw(tmp / "b", (200, sse(*events)))
    gw2.post(stream_req(include_usage=True))
    recs = gw2.records()
    assert len(recs) == 1 and recs[0]["tokens"]["output"] == 2


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (sse(chunk("a"), '{"id": "c", "usage": {"prompt_tokens": 1,'), "bad JSON in a usage chunk"),
        (sse(chunk("a"), '["a", "list", "chunk", {"usage": 1}]'), "a list chunk"),
        (sse(chunk("a"), '"usage"'), "a string chunk"),
    ],
)
def test_malformed_events_end_with_an_error_event_and_are_recorded(tmp: Path, body: bytes, why: str) -> None:
    gw = Gw(tmp, (200, body))
    r = gw.post(stream_req())
    last = json.loads([d for d in data_lines(r) if d != "[DONE]"][-1])
    assert last["error"]["code"] == "bad_stream", why
    recs = gw.records()
    assert len(recs) == 1 and recs[0]["outcome"] == "upstream_error"


def test_a_stream_that_ends_without_its_end_marker_is_not_a_clean_200(tmp: Path) -> None:
    gw = Gw(tmp, (200, sse(chunk("a"), chunk("b"), done=False)))
    r = gw.post(stream_req())
    last = json.loads(data_lines(r)[-1])
    assert last["error"]["code"] == "truncated"
    rec = gw.records()[0]
    assert rec["outcome"] == "upstream_error" and rec["tokens"]["output"] == 2


@pytest.mark.parametrize("bad", [1e30, -5, "many", float("nan")])
def test_impossible_usage_is_not_believed(tmp: Path, bad: Any) -> None:
    answer = {
        "id": "x",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "four words of text"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": bad},
    }
    gw = Gw(tmp, (200, json.dumps(answer).encode()))
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200
    fp = r.json()["usage"]["footprint"]
    assert "usage-invalid" in fp["warnings"] and fp["energy_wh"]["high"] < 1.0  # not 1.9e52 Wh
    rec = gw.records()[0]
    assert 0 < rec["tokens"]["output"] < 1000


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeply nested JSON
        b'{"model": "gpt-4o-mini", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",  # read, but too deep to write again
        b'{"model": "gpt-4o-mini", "messages": [], "temperature": NaN}',  # not JSON: it would reach the upstream as null
        b'{"model": "gpt-4o-mini", "messages": [], "n": 12345678901234567890, "top_p": -Infinity}',
        b'{"model": "gpt-4o-mini", "messages": [], "n": ' + b"9" * 5000 + b"}",  # a 5,000-digit integer
        b'{"model": {"not": "a string"}}',
    ],
)
def test_hostile_bodies_get_a_4xx_in_the_protocols_shape(tmp: Path, raw: bytes) -> None:
    gw = Gw(tmp, (200, b"{}"))
    r = gw.post(None, raw=raw)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_a_poison_model_name_is_answered_and_recorded(tmp: Path) -> None:
    gw = Gw(tmp, (200, json.dumps({"model": "x", "choices": [], "usage": USAGE}).encode()))
    raw = b'{"model": "gpt-4o-mini\\ud800", "messages": []}'
    r = gw.post(None, raw=raw)
    assert r.status_code == 200  # forwarded (escaped) and answered
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200
    recs = gw.records()
    assert len(recs) == 2 and recs[0]["model_requested"] == "gpt-4o-mini\ufffd" and gw.writer.dead == 0


def test_model_names_are_bounded_in_requests_and_answers(tmp: Path) -> None:
    huge = "m" * 100_000
    gw = Gw(tmp, (200, json.dumps({"model": huge, "choices": [], "usage": USAGE}).encode()))
    r = gw.post({"model": "x" * 257, "messages": MSG})
    assert r.status_code == 400 and "over 256 characters" in r.text
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})  # an upstream that names an 100,000-character model
    assert r.status_code == 200
    recs = gw.records()
    assert len(recs) == 2 and recs[1]["model_served"] == "gpt-4o-mini" and max(len(json.dumps(x)) for x in recs) < 20_000


def test_upstream_error_bodies_are_filtered_and_keys_redacted(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UP_KEY", "sk-secret-123")
    leak = {"error": {"message": "bad key sk-secret-123 at host db-internal:5432", "type": "auth", "internal": {"trace": 1}}}

    async def handler(req: MockRequest) -> tuple[int, bytes]:
        return 401, leak if isinstance(leak, bytes) else json.dumps(leak).encode()

    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1", api_key_env="UP_KEY"),))
    app = create_app(cfg, None, transports={"u": MockTransport(handler)})

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return await c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})

    r = asyncio.run(go())
    assert r.status_code == 401 and "sk-secret-123" not in r.text and "internal" not in r.json()["error"]
    assert set(r.json()["error"]) == {"message", "type", "param", "code"} and r.headers["x-wattlens-record"]
    # the key in the error's type and code, and a key the 1000-character cut would have split
    for error in (
        {"message": "bad", "type": "auth sk-secret-123", "code": "invalid_key:sk-secret-123"},
        {"message": "x" * 990 + "sk-secret-123"},
        {"message": "key SK-SECRET-123, or sk-secret-12**** as shown"},  # upper-cased, or cut short and masked
    ):
        leak = {"error": error}
        r = asyncio.run(go())
        assert r.status_code == 401 and "sk-secret" not in r.text.lower(), r.text
    # a message nested 1000 deep: readable JSON, but str() of it raises (it was settled twice and answered 500)
    leak = b'{"error": {"message": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    r = asyncio.run(go())
    assert r.status_code == 401 and r.json()["error"]["message"] == "upstream u answered 401", r.text


def test_a_hostile_model_name_is_recorded_not_set_aside(tmp: Path) -> None:
    """A lone surrogate in the model name: the receipt names the model too, and it must be storable."""
    ok = {"id": "c", "object": "chat.completion", "model": "m\ud800x", "choices": [], "usage": USAGE}
    gw = Gw(tmp, (200, json.dumps(ok).encode()))
    r = gw.post(None, raw=b'{"model": "gpt-4o-mini\\ud800", "messages": []}')
    assert r.status_code == 200, r.text
    recs = gw.records()
    assert len(recs) == 1 and recs[0]["footprint"] is not None and gw.writer.dead == 0
    assert recs[0]["id"] == r.headers["x-wattlens-record"]


def test_stream_must_be_a_boolean_and_a_silent_upstream_is_counted(tmp: Path) -> None:
    gw = Gw(tmp, (200, json.dumps({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "x" * 400}}]}).encode()))  # fmt: skip
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG, "stream": "false"})
    assert r.status_code == 400 and "'stream' must be true or false" in r.json()["error"]["message"]
    refused = r.headers["x-wattlens-record"]  # a refusal names its record too
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})  # no usage in the answer
    assert r.status_code == 200
    recs = gw.records()
    assert [x["outcome"] for x in recs] == ["rejected", "no_usage"] and recs[0]["id"] == refused
    assert recs[1]["tokens"]["output"] >= 100  # counted from the answer, not 0


def test_public_url_drops_what_keys_hide_in() -> None:
    from wattlens.metering import public_url

    assert public_url("http://admin:pw@h.example:8000/v1?key=q#f") == "http://h.example:8000/v1"
    assert public_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    assert public_url("http://u:p@[::1]:9/v1") == "http://[::1]:9/v1"


def test_a_gzip_bomb_and_a_redirect_are_refused(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    import upstream as up
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import Route

    import wattlens.gateway.transport as transport

    monkeypatch.setattr(transport, "MAX_BODY_BYTES", 8 * 1024 * 1024)  # the bound, scaled down for the test
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MB of spaces in ~64 KB
    seen: list[str] = []

    async def chat(request: Request) -> Response:
        if (await request.json())["model"] == "bomb":
            return Response(bomb, headers={"content-encoding": "gzip", "content-type": "application/json"})
        return RedirectResponse("http://127.0.0.2:9/steal", status_code=307)

    async def steal(request: Request) -> Response:  # never reached: redirects are not followed
        seen.append(request.headers.get("authorization", ""))
        return Response("{}")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/steal", steal, methods=["POST"])])
    monkeypatch.setenv("UP_KEY", "sk-never-forwarded")
    with up.ServerThread(app) as server:
        cfg = GatewayConfig(upstreams=(Upstream("u", "openai", server.url + "/v1", api_key_env="UP_KEY"),))
        with up.ServerThread(create_app(cfg, None)) as gw:
            bombed = httpx.post(gw.url + "/v1/chat/completions", json={"model": "bomb", "messages": MSG}, timeout=30)
            moved = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}, timeout=30)
            moved_stream = httpx.post(
                gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG, "stream": True}, timeout=30
            )
    assert bombed.status_code == 502 and bombed.json()["error"]["code"] == "upstream_too_large"
    for r in (moved, moved_stream):  # named as a redirect, in the protocol's shape, and not followed
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_redirect" and "307" in r.text
    assert seen == []


def test_dns_rebinding_and_cross_site_requests_are_refused(tmp: Path) -> None:
    gw = Gw(tmp, (200, json.dumps({"model": "gpt-4o-mini", "choices": [], "usage": USAGE}).encode()))

    async def go(host: str, **headers: str) -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url=f"http://{host}") as c:
            r = await c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}, headers=headers)
            return r.status_code

    assert asyncio.run(go("127.0.0.1:8787")) == 200
    assert asyncio.run(go("localhost:8787")) == 200
    assert asyncio.run(go("[::1]:8787")) == 200
    assert asyncio.run(go("attacker.example:8787")) == 421  # a rebound name pointing at loopback
    assert asyncio.run(go("127.0.0.1:8787", origin="http://127.0.0.1:8787")) == 200  # the playground itself
    assert asyncio.run(go("127.0.0.1:8787", origin="https://evil.example")) == 403
    assert asyncio.run(go("127.0.0.1:8787", **{"sec-fetch-site": "cross-site"})) == 403
    assert asyncio.run(go("127.0.0.1:8787", origin="null")) == 403
    assert len(gw.records()) == 4  # the four allowed; refused requests never reached the upstream


def test_with_keys_the_model_list_needs_a_key(tmp: Path) -> None:
    import hashlib

    from wattlens.gateway.config import ApiKey

    async def handler(req: MockRequest) -> tuple[int, bytes]:
        return 200, json.dumps({"data": [{"id": "gpt-4o-mini"}]}).encode()

    key = ApiKey("k", hashlib.sha256(b"wl-k").hexdigest())
    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1"),), keys=(key,))
    app = create_app(cfg, None, transports={"u": MockTransport(handler)})

    async def go(**headers: str) -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return (await c.get("/wattlens/api/models", headers=headers)).status_code

    assert asyncio.run(go()) == 401 and asyncio.run(go(authorization="Bearer wl-k")) == 200


def test_a_request_cut_by_shutdown_is_recorded(tmp: Path) -> None:
    started = asyncio.Event()

    async def hang(req: MockRequest) -> tuple[int, bytes]:
        started.set()
        await asyncio.sleep(3600)  # an upstream that never answers
        return 200, b"{}"

    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1"),))
    writer = LedgerWriter(open_ledger(tmp / "l.db"), flush_s=0.01)
    app = create_app(cfg, writer, transports={"u": MockTransport(hang)})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            task = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}))
            await started.wait()
            task.cancel()  # what uvicorn does to requests still running after the grace period
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    writer.close()
    led = open_ledger(tmp / "l.db")
    recs = list(led.records())
    led.close()
    assert [(r["outcome"], r["status"], r["model_requested"]) for r in recs] == [("shutdown", 503, "gpt-4o-mini")]


def test_client_chosen_model_names_cannot_blow_up_metrics(tmp: Path) -> None:
    from wattlens.context import Context as Ctx
    from wattlens.gateway.metrics import MAX_LABEL_VALUES, Metrics
    from wattlens.metering import Call, settle

    m = Metrics()
    for i in range(MAX_LABEL_VALUES + 300):
        call = Call("gateway", "openai", "/chat/completions", f"model-{i}", upstream=None, status=404)
        m.observe(settle(call, Ctx()))
    text = m.render()[0].decode()
    models = {
        line.split('model="')[1].split('"')[0] for line in text.splitlines() if line.startswith("wattlens_requests_total{")
    }
    assert len(models) == MAX_LABEL_VALUES + 1 and "other" in models
    # a lone surrogate made every later scrape fail (UnicodeEncodeError); a huge name bloated every series
    m2 = Metrics()
    for name in ("ok\ud800", "x" * 500_000):
        m2.observe(settle(Call("gateway", "openai", "/chat/completions", name, upstream=None, status=404), Ctx()))
    text = m2.render()[0].decode()
    assert 'model="ok\ufffd"' in text and len(text) < 50_000


def test_every_answer_names_its_ledger_record(tmp: Path) -> None:
    gw = Gw(tmp, (200, json.dumps({"model": "gpt-4o-mini", "choices": [], "usage": USAGE}).encode()))
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})
    assert r.headers["x-wattlens-record"] == gw.records()[0]["id"]


def test_unknown_endpoints_and_methods_are_answered_in_shape_and_recorded(tmp: Path) -> None:
    gw = Gw(tmp, (200, b"{}"))

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://127.0.0.1") as c:
            return [
                await c.post("/v1/chat/complete?key=sk-secret", json={"model": "gpt-4o-mini"}),
                await c.get("/v1/chat/completions"),
                await c.post("/v1/messages/batches", json={}, headers={"anthropic-version": "2023-06-01"}),
                await c.get("/favicon.ico"),
            ]

    typo, method, batches, favicon = asyncio.run(go())
    assert typo.status_code == 404 and typo.json()["error"]["code"] == "unknown_endpoint"
    assert method.status_code == 405 and "POST" in method.json()["error"]["message"]
    assert method.headers["allow"] == "POST"
    assert batches.status_code == 404 and batches.json()["type"] == "error"  # Anthropic's shape
    assert favicon.status_code == 404 and "x-wattlens-record" not in favicon.headers  # not an API call
    recs = {r["id"]: r for r in gw.records()}
    assert len(recs) == 3  # every attempted API call, none for the browser's asset
    for r, status, endpoint in ((typo, 404, "/chat/complete"), (method, 405, "/chat/completions")):
        rec = recs[r.headers["x-wattlens-record"]]
        assert (rec["status"], rec["outcome"], rec["endpoint"], rec["model_requested"]) == (
            status,
            "rejected",
            endpoint,
            "unknown",
        )
    assert "sk-secret" not in json.dumps(list(recs.values())) + typo.text  # the query string is not kept
    assert recs[batches.headers["x-wattlens-record"]]["protocol"] == "anthropic"


def test_hostile_upstream_bodies_are_the_upstreams_fault_and_recorded(tmp: Path) -> None:
    huge = b'{"error": {"message": "x", "n": ' + b"9" * 5000 + b"}}"  # past Python's 4,300-digit limit
    gw = Gw(tmp, (500, huge))
    r = gw.post({"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 500 and r.json()["error"]["message"] == "upstream u answered 500"  # not gateway_error
    deep = '{"usage": ' + "[" * 5000 + "]" * 5000 + "}"  # nested past the parser's recursion limit
    gw2 = Gw(tmp / "2", (200, sse(chunk("a"), deep)))
    r2 = gw2.post(stream_req())
    last = json.loads([d for d in data_lines(r2) if d != "[DONE]"][-1])
    assert last["error"]["code"] == "bad_stream"
    recs = gw.records() + gw2.records()
    assert [(x["status"], x["outcome"]) for x in recs] == [(500, "upstream_error"), (200, "upstream_error")]


def test_an_error_body_that_breaks_off_is_a_502_not_a_gateway_fault(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    from wattlens.gateway import transport

    async def broken(self: Any) -> bytes:
        raise aiohttp.ClientPayloadError("the upstream closed its error body early")

    monkeypatch.setattr(transport._MockStream, "read", broken)
    gw = Gw(tmp, (500, b'{"error":'))
    r = gw.post(stream_req())
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
    assert [(x["status"], x["outcome"]) for x in gw.records()] == [(502, "upstream_error")]


def test_a_key_echoed_inside_a_stream_event_is_redacted(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 stream whose error event repeats the key (OpenAI's `data: {"error"}`, Anthropic's `event: error`)."""
    monkeypatch.setenv("UP_KEY", "sk-secret-123")
    openai = sse(chunk("hi"), {"error": {"message": "Invalid key SK-SECRET-123", "type": "auth"}}, done=False)
    anthropic = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-3-5-haiku",'
        b'"usage":{"input_tokens":3,"output_tokens":0}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"authentication_error","message":"key sk-secret-12***"}}\n\n'
    )

    async def handler(req: MockRequest) -> tuple[int, bytes]:
        return 200, anthropic if req.url.endswith("/messages") else openai

    ups = (
        Upstream("a", "anthropic", "http://up.invalid/v1", models=("claude-*",), api_key_env="UP_KEY"),
        Upstream("u", "openai", "http://up.invalid/v1", api_key_env="UP_KEY"),
    )
    handlers = {name: MockTransport(handler) for name in ("u", "a")}
    app = create_app(GatewayConfig(upstreams=ups), None, transports=handlers)

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            o = await c.post("/v1/chat/completions", json=stream_req())
            m = {"model": "claude-3-5-haiku", "max_tokens": 5, "messages": MSG, "stream": True}
            return [o, await c.post("/v1/messages", json=m, headers={"anthropic-version": "2023-06-01"})]

    for r in asyncio.run(go()):
        assert r.status_code == 200 and "[redacted]" in r.text and "sk-secret" not in r.text.lower(), r.text


def test_only_error_events_are_searched_for_parts_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Responses event's `"error": null` is no error: it is relayed without the partial-key search."""
    import wattlens.gateway.proxy as proxy

    searched: list[str] = []
    monkeypatch.setattr(proxy, "redact", lambda text, key: searched.append(text) or text)
    monkeypatch.setenv("UP_KEY", "sk-secret-123")
    done = {"type": "response.completed", "response": {"id": "r", "error": None, "output": [], "usage": None}}
    body = b"event: response.completed\ndata: " + json.dumps(done).encode() + b"\n\n"
    app = create_app(
        GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1", api_key_env="UP_KEY"),)),
        None,
        transports={"u": MockTransport(lambda req: asyncio.sleep(0, (200, body)))},
    )

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return await c.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "hi", "stream": True})

    assert asyncio.run(go()).status_code == 200 and searched == []


def test_redaction_removes_every_long_run_of_the_key_and_nothing_else() -> None:
    from wattlens.gateway.errors import REDACT_RUN, redact

    key = "sk-proj-Abc123XYZ789def456"
    for text in (f"a {key} b", f"a {key.upper()}", f"{key[:14]}****", f"…{key[-13:]}", f"{key[3:20]}x{key}"):
        got = redact(text, key).lower()
        assert "[redacted]" in got
        assert not any(key.lower()[i : i + REDACT_RUN] in got for i in range(len(key) - REDACT_RUN + 1)), text
    for text in ("a plain error", f"{key[: REDACT_RUN - 1]}*** (the provider's own mask)", "İstanbul sk-proj-"):
        assert redact(text, key) == text
    assert json.loads(redact(json.dumps({"message": f"bad {key}"}), key)) == {"message": "bad [redacted]"}


@pytest.mark.parametrize(("end", "outcome"), [("response.incomplete", "ok"), ("response.failed", "upstream_error")])
def test_a_responses_stream_that_ends_early_or_failed_keeps_its_usage(tmp: Path, end: str, outcome: str) -> None:
    """The Responses API ends a stream with response.completed, .incomplete (max_output_tokens) or .failed."""
    usage = {"input_tokens": 7, "output_tokens": 9, "total_tokens": 16}
    resp = {"id": "r", "object": "response", "model": "gpt-4o-mini", "status": end.split(".")[1], "usage": usage}
    delta = {"type": "response.output_text.delta", "delta": "hi"}
    body = f"event: {delta['type']}\ndata: {json.dumps(delta)}\n\nevent: {end}\ndata: "
    body += json.dumps({"type": end, "response": resp}) + "\n\n"
    gw = Gw(tmp, (200, body.encode()))
    r = gw.post({"model": "gpt-4o-mini", "input": "x", "stream": True}, path="/v1/responses")
    assert r.status_code == 200 and '"error"' not in r.text and '"footprint"' in r.text, r.text
    (rec,) = gw.records()
    assert rec["outcome"] == outcome and (rec["tokens"]["input"], rec["tokens"]["output"]) == (7, 9)


def test_team_and_user_headers_are_checked_as_tag_values(tmp: Path) -> None:
    gw = Gw(tmp, (200, json.dumps({"model": "gpt-4o-mini", "choices": [], "usage": USAGE}).encode()))

    async def go(headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://127.0.0.1") as c:
            return await c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}, headers=headers)

    bad = asyncio.run(go({"x-wattlens-team": "finance\t" + "x" * 80}))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_tag", bad.text
    good = asyncio.run(go({"x-wattlens-team": " finance ", "x-wattlens-user": "ana@example.org"}))
    assert good.status_code == 200
    rec = next(r for r in gw.records() if r["id"] == good.headers["x-wattlens-record"])
    assert (rec["team"], rec["user"]) == ("finance", "ana@example.org")


def test_parts_of_a_usage_are_never_more_than_the_whole() -> None:
    from wattlens.protocols.openai import openai_tokens

    chat = {"prompt_tokens": 4, "completion_tokens": 5}
    t = openai_tokens(chat | {"completion_tokens_details": {"reasoning_tokens": 10**6}})
    assert (t.output, t.reasoning) == (0, 5)
    details = {"prompt_tokens_details": {"cached_tokens": 99}, "completion_tokens_details": {"reasoning_tokens": 2}}
    t = openai_tokens(chat | details)
    assert (t.input, t.cached_input, t.output, t.reasoning) == (4, 4, 3, 2)


@pytest.mark.parametrize("end", ["\r", "\r\n"])
def test_streams_with_cr_or_crlf_line_ends_are_read_whole(tmp: Path, end: str) -> None:
    body = sse(chunk("a"), chunk("b"), chunk(None, USAGE, choices=False)).replace(b"\n", end.encode())
    gw = Gw(tmp, (200, body))
    r = gw.post(stream_req())
    assert "truncated" not in r.text and data_lines(r)[-1] == "[DONE]"
    rec = gw.records()[0]
    assert rec["outcome"] == "ok" and rec["tokens"]["output"] == 3


def test_lines_are_cut_at_lf_crlf_and_cr_wherever_the_reads_split() -> None:
    import re

    from wattlens.gateway.transport import cut_lines

    text = b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n\r"
    want = re.split(rb"\r\n|\r|\n", text)
    for i in range(1, len(text)):
        for j in range(i + 1, len(text)):  # three reads, as the relay gets them (never empty)
            rest, cr, got = b"", False, []
            for read in (text[:i], text[i:j], text[j:]):
                lines, rest, cr = cut_lines(rest + read, cr)
                got += lines
            assert [*got, rest] == want, (i, j)


def test_a_stream_cut_by_shutdown_is_recorded_as_the_shutdowns(tmp: Path) -> None:
    import signal
    import threading

    import upstream as up
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from wattlens.gateway import gateway_server, server_options

    async def chat(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield sse(chunk("a"), done=False)
            await asyncio.sleep(30)  # a long answer, still being written when the gateway is stopped

        return StreamingResponse(gen(), media_type="text/event-stream")

    with up.ServerThread(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])) as server:
        cfg = GatewayConfig(upstreams=(Upstream("u", "openai", server.url + "/v1"),), port=up.free_port())
        writer = LedgerWriter(open_ledger(tmp / "l.db"), flush_s=0.01)
        app = create_app(cfg, writer)
        gw = gateway_server(app, "error", server_options(cfg) | {"timeout_graceful_shutdown": 1})
        thread = threading.Thread(target=gw.run, daemon=True)
        thread.start()
        while not gw.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{cfg.port}/v1/chat/completions"
        with httpx.stream("POST", url, json=stream_req(), timeout=30) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            gw.handle_exit(signal.SIGTERM, None)  # what the signal handler calls
            with contextlib.suppress(httpx.HTTPError):
                for _ in lines:
                    pass
        thread.join(timeout=20)
    led = open_ledger(tmp / "l.db")
    recs = list(led.records())
    led.close()
    assert [r["outcome"] for r in recs] == ["shutdown"]


def test_anthropic_count_tokens_is_relayed_and_recorded_without_a_receipt(tmp: Path) -> None:
    import anthropic

    seen: list[str] = []

    async def handler(req: MockRequest) -> tuple[int, bytes]:
        seen.append(req.url)
        return 200, json.dumps({"input_tokens": 42}).encode()

    ups = (Upstream("a", "anthropic", "http://up.invalid/v1", models=("claude-*",)),)
    writer = LedgerWriter(open_ledger(tmp / "l.db"), flush_s=0.01)
    app = create_app(
        GatewayConfig(upstreams=ups, context=Context(Place(zone="FR"))), writer, transports={"a": MockTransport(handler)}
    )

    import upstream as up

    with up.ServerThread(app) as gw:  # the official SDK's own call and type, over loopback
        client = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)
        counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == 42 and seen == ["http://up.invalid/v1/messages/count_tokens"]
    writer.flush()
    led = open_ledger(tmp / "l.db")
    (rec,) = list(led.records())
    led.close()
    assert rec["endpoint"] == "/messages/count_tokens" and rec["outcome"] == "ok" and rec["footprint"] is None
    assert "no model ran" in rec["footprint_error"] and sum(rec["tokens"].values()) == 0
