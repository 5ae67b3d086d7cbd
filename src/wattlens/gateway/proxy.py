"""Forwarding to an upstream and relaying its answer, with the receipt put where the protocol's clients look.

Streams are relayed event by event: an event that cannot carry usage passes through after a
cheap look at its raw text; the event that carries the final usage gets the receipt.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from wattlens.footprint import Tokens
from wattlens.gateway import jsonio
from wattlens.gateway.config import Upstream
from wattlens.gateway.errors import ApiError, redact, upstream_failure
from wattlens.gateway.jsonio import FastJSONResponse
from wattlens.gateway.receipts import headers as receipt_headers
from wattlens.gateway.transport import StreamReply, Upstreamed, UpstreamTooLarge
from wattlens.metering import Call, Settlement
from wattlens.protocols import StreamTracker, WireProtocol
from wattlens.protocols.base import InvalidUsage
from wattlens.protocols.sse import Event, SSEError, comment, events

if TYPE_CHECKING:
    from wattlens.gateway.app import Gateway

FAILURES = (TimeoutError, aiohttp.ClientError, ConnectionError)
SLOW_S = 1.0
CHARS_PER_TOKEN = 4  # a rough count of an answer whose usage cannot be believed (English text, BPE)


def _finite(v: Any) -> Any:
    """The JSON value with NaN and infinities replaced by null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _dumps(obj: Any) -> str:
    """An event's JSON (orjson, as the unary answers: these bytes are relayed, never hashed)."""
    return jsonio.dumps(obj).decode("utf-8")


@dataclass(slots=True)
class _Relay:
    """One relayed stream's state."""

    tracker: StreamTracker
    window: Any
    settled: bool = False
    ended: bool = False
    settlement: Settlement | None = None
    entry_sent: bool = False


_ERROR_EVENTS = frozenset(("error", "response.failed"))  # event lines of error events (Anthropic, Responses)
MAX_MODEL_CHARS = 256  # a model name's bound (Hugging Face ids are at most 96 characters, owner included)


def served(model: object) -> str | None:
    """The model an upstream says it served, if it is a name (a hostile one's 8 MB string is not)."""
    return model if isinstance(model, str) and len(model) <= MAX_MODEL_CHARS else None


def redirected(name: str, status: int) -> ApiError:
    """An upstream's redirect, named as one: never followed (the key would go to wherever it points)."""
    return ApiError(
        502,
        f"upstream {name} answered {status}, a redirect: redirects are not followed, so that its key reaches no "
        "other host (set its base_url to the address it moved to)",
        "api_error",
        "upstream_redirect",
    )


