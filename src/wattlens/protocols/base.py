"""What a wire protocol must say for wattlens to meter it: one class per protocol.

A protocol reads token usage from a response or from stream events (a JSON dict from the
wire, or an SDK's response object: `field()` reads both), tracks a stream to its usage,
attaches the receipt where clients of that protocol look for it, and shapes errors the way
its clients expect. The gateway relays and `instrument()` both go through it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from wattlens.footprint import Tokens

Seen = Literal["content", "usage", "other"]


def field(obj: Any, key: str) -> Any:
    """A field of a JSON dict or of an SDK (pydantic) object, None when absent.

    SDK objects are read through their field dict: attribute lookups that miss cost microseconds.
    """
    if type(obj) is dict or isinstance(obj, Mapping):  # the exact-type test first: the ABC check costs more
        return obj.get(key)
    d = getattr(obj, "__dict__", None)
    return d.get(key) if type(d) is dict else None


MAX_TOKENS = 100_000_000  # more than any context window: a usage beyond it is not believed


class InvalidUsage(ValueError):
    """An upstream reported a token count that cannot be true (negative, NaN, huge, not a number)."""


def count(obj: Any, key: str) -> int:
    """A token count: a non-negative integer (or integral JSON number) up to MAX_TOKENS; absent is 0.

    Anything else raises InvalidUsage: the caller counts from the content instead and says so.
    """
    v = field(obj, key)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= MAX_TOKENS or v != int(v):
        raise InvalidUsage(f"{key} = {v!r}")
    return int(v)


def fields(obj: Any) -> dict[str, Any]:
    """The fields of a JSON dict or SDK object as a plain dict (empty for None)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    d = getattr(obj, "__dict__", None)
    return dict(d) if isinstance(d, dict) else {}


def sse(event: str | None, data: str) -> bytes:
    from wattlens.protocols.sse import Event

    return Event(event, data).encode()


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class StreamTracker(ABC):
    """Follows one stream: content events seen, the final usage, the served model."""

    __slots__ = ("content", "failed", "finished", "invalid_usage", "served_model", "tokens")

    def __init__(self) -> None:
        self.content = 0
        self.tokens: Tokens | None = None  # the latest usage the stream reported
        self.served_model: str | None = None
        self.finished = False  # the stream's own end marker arrived ([DONE], response.completed, message_stop)
        self.failed = False  # that end marker says the upstream failed (the Responses API's response.failed)
        self.invalid_usage = False  # a usage was reported that cannot be true: counted from the content

    def skim(self, event: str | None, raw: str) -> bool:
        """A cheap look at an event's raw JSON: True when it must be parsed and seen; otherwise it is counted here."""
        return True

    @abstractmethod
    def see(self, event: str | None, data: Any) -> Seen:
        """Look at one event (a JSON dict or an SDK object); "usage" marks the one event that carries the receipt.

        A usage reported on content events too (vLLM's continuous usage stats) only updates `tokens`.
        """

    def usage(self, tokens: Any) -> None:
        """Keep a reported usage, or note that it cannot be true."""
        try:
            self.tokens = self.read_tokens(tokens)
        except InvalidUsage:
            self.invalid_usage = True

    @abstractmethod
    def read_tokens(self, usage: Any) -> Tokens:
        """The protocol's token counts from a usage object."""

    @abstractmethod
    def attach(self, event: str | None, data: dict[str, Any], receipt: dict[str, Any], wants_usage: bool) -> bool:
        """Put the receipt into the usage event; False when the client did not ask for usage (send it aside)."""

    def hides(self, data: Any) -> bool:
        """True for a usage-only event that wattlens asked for and the caller did not."""
        return False

    def cut_off(self) -> Tokens:
        """Tokens of a stream that ended before its usage: what was seen (one content event ~ one token)."""
        return Tokens(output=self.content)

    def usage_event(self, tokens: Tokens, receipt: dict[str, Any], model: str, request_id: str) -> dict[str, Any] | None:
        """The usage event to send when the stream ended without one, carrying the counted tokens and the
        receipt; None where the protocol has no such event (the receipt then goes in a comment line)."""
        return None


class WireProtocol(ABC):
    """One wire protocol. Subclass it, name it, and register it on the `wattlens_protocols` hook."""

    name: ClassVar[str]  # also the upstream `kind` in the gateway config
    endpoints: ClassVar[tuple[str, ...]]  # paths under /v1 that the gateway serves for it
    # (resource path, method, endpoint) of the SDK calls instrument() wraps
    sdk_targets: ClassVar[tuple[tuple[tuple[str, ...], str, str], ...]] = ()
    sdk_modules: ClassVar[tuple[str, ...]] = ()  # module prefixes of the SDK's client classes

    @abstractmethod
    def tokens(self, usage: Any) -> Tokens:
        """Token counts from a usage (a JSON dict or an SDK object); InvalidUsage when they cannot be true."""

    def usage_of(self, body: Any) -> Any:
        """The usage part of a whole (non-streamed) response."""
        return field(body, "usage")

    @abstractmethod
    def attach(self, body: dict[str, Any], receipt: dict[str, Any]) -> None:
        """Put the receipt into a whole response where this protocol's clients read usage."""

    def prepare(self, endpoint: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The request as sent upstream (asking for usage on streams) and whether the client asked itself."""
        return data, True

    @abstractmethod
    def tracker(self, endpoint: str) -> StreamTracker:
        """A fresh tracker for one stream of this endpoint."""

    def operation(self, endpoint: str) -> str:
        """The OpenTelemetry gen_ai.operation.name of an endpoint."""
        return "chat"

    @abstractmethod
    def error_body(self, message: str, kind: str, code: str | None) -> dict[str, Any]:
        """An error answer in the shape this protocol's clients parse."""

    def stream_error(self, message: str, code: str) -> bytes:
        """An error event in the protocol's own shape, for a stream that cannot go on: by default its error body."""
        return sse(None, dumps(self.error_body(message, "api_error", code)))

    def upstream_headers(self, key: str | None, incoming: Mapping[str, str]) -> dict[str, str]:
        """Headers for the upstream call: content type, the upstream's own key, pass-through headers."""
        h = {"content-type": "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}"
        return h

    def sdk_client(self, client: Any) -> bool:
        """Whether an SDK client object speaks this protocol (for instrument())."""
        return type(client).__module__.startswith(self.sdk_modules) if self.sdk_modules else False
