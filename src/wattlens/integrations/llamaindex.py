"""LlamaIndex: an instrumentation event handler that settles every LLM chat and completion.

    from llama_index.llms.openai import OpenAI
    from wattlens.integrations.llamaindex import instrument

    meter = instrument(zone="FR", ledger="ledger.db")   # on LlamaIndex's root dispatcher
    llm = OpenAI(model="gpt-4o-mini", additional_kwargs={"stream_options": {"include_usage": True}})
    r = llm.chat([ChatMessage(role="user", content="What powers the grid?")])
    r.additional_kwargs["wattlens"]            # the receipt, on the returned ChatResponse
    meter.receipts[-1]                         # the same, kept by the handler

Where the receipt goes, when `attach=True` (the default): the `additional_kwargs["wattlens"]` of
the ChatResponse / CompletionResponse that `LLMChatEndEvent` / `LLMCompletionEndEvent` carry,
which is the object `chat`/`complete` return; for a stream, the last response it yielded (read
it after the loop). Handlers registered after this one see it on the event too.

Tokens: the usage on the response's `raw` provider object, read by that provider's protocol
(a stream's chunks are followed by the protocol's stream tracker, as in `instrument()`), else
LlamaIndex's own `prompt_tokens`/`completion_tokens` in `additional_kwargs`. OpenAI streams carry
usage only when asked (`additional_kwargs={"stream_options": {"include_usage": True}}`, which
LlamaIndex drops again for calls that do not stream); without it the outcome is "no_usage" and
the tokens are the chunks seen.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Unpack

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index_instrumentation import get_dispatcher  # where llama_index.core.instrumentation takes it from
from llama_index_instrumentation.events.span import SpanDropEvent
from pydantic import PrivateAttr

from wattlens.footprint import Tokens
from wattlens.integrations import KEEP, Metering, MeterOptions, Recent, metering, openai_usage_tokens, protocol_name
from wattlens.metering import Call, Settlement, public_url
from wattlens.protocols import StreamTracker, WireProtocol, protocol, protocols
from wattlens.protocols.base import field

# LlamaIndex LLM class names (`class_name()`) -> wire protocol; others by their name's prefix, else openai
PROVIDERS = {"openai_llm": "openai", "azure_openai_llm": "openai", "openailike": "openai", "anthropic_llm": "anthropic"}
DESCRIBED_MAX = 256  # kinds of LLM (class, model, base URL) whose description is kept
_EMPTY: dict[str, Any] = {}  # read-only stand-in for a missing mapping


@dataclass(slots=True)
class _Run:
    """A started LLM call (one span), followed until its end event."""

    started: float  # perf_counter, for the latency
    wall_s: float  # time.time(); the ledger's ISO timestamp is formatted from it off the caller's path
    proto: WireProtocol
    endpoint: str
    model: str
    upstream: str
    tracker: StreamTracker | None = None
    ttft_s: float | None = None


class _Meter:
    """The handler's state and work, in a plain object: pydantic's private attributes cost µs per access."""

    def __init__(self, m: Metering, attach: bool, keep: int) -> None:
        self.metering, self.attach, self.recent = m, attach, Recent(keep)
        self.runs: dict[str, _Run] = {}
        self.described: dict[tuple[Any, ...], tuple[WireProtocol, str, str, str]] = {}

    def handle(self, event: Any) -> None:
        t = type(event)
        if t is LLMChatInProgressEvent or t is LLMCompletionInProgressEvent:  # the most frequent: first
            self.progress(event)
        elif t is LLMChatStartEvent or t is LLMCompletionStartEvent:
            self.start(event, chat=t is LLMChatStartEvent)
        elif t is LLMChatEndEvent or t is LLMCompletionEndEvent:
            self.end(event)
        elif t is ExceptionEvent or t is SpanDropEvent:
            self.failed(event)

    def start(self, event: Any, chat: bool) -> None:
        started, wall_s = time.perf_counter(), time.time()
        md = event.model_dict if isinstance(event.model_dict, dict) else _EMPTY
        class_name, model = md.get("class_name"), md.get("model_name") or md.get("model") or ""
        base = md.get("api_base") or md.get("base_url")
        # The same LLM object describes itself the same way call after call: work it out once.
        try:
            key = (class_name, model, base, chat)
            described = self.described.get(key)
        except TypeError:  # an unhashable field: describe this call afresh
            key, described = None, None
        if described is None:
            proto = _protocol(str(class_name or ""))
            endpoint = "/messages" if proto.name == "anthropic" else "/chat/completions" if chat else "/completions"
            described = (proto, endpoint, str(model), public_url(str(base or proto.name)))
            if key is not None and len(self.described) < DESCRIBED_MAX:
                self.described[key] = described
        self.runs[event.span_id] = _Run(started, wall_s, *described)

    def progress(self, event: Any) -> None:
        run = self.runs.get(event.span_id)
        if run is None:
            return
        if run.tracker is None:
            run.tracker = run.proto.tracker(run.endpoint)
            run.ttft_s = time.perf_counter() - run.started
        raw = event.response.raw
        if raw is not None:
            run.tracker.see(None, raw)
        else:
            run.tracker.content += 1

    def end(self, event: Any) -> None:
        key = event.span_id
        run = self.runs.pop(key, None)
        if run is None:
            return
        response = event.response
        raw = getattr(response, "raw", None)
        outcome, stream = "ok", False
        tr = run.tracker
        if tr is not None:  # a stream: what its tracker saw
            stream = True
            if tr.tokens is not None:
                tokens = tr.tokens
            else:
                outcome, tokens = "no_usage", tr.cut_off()
            served = tr.served_model or run.model
        else:
            usage = run.proto.usage_of(raw) if raw is not None else None
            if usage is not None:
                tokens = run.proto.tokens(usage)
            else:  # LlamaIndex's own counts, named as OpenAI names them
                extra = getattr(response, "additional_kwargs", None) or _EMPTY
                tokens = openai_usage_tokens(extra) if "prompt_tokens" in extra else Tokens()
            served = field(raw, "model") or run.model
        call = self.call(run, key, tokens=tokens, served_model=served, outcome=outcome, stream=stream)
        if raw is not None and field(raw, "object") == "text_completion":
            call.endpoint = "/completions"
        s = self.settle(call, key)
        if self.attach and response is not None and (receipt := s.receipt) is not None:
            response.additional_kwargs["wattlens"] = receipt

    def failed(self, event: Any) -> None:
        key = event.span_id
        run = self.runs.pop(key, None)
        if run is None:
            return
        call = self.call(run, key)
        exc = getattr(event, "exception", None)
        status = getattr(exc, "status_code", None)
        call.status, call.outcome = (status if isinstance(status, int) else 502), "upstream_error"
        if run.tracker is not None:
            call.stream, call.tokens = True, run.tracker.tokens or run.tracker.cut_off()
        self.settle(call, key)

    def call(self, run: _Run, key: str, **kw: Any) -> Call:
        # ts left None: the record's ISO time is formatted from wall_s in the ledger's thread
        return self.metering.call(
            run.proto.name,
            run.endpoint,
            run.model,
            upstream=run.upstream,
            started=run.started,
            wall_s=run.wall_s,
            ttft_s=run.ttft_s,
            request_id=request_id(key),
            **kw,
        )

    def settle(self, call: Call, key: str) -> Settlement:
        s = self.metering.settle(call, eager=self.attach)
        self.recent.add(key, s)
        return s


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def request_id(span_id: str | None) -> str:
    """The ledger id of the call made in a span: the span id's UUID ("OpenAI.chat-<uuid>"), else a new one."""
    if isinstance(span_id, str) and _UUID.fullmatch(span_id, max(len(span_id) - 36, 0)):  # uuid.UUID() costs µs
        return span_id[-36:].replace("-", "").lower()
    return uuid.uuid4().hex


