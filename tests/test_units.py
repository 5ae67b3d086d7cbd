from __future__ import annotations

import pytest

from wattlens.errors import InputError
from wattlens.units import Interval


def test_interval_orders_bounds() -> None:
    with pytest.raises(InputError):
        Interval(2.0, 1.0, 3.0)
    with pytest.raises(InputError):
        Interval(0.0, float("nan"), 1.0)


def test_arithmetic_is_bound_by_bound() -> None:
    a, b = Interval(1.0, 2.0, 3.0), Interval(10.0, 20.0, 40.0)
    assert a + b == Interval(11.0, 22.0, 43.0)
    assert a * b == Interval(10.0, 40.0, 120.0)
    assert a * 2 == Interval(2.0, 4.0, 6.0)
    assert (1.0 + a) == Interval(2.0, 3.0, 4.0)  # __radd__
    assert a / 2 == Interval(0.5, 1.0, 1.5)


def test_product_with_negative_takes_extremes() -> None:
    assert Interval(-1.0, 0.0, 2.0) * Interval(1.0, 2.0, 3.0) == Interval(-3.0, 0.0, 6.0)


def test_json_round_trip_keeps_significant_digits() -> None:
    iv = Interval(0.000123456789, 0.00023456789, 12345.6789)
    d = iv.as_dict()
    assert d == {"low": 0.000123457, "mid": 0.000234568, "high": 12345.7}
    assert Interval.from_dict(d).contains(0.0002)


def test_width_ratio() -> None:
    assert Interval(2.0, 3.0, 8.0).width_ratio == 4.0
