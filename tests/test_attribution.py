"""The Meter's attribution on scripted counters where the right answer is known by hand."""

from __future__ import annotations

import pytest
from fakes import ScriptedSensor

from wattlens.errors import InputError
from wattlens.measure.meter import Meter, Window, split


def replay(watts: float, events: list[tuple[float, str, str]]) -> tuple[Meter, dict[str, float], float]:
    """Open and close windows at given times under constant power; each window's attributed joules and idle."""
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu]).start()
    windows: dict[str, Window] = {}
    joules: dict[str, float] = {}
    for t, action, name in sorted(events, key=lambda e: (e[0], e[1] != "open")):
        gpu.joules = watts * t
        if action == "open":
            windows[name] = m.window(name).open()
        else:
            joules[name] = windows[name].close().attributed_j["gpu:0"].mid
    total = m.stop().total_j.mid
    idle = m.idle_j["gpu:0"].mid
    assert sum(joules.values()) + idle == pytest.approx(total, rel=1e-12)  # energy is conserved
    return m, joules, idle


def test_split_sums_exactly() -> None:
    parts = split(1.0, [1, 1, 1])
    assert sum(parts) == 1.0 and parts[0] == pytest.approx(1 / 3)
    assert split(10.0, [0.0, 0.0]) == [5.0, 5.0]
    assert split(6.0, [1.0, 2.0]) == [2.0, 4.0]


def test_overlapping_requests_share_equally() -> None:
    # 100 W. A runs 0-6 s, B runs 4-10 s: 0-4 A alone (400 J), 4-6 both (100 J each), 6-10 B alone.
    _, j, idle = replay(100, [(0, "open", "A"), (6, "close", "A"), (4, "open", "B"), (10, "close", "B")])
    assert j == pytest.approx({"A": 500.0, "B": 500.0}) and idle == pytest.approx(0.0)


def test_nested_requests_and_idle_gaps() -> None:
    # 50 W. Outer 2-12 s, inner 4-8 s, nothing 0-2 and 12-20 s.
    _, j, idle = replay(
        50, [(2, "open", "outer"), (12, "close", "outer"), (4, "open", "inner"), (8, "close", "inner"), (20, "open", "end")]
    )
    # outer alone 2-4 and 8-12 (6 s x 50 W = 300 J) + half of 4-8 (100 J); inner gets the other 100 J.
    assert j["outer"] == pytest.approx(400.0) and j["inner"] == pytest.approx(100.0)
    assert idle == pytest.approx(50 * (2 + 8))


def test_zero_length_window_gets_nothing() -> None:
    _, j, _ = replay(10, [(1, "open", "real"), (2, "open", "blip"), (2, "close", "blip"), (3, "close", "real")])
    assert j["blip"] == 0.0 and j["real"] == pytest.approx(20.0)


def test_token_progress_weights() -> None:
    # Both open 0-10 s at 200 W; A makes 300 tokens, B 100: A gets 3/4.
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu])
    a, b = m.window("A").open(), m.window("B").open()
    a.progress(300)
    b.progress(100)
    gpu.joules = 2000.0
    assert a.close().total_j.mid == pytest.approx(1500.0)
    assert b.close().total_j.mid == pytest.approx(500.0)
    # If one window reports no tokens, shares fall back to equal.
    a, b = m.window("A").open(), m.window("B").open()
    a.progress(300)
    gpu.joules = 4000.0
    assert a.close().total_j.mid == pytest.approx(1000.0) and b.close().total_j.mid == pytest.approx(1000.0)


def test_varying_power_between_events() -> None:
    # 0-5 s at 100 W, 5-10 s at 300 W; A runs 0-5, B runs 5-10.
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu])
    a = m.window("A").open()
    gpu.joules = 500.0
    assert a.close().total_j.mid == pytest.approx(500.0)
    b = m.window("B").open()
    gpu.joules = 2000.0
    assert b.close().total_j.mid == pytest.approx(1500.0)


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


def test_meter_footprint_of_a_window() -> None:
    gpu = ScriptedSensor()
    m = Meter(sensors=[gpu], zone="FR", pue=1.0)
    a, b = m.window("A").open(), m.window("B").open()
    a.progress(30)
    b.progress(10)
    gpu.joules = 40.0
    ma = a.close()  # A: 3/4 of 40 J
    b.close()
    fp = m.footprint(ma)
    assert fp.method == "measured" and fp.energy_wh.mid == pytest.approx(30.0 / 3600)
    assert fp.carbon_location_g.mid == pytest.approx(30.0 / 3600 * 56.039 / 1000, rel=1e-4)
    assert fp.boundary == ("accelerator", "facility")
    assert m.footprint(ma, zone="PL").grid.zone == "PL"  # a place given here refines the meter's


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
