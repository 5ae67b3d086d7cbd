"""Measure energy: windows over hardware counters, with fair shares among overlapping windows.

    with Meter(zone="FR") as m:
        with m.window("request-42") as w:
            ...                      # w.progress(tokens) may report token progress
    m.footprint()                    # the whole meter; m.footprint(w.measurement) for the window

Each window open or close is an event: the sensors are read once, and the energy since the
previous event is shared among the windows open in between: by their token progress in
that slice when every open window reports progress, else in equal shares; the last share
takes the remainder, so the shares plus idle equal the measured total. Energy while no
window is open is idle. No thread runs unless a sensor needs power sampling.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from wattlens.context import Context, Place
from wattlens.errors import InputError
from wattlens.footprint import Footprint, Method
from wattlens.measure.sensors.base import Sensor
from wattlens.units import J_PER_WH, Interval

P = ParamSpec("P")
R = TypeVar("R")
Triple = tuple[float, float, float]


def split(energy: float, weights: Sequence[float]) -> list[float]:
    """Split energy by weights (equal shares when all are 0); the parts sum to energy exactly."""
    n = len(weights)
    if n == 0:
        return []
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * n, float(n)
    parts = [energy * w / total for w in weights[:-1]]
    parts.append(energy - sum(parts))
    return parts


def _iv(t: Sequence[float]) -> Interval:
    lo, mid, hi = t
    return Interval(min(lo, mid), mid, max(hi, mid))


@dataclass(frozen=True)
class Measurement:
    """Energy of one window: whole devices while it was open, and its fair share."""

    name: str
    duration_s: float
    energy_j: dict[str, Interval]  # each device's total while the window was open
    attributed_j: dict[str, Interval]  # this window's share of it
    method: Method
    kinds: dict[str, str]

    @property
    def total_j(self) -> Interval:
        return sum(self.attributed_j.values(), Interval(0.0, 0.0, 0.0))

    @property
    def energy_wh(self) -> Interval:
        return self.total_j / J_PER_WH


def measured_footprint(m: Measurement, ctx: Context, at: dt.datetime | None = None) -> Footprint:
    """The receipt of a measurement's attributed energy at the context's place (and time, for a time-resolved grid)."""
    from wattlens.impacts import footprint, resolve_site

    kinds = set(m.kinds.values())
    parts = [p for p, ks in (("accelerator", {"accelerator"}), ("host", {"cpu", "dram", "host"})) if kinds & ks]
    if m.name == "meter":
        parts.append("idle")
    site = resolve_site(ctx, at=at)
    return footprint(
        m.energy_wh,
        site,
        method=m.method,
        boundary=[*parts, "facility"],
        factors_version=ctx.factors.version,
        measurement=evidence(m),
    )


def evidence(m: Measurement) -> dict[str, Any]:
    """What a measured receipt keeps of its window, so `verify --recompute` can check its energy follows:
    the seconds it was open and, per device, its kind, the device's energy then and this window's share
    (mid values, joules, 6 significant digits)."""
    return {
        "window_s": float(f"{m.duration_s:.6g}"),
        "devices": {
            d: {
                "kind": m.kinds.get(d, "host"),
                "device_j": float(f"{m.energy_j[d].mid:.6g}"),
                "attributed_j": float(f"{m.attributed_j[d].mid:.6g}"),
            }
            for d in sorted(m.attributed_j)
        },
    }


class Window:
    """A named span of work on the meter; use as a context manager or open()/close()."""

    def __init__(self, meter: Meter, name: str) -> None:
        self.meter, self.name = meter, name
        self.measurement: Measurement | None = None
        self._start: list[Triple] = []
        self._t0 = 0.0
        self._share: list[list[float]] = []
        self._tokens: float | None = None
        self._tokens_at_event = 0.0

    def open(self) -> Window:
        self.meter._open(self)
        return self

    def close(self) -> Measurement:
        return self.meter._close(self)

    def progress(self, tokens: float) -> None:
        """Report cumulative tokens produced so far: slices are then shared by token progress."""
        self._tokens = float(tokens)

    def __enter__(self) -> Window:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Meter:
    """Measures energy on this machine's sensors and turns it into receipts."""

    def __init__(
        self,
        *,
        zone: str | None = None,
        region: str | None = None,
        facility: str | None = None,
        pue: float | None = None,
        sensors: Sequence[Sensor] | None = None,
        context: Context | None = None,
    ) -> None:
        """zone, region, facility and pue refine the context's place (default: the built-in tables, no place)."""
        self.context = (context or Context()).at(Place(zone=zone, region=region, facility=facility, pue=pue))
        self._sensors: tuple[Sensor, ...] | None = tuple(sensors) if sensors is not None else None
        self._lock = threading.Lock()
        self._active: dict[int, Window] = {}
        self._last: list[Triple] = []
        self._idle: list[list[float]] = []
        self._root: Window | None = None
        self.measurements: list[Measurement] = []

    # -- hardware -------------------------------------------------------------------------------
    @property
    def sensors(self) -> tuple[Sensor, ...]:
        if self._sensors is None:
            from wattlens.measure.sensors import detect

            self._sensors = detect(self.context.factors).sensors  # probed once per process
        return self._sensors

    def _read(self) -> list[Triple]:
        return [s.read() for s in self.sensors]

    # -- events ---------------------------------------------------------------------------------
    def _event(self) -> list[Triple]:
        """Read the counters and share the energy since the last event among open windows."""
        now = self._read()
        if not self._last:
            self._last = now
            self._idle = [[0.0, 0.0, 0.0] for _ in now]
            return now
        windows = [w for k, w in self._active.items() if self._root is None or k != id(self._root)]
        if windows and all(w._tokens is not None for w in windows):
            weights = [max((w._tokens or 0.0) - w._tokens_at_event, 0.0) for w in windows]
        else:
            weights = [1.0] * len(windows)
        fractions = split(1.0, weights)
        for i, (a, b) in enumerate(zip(self._last, now, strict=True)):
            for k in range(3):
                delta = b[k] - a[k]
                if not windows:
                    self._idle[i][k] += delta
                    continue
                given = 0.0
                for w, f in zip(windows[:-1], fractions, strict=False):
                    part = delta * f
                    w._share[i][k] += part
                    given += part
                windows[-1]._share[i][k] += delta - given  # the remainder: shares sum to delta exactly
        for w in windows:
            w._tokens_at_event = w._tokens or 0.0
        self._last = now
        return now

    def _open(self, w: Window) -> None:
        with self._lock:
            if id(w) in self._active:
                raise InputError(f"window {w.name!r} is already open")
            now = self._event()
            w._start, w._t0 = now, time.perf_counter()
            w._share = [[0.0, 0.0, 0.0] for _ in now]
            self._active[id(w)] = w

    def _close(self, w: Window) -> Measurement:
        with self._lock:
            if id(w) not in self._active:
                raise InputError(f"window {w.name!r} is not open")
            now = self._event()
            del self._active[id(w)]
            duration = time.perf_counter() - w._t0
        sensors = self.sensors
        whole = {s.device: _iv([b[k] - a[k] for k in range(3)]) for s, a, b in zip(sensors, w._start, now, strict=True)}
        # The meter as a whole owns everything it saw, idle included; a window owns its share.
        share = dict(whole) if w is self._root else {s.device: _iv(sh) for s, sh in zip(sensors, w._share, strict=True)}
        methods = {s.method for s in sensors}
        method: Method = "mixed" if len(methods) > 1 else ("measured" if "measured" in methods else "estimated")
        m = Measurement(w.name, duration, whole, share, method, {s.device: s.kind for s in sensors})
        w.measurement = m
        if w is not self._root:
            self.measurements.append(m)
        return m

    # -- public API -----------------------------------------------------------------------------
    def window(self, name: str) -> Window:
        return Window(self, name)

    def start(self) -> Meter:
        if self._root is None:
            self._root = Window(self, "meter")
            self._root.open()
        return self

    def stop(self) -> Measurement:
        if self._root is None or self._root.measurement is not None:
            raise InputError("the meter is not running")
        return self._root.close()

    @property
    def measurement(self) -> Measurement:
        if self._root is None or self._root.measurement is None:
            raise InputError("the meter has not been stopped yet")
        return self._root.measurement

    @property
    def idle_j(self) -> dict[str, Interval]:
        """Energy read while no window other than the meter itself was open."""
        with self._lock:
            return {s.device: _iv(v) for s, v in zip(self.sensors, self._idle, strict=True)}

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorator: each call of fn is a window named after it."""

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.window(fn.__qualname__):
                return fn(*args, **kwargs)

        return wrapper

    def footprint(self, m: Measurement | None = None, **place: Any) -> Footprint:
        """The receipt of a measurement (default: the whole meter); place fields refine the meter's."""
        ctx = self.context.at(Place(**place)) if place else self.context
        return measured_footprint(m or self.measurement, ctx)
