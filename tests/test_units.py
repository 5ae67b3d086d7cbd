from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


_pos = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


@given(st.lists(_pos, min_size=3, max_size=3), st.lists(_pos, min_size=3, max_size=3))
def test_independent_factors_add_their_log_spreads_in_quadrature(a: list[float], b: list[float]) -> None:
    """mids multiply; each side's log spread is the hypotenuse of the two; never wider than bound by bound,
    never narrower than the wider factor alone."""
    import math

    x, y = Interval(*sorted(a)), Interval(*sorted(b))
    p = x.times_independent(y)
    assert p.mid == pytest.approx(x.mid * y.mid, rel=1e-12)
    assert x.low * y.low * (1 - 1e-9) <= p.low <= p.mid <= p.high <= x.high * y.high * (1 + 1e-9)
    down = math.hypot(math.log(x.mid / x.low), math.log(y.mid / y.low))
    assert p.low == pytest.approx(p.mid * math.exp(-down), rel=1e-9)
    widest = max(math.log(x.high / x.mid), math.log(y.high / y.mid))
    assert math.log(p.high / p.mid) >= widest - 1e-9


def test_a_point_factor_scales_and_a_zero_low_falls_back_to_bounds() -> None:
    assert Interval(1.0, 2.0, 4.0).times_independent(Interval.point(3.0)) == Interval(3.0, 6.0, 12.0)
    assert Interval(0.0, 2.0, 4.0).times_independent(Interval(1.0, 2.0, 3.0)) == Interval(0.0, 4.0, 12.0)
