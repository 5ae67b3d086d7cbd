"""Each plain-language equivalent, computed by hand."""

from __future__ import annotations

import pytest

from wattlens.equivalents import CONSTANTS, as_json, car_metres, drops, led_seconds, phone_charge_share


def test_by_hand() -> None:
    assert led_seconds(1.0) == pytest.approx(360.0)  # 1 Wh runs a 10 W bulb for 0.1 h = 360 s
    assert phone_charge_share(1.5) == pytest.approx(0.1)  # 1.5 Wh of a 15 Wh battery
    assert car_metres(108.2) == pytest.approx(1000.0)  # the car's grams per km give one km
    assert drops(1.0) == pytest.approx(20.0)  # 20 drops per mL


def test_every_constant_is_cited_and_served() -> None:
    for c in CONSTANTS.values():
        assert c.value > 0 and c.unit and len(c.source) > 20
    assert set(as_json()) == set(CONSTANTS)
