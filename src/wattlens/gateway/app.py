"""The metering gateway: OpenAI- and Anthropic-compatible (and any plugin protocol), a receipt on every response.

The gateway only parses, forwards and presents: each wire protocol's rules come from
wattlens.protocols, each finished call is settled by wattlens.metering, and the ledger,
metrics and traces observe the settlements.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wattlens.context import Context
from wattlens.gateway import jsonio
from wattlens.gateway.auth import Keys
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.gateway.errors import ApiError, error_response
from wattlens.gateway.logapi import LogSettings, log_service
from wattlens.gateway.metrics import Metrics
from wattlens.gateway.proxy import MAX_MODEL_CHARS, Proxy
from wattlens.gateway.transport import AiohttpTransport, Transport
from wattlens.ledger import LedgerWriter
from wattlens.metering import Call, LedgerObserver, Observer, Settlement, settle
from wattlens.protocols import WireProtocol, protocols


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        ledger: LedgerWriter | None = None,
        transports: dict[str, Transport] | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        from wattlens import otel

        self.config = config
        self.ledger = ledger
        self.metrics = Metrics()
        self.keys = Keys(config.keys, config.host)
        self.protocols = protocols()
        # One context per upstream, built once: the configuration's, at the upstream's place.
        self.contexts: dict[str, Context] = {u.name: config.context.at(u.place) for u in config.upstreams}
        self.transports: dict[str, Transport] = dict(transports or {})
        for u in config.upstreams:
            self.transports.setdefault(u.name, AiohttpTransport(u.timeout_s))
        from wattlens.gateway.modelinfo import ModelInfo

        self.modelinfo = ModelInfo(self.transports, lambda name: self.contexts[name].factors)
        from wattlens.gateway.budgets import Budgets

        # the ledger the writer appends to (not config.ledger: a caller may hand a writer of its own)
        self.budgets = Budgets(config.budgets, getattr(ledger.ledger, "location", None) if ledger else None)
        self.metrics.budgets = self.budgets
        # budgets observe before the ledger writer: a call is counted here before its record can be read back
        self.observers: list[Observer] = [*(observers or []), self.metrics, self.budgets]
        if ledger is not None:
            self.observers.append(LedgerObserver(ledger))
        if otel.enabled():
            self.observers.append(otel.SpanObserver(self.protocols))
        self._meter: Any = None
        self.stopping = False  # set on SIGINT/SIGTERM (gateway.server): a stream cut then is the shutdown's
        self._windows: dict[str, Any] = {}  # request id -> Meter window, while a local upstream works
        self.routers: dict[str, Any] = {}
        for r in config.routes:
            from wattlens.route import Artefact, Router

            self.routers[r.name] = (r, Router(Artefact.load(r.artefact), two_stage=not r.embed_all, embedder=r.embedder))
        self.proxy = Proxy(self)

    def meter(self) -> Any:
        """One Meter for every local upstream: concurrent requests share the hardware fairly."""
        if self._meter is None:
            from wattlens.measure.meter import Meter

            self._meter = Meter(context=self.config.context)
        return self._meter

    async def close(self) -> None:
        for t in self.transports.values():
            await t.close()

    def finish(self, call: Call, u: Upstream | None) -> Settlement:
        """Settle the call once (its receipt is computed now, for the response) and let observers see it."""
        window = self._windows.pop(call.request_id, None)
        if window is not None:
            call.measurement = window.close()
        ctx = self.contexts[u.name] if u is not None else self.config.context
        replaced = None
        if call.routing and call.routing.get("instead_of"):
            big = self.config.upstream_for(call.routing["instead_of"])
            replaced = (self.contexts[big.name], big.serving) if big else None
        serving = self.modelinfo.serving(u, call) if u else None
        return settle(call, ctx, serving, self.observers, replaced, eager=True)

    # -- request parsing ------------------------------------------------------------------------
    async def body(self, request: Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        length = request.headers.get("content-length")
        if length and int(length) > limit:
            raise ApiError(413, f"request body over {limit // (1024 * 1024)} MB", code="too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over {limit // (1024 * 1024)} MB")
            chunks.append(chunk)
        try:
            data = jsonio.loads(b"".join(chunks) or b"null", constants=False)
        except RecursionError as e:
            raise ApiError(400, "request body is nested too deeply") from e
        except ValueError as e:  # invalid JSON or UTF-8, or an integer too long to read
            raise ApiError(400, f"request body is not valid JSON: {str(e)[:200]}") from e
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "the request needs a 'model' string")
        if len(model) > MAX_MODEL_CHARS:  # it goes into the ledger, the metrics and the receipt
            raise ApiError(400, f"the model name is over {MAX_MODEL_CHARS} characters")
        stream = data.get("stream")
        if stream is not None and not isinstance(stream, bool):  # "false" would read as true here, as false upstream
            shown = jsonio.dumps(stream)[:40].decode("utf-8", "replace")
            raise ApiError(400, f"'stream' must be true or false, not {shown}")
        return data

    async def choose(
        self, request: Request, call: Call, data: dict[str, Any], preference: str | None = None
    ) -> dict[str, Any]:
        """A virtual model: the router picks small or large from the whole conversation.

        preference: set by the gateway (a budget past its hard limit reroutes with `energy`); the
        share of the request's budgets already used pushes the router toward the small model too.
        """
        from starlette.concurrency import run_in_threadpool

        route, router = self.routers[data["model"]]
        base = (
            route.threshold
            if route.threshold is not None
            else (router.a.threshold if router.two_stage else router.full_threshold)
        )
        pref = (
            preference
            or request.headers.get("x-wattlens-preference")
            or str(data.pop("wattlens_preference", ""))
            or "balanced"
        ).lower()
        data.pop("wattlens_preference", None)
        from wattlens.route import PREFERENCES

        if pref not in PREFERENCES:
            raise ApiError(400, "x-wattlens-preference must be quality, balanced or energy")
        share = self.budgets.used_share(call)  # None without a budget
        messages = data.get("messages") or data.get("input") or ""
        d = await run_in_threadpool(router.choose, messages, pref, share, base)
        chosen = route.small if d.small else route.large
        call.routing = {
            "route": route.name,
            "chosen": chosen,
            "instead_of": route.large if d.small else None,
            "p_small_ok": round(d.p_small_ok, 4),
            "preference": pref,
        }
        if share is not None:
            call.routing["budget_used_share"] = round(share, 4)
        return {**data, "model": chosen}

    def route(self, model: str, proto: WireProtocol) -> Upstream:
        u = self.config.upstream_for(model)
        if u is None:
            raise ApiError(
                404,
                f"model {model!r} is not served by this gateway (see GET /v1/models)",
                "not_found_error",
                "model_not_found",
            )
        if u.kind != proto.name:
            other = self.protocols[u.kind].endpoints[0] if u.kind in self.protocols else "its own endpoint"
            raise ApiError(400, f"model {model!r} is served by an {u.kind} upstream: call /v1{other}")
        return u

    # -- handlers -----------------------------------------------------------------------------
    async def handle(self, request: Request, proto: WireProtocol, endpoint: str) -> Response:
        call = Call("gateway", proto.name, endpoint, "?", status=0)
        u: Upstream | None = None
        try:
            key = self.keys.authenticate(request.headers)
            data = await self.body(request)
            call.model = data["model"]
            for tag in ("user", "team") if key is None else ():  # with keys, the key says who (not a header)
                v = request.headers.get(f"x-wattlens-{tag}")
                if v:
                    from wattlens.gateway.tags import checked_value

                    call.tags[tag] = checked_value(tag, v, f"x-wattlens-{tag}")
            call.key_id = key.key_id if key else None
            call.team = key.team if key else call.tags.get("team")
            call.user = key.user if key else call.tags.get("user")
            self.tag(request, call, key, data, proto)
            verdict = self.budgets.check(call)
            if verdict.over_hard is not None:
                data = self.over_budget(call, data, verdict, proto)
            if data["model"] in self.routers:
                data = await self.choose(request, call, data, "energy" if verdict.over_hard is not None else None)
                if verdict.over_hard is not None and call.routing is not None:
                    call.routing.update(budget=verdict.over_hard.name, requested=call.model)
            u = self.route(data["model"], proto)
            call.upstream, call.served_model = u.name, data["model"]
            await self.modelinfo.learn(u, data["model"])  # what an unknown model is, if the upstream can say
            if u.local:
                call.hosting = "own"
                self._windows[call.request_id] = self.meter().window(call.request_id).open()
            call.no_inference = endpoint == "/messages/count_tokens"
            if data.get("stream") and not call.no_inference:
                call.stream = True
                resp = await self.proxy.stream(request, call, u, proto, data)
            else:
                resp = await self.proxy.unary(request, call, u, proto, data)
            return self.budget_header(resp, call, verdict)
        except ApiError as e:  # refused or failed: answered in the protocol's shape, and recorded all the same
            call.status, call.outcome = e.status, "rejected" if e.status < 500 else "upstream_error"
            if call.model == "?":
                call.model = "unknown"  # the body named no usable model
            self.finish(call, u)
            resp = error_response(proto, e)
            resp.headers["x-wattlens-record"] = call.request_id  # refusals are recorded too: say which record
            return self.budget_header(resp, call, None)
        except ClientDisconnect:
            call.status, call.outcome = 499, "client_disconnected"
            self.finish(call, u)
            return Response(status_code=499)
        except asyncio.CancelledError:  # the server is stopping and this request outlived the grace period
            call.status, call.outcome = 503, "shutdown"
            if call.model == "?":
                call.model = "unknown"
            self.finish(call, u)
            raise
        except Exception as e:  # a fault of ours: still a protocol-shaped answer and a record, never plain text
            call.status, call.outcome = 500, "gateway_error"
            call.tags["error"] = type(e).__name__
            if call.model == "?":
                call.model = "unknown"
            self.finish(call, u)
            resp = error_response(proto, ApiError(500, f"the gateway failed: {type(e).__name__}", "api_error"))
            resp.headers["x-wattlens-record"] = call.request_id
            return resp

    def unrouted(self, request: Request, status: int, headers: dict[str, str] | None) -> Response:
        """A path or method the gateway does not serve: a JSON error in the protocol's shape, and under /v1/
        (an attempted API call) a record like any refusal. Other paths (a browser's /favicon.ico) are not calls."""
        path = request.url.path  # never the query string: clients put keys there
        anthropic = path.startswith("/v1/messages") or "anthropic-version" in request.headers
        proto = self.protocols["anthropic" if anthropic else "openai"]
        if status == 405:
            allowed = next((v for k, v in (headers or {}).items() if k.lower() == "allow"), "")
            e = ApiError(405, f"{request.method} is not allowed on {path[:200]}; use {allowed}", headers=headers)
        else:
            e = ApiError(404, f"no such endpoint: {request.method} {path[:200]}", "not_found_error", "unknown_endpoint")
        resp = error_response(proto, e)
        if path.startswith("/v1/"):
            from wattlens.ledger.chain import scrub

            call = Call("gateway", proto.name, scrub(path[3:203]), "unknown", status=status, outcome="rejected")
            self.finish(call, None)
            resp.headers["x-wattlens-record"] = call.request_id
        return resp

    def tag(self, request: Request, call: Call, key: Any, data: dict[str, Any], proto: WireProtocol) -> None:
        """The request's tags: its key's defaults, then its `metadata` and x-wattlens-tag-NAME headers (checked)."""
        from wattlens.gateway.tags import from_request

        if key is not None and key.tags:
            call.tags.update(key.tags)
        call.tags.update(from_request(request.headers, data, proto.name))

    def over_budget(self, call: Call, data: dict[str, Any], verdict: Any, proto: WireProtocol) -> dict[str, Any]:
        """Past a hard limit: a 429 with Retry-After, or the budget's smaller model (said in the receipt)."""
        from wattlens.gateway.errors import budget_exceeded

        b = verdict.over_hard
        call.tags["budget"] = b.name
        if b.on_hard != "reroute":
            raise budget_exceeded(proto, b.name, b.unit, b.hard, verdict.retry_after_s)
        if b.reroute_to == call.model:
            return data
        if b.reroute_to not in self.routers:
            call.routing = {"budget": b.name, "reason": "hard-limit", "chosen": b.reroute_to, "instead_of": call.model}
        return {**data, "model": b.reroute_to}

    def budget_header(self, resp: Response, call: Call, before: Any) -> Response:
        """x-wattlens-budget-warning: the budgets past a limit, with this call counted when it has settled."""
        if before is not None and not before.matched:
            return resp
        warnings = self.budgets.check(call).warnings
        if warnings:
            resp.headers["x-wattlens-budget-warning"] = ", ".join(warnings)
        return resp

    async def models(self, request: Request) -> Response:
        try:
            self.keys.authenticate(request.headers)
        except ApiError as e:
            return error_response(self.protocols["openai"], e)
        names = await self.model_names(request)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": up} for n, up in sorted(names.items())]
        data += [{"id": r, "object": "model", "created": 0, "owned_by": "wattlens-router"} for r in sorted(self.routers)]
        return JSONResponse({"object": "list", "data": data})

    async def model_names(self, request: Request) -> dict[str, str]:
        """Model name -> upstream name: configured literal names plus what OpenAI-kind upstreams list."""
        names: dict[str, str] = {}
        for u in self.config.upstreams:
            for p in u.models:
                if not any(ch in p for ch in "*?["):
                    names.setdefault(p, u.name)
            if u.kind == "openai":
                headers = self.protocols[u.kind].upstream_headers(u.key(), request.headers)
                try:
                    listed = await self.transports[u.name].get_json(u.base_url + "/models", headers, 5.0)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError, RecursionError):
                    listed = None  # an unreachable or unreadable upstream still lists its configured names
                listed_data = listed.get("data") if isinstance(listed, dict) else None
                for m in listed_data if isinstance(listed_data, list) else []:  # "data": null lists nothing
                    if isinstance(m, dict) and isinstance(m.get("id"), str) and u.serves(m["id"]):
                        names.setdefault(m["id"], u.name)
        return names