class Proxy:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def upstream_error(self, call: Call, u: Upstream, proto: WireProtocol, r: Upstreamed) -> Response:
        call.status, call.outcome = r.status, "upstream_error"
        self.gw.finish(call, u)
        body = r.json_or_none()
        error = body.get("error") if isinstance(body, dict) else None
        kind = "api_error" if r.status >= 500 else "invalid_request_error"
        message, code = f"upstream {u.name} answered {r.status}", None
        key = u.key()

        def clean(text: str, limit: int) -> str:  # the key out first: a cut could leave part of it
            return redact(text, key)[:limit] if key else text[:limit]

        if isinstance(error, dict):  # the upstream's own error, filtered to the protocol's shape
            raw = error.get("message")
            message = clean(raw if isinstance(raw, str) else message, 1000)  # str() of a deep object would raise
            kind = clean(error["type"], 100) if isinstance(error.get("type"), str) else kind
            code = clean(error["code"], 100) if isinstance(error.get("code"), str) else None
        headers = {"x-wattlens-record": call.request_id}  # the upstream's refusal is recorded too
        return JSONResponse(proto.error_body(message, kind, code), status_code=r.status, headers=headers)

    async def send(
        self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any], stream: bool
    ) -> Any:
        """The upstream call through its transport; transport failures become API errors (without the key)."""
        headers = proto.upstream_headers(u.key(), request.headers)
        try:
            body = jsonio.dumps(data)
        except RecursionError as e:  # read (orjson takes 1,024 levels) but too deep to write again
            raise ApiError(400, "request body is nested too deeply") from e
        t, url = self.gw.transports[u.name], u.base_url + call.endpoint
        try:
            return await (t.stream(url, body, headers) if stream else t.post(url, body, headers))
        except FAILURES as e:
            raise upstream_failure(u.name, e) from e
        except UpstreamTooLarge as e:
            raise ApiError(502, f"upstream {u.name}: {e}", "api_error", "upstream_too_large") from e

    async def unary(self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any]) -> Response:
        r: Upstreamed = await self.send(request, call, u, proto, data, stream=False)
        if 300 <= r.status < 400:
            raise redirected(u.name, r.status)
        if r.status >= 400:
            return self.upstream_error(call, u, proto, r)
        body = r.json_or_none()
        if not isinstance(body, dict):
            raise ApiError(502, f"upstream {u.name} sent a body that is not a JSON object", "api_error")
        call.status = r.status
        if call.no_inference:  # counted tokens, not a model's answer: relayed as it is, with its record's id
            self.gw.finish(call, u)
            return FastJSONResponse(body, status_code=r.status, headers={"x-wattlens-record": call.request_id})
        model = body.get("model")
        call.served_model = served(model) or call.served_model or call.model
        usage = proto.usage_of(body)
        try:
            if not isinstance(usage, dict):
                raise InvalidUsage(f"usage is not an object: {type(usage).__name__}")
            call.tokens = proto.tokens(usage)
        except InvalidUsage:  # missing or not believed: count the text instead (as for a stream), and say so
            if call.endpoint == "/embeddings":  # an embedding's cost is its input; its answer is vectors
                call.tokens = Tokens(input=max(1, len(jsonio.dumps(data.get("input"))) // CHARS_PER_TOKEN))
            else:
                call.tokens = Tokens(output=max(1, len(r.body) // CHARS_PER_TOKEN))
            if usage is None:
                call.outcome = "no_usage"
            else:
                call.warnings.append("usage-invalid")
            body = _finite(body)  # NaN and infinity have no JSON form for the client either
        # A client that left while a slow upstream worked is recorded as such; the check costs tens of
        # microseconds, so only answers that took long enough for a client to give up pay for it.
        if time.perf_counter() - call.started > SLOW_S and await request.is_disconnected():
            call.outcome = "client_disconnected"
        s = self.gw.finish(call, u)
        proto.attach(body, s.receipt)  # type: ignore[arg-type]
        headers = receipt_headers(s.footprint, s.error)
        headers["x-wattlens-record"] = call.request_id  # the ledger record's id: `wattlens log proof ID`
        if self.gw.ledger is not None and (entry := s.entry_hash()) is not None:
            headers["x-wattlens-entry"] = entry  # its leaf hash: `wattlens verify-receipt --entry-hash`
        return FastJSONResponse(body, status_code=r.status, headers=headers)

    async def stream(self, request: Request, call: Call, u: Upstream, proto: WireProtocol, data: dict[str, Any]) -> Response:
        data, wants_usage = proto.prepare(call.endpoint, data)
        r: StreamReply = await self.send(request, call, u, proto, data, stream=True)
        if 300 <= r.status < 400:
            r.release()
            raise redirected(u.name, r.status)
        if r.status >= 400:
            try:
                raw = await r.read()
            except FAILURES as e:  # an error body that stalls or breaks off: the transport's failure
                raise upstream_failure(u.name, e) from e
            finally:
                r.release()
            return self.upstream_error(call, u, proto, Upstreamed(r.status, raw))
        call.status = r.status
        gen = self.relay(call, u, proto, r, wants_usage)
        headers = {"cache-control": "no-cache", "x-wattlens-record": call.request_id}
        return StreamingResponse(gen, media_type="text/event-stream", headers=headers)

    async def relay(
        self, call: Call, u: Upstream, proto: WireProtocol, r: StreamReply, wants_usage: bool
    ) -> AsyncIterator[bytes]:
        """Relay events unchanged; the event with the final usage gets the receipt; settle exactly once.

        What one network read brought is written to the client at once (not event by event)."""
        st = _Relay(proto.tracker(call.endpoint), self.gw._windows.get(call.request_id))
        out: list[bytes] = []
        key = u.key()
        try:
            async for ev in events(r.lines()):
                if ev is not None:
                    # An upstream that echoes the key in an event: an error's message, the key perhaps cut
                    # short or upper-cased, so error events are searched through (µs: they are rare). An
                    # error event names itself in its first characters (`{"error":`, `{"type":"error"`) or
                    # its event line; a Responses event's `"error": null` further in is not one.
                    if key and (key in ev.data or '"error"' in ev.data[:16] or ev.event in _ERROR_EVENTS):
                        ev = Event(ev.event, redact(ev.data, key))
                    out.extend(self._pieces(call, u, st, ev, wants_usage))
                    if st.tracker.finished and (note := self._entry_note(call, st)) is not None:
                        out.append(note)  # in the same write as the end marker: one send less per stream
                elif out:  # the end of a network read: write what it brought in one send
                    yield out[0] if len(out) == 1 else b"".join(out)
                    out.clear()
            st.ended = True
            if st.tracker.failed:  # relayed as the upstream sent it; recorded as its failure, with its usage
                call.outcome = "upstream_error"
            elif not st.tracker.finished:
                call.outcome = "upstream_error"
                out.append(proto.stream_error(f"upstream {u.name} ended the stream before its end marker", "truncated"))
        except (SSEError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:  # bad SSE or JSON
            call.outcome = "upstream_error"
            out.append(proto.stream_error(f"upstream sent a malformed stream: {type(e).__name__}", "bad_stream"))
        except FAILURES:
            call.outcome = "upstream_error"
            out.append(proto.stream_error(f"upstream {u.name} broke off the stream", "upstream_broken"))
        finally:
            r.release()
            if not st.settled:
                if call.outcome == "ok" and st.tracker.tokens is None:
                    cut = "shutdown" if self.gw.stopping else "client_disconnected"
                    call.outcome = cut if not st.ended else "no_usage"
                elif call.outcome == "ok" and not st.ended:
                    call.outcome = "shutdown" if self.gw.stopping else "client_disconnected"
                st.settlement = self._settle(call, u, st.tracker)
        if (note := self._entry_note(call, st)) is not None:  # a stream that ended without its end marker
            out.append(note)
        if out:
            yield b"".join(out)

    def _entry_note(self, call: Call, st: _Relay) -> bytes | None:
        """The record's entry hash as an SSE comment (parsers skip it), once, after the stream's end marker:
        the record is final only then."""
        if st.entry_sent or st.settlement is None or self.gw.ledger is None:
            return None
        st.entry_sent = True
        entry = st.settlement.entry_hash()
        return (
            None if entry is None else comment("wattlens-entry " + _dumps({"record": call.request_id, "entry_hash": entry}))
        )

    def _pieces(self, call: Call, u: Upstream, st: _Relay, ev: Event, wants_usage: bool) -> Iterator[bytes]:
        """What the client gets for one upstream event: the event itself, or with the receipt attached."""
        tracker, window = st.tracker, st.window
        if call.ttft_s is None:
            call.ttft_s = time.perf_counter() - call.started
        if ev.data == "[DONE]":
            tracker.finished = True
            if not st.settled:  # the upstream sent no usage (llama.cpp's server does not): count, and still
                st.settled = True  # give the client its receipt before the end marker
                if tracker.tokens is None:
                    call.outcome = "no_usage"
                st.settlement = self._settle(call, u, tracker)
                receipt = st.settlement.receipt
                model = call.served_model or call.model
                usage = tracker.usage_event(call.tokens, receipt, model, call.request_id) if receipt else None
                if usage is not None and wants_usage:
                    yield Event(None, _dumps(usage)).encode()
                elif receipt is not None:
                    yield comment("wattlens " + _dumps({"footprint": receipt}))
            yield ev.encode()
            return
        if not tracker.skim(ev.event, ev.data):
            if window is not None:
                window.progress(tracker.content)
            yield ev.encode()
            return
        chunk = ev.json()
        if not isinstance(chunk, dict):
            raise TypeError("an event's data is not a JSON object")
        seen = tracker.see(ev.event, chunk)
        call.served_model = served(tracker.served_model) or call.served_model or call.model
        if seen == "usage" and not st.settled:
            st.settled = True
            if tracker.failed:
                call.outcome = "upstream_error"
            st.settlement = self._settle(call, u, tracker)
            receipt = st.settlement.receipt
            if tracker.attach(ev.event, chunk, receipt, wants_usage):  # type: ignore[arg-type]
                yield Event(ev.event, _dumps(chunk)).encode()
            else:  # the client did not ask for usage: keep the receipt as a comment line
                yield comment("wattlens " + _dumps({"footprint": receipt}))
            return
        if seen == "content" and window is not None:
            window.progress(tracker.content)
        yield ev.encode()

    def _settle(self, call: Call, u: Upstream, tracker: StreamTracker) -> Settlement:
        """Settle a stream: its last reported usage, else what was seen (one content event ~ one token)."""
        if tracker.tokens is None or tracker.invalid_usage:
            call.tokens = tracker.cut_off()
            if tracker.invalid_usage:
                call.warnings.append("usage-invalid")
        else:
            call.tokens = tracker.tokens
        return self.gw.finish(call, u)
