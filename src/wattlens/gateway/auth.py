"""Client keys of the gateway: stored hashed, required beyond loopback; admin keys for the dashboard."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wattlens.gateway.config import ApiKey
from wattlens.gateway.errors import ApiError


def new_key() -> tuple[str, str]:
    """A fresh client key and its SHA-256 (the only form the keys file holds)."""
    key = "wl-" + secrets.token_urlsafe(32)
    return key, digest(key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Keys:
    def __init__(self, keys: Sequence[ApiKey], host: str) -> None:
        from wattlens.gateway import is_loopback

        self._by_hash = {k.sha256: k for k in keys}
        self._open = is_loopback(host) and not keys

    def authenticate(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The caller's key (None when the gateway has no keys), or a 401."""
        if not self._by_hash:
            return None
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
        key = self._by_hash.get(digest(token)) if token else None
        if key is None:
            raise ApiError(
                401,
                "invalid or missing API key for this gateway (Authorization: Bearer ... or x-api-key)",
                "authentication_error",
                "invalid_api_key",
            )
        return key

    def require_admin(self, headers: Mapping[str, str]) -> None:
        """The dashboard and exports: open on loopback, an admin key beyond it."""
        if self._open:
            return
        key = self.authenticate(headers)
        if key is None or not key.admin:
            raise ApiError(403, "the dashboard needs an admin key (admin = true in the keys file)", "permission_error")


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
GUARDED = frozenset((b"host", b"origin", b"sec-fetch-site"))
BIND_ALL = ("0.0.0.0", "::", "")


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """Host names the gateway answers to; None (any) when it binds every address and names none."""
    extra = [h.lower() for h in extra]
    if bind in BIND_ALL and not extra:
        return None  # reachable by any name: keys are required there (check_exposure)
    return frozenset((*LOOPBACK_NAMES, bind.lower(), *extra))


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8787
        return value[1 : value.find("]")]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class GuardHosts:
    """ASGI middleware against DNS rebinding and cross-site requests from a browser.

    A request whose Host is not one of the gateway's names is refused (421), and so is a
    browser request that another site started (an Origin of another host, or
    Sec-Fetch-Site: cross-site): a web page the user visits must not spend the upstream key
    or read the ledger through the keyless loopback gateway.
    """

    def __init__(self, app: Any, hosts: frozenset[str] | None) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k: v for k, v in scope["headers"] if k in GUARDED}
            why = self._refusal(headers)
            if why is not None:
                from starlette.responses import JSONResponse

                status, message = why
                body = {"error": {"message": message, "type": "permission_error", "param": None, "code": "host_refused"}}
                await JSONResponse(body, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.hosts is not None:
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                return (
                    421,
                    f"this gateway does not answer to the host name {host[:100]!r} (add it to [server] allowed_hosts)",
                )
        if headers.get(b"sec-fetch-site", b"") == b"cross-site":
            return 403, "cross-site browser requests are refused"
        origin = headers.get(b"origin")
        if origin and origin != b"null":
            name = _host_name(origin.decode("latin-1").split("://", 1)[-1].split("/", 1)[0])
            if self.hosts is not None and name not in self.hosts:
                return 403, "requests from another site's pages are refused"
        elif origin == b"null":
            return 403, "requests from opaque origins are refused"
        return None
