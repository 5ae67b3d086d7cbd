"""The one network seam of the live grid feeds: time-bounded HTTP GETs with a disk cache and back-off.

Why a disk cache: an hour's grid values are immutable once the hour is past, so a value is fetched
once per machine and re-used by every later receipt, report and re-pricing (`max_age_s=None`);
values that can still change (the latest hour, forecasts) are kept for a short time only.
Why back-off without sleeping: a feed is asked while work is being priced, so a provider that
failed (timeout, 5xx, 429) is not asked again until its cool-down ends; the caller falls back to
the annual tables in the meantime.
Secrets (tokens, passwords) never reach a log, an error message or the cache: the cache key is
computed without them and every message is passed through `redact`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wattlens.errors import WattlensError

# Warning codes a failing feed adds to the receipt (documented in docs/warnings.md).
UNAUTHORISED = "grid-feed-unauthorised"
UNAVAILABLE = "grid-feed-unavailable"
RATE_LIMITED = "grid-feed-rate-limited"
NO_DATA = "grid-feed-no-data"
PENDING = "grid-feed-pending"


class FeedError(WattlensError):
    """A live grid feed gave no value; `code` is the warning the receipt carries."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "wattlens" / "grid"


@dataclass(frozen=True)
class FeedOptions:
    """How a live feed reaches its provider: read once from [grid] and the environment at start-up."""

    cache_dir: Path
    timeout_s: float = 5.0
    cool_down_s: float = 60.0
    base_url: str | None = None  # a proxy or a test server instead of the provider's own
    token_env: str | None = None  # the environment variable that holds the token (each feed has a default)
    background: bool = False  # never fetch while pricing: read the cache, fetch a miss in the background
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, section: Mapping[str, object], env: Mapping[str, str] | None = None) -> FeedOptions:
        env = dict(os.environ if env is None else env)
        cache = section.get("cache_dir") or env.get("WATTLENS_GRID_CACHE")
        timeout = section.get("timeout_s")
        return cls(
            cache_dir=Path(str(cache)).expanduser() if cache else default_cache_dir(env),
            timeout_s=float(timeout) if isinstance(timeout, int | float) else 5.0,
            base_url=str(section["base_url"]) if section.get("base_url") else None,
            token_env=str(section["token_env"]) if section.get("token_env") else None,
            background=section.get("fetch") == "background",
            env=env,
        )


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***").replace(urllib.parse.quote(s, safe=""), "***")
    return text


class Client:
    """GET JSON or XML from one provider, through the cache, within a time limit."""

    def __init__(self, name: str, base_url: str, options: FeedOptions, secrets: tuple[str, ...] = ()) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.options = options
        self.secrets = secrets
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()  # `cache_only` is per thread: the pricing thread never goes out

    @contextlib.contextmanager
    def cache_only(self) -> Iterator[None]:
        """Within this block a cache miss raises FeedError(PENDING) instead of asking the provider."""
        self._local.cache_only = True
        try:
            yield
        finally:
            self._local.cache_only = False

    def _cache_file(self, path: str, params: Mapping[str, str], secret_params: tuple[str, ...]) -> Path:
        public = sorted((k, v) for k, v in params.items() if k not in secret_params)
        key = hashlib.sha256(json.dumps([self.base_url, path, public]).encode()).hexdigest()[:32]
        return self.options.cache_dir / self.name / f"{key}.json"

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        max_age_s: float | None,
        secret_params: tuple[str, ...] = (),
        basic_auth: tuple[str, str] | None = None,
        cache: bool = True,
    ) -> str:
        """The body of GET base_url+path?params; max_age_s None: cache for ever (a past hour)."""
        params = dict(params or {})
        where = self._cache_file(path, params, secret_params)
        if cache:
            hit = self._cached(where, max_age_s)
            if hit is not None:
                return hit
        if getattr(self._local, "cache_only", False):
            raise FeedError(PENDING, f"{self.name}: not in the cache yet")
        with self._lock:
            if time.monotonic() < self._blocked_until:
                raise FeedError(UNAVAILABLE, f"{self.name}: cooling down after an earlier failure")
        url = f"{self.base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        req = urllib.request.Request(url, headers={"Accept": "application/json, application/xml", **(headers or {})})
        if basic_auth is not None:
            pair = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {pair}")
        try:
            with urllib.request.urlopen(req, timeout=self.options.timeout_s) as resp:
                body: str = resp.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except (TimeoutError, urllib.error.URLError, OSError) as e:
            self._cool_down(self.options.cool_down_s)
            reason = getattr(e, "reason", e)
            raise FeedError(UNAVAILABLE, self._say(f"{self.name}: no answer from {self.base_url} ({reason})")) from None
        if cache:
            where.parent.mkdir(parents=True, exist_ok=True)
            tmp = where.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"fetched": time.time(), "body": body}), encoding="utf-8")
            tmp.replace(where)  # atomic: a reader never sees half a file
        return body

    def get_json(self, path: str, params: Mapping[str, str] | None = None, **kw: object) -> object:
        body = self.get(path, params, **kw)  # type: ignore[arg-type]
        try:
            parsed: object = json.loads(body)
            return parsed
        except ValueError:
            raise FeedError(UNAVAILABLE, f"{self.name}: the answer to {path} is not JSON") from None

    def _cached(self, where: Path, max_age_s: float | None) -> str | None:
        try:
            entry = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if max_age_s is not None and time.time() - float(entry.get("fetched", 0)) > max_age_s:
            return None
        body = entry.get("body")
        return body if isinstance(body, str) else None

    def _cool_down(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = time.monotonic() + seconds

    def _say(self, text: str) -> str:
        return redact(text, self.secrets)

    def _http_error(self, e: urllib.error.HTTPError) -> FeedError:
        status = e.code
        if status in (401, 403):
            return FeedError(UNAUTHORISED, f"{self.name}: the provider refused the token (HTTP {status}); check it")
        if status == 429:
            retry = e.headers.get("Retry-After", "") if e.headers else ""
            wait_s = float(retry) if retry.isdigit() else self.options.cool_down_s
            self._cool_down(wait_s)
            return FeedError(RATE_LIMITED, f"{self.name}: rate-limited (HTTP 429); not asking again for {wait_s:.0f} s")
        if status in (400, 404):
            return FeedError(NO_DATA, f"{self.name}: no data for this request (HTTP {status})")
        self._cool_down(self.options.cool_down_s)
        return FeedError(UNAVAILABLE, f"{self.name}: the provider failed (HTTP {status})")


__all__ = [
    "NO_DATA",
    "PENDING",
    "RATE_LIMITED",
    "UNAUTHORISED",
    "UNAVAILABLE",
    "Client",
    "FeedError",
    "FeedOptions",
    "default_cache_dir",
    "redact",
]
