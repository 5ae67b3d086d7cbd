"""OpenAI: Chat Completions, Completions, Embeddings and Responses.

Receipts go inside `usage` (`usage.footprint`); on streams, on the final usage chunk (asked for
with `stream_options.include_usage`, hidden again when the client did not ask) or on the
Responses API's `response.completed` event.
"""

from __future__ import annotations

import re
import time
from typing import Any

from wattlens.footprint import Tokens
from wattlens.protocols.base import Seen, StreamTracker, WireProtocol, count, field

USAGE_ENDPOINTS = ("/chat/completions", "/completions")  # the endpoints whose streams need include_usage


def openai_tokens(usage: Any) -> Tokens:
    """Chat Completions, Completions, Embeddings and Responses usage.

    OpenAI counts reasoning inside completion tokens; the receipt keeps them apart.
    """
    if not usage:
        return Tokens()
    if field(usage, "input_tokens") is not None:  # Responses API
        inp, out = count(usage, "input_tokens"), count(usage, "output_tokens")
        cached = count(field(usage, "input_tokens_details"), "cached_tokens")
        reasoning = count(field(usage, "output_tokens_details"), "reasoning_tokens")
    else:
        inp, out = count(usage, "prompt_tokens"), count(usage, "completion_tokens")
        cached = count(field(usage, "prompt_tokens_details"), "cached_tokens")
        reasoning = count(field(usage, "completion_tokens_details"), "reasoning_tokens")
    reasoning = min(reasoning, out)  # a part of the completion: never more than all of it
    return Tokens(input=inp, cached_input=min(cached, inp), output=out - reasoning, reasoning=reasoning)


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# An event that carries generated text or tool-call arguments (not the role-only first chunk, nor the
# finish chunk): only these count as tokens when a stream reports no usage. JSON may have spaces after ':'.
_GENERATES = re.compile(r'"(?:content|arguments|text|delta|refusal)":\s*"(?!")')


def _generates(data: Any) -> bool:
    """The same test on a parsed chunk (a dict or an SDK object)."""
    for choice in field(data, "choices") or ():
        delta = field(choice, "delta")
        if field(delta, "content") or field(delta, "tool_calls") or field(delta, "refusal") or field(choice, "text"):
            return True
    return bool(isinstance(field(data, "delta"), str) and field(data, "delta"))


# The Responses API's terminal events (API reference, "Streaming events"): each carries the response and its usage.
_RESPONSE_ENDS = frozenset(("response.completed", "response.incomplete", "response.failed"))


_END_TYPES = tuple(f'"type":"{end}"' for end in _RESPONSE_ENDS)


def _response_end(raw: str) -> bool:
    return any(end in raw for end in _END_TYPES)


class OpenAITracker(StreamTracker):
    __slots__ = ()

    def skim(self, event: str | None, raw: str) -> bool:
        # OpenAI names each Responses event on its `event:` line; the body is searched only where it is not
        if event in _RESPONSE_ENDS or (event is None and '"type":"response.' in raw and _response_end(raw)):
            return True
        if '"usage"' in raw and '"usage":null' not in raw and '"usage": null' not in raw:
            return True
        if _GENERATES.search(raw):
            self.content += 1
        return False

    def read_tokens(self, usage: Any) -> Tokens:
        return openai_tokens(usage)

    def see(self, event: str | None, data: Any) -> Seen:
        end = event if event in _RESPONSE_ENDS else field(data, "type")
        if end in _RESPONSE_ENDS:  # completed, or ended early (max_output_tokens) or failed: usage is still reported
            self.finished = True
            self.failed = end == "response.failed"
            resp = field(data, "response")
            usage = field(resp, "usage")
            if usage is not None:
                self.usage(usage)
                self.served_model = _text(field(resp, "model")) or self.served_model
                return "usage"
        usage = field(data, "usage")
        if usage is not None:
            self.usage(usage)
            self.served_model = _text(field(data, "model")) or self.served_model
            if field(data, "choices") == []:  # the usage chunk that ends the stream
                return "usage"
        if _generates(data):  # content (with a running usage when the server sends one on every chunk)
            self.content += 1
        return "content"

    def attach(self, event: str | None, data: dict[str, Any], receipt: dict[str, Any], wants_usage: bool) -> bool:
        resp = data.get("response")
        if isinstance(resp, dict) and isinstance(resp.get("usage"), dict):
            resp["usage"]["footprint"] = receipt
            return True
        if not wants_usage:
            return False
        usage = data.get("usage")
        if isinstance(usage, dict):
            usage["footprint"] = receipt
        else:
            data["usage"] = {"footprint": receipt}
        return True

    def hides(self, data: Any) -> bool:
        # The usage chunk that include_usage adds has an empty choices list.
        return field(data, "usage") is not None and field(data, "choices") == []

    def usage_event(self, tokens: Tokens, receipt: dict[str, Any], model: str, request_id: str) -> dict[str, Any] | None:
        """A Chat Completions usage chunk (empty choices), as include_usage would have sent it."""
        out = tokens.output + tokens.reasoning
        return {
            "id": f"wattlens-{request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": tokens.input,
                "completion_tokens": out,
                "total_tokens": tokens.input + out,
                "footprint": receipt,
            },
        }


class OpenAI(WireProtocol):
    name = "openai"
    endpoints = ("/chat/completions", "/completions", "/embeddings", "/responses")
    sdk_targets = (
        (("chat", "completions"), "create", "/chat/completions"),
        (("completions",), "create", "/completions"),
        (("embeddings",), "create", "/embeddings"),
        (("responses",), "create", "/responses"),
    )
    sdk_modules = ("openai",)

    def tokens(self, usage: Any) -> Tokens:
        return openai_tokens(usage)

    def attach(self, body: dict[str, Any], receipt: dict[str, Any]) -> None:
        usage = body.get("usage")
        if isinstance(usage, dict):
            usage["footprint"] = receipt  # inside usage
        else:
            body["usage"] = {"footprint": receipt}

    def prepare(self, endpoint: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if not data.get("stream") or endpoint not in USAGE_ENDPOINTS:
            return data, True
        raw = data.get("stream_options")
        opts: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if opts.get("include_usage"):
            return data, True
        return {**data, "stream_options": {**opts, "include_usage": True}}, False

    def tracker(self, endpoint: str) -> StreamTracker:
        return OpenAITracker()

    def operation(self, endpoint: str) -> str:
        return {"/embeddings": "embeddings", "/completions": "text_completion"}.get(endpoint, "chat")

    def error_body(self, message: str, kind: str, code: str | None) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