def create_app(
    config: GatewayConfig,
    ledger: LedgerWriter | None = None,
    local: Any = None,
    transports: dict[str, Transport] | None = None,
    log: LogSettings | None = None,
) -> Starlette:
    """The gateway app; `local` (a wattlens.gateway.local.LocalModels) mounts the built-in upstream at /local.

    transports: per upstream name, a Transport to use instead of aiohttp (tests: MockTransport).
    log: signing of the transparency log (default: [log] of the config file, WATTLENS_LOG_*).
    """
    gw = Gateway(config, ledger, transports)
    logs = log_service(gw, log)  # signs checkpoints on a timer and at shutdown; serves /wattlens/log/*

    def endpoint(proto: WireProtocol, path: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await gw.handle(request, proto, path)

        return handler

    async def healthz(request: Request) -> Response:
        """Public: up or degraded. The details (error texts, counts) only on loopback without keys or with an admin key."""
        stats = gw.ledger.stats() if gw.ledger else {}
        degraded = bool(stats.get("degraded"))
        out: dict[str, Any] = {"status": "degraded" if degraded else "ok"}
        try:
            gw.keys.require_admin(request.headers)
            out |= {"ledger_errors": stats.get("errors", []), "ledger": stats}
        except ApiError:
            pass
        return JSONResponse(out, status_code=503 if degraded else 200)

    async def metrics(request: Request) -> Response:
        """Team and model names: open on a keyless loopback gateway, an admin key otherwise."""
        from starlette.concurrency import run_in_threadpool

        try:
            gw.keys.require_admin(request.headers)
        except ApiError as e:
            return error_response(gw.protocols["openai"], e)
        body, ctype = await run_in_threadpool(gw.metrics.render)
        return Response(body, media_type=ctype)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw.budgets.start()  # this period's use, read from the ledger before the first request
        logs.start()
        yield
        await logs.stop()  # every queued record written, then a last signed checkpoint covering them
        gw.budgets.close()
        await gw.close()
        if gw.ledger is not None:
            gw.ledger.close()  # flush every queued record before the process ends

    routes: list[BaseRoute] = [
        Route(f"/v1{path}", endpoint(proto, path), methods=["POST"])
        for proto in gw.protocols.values()
        for path in proto.endpoints
    ]
    routes += [
        Route("/v1/models", gw.models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if local is not None:
        from starlette.routing import Mount

        from wattlens.gateway.local import create_local_app

        routes.append(Mount("/local", app=create_local_app(local)))
    from wattlens.gateway.web import web_routes

    routes.extend(web_routes(gw))
    routes.extend(logs.routes())
    from starlette.middleware import Middleware

    from wattlens.gateway.auth import GuardHosts, allowed_hosts

    guard = Middleware(GuardHosts, hosts=allowed_hosts(config.host, config.allowed_hosts))

    async def unrouted(request: Request, exc: Exception) -> Response:
        from starlette.exceptions import HTTPException

        assert isinstance(exc, HTTPException)
        return gw.unrouted(request, exc.status_code, dict(exc.headers or {}))

    handlers = {404: unrouted, 405: unrouted}
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard], exception_handlers=handlers)
    app.state.gateway = gw
    return app