_PROTOCOLS: dict[str, WireProtocol] = {}  # LLM class name -> its protocol, worked out once per class


def _protocol(class_name: str) -> WireProtocol:
    found = _PROTOCOLS.get(class_name)
    if found is None:
        name = class_name.lower()
        p = PROVIDERS.get(name) or next((p for p in protocols() if name.startswith(p)), None) or protocol_name(None)
        found = _PROTOCOLS[class_name] = protocol(p)
    return found


class WattlensEventHandler(BaseEventHandler):
    """Meters LlamaIndex LLM calls; takes instrument()'s keyword arguments plus observers.

    attach: put each receipt on the response, computing it in the callback (tens of µs a call:
    it must be a plain dict when the call returns; see bench/results/integrations.md); with
    False it is computed when first read (`receipts`) or in the ledger's thread.
    """

    _meter: _Meter = PrivateAttr()

    def __init__(
        self,
        *,
        attach: bool = True,
        keep: int = KEEP,
        **options: Unpack[MeterOptions],
    ) -> None:
        super().__init__()
        m = metering("llamaindex", **options)
        self._meter = _Meter(m, attach, keep)

    @classmethod
    def class_name(cls) -> str:
        return "WattlensEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        # Called for every event, every streamed chunk included: the private dict directly, not
        # pydantic's attribute look-up (2 µs a time).
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        private["_meter"].handle(event)

    @property
    def metering(self) -> Metering:
        return self._meter.metering

    def settlement(self, span_id: str) -> Settlement | None:
        """The settlement of the call made in this span (the events' span_id)."""
        return self._meter.recent.get(span_id)

    @property
    def settlements(self) -> list[Settlement]:
        """The settlements of the last calls, oldest first."""
        return self._meter.recent.settlements()

    @property
    def receipts(self) -> list[dict[str, Any] | None]:
        """The receipts of the last calls, oldest first (computed here when attach=False)."""
        return [s.receipt for s in self._meter.recent.settlements()]

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the ledger has written every record queued so far."""
        self._meter.metering.flush(timeout_s)


def instrument(
    dispatcher: Any = None, *, attach: bool = True, keep: int = KEEP, **options: Unpack[MeterOptions]
) -> WattlensEventHandler:
    """A WattlensEventHandler (instrument()'s keyword arguments) added to a dispatcher, the root one by default."""
    handler = WattlensEventHandler(attach=attach, keep=keep, **options)
    (dispatcher or get_dispatcher()).add_event_handler(handler)
    return handler


def uninstrument(handler: WattlensEventHandler, dispatcher: Any = None) -> None:
    """Take the handler off the dispatcher again."""
    d = dispatcher or get_dispatcher()
    d.event_handlers = [h for h in d.event_handlers if h is not handler]


__all__ = ["PROVIDERS", "WattlensEventHandler", "instrument", "uninstrument"]
