"""Client keys of the gateway: stored hashed, required beyond loopback; admin keys and team keys for the pages."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
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


SESSION_COOKIE = "wattlens_session"
SESSION_S = 12 * 3600  # a signed-in page stays signed in for a working day
SECRET_ENV = "WATTLENS_SESSION_SECRET"  # the same value on every replica, so a session works on all of them


class Keys:
    def __init__(self, keys: Sequence[ApiKey], host: str, secret: str | None = None) -> None:
        import os

        from wattlens.gateway import is_loopback

        self._by_hash = {k.sha256: k for k in keys}
        self._by_ref = {k.sha256[:32]: k for k in keys}  # what a session cookie names: never the key itself
        self._open = is_loopback(host) and not keys
        # Without a shared secret each process signs with its own: sessions end when it restarts.
        self._secret = (secret or os.environ.get(SECRET_ENV) or secrets.token_hex(32)).encode()

    @property
    def open(self) -> bool:
        """Loopback without keys: every page and API answers without a key, as before keys existed."""
        return self._open

    @property
    def required(self) -> bool:
        return bool(self._by_hash)

    def authenticate(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The caller's key (None when the gateway has no keys), or a 401.

        A key comes in Authorization: Bearer or x-api-key, or, from the pages, as the signed session
        cookie set at sign-in (SameSite=Strict: another site's page cannot send it).
        """
        if not self._by_hash:
            return None
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
        key = self._by_hash.get(digest(token)) if token else self.session_key(headers.get("cookie", ""))
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

    def viewer(self, headers: Mapping[str, str]) -> str | None:
        """Whose records a caller may read: None for all (open loopback, an admin key), else its team."""
        if self._open:
            return None
        key = self.authenticate(headers)
        if key is None or key.admin:
            return None
        if not key.team:
            raise ApiError(
                403,
                f"key {key.key_id!r} belongs to no team: the dashboard needs an admin key or a key with a team",
                "permission_error",
            )
        return key.team

    # -- sessions of the pages ------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def session_for(self, key: ApiKey, now: float | None = None) -> str:
        """A cookie value naming the key (by a prefix of its hash), its expiry and an HMAC of both."""
        payload = f"{key.sha256[:32]}.{int((now or time.time()) + SESSION_S)}"
        return f"{payload}.{self._sign(payload)}"

    def session_key(self, cookie_header: str, now: float | None = None) -> ApiKey | None:
        """The key a valid, unexpired session cookie names; None for anything else."""
        if SESSION_COOKIE not in cookie_header:
            return None
        from http.cookies import CookieError, SimpleCookie

        try:
            jar = SimpleCookie(cookie_header)
        except CookieError:
            return None
        morsel = jar.get(SESSION_COOKIE)
        parts = morsel.value.split(".") if morsel else []
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        ref, expiry, sig = parts
        if not hmac.compare_digest(sig, self._sign(f"{ref}.{expiry}")) or int(expiry) < (now or time.time()):
            return None
        return self._by_ref.get(ref)  # a key removed from the keys file ends its sessions


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
