"""Anthropic Messages: the receipt sits beside `usage` (`footprint`), on streams on `message_delta`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattlens.footprint import Tokens
from wattlens.protocols.base import InvalidUsage, Seen, StreamTracker, WireProtocol, count, dumps, field, fields, sse


def anthropic_tokens(usage: Any) -> Tokens:
    """Messages usage: every input-token field added up; cache reads are the cached part."""
    if not usage:
        return Tokens()
    read = count(usage, "cache_read_input_tokens")
    inp = count(usage, "input_tokens") + count(usage, "cache_creation_input_tokens") + read
    return Tokens(input=inp, cached_input=read, output=count(usage, "output_tokens"))


class AnthropicTracker(StreamTracker):
    """Input usage arrives on message_start, cumulative usage on message_delta (its values win)."""

    __slots__ = ("start_usage",)

    def __init__(self) -> None:
        super().__init__()
        self.start_usage: dict[str, Any] = {}

    def skim(self, event: str | None, raw: str) -> bool:
        if event == "content_block_delta":
            self.content += 1
            return False
        return event in ("message_start", "message_delta", "message_stop") or event is None

    def read_tokens(self, usage: Any) -> Tokens:
        return anthropic_tokens(usage)

    def see(self, event: str | None, data: Any) -> Seen:
        kind = event or field(data, "type")
        if kind == "message_start":
            msg = field(data, "message")
            self.start_usage = fields(field(msg, "usage"))
            model = field(msg, "model")
            self.served_model = model if isinstance(model, str) else self.served_model
            return "other"
        if kind == "message_delta":
            delta = {k: v for k, v in fields(field(data, "usage")).items() if v is not None}
            self.usage({**self.start_usage, **delta})
            return "usage"
        if kind == "message_stop":
            self.finished = True
            return "other"
        if kind == "content_block_delta":
            self.content += 1
            return "content"
        return "other"

    def attach(self, event: str | None, data: dict[str, Any], receipt: dict[str, Any], wants_usage: bool) -> bool:
        data["footprint"] = receipt
        return True

    def cut_off(self) -> Tokens:
        try:
            seen = anthropic_tokens(self.start_usage)
        except InvalidUsage:
            seen = Tokens()
        return Tokens(seen.input, seen.cached_input, self.content, 0)


class Anthropic(WireProtocol):
    name = "anthropic"
    endpoints = ("/messages", "/messages/count_tokens")  # the second runs no model: relayed, recorded, no receipt
    sdk_targets = ((("messages",), "create", "/messages"),)
    sdk_modules = ("anthropic",)

    def tokens(self, usage: Any) -> Tokens:
        return anthropic_tokens(usage)

    def attach(self, body: dict[str, Any], receipt: dict[str, Any]) -> None:
        body["footprint"] = receipt  # beside usage

    def tracker(self, endpoint: str) -> StreamTracker:
        return AnthropicTracker()

    def error_body(self, message: str, kind: str, code: str | None) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}

    def stream_error(self, message: str, code: str) -> bytes:
        return sse("error", dumps({"type": "error", "error": {"type": "api_error", "message": message}}))

    def upstream_headers(self, key: str | None, incoming: Mapping[str, str]) -> dict[str, str]:
        h = {"content-type": "application/json", "anthropic-version": incoming.get("anthropic-version", "2023-06-01")}
        beta = incoming.get("anthropic-beta")
        if beta:
            h["anthropic-beta"] = beta
        if key:
            h["x-api-key"] = key
        return h
