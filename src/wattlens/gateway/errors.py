"""API errors of the gateway, inside wattlens' one error tree, shaped per wire protocol."""

from __future__ import annotations

from starlette.responses import JSONResponse

from wattlens.errors import WattlensError
from wattlens.protocols import WireProtocol


class ApiError(WattlensError):
    """An error answered to an API client: HTTP status, message, the protocol's error type and code."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}  # e.g. Retry-After on a 429


def error_response(proto: WireProtocol, e: ApiError) -> JSONResponse:
    return JSONResponse(proto.error_body(e.message, e.kind, e.code), status_code=e.status, headers=e.headers or None)


def budget_exceeded(proto: WireProtocol, budget: str, unit: str, hard: float, retry_after_s: int) -> ApiError:
    """A hard budget limit as a 429 in the protocol's words, with Retry-After: the seconds to the period's end."""
    kind = "rate_limit_error" if proto.name == "anthropic" else "insufficient_quota"
    return ApiError(
        429,
        f"budget {budget!r} has reached its hard limit of {hard:g} {unit} for this period; "
        f"it resets in {retry_after_s} s (ask an admin to raise it, or use a smaller model)",
        kind,
        "budget_exceeded",
        {"retry-after": str(retry_after_s)},
    )


def upstream_failure(name: str, e: BaseException) -> ApiError:
    """Transport failures of an upstream call as API errors (never with the upstream's key)."""
    import aiohttp

    if isinstance(e, TimeoutError):
        return ApiError(504, f"upstream {name} timed out", "api_error", "upstream_timeout")
    if isinstance(e, aiohttp.ClientConnectorError):
        return ApiError(502, f"cannot connect to upstream {name}", "api_error", "upstream_unreachable")
    return ApiError(502, f"upstream {name} failed: {type(e).__name__}", "api_error", "upstream_error")


REDACT_RUN = 12  # this many consecutive characters of a key, in any case, are taken for the key
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # keeps every index


def redact(text: str, key: str) -> str:
    """The text without the key: the whole key in any case, and any run of REDACT_RUN or more of its
    characters (a prefix with the rest masked, a key cut short), each run replaced by `[redacted]`.

    For error texts and events (a few hundred characters); a key's characters are never quotes or
    backslashes, so a JSON text stays JSON."""
    if not key:
        return text
    n = min(REDACT_RUN, len(key))
    k, low = key.translate(_ASCII_LOWER), text.translate(_ASCII_LOWER)
    grams = {k[i : i + n] for i in range(len(k) - n + 1)}
    hit = bytearray(len(text))
    for i in range(len(low) - n + 1):
        if low[i : i + n] in grams:
            hit[i : i + n] = b"\x01" * n
    if not any(hit):
        return text
    out, i = [], 0
    while i < len(text):
        if hit[i]:
            while i < len(text) and hit[i]:
                i += 1
            out.append("[redacted]")
        else:
            j = hit.find(1, i)
            j = len(text) if j < 0 else j
            out.append(text[i:j])
            i = j
    return "".join(out)
