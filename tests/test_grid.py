"""Time-resolved grid: a CSV feed prices each request at its own hour (issue #17)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wattlens.context import Context, Place
from wattlens.errors import ConfigError
from wattlens.footprint import Footprint, Tokens
from wattlens.metering import Call, settle
from wattlens.plugins import grid_feed
from wattlens.receipt import LLMRequest, estimate_footprint

CSV = """zone,timestamp,intensity_g_per_kwh,basis,marginal_g_per_kwh,nuclear_share,wind_share,gas_share
FR,2026-01-15T02:00:00Z,20,life-cycle,300,0.9,0.1,0
FR,2026-01-15T03:00:00Z,25,life-cycle,,0.85,0.1,0.05
FR,2026-01-15T18:00:00Z,80,life-cycle,450,0.6,0.05,0.35
DE,2026-01-15T03:00:00+01:00,400,life-cycle,,,,
"""
REQ = LLMRequest(model="gpt-4o-mini", input_tokens=800, output_tokens=400)


@pytest.fixture()
def feed_ctx(tmp_path: Path) -> Context:
    f = tmp_path / "grid.csv"
    f.write_text(CSV)
    return Context(Place(zone="FR"), grid=grid_feed(f"csv:{f}"))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_two_identical_requests_at_two_hours_get_their_own_hours_carbon(feed_ctx: Context) -> None:
    night = estimate_footprint(REQ, feed_ctx, at=at("2026-01-15T03:20:00Z"))
    evening = estimate_footprint(REQ, feed_ctx, at=at("2026-01-15T18:59:59Z"))
    assert night.facility_wh == evening.facility_wh  # the same work
    for fp, g_per_kwh in ((night, 25.0), (evening, 80.0)):
        by_hand = [b * g_per_kwh / 1000 for b in (fp.facility_wh.low, fp.facility_wh.mid, fp.facility_wh.high)]
        assert [fp.carbon_location_g.low, fp.carbon_location_g.mid, fp.carbon_location_g.high] == pytest.approx(by_hand)
    d = night.as_dict()["grid"]
    assert (d["resolution"], d["basis"], d["at"], d["intensity_g_per_kwh"]) == (
        "hourly",
        "life-cycle",
        "2026-01-15T03:00:00Z",
        25.0,
    )
    assert "user grid file" in d["source"] and d["mix"]["gas"] == 0.05
    # Where the feed gives a marginal intensity, the receipt adds marginal carbon beside location and market.
    assert night.carbon_marginal_g is None
    ev = evening.as_dict()
    assert ev["carbon_g"]["marginal"]["mid"] == pytest.approx(evening.facility_wh.mid * 450 / 1000, rel=1e-5)
    assert Footprint.from_dict(ev).as_dict() == ev  # the one JSON form round-trips


def test_a_time_the_file_does_not_cover_falls_back_to_annual_and_says_so(feed_ctx: Context) -> None:
    gap = estimate_footprint(REQ, feed_ctx, at=at("2026-01-15T10:00:00Z"))  # 03:00 + 1 h < 10:00 < 18:00
    assert "grid-feed-no-data" in gap.warnings and gap.grid.resolution == "annual"
    other = estimate_footprint(REQ, Context(Place(zone="PL"), grid=feed_ctx.grid), at=at("2026-01-15T03:00:00Z"))
    assert "grid-feed-no-data" in other.warnings
    de = estimate_footprint(REQ, Context(Place(zone="DE"), grid=feed_ctx.grid), at=at("2026-01-15T02:30:00Z"))
    assert de.grid.intensity_g_per_kwh == 400.0 and "grid-mix-annual" in de.warnings  # 03:00+01:00 is 02:00Z


def test_settlement_prices_a_call_at_the_time_it_ran(feed_ctx: Context) -> None:
    t = at("2026-01-15T02:30:00Z").timestamp()
    call = Call("test", "openai", "/chat/completions", "gpt-4o-mini", upstream="u", tokens=Tokens(800, 0, 400), wall_s=t)
    fp = settle(call, feed_ctx).footprint
    assert fp is not None and fp.grid.intensity_g_per_kwh == 20.0 and fp.grid.at == "2026-01-15T02:00:00Z"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone,timestamp\nFR,2026-01-15T02:00:00Z\n", "needs the columns"),
        ("zone,timestamp,intensity_g_per_kwh\nFR,2026-01-15 02:00,20\n", "no UTC offset"),
        ("zone,timestamp,intensity_g_per_kwh\nFR,yesterday,20\n", "not ISO 8601"),
        ("zone,timestamp,intensity_g_per_kwh\nFR,2026-01-15T02:00:00Z,-3\n", "must not be negative"),
        ("zone,timestamp,intensity_g_per_kwh,wind_share,gas_share\nFR,2026-01-15T02:00:00Z,20,0.5,0.2\n", "add up to"),
    ],
)
def test_a_bad_grid_file_is_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "g.csv"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        grid_feed(f"csv:{f}")


def test_the_cli_takes_grid_and_at(tmp_path: Path) -> None:
    f = tmp_path / "grid.csv"
    f.write_text(CSV)
    base = [sys.executable, "-m", "wattlens.cli", "estimate", "--model", "gpt-4o-mini", "--zone", "FR", "--json"]
    out = [
        json.loads(
            subprocess.run([*base, "--grid", f"csv:{f}", "--at", when], capture_output=True, text=True, check=True).stdout
        )
        for when in ("2026-01-15T02:10:00Z", "2026-01-15T18:10:00Z")
    ]
    assert [o["grid"]["intensity_g_per_kwh"] for o in out] == [20.0, 80.0]
    (tmp_path / "wattlens.toml").write_text('[grid]\nfeed = "csv:grid.csv"\n')  # relative to the config file
    r = subprocess.run([*base, "--at", "2026-01-15T03:30:00Z"], capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(r.stdout)["grid"]["intensity_g_per_kwh"] == 25.0
    bad = subprocess.run([*base, "--grid", "csv:/nonexistent.csv"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read the grid file" in bad.stderr


def test_a_report_re_prices_past_records_at_their_own_hours(feed_ctx: Context) -> None:
    from wattlens.report import build
    from wattlens.report.demo import records as demo_records

    recs = list(demo_records(["gpt-4o-mini"], ["FR"], start=at("2026-01-15T02:30:00Z"), limit=40))
    as_recorded = build(recs, ["model"])
    repriced = build(recs, ["model"], reprice_with=feed_ctx)
    by_hand = sum(float(r["footprint"]["facility_wh"]["mid"]) * 20.0 / 1000 for r in recs)  # all in the 02:00 hour
    assert repriced.total["carbon_location_g"]["mid"] == pytest.approx(by_hand, rel=1e-9)
    assert repriced.total["energy_wh"] == as_recorded.total["energy_wh"]  # energy is what was recorded
    assert "hourly" in repriced.grid_basis and as_recorded.grid_basis == "as recorded"
    assert repriced.hours[2]["energy_wh"] == pytest.approx(as_recorded.total["energy_wh"]["mid"])


def test_report_grid_re_prices_from_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "grid.csv"
    f.write_text(CSV)
    led = tmp_path / "demo.db"
    wl = [sys.executable, "-m", "wattlens.cli"]
    subprocess.run([*wl, "demo", "--ledger", str(led), "--limit", "30", "--zone", "FR"], check=True, capture_output=True)
    base = [*wl, "report", "--ledger", str(led), "--format", "json"]
    plain = json.loads(subprocess.run(base, check=True, capture_output=True, text=True).stdout)
    priced = json.loads(subprocess.run([*base, "--grid", f"csv:{f}"], check=True, capture_output=True, text=True).stdout)
    assert plain["grid_basis"] == "as recorded" and "csv" in priced["grid_basis"]
    assert priced["total"]["energy_wh"] == plain["total"]["energy_wh"]
