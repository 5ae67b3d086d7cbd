"""Free-form tags of a request: `x-wattlens-tag-NAME: value` headers, the protocol's `metadata`, a key's defaults.

Tags go into the ledger record (`tags`), so reports, budgets and the dashboard can group by
them. Names and values are checked here, once, with a clear 400: a tag that a report cannot
show or a header that smuggles control characters never reaches the ledger.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from wattlens.gateway.errors import ApiError

HEADER_PREFIX = "x-wattlens-tag-"
PREFIX_BYTES = HEADER_PREFIX.encode()
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")  # header names are case-insensitive: names are lower case
VALUE = re.compile(r"[A-Za-z0-9 _.,:;/@+=#()\[\]-]{1,64}")
MAX_TAGS = 16  # as OpenAI's `metadata` (16 pairs): enough to describe a request, too few to be a payload
RESERVED = frozenset(("team", "user", "error", "budget"))  # set by the gateway itself


def check(name: str, value: str, where: str) -> tuple[str, str]:
    """A valid (name, value), or a 400 that says what is allowed."""
    if not NAME.fullmatch(name):
        raise ApiError(
            400,
            f"{where}: tag name {name[:40]!r} must be 1-32 characters a-z, 0-9, '_', '.', '-' "
            "(starting with a letter or digit)",
            code="invalid_tag",
        )
    if name in RESERVED:
        raise ApiError(
            400,
            f"{where}: tag name {name!r} is reserved (team and user come from the key or x-wattlens-team/-user)",
            code="invalid_tag",
        )
    return name, checked_value(name, value, where)


def checked_value(name: str, value: str, where: str) -> str:
    """A tag's value, stripped, or a 400 (also for x-wattlens-team/-user, whose names are the reserved ones)."""
    value = value.strip()
    if not VALUE.fullmatch(value):
        raise ApiError(
            400,
            f"{where}: the value of tag {name!r} must be 1-64 characters: letters, digits, space and _.,:;/@+=#()[]-",
            code="invalid_tag",
        )
    return value


@functools.lru_cache(maxsize=4096)  # most requests repeat a few pairs; errors are not cached
def checked(name: str, value: str, where: str) -> tuple[str, str]:
    """check(), remembered for the pairs seen most."""
    return check(name, value, where)


def from_request(headers: Mapping[str, str], data: Mapping[str, Any], protocol: str) -> dict[str, str]:
    """The request's own tags: its `metadata` (OpenAI: string pairs; Anthropic: user_id), then the headers."""
    tags: dict[str, str] = {}
    meta = data.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object of string values", code="invalid_tag")
        if protocol == "anthropic":  # Anthropic's metadata has one field, the end user's opaque id
            uid = meta.get("user_id")
            if uid is not None and not isinstance(uid, str):  # Anthropic refuses it too: say so before the upstream
                raise ApiError(400, "metadata.user_id must be a string", code="invalid_tag")
            if uid:
                tags["user_id"] = checked("user_id", uid, "metadata.user_id")[1]
        else:
            for k, v in meta.items():
                if not isinstance(v, str):
                    raise ApiError(400, f"metadata.{str(k)[:40]} must be a string", code="invalid_tag")
                name, value = checked(str(k).lower(), v, f"metadata.{str(k)[:40]}")
                tags[name] = value
    raw = getattr(headers, "raw", None)  # Starlette's: undecoded, lower-case names; cheaper than items()
    if raw is not None:
        for hk, hv in raw:
            if hk.startswith(PREFIX_BYTES):
                h = hk.decode("latin-1")
                name, value = checked(h[len(HEADER_PREFIX) :], hv.decode("latin-1"), h[:60])
                tags[name] = value
    else:
        for h, v in headers.items():
            if h.lower().startswith(HEADER_PREFIX):
                name, value = checked(h.lower()[len(HEADER_PREFIX) :], v, h[:60])
                tags[name] = value
    if len(tags) > MAX_TAGS:
        raise ApiError(400, f"at most {MAX_TAGS} tags per request, got {len(tags)}", code="invalid_tag")
    return tags


def key_tags(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """A key's default tags from the keys file (`tags = {project = "search"}`), checked at start-up."""
    from wattlens.errors import ConfigError

    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: tags must be a table of strings, e.g. tags = {{project = "search"}}')
    out = []
    for k, v in raw.items():
        try:
            out.append(check(str(k), str(v), f"{where} tags"))
        except ApiError as e:
            raise ConfigError(e.message) from e
    return tuple(out)


class Bounded:
    """Distinct values seen per tag name, capped: past the cap, new values count as `other`.

    Metric labels and report groups stay small whatever values clients send.
    """

    def __init__(self, max_names: int = 20, max_values: int = 50) -> None:
        self.max_names, self.max_values = max_names, max_values
        self._seen: dict[str, set[str]] = {}

    def label(self, name: str, value: str) -> tuple[str, str]:
        seen = self._seen.get(name)
        if seen is None:
            if len(self._seen) >= self.max_names:
                return "other", "other"
            seen = self._seen[name] = set()
        if value in seen:
            return name, value
        if len(seen) >= self.max_values:
            return name, "other"
        seen.add(value)
        return name, value
