"""Fast JSON for the gateway's request path (orjson), where the bytes are relayed, never hashed.

The ledger keeps its own canonical form (RFC 8785, wattlens.ledger.chain); only the bodies the
gateway reads from clients and upstreams, and the answers it sends back, go through here. Whatever
orjson refuses or would read inexactly (integers beyond 64 bits, which it reads as floats; nesting
past 1,024) goes to the standard library, so what is accepted and what is refused does not change.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse

# An integer literal of 19 digits or more may lie past 64 bits, which orjson reads as a float (losing
# digits) where the standard library keeps the exact int: such a document is read by the latter.
# (Digits mapped to "9" and the rest to " ", then one substring search: ~3 µs for 3 KB, where a
# regular expression takes ~25 µs.)
_DIGITS = bytes(0x39 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"9" * 19


def _long_integer(data: bytes | str) -> bool:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return _LONG_RUN in data.translate(_DIGITS)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259): send a number or null")


def loads(data: bytes | str, constants: bool = True) -> Any:
    """`constants=False` refuses NaN and Infinity, which the standard library reads and orjson would
    write again as null: a client's NaN would reach the upstream as a different request."""
    hook = None if constants else _not_json
    if _long_integer(data):
        return json.loads(data, parse_constant=hook)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=hook)  # the standard library's answer (and error) for the rest


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
