"""The metering gateway: OpenAI- and Anthropic-compatible, a receipt on every response.

The gateway only parses, forwards and presents; receipts come from wattlens.receipt and
records go to the ledger through a batching writer, off the request path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from wattlens.footprint import Tokens
from wattlens.gateway.config import ApiKey, GatewayConfig, Upstream
from wattlens.gateway.metrics import Metrics
from wattlens.gateway.receipts import footprint_for, headers, measured_footprint
from wattlens.gateway.sse import Event, SSEError, comment, events
from wattlens.ledger import LedgerWriter
from wattlens.usage import anthropic_tokens, merge_anthropic, openai_tokens

Protocol_ = str  # "openai" | "anthropic"


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def error_response(proto: Protocol_, e: ApiError) -> JSONResponse:
    if proto == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": e.kind, "message": e.message}}
    else:
        body = {"error": {"message": e.message, "type": e.kind, "param": None, "code": e.code}}
    return JSONResponse(body, status_code=e.status)


@dataclass(frozen=True, slots=True)
class Upstreamed:
    """A complete upstream answer: status and raw body."""

    status: int
    body: bytes

    def json_or_none(self) -> Any:
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None


async def lines(r: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in r.content:
        yield raw.decode("utf-8", "replace").rstrip("\n")


def stream_error(proto: Protocol_, message: str, code: str = "upstream_error") -> bytes:
    """An error event in the protocol's own shape, for a stream that cannot go on."""
    if proto == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return Event("error", json.dumps(body)).encode()
    return Event(None, json.dumps({"error": {"message": message, "type": "api_error", "code": code}})).encode()


def upstream_failure(u: Upstream, e: BaseException) -> ApiError:
    """Transport failures of an upstream call as API errors (never with the upstream's key)."""
    if isinstance(e, TimeoutError):
        return ApiError(504, f"upstream {u.name} timed out", "api_error", "upstream_timeout")
    if isinstance(e, aiohttp.ClientConnectorError):
        return ApiError(502, f"cannot connect to upstream {u.name}", "api_error", "upstream_unreachable")
    return ApiError(502, f"upstream {u.name} failed: {type(e).__name__}", "api_error", "upstream_error")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


@dataclass
class Call:
    """What the ledger keeps about one request."""

    proto: Protocol_
    endpoint: str
    model: str
    key: ApiKey | None
    started: float = field(default_factory=time.perf_counter)
    ts: str = field(default_factory=now_iso)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    upstream: str | None = None
    served_model: str | None = None
    status: int = 0
    outcome: str = "ok"
    ttft_s: float | None = None
    stream: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    window: Any = None  # a Meter window while a local upstream works on this request
    hosting: str = "purchased"  # "own": hardware you run (Scope 2); "purchased": an AI service (Scope 3)
    routing: dict[str, Any] | None = None  # set when a virtual route chose the model

    def record(self, tokens: Tokens, fp: dict[str, Any] | None, why: str | None, version: str) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "ts": self.ts,
            "endpoint": self.endpoint,
            "protocol": self.proto,
            "model_requested": self.model,
            "model_served": self.served_model or self.model,
            "upstream": self.upstream,
            "status": self.status,
            "outcome": self.outcome,
            "stream": self.stream,
            "latency_s": round(time.perf_counter() - self.started, 6),
            "ttft_s": round(self.ttft_s, 6) if self.ttft_s is not None else None,
            "tokens": tokens.as_dict(),
            "key_id": self.key.key_id if self.key else None,
            "team": self.key.team if self.key else self.tags.get("team"),
            "user": self.key.user if self.key else self.tags.get("user"),
            "tags": self.tags,
            "footprint": fp,
            "footprint_error": why,
            "factors_version": version,
        }


