"""Fast JSON for the gateway's request path (orjson), where the bytes are relayed, never hashed.

The ledger keeps its own canonical form (RFC 8785, wattlens.ledger.chain); only the bodies the
gateway reads from clients and upstreams, and the answers it sends back, go through here. Whatever
orjson refuses (integers beyond 64 bits, nesting past 1,024) falls back to the standard library,
so what is accepted and what is refused does not change.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # the standard library's answer (and error) for what orjson will not read


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (NaN and infinity become null, as orjson writes them)."""
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):  # an int beyond 64 bits, a lone surrogate (escaped here)
        return json.dumps(obj, separators=(",", ":")).encode()


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


__all__ = ["FastJSONResponse", "dumps", "loads"]
