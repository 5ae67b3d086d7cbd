"""Client keys of the gateway: stored hashed, required beyond loopback; admin keys for the dashboard."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence

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
