"""Forwarding to an upstream and relaying its answer, with the receipt put where the protocol's clients look.

Streams are relayed event by event: an event that cannot carry usage passes through after a
cheap look at its raw text; the event that carries the final usage gets the receipt.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from wattlens.gateway.config import Upstream
from wattlens.gateway.errors import ApiError, upstream_failure
from wattlens.gateway.receipts import headers as receipt_headers
from wattlens.gateway.sse import Event, SSEError, comment, events
from wattlens.gateway.transport import StreamReply, Upstreamed
from wattlens.metering import Call
from wattlens.protocols import WireProtocol

if TYPE_CHECKING:
    from wattlens.gateway.app import Gateway

FAILURES = (TimeoutError, aiohttp.ClientError, ConnectionError)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Proxy:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def upstream_error(self, call: Call, u: Upstream, proto: WireProtocol, r: Upstreamed) -> Response:
        call.status, call.outcome = r.status, "upstream_error"
        self.gw.finish(call, u)
        body = r.json_or_none()
        if isinstance(body, dict) and "error" in body:  # already the API's own error shape: pass it on
            return JSONResponse(body, status_code=r.status)
        kind = "api_error" if r.status >= 500 else "invalid_request_error"
        e = ApiError(r.status, f"upstream {u.name} answered {r.status}", kind)
        return JSONResponse(proto.error_body(e.message, e.kind, e.code), status_code=r.status)

    async def send(
        self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any], stream: bool
    ) -> Any:
        """The upstream call through its transport; transport failures become API errors (without the key)."""
        headers = proto.upstream_headers(u.key(), request.headers)
        t, url, body = self.gw.transports[u.name], u.base_url + call.endpoint, json.dumps(data).encode()
        try:
            return await (t.stream(url, body, headers) if stream else t.post(url, body, headers))
        except FAILURES as e:
            raise upstream_failure(u.name, e) from e

    async def unary(self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any]) -> Response:
        r: Upstreamed = await self.send(request, call, u, proto, data, stream=False)
        if r.status >= 400:
            return self.upstream_error(call, u, proto, r)
        body = r.json_or_none()
        if not isinstance(body, dict):
            raise ApiError(502, f"upstream {u.name} sent a body that is not a JSON object", "api_error")
        call.status = r.status
        call.served_model = body.get("model") or call.served_model or call.model
        usage = proto.usage_of(body)
        call.tokens = proto.tokens(usage if isinstance(usage, dict) else None)
        s = self.gw.finish(call, u)
        proto.attach(body, s.receipt)  # type: ignore[arg-type]
        return JSONResponse(body, status_code=r.status, headers=receipt_headers(s.footprint, s.error))

    async def stream(self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any]) -> Response:
        data, wants_usage = proto.prepare(call.endpoint, data)
        r: StreamReply = await self.send(request, call, u, proto, data, stream=True)
        if r.status >= 400:
            raw = await r.read()
            r.release()
            return self.upstream_error(call, u, proto, Upstreamed(r.status, raw))
        call.status = r.status
        gen = self.relay(call, u, proto, r, wants_usage)
        return StreamingResponse(gen, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def relay(
        self, call: Call, u: Upstream, proto: WireProtocol, r: StreamReply, wants_usage: bool
    ) -> AsyncIterator[bytes]:
        tracker = proto.tracker(call.endpoint)
        window = self.gw._windows.get(call.request_id)
        done = False
        try:
            async for ev in events(r.lines()):
                if call.ttft_s is None:
                    call.ttft_s = time.perf_counter() - call.started
                if ev.data == "[DONE]":
                    done = True
                    yield ev.encode()
                    continue
                if not tracker.skim(ev.event, ev.data):
                    if window is not None:
                        window.progress(tracker.content)
                    yield ev.encode()
                    continue
                chunk = ev.json()
                seen = tracker.see(ev.event, chunk)
                call.served_model = tracker.served_model or call.served_model or call.model
                if seen == "usage" and tracker.tokens is not None:
                    call.tokens = tracker.tokens
                    receipt = self.gw.finish(call, u).receipt
                    if tracker.attach(ev.event, chunk, receipt, wants_usage):  # type: ignore[arg-type]
                        yield Event(ev.event, _dumps(chunk)).encode()
                    else:  # the client did not ask for usage: keep the receipt as a comment line
                        yield comment("wattlens " + _dumps({"footprint": receipt}))
                    continue
                if seen == "content" and window is not None:
                    window.progress(tracker.content)
                yield ev.encode()
        except SSEError as e:
            call.outcome = "upstream_error"
            yield proto.stream_error(f"upstream sent a malformed stream: {e}", "bad_stream")
        except FAILURES:
            call.outcome = "upstream_error"
            yield proto.stream_error(f"upstream {u.name} broke off the stream", "upstream_broken")
        finally:
            r.release()
            if tracker.tokens is None:  # cut off: record what was seen
                if call.outcome == "ok":
                    call.outcome = "client_disconnected" if not done else "no_usage"
                call.tokens = tracker.cut_off()
                self.gw.finish(call, u)
