"""Intervals and unit conversions; one internal unit per quantity (Wh, g, mL, s, W)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wattlens.errors import InputError

J_PER_WH = 3600.0
WH_PER_KWH = 1000.0
S_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Interval:
    """A physical quantity as low <= mid <= high.

    Arithmetic treats the bounds of the operands as perfectly correlated (low with
    low, high with high): that is conservative for sums and products of positive
    quantities. Independent factors (a boundary ratio, a PUE, a WUE) combine through
    `times_independent` instead, as the estimator combines its unknown inputs.
    """

    low: float
    mid: float
    high: float

    def __post_init__(self) -> None:
        # One chained comparison is false for NaN and for disorder; inf is caught separately.
        if not (-math.inf < self.low <= self.mid <= self.high < math.inf):
            if not (math.isfinite(self.low) and math.isfinite(self.mid) and math.isfinite(self.high)):
                raise InputError(f"interval bounds must be finite, got {self.low}, {self.mid}, {self.high}")
            raise InputError(f"interval must satisfy low <= mid <= high, got {self.low}, {self.mid}, {self.high}")

    @classmethod
    def point(cls, value: float) -> Interval:
        return interval(value, value, value)

    @classmethod
    def of(cls, value: IntervalLike) -> Interval:
        return value if isinstance(value, Interval) else cls.point(float(value))

    def __add__(self, other: IntervalLike) -> Interval:
        if isinstance(other, Interval):
            return interval(self.low + other.low, self.mid + other.mid, self.high + other.high)
        x = float(other)
        return interval(self.low + x, self.mid + x, self.high + x)

    __radd__ = __add__

    def __mul__(self, other: IntervalLike) -> Interval:
        if not isinstance(other, Interval):
            x = float(other)  # scalar fast path: receipts multiply by factors all the time
            if x >= 0:
                return interval(self.low * x, self.mid * x, self.high * x)
            return interval(self.high * x, self.mid * x, self.low * x)
        o = other
        if self.low < 0 or o.low < 0:
            products = [a * b for a in (self.low, self.high) for b in (o.low, o.high)]
            return Interval(min(products), self.mid * o.mid, max(products))
        return interval(self.low * o.low, self.mid * o.mid, self.high * o.high)

    __rmul__ = __mul__

    def times_independent(self, *others: Interval) -> Interval:
        """The product with independent quantities (see `independent_product`)."""
        factors = tuple(spread_factor(o.low, o.mid, o.high) for o in others)
        return interval(*independent_product(self.low, self.mid, self.high, factors))

    def __truediv__(self, other: float) -> Interval:
        if other <= 0:
            raise InputError("an interval can only be divided by a positive number")
        return Interval(self.low / other, self.mid / other, self.high / other)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width_ratio(self) -> float:
        """high / low, the multiplicative width (inf when low is 0)."""
        return self.high / self.low if self.low > 0 else math.inf

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        if digits == 6:  # every receipt's form
            return {"low": _sig6(self.low), "mid": _sig6(self.mid), "high": _sig6(self.high)}
        return {"low": _sig(self.low, digits), "mid": _sig(self.mid, digits), "high": _sig(self.high, digits)}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Interval:
        return cls(float(d["low"]), float(d["mid"]), float(d["high"]))


IntervalLike = Interval | float | int


Factor = tuple[float, float, float, float, float]  # low, mid, high, log(mid / low), log(high / mid)


def spread_factor(low: float, mid: float, high: float) -> Factor:
    """A factor with its log spreads worked out once (0 where the low is not positive: bounds are used then)."""
    if low > 0:
        return low, mid, high, math.log(mid / low), math.log(high / mid)
    return low, mid, high, 0.0, 0.0


def independent_product(a_lo: float, a_mid: float, a_hi: float, factors: tuple[Factor, ...]) -> tuple[float, float, float]:
    """The product of independent positive quantities, (low, mid, high) by `factors`: the mids multiply and
    the log spreads below and above the mid add in quadrature, as independent errors do (bound by bound
    would put every factor at its extreme at once). Bound by bound where a low is not positive (no log
    spread exists). One function, so every path that combines factors gets the same floats.
    """
    if a_lo > 0 and all(f[0] > 0 for f in factors):
        mid = a_mid
        down, up = [math.log(a_mid / a_lo)], [math.log(a_hi / a_mid)]
        for f in factors:
            mid *= f[1]
            down.append(f[3])
            up.append(f[4])
        return mid * math.exp(-math.hypot(*down)), mid, mid * math.exp(math.hypot(*up))
    lo, mid, hi = a_lo, a_mid, a_hi
    for b_lo, b_mid, b_hi, _, _ in factors:
        if lo < 0 or b_lo < 0:
            products = [x * y for x in (lo, hi) for y in (b_lo, b_hi)]
            lo, mid, hi = min(products), mid * b_mid, max(products)
        else:
            lo, mid, hi = lo * b_lo, mid * b_mid, hi * b_hi
    return lo, mid, hi


_new = object.__new__
_slots = vars(Interval)  # the slots' descriptors: setting through them is what the frozen __init__ does
_set_low, _set_mid, _set_high = _slots["low"].__set__, _slots["mid"].__set__, _slots["high"].__set__


def interval(low: float, mid: float, high: float) -> Interval:
    """`Interval(low, mid, high)`, the same checks, without the frozen dataclass's per-field machinery
    (a third of the cost: a receipt builds eight)."""
    if not (-math.inf < low <= mid <= high < math.inf):
        return Interval(low, mid, high)  # raises the error
    return unchecked_interval(low, mid, high)


def unchecked_interval(low: float, mid: float, high: float) -> Interval:
    """`interval` without its checks: only for bounds known ordered and finite (the receipt's float path)."""
    iv: Interval = _new(Interval)
    _set_low(iv, low)
    _set_mid(iv, mid)
    _set_high(iv, high)
    return iv


def _sig(x: float, digits: int) -> float:
    """Round to significant digits, so tiny per-query figures keep their precision.

    Formatting with %g rounds correctly to the same decimal as round(x, digits - 1 - floor(log10|x|))
    (checked on 3 million values) and costs a third less: receipts round 21 figures each.
    """
    return float(format(x, _SIG_FORMATS[digits] if digits < len(_SIG_FORMATS) else f".{digits}g"))


_SIG_FORMATS = tuple(f".{d}g" for d in range(16))
_POW10 = tuple(10.0**k for k in range(23))  # exact as doubles


def _sig6(x: float) -> float:
    """`_sig(x, 6)` by arithmetic where that is provably the same number, else by formatting.

    m = x * 10**k (k = 5 - floor(log10 x), 10**k exact) lies within 2**-34 of the exact decimal
    shift; unless it is that close to a half, its rounding is the decimal rounding, and the
    integer over 10**k (one correctly rounded division of exact doubles) is the double nearest
    the rounded decimal, which is what float() of the formatted digits gives. A third cheaper.
    """
    if type(x) is float and x > 0.0:
        k = 5 - math.floor(math.log10(x))
        if 0 <= k <= 22:
            p = _POW10[k]
            m = x * p
            if 1e5 <= m < 1e6:
                q = math.floor(m)
                f = m - q
                if abs(f - 0.5) > 1e-9:
                    return (q + 1 if f > 0.5 else q) / p
    return float(format(x, ".6g"))


def sig6_all(values: Sequence[float]) -> list[float]:
    """`_sig6` of each value, in one call (a receipt rounds 21 figures): the same arithmetic, inlined."""
    out: list[float] = []
    add, floor, log10, pow10 = out.append, math.floor, math.log10, _POW10
    for x in values:
        if type(x) is float and x > 0.0:
            k = 5 - floor(log10(x))
            if 0 <= k <= 22:
                p = pow10[k]
                m = x * p
                if 1e5 <= m < 1e6:
                    q = floor(m)
                    f = m - q
                    if abs(f - 0.5) > 1e-9:
                        add((q + 1 if f > 0.5 else q) / p)
                        continue
        add(float(format(x, ".6g")))
    return out
