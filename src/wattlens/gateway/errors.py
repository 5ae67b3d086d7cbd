"""API errors of the gateway, inside wattlens' one error tree, shaped per wire protocol."""

from __future__ import annotations

from starlette.responses import JSONResponse

from wattlens.errors import WattlensError
from wattlens.protocols import WireProtocol


class ApiError(WattlensError):
    """An error answered to an API client: HTTP status, message, the protocol's error type and code."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def error_response(proto: WireProtocol, e: ApiError) -> JSONResponse:
    return JSONResponse(proto.error_body(e.message, e.kind, e.code), status_code=e.status)


def upstream_failure(name: str, e: BaseException) -> ApiError:
    """Transport failures of an upstream call as API errors (never with the upstream's key)."""
    import aiohttp

    if isinstance(e, TimeoutError):
        return ApiError(504, f"upstream {name} timed out", "api_error", "upstream_timeout")
    if isinstance(e, aiohttp.ClientConnectorError):
        return ApiError(502, f"cannot connect to upstream {name}", "api_error", "upstream_unreachable")
    return ApiError(502, f"upstream {name} failed: {type(e).__name__}", "api_error", "upstream_error")
