"""Energy, carbon and water budgets of the gateway: per key, team, user or tag, per calendar period.

    [[budgets]]
    name = "research-daily"
    scope = "team"            # key | team | user | tag:NAME | all
    match = "research"        # the key id, team, user or tag value (not with scope "all")
    unit = "energy_wh"        # energy_wh | facility_wh | carbon_g | carbon_market_g | water_ml
    period = "day"            # day | week (from Monday) | month, in `timezone`
    timezone = "Europe/Paris" # IANA name; default UTC
    soft = 50                 # warning header, webhook, gauge
    hard = 100                # 429 with Retry-After, or a reroute
    on_hard = "refuse"        # refuse | reroute
    reroute_to = "gpt-4o-mini"  # with on_hard = "reroute": a smaller model or a route (wattlens/auto)
    webhook = "https://alerts.example/wattlens"

Where the numbers come from: a call counts when it settles, with the mid value of its receipt.
Each replica keeps its use in memory (the request path only reads a float), and a thread
reads what every replica appended to the ledger since it last looked (by sequence number),
so replicas on one PostgreSQL ledger share each budget, and a restart starts from the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from wattlens.errors import ConfigError
from wattlens.gateway.budget_rules import Budget, amount, iso_utc, parse_budget, period_bounds
from wattlens.gateway.webhooks import WEBHOOK_TIMEOUT_S, post

if TYPE_CHECKING:
    from wattlens.metering import Call, Settlement


log = logging.getLogger("wattlens.budgets")

SYNC_S = 1.0  # how often a replica reads the others' use from the ledger
PAGE = 5000  # records read at a time: a month of a busy gateway is read in pages, not all at once


@dataclass
class Usage:
    """One budget's use in its current period, on this replica."""

    start: float
    end: float
    start_iso: str
    end_iso: str
    synced: float = 0.0  # read from the ledger (every replica's records)
    pending: dict[str, float] = field(default_factory=dict)  # settled here, not yet seen in the ledger
    pending_sum: float = 0.0
    level: int = 0  # 0 under, 1 past soft, 2 past hard: crossings already noticed

    @property
    def used(self) -> float:
        return self.synced + self.pending_sum


class Verdict(NamedTuple):
    """What the budgets say about a request before it is sent (a tuple: built on every request, cheaply)."""

    over_hard: Budget | None = None  # the first budget past its hard limit
    retry_after_s: int = 0
    warnings: tuple[str, ...] = ()  # header texts of budgets past their soft limit
    matched: bool = False  # some budget applies to this request


NO_BUDGET = Verdict()


def _same_count(a: Budget | None, b: Budget) -> bool:
    """Whether two definitions count the same use (they may differ in limits and actions)."""
    return a is not None and (a.scope, a.match, a.unit, a.period, a.timezone) == (
        b.scope,
        b.match,
        b.unit,
        b.period,
        b.timezone,
    )


