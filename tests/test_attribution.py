"""Attribution on traces where the right answer is known by hand."""

from __future__ import annotations

import pytest
from fakes import ScriptedSensor

from wattlens.attribution import Span, attribute, split
from wattlens.errors import InputError
from wattlens.meter import Meter


def constant_power(watts: float, until_s: float, step_s: float = 1.0) -> list[tuple[float, float]]:
    n = int(until_s / step_s)
    return [(i * step_s, watts * i * step_s) for i in range(n + 1)]


def conserved(a: object) -> None:
    assert sum(a.per_request_j.values()) + a.idle_j == pytest.approx(a.total_j, rel=1e-12)  # type: ignore[attr-defined]


def test_split_sums_exactly() -> None:
    parts = split(1.0, [1, 1, 1])
    assert sum(parts) == 1.0 and parts[0] == pytest.approx(1 / 3)
    assert split(10.0, [0.0, 0.0]) == [5.0, 5.0]
    assert split(6.0, [1.0, 2.0]) == [2.0, 4.0]


def test_overlapping_requests_share_equally() -> None:
    # 100 W for 10 s. A runs 0-6 s, B runs 4-10 s: 0-4 A alone (400 J), 4-6 both (100 J each), 6-10 B alone.
    a = attribute(constant_power(100, 10), [Span("A", 0, 6), Span("B", 4, 10)])
    assert a.per_request_j == pytest.approx({"A": 500.0, "B": 500.0})
    assert a.idle_j == pytest.approx(0.0)
    conserved(a)


def test_nested_requests_and_idle_gaps() -> None:
    # 50 W for 20 s. Outer 2-12 s, inner 4-8 s, nothing 12-20 s.
    a = attribute(constant_power(50, 20), [Span("outer", 2, 12), Span("inner", 4, 8)])
    # outer alone 2-4 and 8-12 (6 s x 50 W = 300 J) + half of 4-8 (100 J); inner gets the other 100 J.
    assert a.per_request_j == pytest.approx({"outer": 400.0, "inner": 100.0})
    assert a.idle_j == pytest.approx(50 * (2 + 8))
    conserved(a)


def test_zero_length_request_gets_nothing() -> None:
    a = attribute(constant_power(10, 4), [Span("blip", 2, 2), Span("real", 1, 3)])
    assert a.per_request_j["blip"] == 0.0 and a.per_request_j["real"] == pytest.approx(20.0)
    conserved(a)


def test_token_progress_weights() -> None:
    # Both run 0-10 s at 200 W; A makes 300 tokens, B 100: A gets 3/4.
    a = attribute(constant_power(200, 10), [Span("A", 0, 10, tokens=300), Span("B", 0, 10, tokens=100)])
    assert a.per_request_j == pytest.approx({"A": 1500.0, "B": 500.0})
    # If one request reports no tokens, shares fall back to equal.
    b = attribute(constant_power(200, 10), [Span("A", 0, 10, tokens=300), Span("B", 0, 10)])
    assert b.per_request_j == pytest.approx({"A": 1000.0, "B": 1000.0})


def test_varying_power_between_samples() -> None:
    # 0-5 s at 100 W, 5-10 s at 300 W; A runs 0-5, B runs 5-10.
    samples = [(0.0, 0.0), (5.0, 500.0), (10.0, 2000.0)]
    a = attribute(samples, [Span("A", 0, 5), Span("B", 5, 10)])
    assert a.per_request_j == pytest.approx({"A": 500.0, "B": 1500.0})
    conserved(a)


def test_bad_traces_are_refused() -> None:
    with pytest.raises(InputError):
        attribute([(0.0, 0.0)], [])
    with pytest.raises(InputError):
        attribute([(1.0, 0.0), (0.0, 1.0)], [])
    with pytest.raises(InputError):
        attribute(constant_power(1, 2), [Span("x", 2, 1)])


def test_meter_online_attribution_conserves_energy() -> None:
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu], zone="FR").start()
    gpu.joules = 10.0  # idle before any request
    a = m.window("A").open()
    gpu.joules = 40.0  # A alone: 30 J
    b = m.window("B").open()
    gpu.joules = 100.0  # A and B: 60 J, 30 each
    ma = a.close()
    gpu.joules = 120.0  # B alone: 20 J
    mb = b.close()
    gpu.joules = 125.0  # idle again
    total = m.stop()
    assert ma.attributed_j["gpu:0"].mid == pytest.approx(60.0)
    assert mb.attributed_j["gpu:0"].mid == pytest.approx(50.0)
    assert ma.energy_j["gpu:0"].mid == pytest.approx(90.0)  # the whole device while A was open
    assert m.idle_j["gpu:0"].mid == pytest.approx(15.0)
    assert total.total_j.mid == pytest.approx(125.0)
    assert ma.total_j.mid + mb.total_j.mid + m.idle_j["gpu:0"].mid == pytest.approx(total.total_j.mid, rel=1e-12)
    assert gpu.reads == 6  # one read per event, nothing in between


def test_meter_token_progress_and_footprint() -> None:
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu], zone="FR", pue=1.0)
    a, b = m.window("A").open(), m.window("B").open()
    a.progress(30)
    b.progress(10)
    gpu.joules = 40.0
    ma = a.close()  # A: 3/4 of 40 J
    mb = b.close()
    assert ma.total_j.mid == pytest.approx(30.0) and mb.total_j.mid == pytest.approx(10.0)
    fp = ma.footprint()
    assert fp.method == "measured" and fp.energy_wh.mid == pytest.approx(30.0 / 3600)
    assert fp.carbon_location_g.mid == pytest.approx(30.0 / 3600 * 56.039 / 1000, rel=1e-4)
    assert fp.boundary == ("accelerator", "facility")


def test_meter_decorator_and_errors() -> None:
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu])

    @m
    def work() -> int:
        gpu.joules += 7.0
        return 3

    assert work() == 3 and work() == 3
    assert [x.name for x in m.measurements] == [work.__qualname__] * 2
    assert all(x.total_j.mid == pytest.approx(7.0) for x in m.measurements)
    w = m.window("x")
    with pytest.raises(InputError):
        w.close()
    with pytest.raises(InputError):
        m.stop()