class Gateway:
    def __init__(self, config: GatewayConfig, ledger: LedgerWriter | None = None) -> None:
        self.config = config
        self.ledger = ledger
        self.metrics = Metrics()
        self.clients: dict[str, aiohttp.ClientSession] = {}
        self._keys = {k.sha256: k for k in config.keys}
        from wattlens import otel
        from wattlens.factors import FACTORS_VERSION

        self.version = FACTORS_VERSION
        self.otel = otel.enabled()
        self._meter: Any = None
        self.routers: dict[str, Any] = {}
        for r in config.routes:
            from wattlens.route import Artefact, Router

            self.routers[r.name] = (r, Router(Artefact.load(r.artefact), two_stage=not r.embed_all))

    def meter(self) -> Any:
        """One Meter for every local upstream: concurrent requests share the hardware fairly."""
        if self._meter is None:
            from wattlens.meter import Meter

            self._meter = Meter()
        return self._meter

    # -- plumbing -----------------------------------------------------------------------------
    def client(self, u: Upstream) -> aiohttp.ClientSession:
        # aiohttp rather than httpx for upstream calls: on this project's 2-core machine httpx's
        # pool served ~330 req/s at concurrency 64 against ~6,400 for aiohttp (bench/gateway.py).
        c = self.clients.get(u.name)
        if c is None:
            c = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=u.timeout_s, connect=10.0),
                connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=60),
                auto_decompress=True,
            )
            self.clients[u.name] = c
        return c

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()

    def require_admin(self, request: Request) -> None:
        """The dashboard and exports: open on loopback, an admin key beyond it."""
        from wattlens.gateway import is_loopback

        if is_loopback(self.config.host) and not self._keys:
            return
        key = self.authenticate(request)
        if key is None or not key.admin:
            raise ApiError(403, "the dashboard needs an admin key (admin = true in the keys file)", "permission_error")

    def authenticate(self, request: Request) -> ApiKey | None:
        if not self._keys:
            return None
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        key = self._keys.get(hashlib.sha256(token.encode()).hexdigest()) if token else None
        if key is None:
            raise ApiError(
                401,
                "invalid or missing API key for this gateway (Authorization: Bearer ... or x-api-key)",
                "authentication_error",
                "invalid_api_key",
            )
        return key

    async def body(self, request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length and int(length) > self.config.max_body_bytes:
            raise ApiError(413, f"request body over {self.config.max_body_bytes // (1024 * 1024)} MB", code="too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise ApiError(413, f"request body over {self.config.max_body_bytes // (1024 * 1024)} MB")
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "the request needs a 'model' string")
        return data

    async def choose(self, request: Request, call: Call, data: dict[str, Any]) -> dict[str, Any]:
        """A virtual model: the router picks small or large from the whole conversation."""
        from starlette.concurrency import run_in_threadpool

        route, router = self.routers[call.model]
        base = (
            route.threshold
            if route.threshold is not None
            else (router.a.threshold if router.two_stage else router.full_threshold)
        )
        pref = (
            request.headers.get("x-wattlens-preference") or str(data.pop("wattlens_preference", "")) or "balanced"
        ).lower()
        scale = {"quality": (base + 1.0) / 2.0, "balanced": base, "energy": base / 2.0}
        if pref not in scale:
            raise ApiError(400, "x-wattlens-preference must be quality, balanced or energy")
        messages = data.get("messages") or data.get("input") or ""
        small_ok, p = await run_in_threadpool(router.decide, messages, scale[pref])
        chosen, _other = (route.small, route.large) if small_ok else (route.large, route.small)
        call.routing = {
            "route": route.name,
            "chosen": chosen,
            "instead_of": route.large if small_ok else None,
            "p_small_ok": round(p, 4),
            "preference": pref,
        }
        return {**data, "model": chosen}

    def route(self, model: str, proto: Protocol_) -> Upstream:
        u = self.config.upstream_for(model)
        if u is None:
            raise ApiError(
                404,
                f"model {model!r} is not served by this gateway (see GET /v1/models)",
                "not_found_error",
                "model_not_found",
            )
        if u.kind != proto:
            other = "/v1/messages" if u.kind == "anthropic" else "/v1/chat/completions"
            raise ApiError(400, f"model {model!r} is served by an {u.kind} upstream: call {other}")
        return u

    def upstream_headers(self, u: Upstream, request: Request) -> dict[str, str]:
        h = {"content-type": "application/json"}
        key = u.key()
        if u.kind == "anthropic":
            h["anthropic-version"] = request.headers.get("anthropic-version", "2023-06-01")
            beta = request.headers.get("anthropic-beta")
            if beta:
                h["anthropic-beta"] = beta
            if key:
                h["x-api-key"] = key
        elif key:
            h["authorization"] = f"Bearer {key}"
        return h

    def finish(self, call: Call, u: Upstream | None, tokens: Tokens) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """Compute the receipt once, count it, and queue the ledger record."""
        if call.window is not None and u is not None:
            fp, why = measured_footprint(call.window, u, call.served_model or call.model, tokens)
            call.window = None
        else:
            fp, why = footprint_for(u, call.served_model or call.model, tokens) if u else (None, "no upstream")
        fpd = fp.as_dict() if fp else None
        if call.routing is not None and fpd is not None and fp is not None:
            fpd["routing"] = self.savings(call.routing, tokens, fp)
        if self.otel:
            from wattlens import otel

            op = {"/embeddings": "embeddings", "/completions": "text_completion"}.get(call.endpoint, "chat")
            attrs = otel.attributes(call.proto, op, call.model, call.served_model, tokens, fp)
            otel.record_span(f"{op} {call.model}", call.started, attrs, None if call.outcome == "ok" else call.outcome)
        if self.ledger is not None:
            self.ledger.submit(call.record(tokens, fpd, why, fp.factors_version if fp else self.version))
        self.metrics.observe(call, u.name if u else "-", fp, time.perf_counter() - call.started)
        return fpd, headers(fp, why)

    def savings(self, routing: dict[str, Any], tokens: Tokens, fp: Any) -> dict[str, Any]:
        """Energy saved against the model the route replaced, both estimated the same way."""
        out = dict(routing)
        replaced = routing.get("instead_of")
        saved = {"low": 0.0, "mid": 0.0, "high": 0.0}
        if replaced:
            u = self.config.upstream_for(replaced)
            big, _ = footprint_for(u, replaced, tokens) if u else (None, None)
            if big is not None:
                diffs = sorted([big.energy_wh.low - fp.energy_wh.low, big.energy_wh.high - fp.energy_wh.high])
                saved = {"low": diffs[0], "mid": big.energy_wh.mid - fp.energy_wh.mid, "high": diffs[1]}
                saved["low"], saved["high"] = min(saved["low"], saved["mid"]), max(saved["high"], saved["mid"])
        out["energy_saved_wh"] = saved
        return out

    # -- handlers -----------------------------------------------------------------------------
    async def handle(self, request: Request, proto: Protocol_, endpoint: str) -> Response:
        call = Call(proto, endpoint, "?", None)
        u: Upstream | None = None
        try:
            call.key = self.authenticate(request)
            data = await self.body(request)
            call.model = data["model"]
            for tag in ("user", "team"):
                v = request.headers.get(f"x-wattlens-{tag}")
                if v:
                    call.tags[tag] = v[:100]
            if call.model in self.routers:
                data = await self.choose(request, call, data)
            u = self.route(data["model"], proto)
            call.upstream, call.served_model = u.name, data["model"]
            if u.local:
                call.hosting = "own"
                call.window = self.meter().window(call.request_id).open()
            if data.get("stream"):
                call.stream = True
                return await self.stream(request, call, u, data)
            return await self.unary(request, call, u, data)
        except ApiError as e:
            call.status, call.outcome = e.status, "rejected" if e.status < 500 else "upstream_error"
            if call.model != "?":
                self.finish(call, u, Tokens())
            return error_response(proto, e)
        except ClientDisconnect:
            call.status, call.outcome = 499, "client_disconnected"
            self.finish(call, u, Tokens())
            return Response(status_code=499)

    async def send(self, u: Upstream, request: Request, endpoint: str, data: dict[str, Any]) -> Upstreamed:
        try:
            async with self.client(u).post(
                u.base_url + endpoint, data=json.dumps(data).encode(), headers=self.upstream_headers(u, request)
            ) as r:
                return Upstreamed(r.status, await r.read())
        except (TimeoutError, aiohttp.ClientError) as e:
            raise upstream_failure(u, e) from e

    def upstream_error(self, call: Call, u: Upstream, r: Upstreamed) -> Response:
        call.status, call.outcome = r.status, "upstream_error"
        self.finish(call, u, Tokens())
        body = r.json_or_none()
        if isinstance(body, dict) and "error" in body:  # already the API's own error shape: pass it on
            return JSONResponse(body, status_code=r.status)
        kind = "api_error" if r.status >= 500 else "invalid_request_error"
        return error_response(call.proto, ApiError(r.status, f"upstream {u.name} answered {r.status}", kind))

    async def unary(self, request: Request, call: Call, u: Upstream, data: dict[str, Any]) -> Response:
        r = await self.send(u, request, call.endpoint, data)
        if r.status >= 400:
            return self.upstream_error(call, u, r)
        body = r.json_or_none()
        if not isinstance(body, dict):
            raise ApiError(502, f"upstream {u.name} sent a body that is not a JSON object", "api_error")
        call.status = r.status
        call.served_model = body.get("model") or call.served_model or call.model
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
        tokens = anthropic_tokens(usage) if call.proto == "anthropic" else openai_tokens(usage)
        fp, hdrs = self.finish(call, u, tokens)
        if call.proto == "anthropic":
            body["footprint"] = fp  # beside usage
        elif usage is not None:
            usage["footprint"] = fp  # inside usage
        else:
            body["usage"] = {"footprint": fp}
        return JSONResponse(body, status_code=r.status, headers=hdrs)

    async def stream(self, request: Request, call: Call, u: Upstream, data: dict[str, Any]) -> Response:
        wants_usage = True
        if call.proto == "openai" and call.endpoint != "/responses":
            raw_opts = data.get("stream_options")
            opts: dict[str, Any] = raw_opts if isinstance(raw_opts, dict) else {}
            wants_usage = bool(opts.get("include_usage"))
            data = {**data, "stream_options": {**opts, "include_usage": True}}
        try:
            r = await self.client(u).post(
                u.base_url + call.endpoint, data=json.dumps(data).encode(), headers=self.upstream_headers(u, request)
            )
        except (TimeoutError, aiohttp.ClientError) as e:
            raise upstream_failure(u, e) from e
        if r.status >= 400:
            raw = await r.read()
            r.release()
            return self.upstream_error(call, u, Upstreamed(r.status, raw))
        call.status = r.status
        gen = self._relay_openai(call, u, r, wants_usage) if call.proto == "openai" else self._relay_anthropic(call, u, r)
        return StreamingResponse(gen, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def _relay_openai(
        self, call: Call, u: Upstream, r: aiohttp.ClientResponse, wants_usage: bool
    ) -> AsyncIterator[bytes]:
        tokens: Tokens | None = None
        seen_chunks = 0
        done = False
        try:
            async for ev in events(lines(r)):
                if call.ttft_s is None:
                    call.ttft_s = time.perf_counter() - call.started
                if ev.data == "[DONE]":
                    done = True
                    yield ev.encode()
                    continue
                if ev.event == "response.completed" or '"type":"response.completed"' in ev.data:
                    chunk = ev.json()
                    resp = chunk.get("response") or {}
                    usage = resp.get("usage")
                    if isinstance(usage, dict):  # Responses API: the receipt goes on the completed event
                        tokens = openai_tokens(usage)
                        call.served_model = resp.get("model") or call.served_model or call.model
                        fp, _ = self.finish(call, u, tokens)
                        usage["footprint"] = fp
                        yield Event(ev.event, json.dumps(chunk, separators=(",", ":"))).encode()
                        continue
                if '"usage"' in ev.data and '"usage":null' not in ev.data and '"usage": null' not in ev.data:
                    chunk = ev.json()
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        tokens = openai_tokens(usage)
                        call.served_model = chunk.get("model") or call.served_model or call.model
                        fp, _ = self.finish(call, u, tokens)
                        if wants_usage:
                            usage["footprint"] = fp
                            yield Event(ev.event, json.dumps(chunk, separators=(",", ":"))).encode()
                        else:  # the client did not ask for usage: keep the receipt as a comment line
                            yield comment("wattlens " + json.dumps({"footprint": fp}, separators=(",", ":")))
                        continue
                seen_chunks += 1
                if call.window is not None:
                    call.window.progress(seen_chunks)
                yield ev.encode()
        except SSEError as e:
            call.outcome = "upstream_error"
            yield stream_error("openai", f"upstream sent a malformed stream: {e}", "bad_stream")
        except (aiohttp.ClientError, TimeoutError):
            call.outcome = "upstream_error"
            yield stream_error("openai", f"upstream {u.name} broke off the stream", "upstream_broken")
        finally:
            r.release()
            if tokens is None:  # cut off: record what was seen (one chunk is about one token)
                if call.outcome == "ok":
                    call.outcome = "client_disconnected" if not done else "no_usage"
                self.finish(call, u, Tokens(output=seen_chunks))

    async def _relay_anthropic(self, call: Call, u: Upstream, r: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        start_usage: dict[str, Any] | None = None
        final: Tokens | None = None
        output_seen = 0
        try:
            async for ev in events(lines(r)):
                if call.ttft_s is None:
                    call.ttft_s = time.perf_counter() - call.started
                if ev.event == "message_start":
                    msg = ev.json().get("message", {})
                    start_usage = msg.get("usage")
                    call.served_model = msg.get("model") or call.served_model or call.model
                elif ev.event == "content_block_delta":
                    output_seen += 1
                elif ev.event == "message_delta":
                    d = ev.json()
                    final = anthropic_tokens(merge_anthropic(start_usage, d.get("usage")))
                    fp, _ = self.finish(call, u, final)
                    d["footprint"] = fp
                    yield Event(ev.event, json.dumps(d, separators=(",", ":"))).encode()
                    continue
                yield ev.encode()
        except SSEError as e:
            call.outcome = "upstream_error"
            yield stream_error("anthropic", f"upstream sent a malformed stream: {e}")
        except (aiohttp.ClientError, TimeoutError):
            call.outcome = "upstream_error"
            yield stream_error("anthropic", f"upstream {u.name} broke off the stream")
        finally:
            r.release()
            if final is None:
                if call.outcome == "ok":
                    call.outcome = "client_disconnected"
                seen = anthropic_tokens(start_usage)
                self.finish(call, u, Tokens(seen.input, seen.cached_input, output_seen, 0))

    async def models(self, request: Request) -> Response:
        try:
            self.authenticate(request)
        except ApiError as e:
            return error_response("openai", e)
        names = await self.model_names(request)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": up} for n, up in sorted(names.items())]
        return JSONResponse({"object": "list", "data": data})

    async def model_names(self, request: Request) -> dict[str, str]:
        """Model name -> upstream name: configured literal names plus what OpenAI-kind upstreams list."""
        names: dict[str, str] = {}
        for u in self.config.upstreams:
            for p in u.models:
                if not any(ch in p for ch in "*?["):
                    names.setdefault(p, u.name)
            if u.kind == "openai":
                try:
                    async with self.client(u).get(
                        u.base_url + "/models",
                        headers=self.upstream_headers(u, request),
                        timeout=aiohttp.ClientTimeout(total=5.0),
                    ) as r:
                        listed = await r.json(content_type=None) if r.status == 200 else {}
                    for m in (listed or {}).get("data", []):
                        if isinstance(m, dict) and isinstance(m.get("id"), str) and u.serves(m["id"]):
                            names.setdefault(m["id"], u.name)
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass  # an unreachable upstream still lists its configured names
        return names


def create_app(config: GatewayConfig, ledger: LedgerWriter | None = None, local: Any = None) -> Starlette:
    """The gateway app; `local` (a wattlens.local.LocalModels) mounts the built-in upstream at /local."""
    gw = Gateway(config, ledger)

    def endpoint(proto: Protocol_, path: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await gw.handle(request, proto, path)

        return handler

    async def healthz(request: Request) -> Response:
        errors = gw.ledger.errors[-3:] if gw.ledger else []
        return JSONResponse(
            {"status": "ok" if not errors else "degraded", "ledger_errors": errors},
            status_code=200 if not errors else 503,
        )

    async def metrics(request: Request) -> Response:
        body, ctype = gw.metrics.render()
        return Response(body, media_type=ctype)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gw.close()
        if gw.ledger is not None:
            gw.ledger.close()  # flush every queued record before the process ends

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", endpoint("openai", "/chat/completions"), methods=["POST"]),
        Route("/v1/completions", endpoint("openai", "/completions"), methods=["POST"]),
        Route("/v1/embeddings", endpoint("openai", "/embeddings"), methods=["POST"]),
        Route("/v1/responses", endpoint("openai", "/responses"), methods=["POST"]),
        Route("/v1/messages", endpoint("anthropic", "/messages"), methods=["POST"]),
        Route("/v1/models", gw.models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if local is not None:
        from starlette.routing import Mount

        from wattlens.local import create_local_app

        routes.append(Mount("/local", app=create_local_app(local)))
    from wattlens.gateway.web import web_routes

    routes.extend(web_routes(gw))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gw
    return app
