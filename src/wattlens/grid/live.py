"""What every live provider feed shares: configuration, the time slot of a query, fallback to annual.

A provider subclass implements `sample(code, at)` (the interval that holds `at`) and, where the
provider has one, `forecast(code, start, end)`. Any FeedError becomes the annual reading plus the
error's warning code: a receipt is never lost because a provider is down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from wattlens.errors import ConfigError
from wattlens.factors.records import ENERGY_SOURCES, CloudRegion, Zone
from wattlens.grid import AnnualFeed, GridReading
from wattlens.grid.http import PENDING, Client, FeedError, FeedOptions, default_cache_dir

HOUR = dt.timedelta(hours=1)
SLOT = dt.timedelta(minutes=5)  # finer than every provider's resolution: one memo entry per slot
MEMO_HIT_S = 60.0  # a value for a slot not yet over is looked at again after this (its cache entry may change)
MEMO_MISS_S = 10.0  # a miss (pending, provider down) is looked up on disk again after this
RETRY_S = 60.0  # a background fetch that failed is not tried again for this long (whatever the error)
# How long a value of an interval that is not over yet may be re-used (it can still be revised).
FRESH_S = 300.0


@dataclass(frozen=True)
class Sample:
    """One interval of a provider's series: [start, start + step)."""

    start: dt.datetime
    step: dt.timedelta
    intensity_g_per_kwh: float | None  # None: the provider gives no average intensity (WattTime)
    mix: dict[str, float] | None = None
    marginal_g_per_kwh: float | None = None
    basis: str = "life-cycle"


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def floor(t: dt.datetime, step: dt.timedelta) -> dt.datetime:
    t = t.astimezone(dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((t - epoch) // step) * step


def max_age_s(end: dt.datetime, now: dt.datetime) -> float | None:
    """None (for ever) once the interval is over; a short time while it can still change."""
    return None if end <= now else FRESH_S


def normalise(mw: dict[str, float]) -> dict[str, float] | None:
    """Power per wattlens source (any unit) as shares of 1, or None when there is nothing."""
    total = sum(v for v in mw.values() if v > 0)
    if total <= 0:
        return None
    return {s: max(mw.get(s, 0.0), 0.0) / total for s in ENERGY_SOURCES}


def pick(samples: list[Sample], at: dt.datetime, what: str) -> Sample:
    for s in samples:
        if s.start <= at < s.start + s.step:
            return s
    raise FeedError("grid-feed-no-data", f"{what}: no value for {iso(at)}")


class LiveFeed(ABC):
    """Base of the provider feeds. Unconfigured (as registered) it only names itself."""

    name: str = ""
    title: ClassVar[str] = ""  # the source named in receipts
    default_url: ClassVar[str] = ""
    token_vars: ClassVar[tuple[str, ...]] = ()  # environment variables holding the credentials
    takes_options: ClassVar[bool] = True

    def __init__(self, options: FeedOptions | None = None, arg: str = "") -> None:
        self.options = options or FeedOptions(cache_dir=default_cache_dir({}))
        self.arg = arg
        self._annual = AnnualFeed()
        self._client: Client | None = None
        self._jobs: queue.Queue[tuple[str, dt.datetime, tuple[str, dt.datetime]]] = queue.Queue()
        self._queued: set[tuple[str, dt.datetime]] = set()
        self._queue_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        # Background mode reads the disk cache on the request path: remember each slot's answer (or miss)
        # in memory for a while, so a request costs a dict lookup, not a file read.
        self._memo: dict[tuple[str, dt.datetime], tuple[float, Sample | str]] = {}
        # Per zone and hour: when a failed fetch may be tried again, and why it failed (said in the receipts meanwhile).
        self._retry_at: dict[tuple[str, dt.datetime], tuple[float, str]] = {}

    # --- configuration -------------------------------------------------------------------
    def configured(self, arg: str, options: FeedOptions | None = None) -> LiveFeed:
        feed = type(self)(options or self.options, arg)
        feed.check()
        return feed

    def check(self) -> None:
        """Refuse to start without the credentials (say which variable to set); never print them."""
        missing = [v for v in self.credential_vars() if not self.options.env.get(v)]
        if missing:
            raise ConfigError(
                f"the {self.name} grid feed needs {' and '.join(missing)} in the environment (docs/grid.md: how to get it)"
            )

    def credential_vars(self) -> tuple[str, ...]:
        if self.options.token_env and len(self.token_vars) == 1:
            return (self.options.token_env,)
        return self.token_vars

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.options.env.get(v, "") for v in self.credential_vars())

    def client(self) -> Client:
        if self._client is None:
            base = self.options.base_url or self.default_url
            self._client = Client(self.name, base, self.options, self.secrets())
        return self._client

    # --- the provider's part ---------------------------------------------------------------
    def code_for(self, zone: Zone) -> str:
        """The provider's name for the zone: the feed's argument, else the wattlens zone code."""
        return self.arg or zone.zone

    @abstractmethod
    def sample(self, code: str, at: dt.datetime) -> Sample:
        """The provider's value for the zone (its code) at time `at`, or a FeedError saying why not."""

    def forecast(self, zone: Zone, start: dt.datetime, end: dt.datetime) -> list[Sample]:
        raise FeedError("grid-feed-no-data", f"the {self.name} feed has no forecast")

    # --- the GridFeed protocol --------------------------------------------------------------
    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        annual = self._annual.reading(zone, region, at)
        code = self.code_for(zone)
        if self.options.background:
            return self._from_memo(zone, annual, code, when)
        try:
            s = self.sample(code, when)
        except FeedError as e:
            return dataclasses.replace(annual, warnings=(*annual.warnings, e.code))
        return self.to_reading(zone, annual, s)

    def _from_memo(self, zone: Zone, annual: GridReading, code: str, when: dt.datetime) -> GridReading:
        """Background mode: the cache only, through an in-memory memo per 5-minute slot; a miss queues a fetch."""
        key, now = (code, floor(when, SLOT)), time.monotonic()
        hit = self._memo.get(key)
        if hit is None or hit[0] < now:
            try:
                with self.client().cache_only():
                    found: Sample | str = self.sample(code, when)
            except FeedError as e:
                found = e.code
            past = key[1] + SLOT <= dt.datetime.now(dt.UTC)
            ttl = MEMO_MISS_S if isinstance(found, str) else (float("inf") if past else MEMO_HIT_S)
            if len(self._memo) > 4096:
                self._memo.clear()
            hit = self._memo[key] = (now + ttl, found)
        found = hit[1]
        if isinstance(found, str):
            if found == PENDING:
                until, why = self._retry_at.get((code, floor(when, HOUR)), (0.0, ""))
                if until > now:  # this hour's fetch failed a moment ago: say why, do not ask again yet
                    found = why
                else:
                    self._fetch_later(code, when)
            return dataclasses.replace(annual, warnings=(*annual.warnings, found))
        return self.to_reading(zone, annual, found)

    def _fetch_later(self, code: str, when: dt.datetime) -> None:
        """Queue one background fetch per zone and hour (`[grid] fetch = "background"`): it fills the cache."""
        key = (code, floor(when, HOUR))
        with self._queue_lock:
            if key in self._queued or self._retry_at.get(key, (0.0, ""))[0] > time.monotonic():
                return
            self._queued.add(key)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name=f"wattlens-{self.name}-fetch", daemon=True)
                self._worker.start()
        self._jobs.put((code, when, key))

    def _work(self) -> None:
        while True:
            code, when, key = self._jobs.get()
            try:
                self.sample(code, when)  # the answer lands in the disk cache; a failure waits for the next miss
                for k in list(self._memo):  # the next request reads the fresh value, not a remembered miss
                    if k[0] == code:
                        self._memo.pop(k, None)
            except FeedError as e:  # say why in the receipts of this slot, and leave the provider alone a while
                self._memo[(code, floor(when, SLOT))] = (time.monotonic() + RETRY_S, e.code)
                with self._queue_lock:
                    if len(self._retry_at) > 4096:
                        self._retry_at.clear()
                    self._retry_at[key] = (time.monotonic() + RETRY_S, e.code)
            finally:
                with self._queue_lock:
                    self._queued.discard(key)
                self._jobs.task_done()

    def wait_for_fetches(self) -> None:
        """Block until the queued background fetches are done (tests, and a clean shutdown)."""
        self._jobs.join()

    def to_reading(self, zone: Zone, annual: GridReading, s: Sample) -> GridReading:
        warnings: list[str] = []
        if s.mix is None:
            warnings.append("grid-mix-annual")
        if s.basis == "direct combustion":
            warnings.append("intensity-direct-combustion")
        step_s = int(s.step.total_seconds())
        resolution = {3600: "hourly", 1800: "30-minute", 900: "15-minute", 300: "5-minute"}.get(step_s, f"{step_s}-second")
        return GridReading(
            zone.zone,
            s.start.year,
            s.intensity_g_per_kwh if s.intensity_g_per_kwh is not None else annual.intensity_g_per_kwh,
            s.mix if s.mix is not None else annual.mix,
            tuple(warnings),
            resolution,
            s.basis,
            f"{self.title} ({self.code_for(zone)})",
            iso(s.start),
            s.marginal_g_per_kwh,
        )


__all__ = ["FRESH_S", "HOUR", "LiveFeed", "Sample", "floor", "iso", "max_age_s", "normalise", "parse_time", "pick"]