class Budgets:
    """Budgets and their use: checked on the request path, counted when calls settle, synced from the ledger."""

    def __init__(
        self,
        budgets: Sequence[Budget],
        ledger: str | None = None,
        sync_s: float = SYNC_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.configured = tuple(budgets)
        self.location = ledger  # where the records are (a path or postgresql:// URL); None: count in memory only
        self.sync_s, self.clock = sync_s, clock
        self._lock = threading.Lock()  # the counters (held for microseconds)
        self._sync_lock = threading.RLock()  # one reader of the ledger at a time: rows are never counted twice
        self._overrides: dict[str, dict[str, Any] | None] = {}
        self.budgets: dict[str, Budget] = {}
        self._index: dict[tuple[str, Any], list[Budget]] = {}
        self._tag_scopes: frozenset[str] = frozenset()  # tag names some budget limits
        self._usage: dict[str, Usage] = {}
        self._seq = 0  # the last ledger sequence number read
        self._gen = 0  # bumped when the set of budgets changes
        self._starts: dict[str, str] = {}  # each budget's period start at the last sync
        self._stop = threading.Event()
        self._alerts: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._threads: list[threading.Thread] = []
        self._ledger: Any = None
        self.fired: list[dict[str, Any]] = []  # alerts this replica delivered (the admin API shows them)
        self._apply(self._merged())

    # -- the set of budgets ----------------------------------------------------------------------
    def _merged(self) -> dict[str, Budget]:
        out = {b.name: b for b in self.configured}
        for name, body in self._overrides.items():
            if body is None:
                out.pop(name, None)
            else:
                try:
                    out[name] = parse_budget(body, f"budget {name}")
                except ConfigError as e:  # stored by another version: skipped, said once per sync
                    log.warning("run-time budget %s skipped: %s", name, e)
        return out

    def _apply(self, budgets: dict[str, Budget]) -> bool:
        """Install a set of budgets; True when it changed (its use is then read again from the ledger)."""
        if budgets == self.budgets and self._index:
            return False
        index: dict[tuple[str, Any], list[Budget]] = {}
        for b in budgets.values():
            index.setdefault((b.scope, b.match), []).append(b)
        with self._lock:
            old = self.budgets
            self.budgets, self._index = budgets, index
            self._tag_scopes = frozenset(b.scope[4:] for b in budgets.values() if b.scope.startswith("tag:"))
            # a budget that now counts something else starts again from the ledger; new limits keep the use
            self._usage = {n: u for n, u in self._usage.items() if n in budgets and _same_count(old.get(n), budgets[n])}
            self._seq = 0  # read the current periods again
            self._gen += 1
        return True

    def set(self, body: Mapping[str, Any]) -> Budget:
        """The admin API: create or replace a budget (stored in the ledger, so every replica gets it)."""
        b = parse_budget(body, "budget")
        with self._sync_lock:
            if self._ledger is not None:
                self._ledger.put_budget_override(b.name, b.as_dict())
            self._overrides[b.name] = b.as_dict()
            self._apply(self._merged())
            self._sync_usage()
        return b

    def delete(self, name: str) -> bool:
        with self._sync_lock:
            if name not in self.budgets:
                return False
            if self._ledger is not None:
                self._ledger.put_budget_override(name, None)
            self._overrides[name] = None
            self._apply(self._merged())
        return True

    # -- the request path ------------------------------------------------------------------------
    def _current(self, b: Budget, now: float) -> Usage:
        """The budget's use this period (a new period starts at zero); call with the lock held."""
        u = self._usage.get(b.name)
        if u is None or now >= u.end or now < u.start:
            start, end = period_bounds(b.period, b.timezone, dt.datetime.fromtimestamp(now, dt.UTC))
            u = Usage(start.timestamp(), end.timestamp(), iso_utc(start), iso_utc(end))
            self._usage[b.name] = u
        return u

    def matching(self, key_id: str | None, team: str | None, user: str | None, tags: Mapping[str, str]) -> list[Budget]:
        index = self._index
        if not index:
            return []
        get = index.get
        out: list[Budget] = []
        for found in (
            get(("all", None)),
            get(("key", key_id)) if key_id else None,
            get(("team", team)) if team else None,
            get(("user", user)) if user else None,
        ):
            if found:
                out += found
        if tags and self._tag_scopes:
            for k, v in tags.items():
                if k in self._tag_scopes:
                    found = get(("tag:" + k, v))
                    if found:
                        out += found
        return out

    def _used(self, b: Budget, now: float) -> Usage:
        """The budget's use now: without the lock while its period lasts (a float read is atomic enough)."""
        u = self._usage.get(b.name)
        if u is not None and u.start <= now < u.end:
            return u
        with self._lock:
            return self._current(b, now)

    def check(self, call: Call) -> Verdict:
        """Before a request: the first hard limit it is past, and the soft limits passed (a few dict look-ups)."""
        budgets = self.matching(call.key_id, call.team, call.user, call.tags)
        if not budgets:
            return NO_BUDGET
        now = self.clock()
        over: Budget | None = None
        retry = 0
        warnings = []
        for b in budgets:
            u = self._used(b, now)
            used = u.synced + u.pending_sum
            if b.hard is not None and used >= b.hard:
                if over is None:
                    over, retry = b, max(1, math.ceil(u.end - now))
                warnings.append(f"{b.name}; used={used:.6g}; hard={b.hard:g}; unit={b.unit}; period={b.period}")
            elif b.soft is not None and used >= b.soft:
                warnings.append(f"{b.name}; used={used:.6g}; soft={b.soft:g}; unit={b.unit}; period={b.period}")
        return Verdict(over, retry, tuple(warnings), True)

    def used_share(self, call: Call) -> float | None:
        """The largest share of a limit (hard, else soft) that the call's budgets have used; None without budgets.

        For the router's budget pressure (wattlens.route.threshold_for's `budget_used_share`).
        """
        now = self.clock()
        shares = []
        for b in self.matching(call.key_id, call.team, call.user, call.tags):
            limit = b.hard if b.hard is not None else b.soft
            if limit:
                u = self._used(b, now)
                shares.append((u.synced + u.pending_sum) / limit)
        return max(shares) if shares else None

    def observe(self, s: Settlement) -> None:
        """An observer of settled calls: the call's cost counts now, against every budget it falls under."""
        call = s.call
        budgets = self.matching(call.key_id, call.team, call.user, call.tags)
        if not budgets:
            return
        receipt = s.receipt
        if receipt is None:
            return
        now = self.clock()
        with self._lock:
            for b in budgets:
                x = amount(receipt, b.unit)
                if x <= 0:
                    continue
                u = self._current(b, now)
                if self.location is None:  # no ledger to read it back from: counted for good
                    u.synced += x
                else:  # until the sync reads its record back (then it moves to `synced`)
                    u.pending[call.request_id] = u.pending.get(call.request_id, 0.0) + x
                    u.pending_sum += x
                self._crossed(b, u)

    def _crossed(self, b: Budget, u: Usage) -> None:
        """Queue an alert when the use passes a limit it had not passed this period (lock held)."""
        level = 2 if b.hard is not None and u.used >= b.hard else 1 if b.soft is not None and u.used >= b.soft else 0
        if level <= u.level:
            return
        u.level = level
        body = {
            "event": "budget.hard_limit" if level == 2 else "budget.soft_limit",
            "budget": b.name,
            "scope": b.scope,
            "match": b.match,
            "unit": b.unit,
            "period": b.period,
            "timezone": b.timezone,
            "period_start": u.start_iso,
            "period_end": u.end_iso,
            "used": u.used,
            "soft": b.soft,
            "hard": b.hard,
            "on_hard": b.on_hard,
            "at": dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            self._alerts.put_nowait(body)
        except queue.Full:  # a webhook that cannot keep up must not hold requests: counted as dropped
            log.warning("budget alert queue full: alert for %s dropped", b.name)

    # -- state for the admin API and Prometheus --------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        with self._lock:
            for b in self.budgets.values():
                u = self._current(b, now)
                limit = b.hard if b.hard is not None else b.soft
                out.append(
                    {
                        **b.as_dict(),
                        "used": u.used,
                        "used_ratio": u.used / limit if limit else None,
                        "period_start": u.start_iso,
                        "period_end": u.end_iso,
                    }
                )
        return out

    # -- the ledger: shared use, run-time budgets, alerts ----------------------------------------
    def start(self) -> None:
        """Read the current periods' use from the ledger now (before the first request), then keep it current."""
        if self.location is not None:
            from wattlens.ledger import open_ledger

            try:
                self._ledger = open_ledger(self.location)
                self._sync()
            except Exception as e:  # a ledger down at start: budgets count locally until it is back
                log.warning("budgets: cannot read the ledger yet (%s); counting from zero until it answers", e)
        self._threads = [
            threading.Thread(target=self._sync_loop, name="wattlens-budget-sync", daemon=True),
            threading.Thread(target=self._alert_loop, name="wattlens-budget-alerts", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        self._alerts.put(None)
        for t in self._threads:
            t.join(timeout=WEBHOOK_TIMEOUT_S + 1)
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _sync_loop(self) -> None:
        failing = False
        while not self._stop.wait(self.sync_s):
            if self.location is None:
                continue
            try:
                if self._ledger is None:
                    from wattlens.ledger import open_ledger

                    self._ledger = open_ledger(self.location)
                self._sync()
                failing = False
            except Exception as e:  # keep counting locally; say so once
                if not failing:
                    log.warning("budgets: cannot read the ledger (%s); counting locally until it answers", e)
                failing = True

    def _sync(self) -> None:
        with self._sync_lock:
            self._overrides = self._ledger.budget_overrides()
            self._apply(self._merged())
            self._sync_usage()

    def _sync_usage(self) -> None:
        """Add the records appended since the last look; a new period or budget set reads its period again."""
        with self._sync_lock:
            self._read_usage()

    def _read_usage(self) -> None:
        """Sum the new records page by page outside the counters' lock, then add the sums under it."""
        if self._ledger is None or not self.budgets:
            return
        now = self.clock()
        with self._lock:
            usages = {n: self._current(b, now) for n, b in self.budgets.items()}
            starts = {n: u.start_iso for n, u in usages.items()}
            if starts != self._starts:  # a new period began: read it from its start
                self._seq = 0
            since = min(starts.values())
            seq, gen = self._seq, self._gen
        added = dict.fromkeys(usages, 0.0)
        mine: list[tuple[str, str]] = []  # (budget, record id): settled here, now read back from the ledger
        last = seq
        while True:
            rows = self._ledger.usage_after(last, since if seq == 0 else None, PAGE)  # extracted in the database
            for s, rec in rows:
                last = s
                ts = str(rec.get("ts", ""))
                tags = rec.get("tags")
                for b in self.matching(
                    rec.get("key_id"), rec.get("team"), rec.get("user"), tags if isinstance(tags, dict) else {}
                ):
                    u = usages[b.name]
                    if u.start_iso <= ts < u.end_iso:
                        added[b.name] += amount(rec.get("footprint"), b.unit)
                        rid = str(rec.get("id"))
                        if rid in u.pending:  # its entry was made before the writer could store it
                            mine.append((b.name, rid))
            if len(rows) < PAGE:
                break
        with self._lock:
            if self._gen != gen or self._seq != seq:  # the budget set changed meanwhile: the next sync reads again
                return
            self._starts, self._seq = starts, last
            for n, u in usages.items():
                u.synced = added[n] if seq == 0 else u.synced + added[n]
            for n, rid in mine:
                x = usages[n].pending.pop(rid, None)
                if x is not None:
                    usages[n].pending_sum -= x
            for n, b in self.budgets.items():
                u = usages[n]
                if u is self._usage.get(n):
                    if not u.pending:
                        u.pending_sum = 0.0  # no float drift once everything is in the ledger
                    self._crossed(b, u)

    def _alert_loop(self) -> None:
        while True:
            body = self._alerts.get()
            if body is None:
                return
            try:
                self._deliver(body)
            except Exception as e:  # an alert must never stop the next one
                log.warning("budget alert for %s failed: %s", body.get("budget"), type(e).__name__)

    def _deliver(self, body: dict[str, Any]) -> None:
        """Claim the crossing in the ledger (one replica fires it), then POST it to the budget's webhook."""
        if self._ledger is not None:
            level = "hard" if body["event"] == "budget.hard_limit" else "soft"
            if not self._ledger.claim_alert(body["budget"], body["period_start"], level):
                return  # another replica (or this one before a restart) fired it already
        self.fired.append(body)
        del self.fired[:-100]
        b = self.budgets.get(body["budget"])
        if b is None or not b.webhook:
            return
        post(b.webhook, body)
