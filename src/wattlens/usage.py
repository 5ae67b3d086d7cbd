"""Token counts from the providers' own usage objects, never guessed when reported.

Shared by the gateway and the SDK hooks so both give the same receipt for the same response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattlens.footprint import Tokens


def _int(d: Mapping[str, Any] | None, *path: str) -> int:
    cur: Any = d
    for p in path:
        if not isinstance(cur, Mapping):
            return 0
        cur = cur.get(p)
    return int(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else 0


def openai_tokens(usage: Mapping[str, Any] | None) -> Tokens:
    """Chat Completions, Completions, Embeddings and Responses usage.

    OpenAI counts reasoning inside completion tokens; the receipt keeps them apart.
    """
    if not usage:
        return Tokens()
    if "input_tokens" in usage:  # Responses API
        inp = _int(usage, "input_tokens")
        cached = _int(usage, "input_tokens_details", "cached_tokens")
        out = _int(usage, "output_tokens")
        reasoning = _int(usage, "output_tokens_details", "reasoning_tokens")
    else:
        inp = _int(usage, "prompt_tokens")
        cached = _int(usage, "prompt_tokens_details", "cached_tokens")
        out = _int(usage, "completion_tokens")
        reasoning = _int(usage, "completion_tokens_details", "reasoning_tokens")
    return Tokens(input=inp, cached_input=min(cached, inp), output=max(out - reasoning, 0), reasoning=reasoning)


def anthropic_tokens(usage: Mapping[str, Any] | None) -> Tokens:
    """Messages usage: every input-token field added up; cache reads are the cached part."""
    if not usage:
        return Tokens()
    read = _int(usage, "cache_read_input_tokens")
    inp = _int(usage, "input_tokens") + _int(usage, "cache_creation_input_tokens") + read
    return Tokens(input=inp, cached_input=read, output=_int(usage, "output_tokens"))


def merge_anthropic(start: Mapping[str, Any] | None, delta: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stream reports input on message_start and cumulative output on message_delta."""
    merged: dict[str, Any] = dict(start or {})
    for k, v in (delta or {}).items():
        if v is not None:
            merged[k] = v
    return merged
