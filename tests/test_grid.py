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
    assert d["cfe_share"] == pytest.approx(0.85 + 0.1)  # the hour's carbon-free share (nuclear, wind)
    de = estimate_footprint(REQ, Context(Place(zone="DE"), grid=feed_ctx.grid), at=at("2026-01-15T02:30:00Z"))
    assert "cfe_share" not in de.as_dict()["grid"]  # no mix for that hour: no carbon-free share claimed
    assert "cfe_share" not in estimate_footprint(REQ, Context(Place(zone="FR"))).as_dict()["grid"]  # annual: none
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


# --- hourly matching and the 24/7 CFE score -------------------------------------------------------


def contracts_file(tmp_path: Path) -> Path:
    """A solar PPA of 6 kWh each hour 10:00-15:59 on two days, and 200 kWh of yearly certificates."""
    rows = ["zone,start,end,volume_mwh,kind,technology,source"]
    for day in (15, 16):
        for h in range(10, 16):
            rows.append(
                f"FR,2026-01-{day}T{h:02d}:00:00Z,2026-01-{day}T{h + 1:02d}:00:00Z,0.006,ppa,solar,PPA metered hourly"
            )
    rows.append("FR,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,0.2,eac,hydro,Guarantees of origin 2026")
    f = tmp_path / "contracts.csv"
    f.write_text("\n".join(rows) + "\n")
    return f


def test_hourly_matching_is_reproduced_by_hand_on_48_hours(tmp_path: Path) -> None:
    from wattlens.grid.contracts import GridHour, load, match

    contracts = load(contracts_file(tmp_path))
    start = at("2026-01-15T00:00:00Z")
    hours = [start + dt.timedelta(hours=i) for i in range(48)]
    consumption = {("FR", h): 10.0 for h in hours}  # 10 kWh every hour: 480 kWh

    def grid(zone: str, hour: dt.datetime) -> GridHour:  # daytime 08-17: 50 g, 80 % carbon-free; else 100 g, 50 %
        return GridHour(50.0, 0.8) if 8 <= hour.hour <= 17 else GridHour(100.0, 0.5)

    m = match(consumption, contracts, grid)
    # By hand. Hourly matched: 12 hours x 6 kWh = 72 kWh.
    # CFE: 10-15 h (12 h): 6 + 4 x 0.8 = 9.2; 08-09, 16-17 (8 h): 10 x 0.8 = 8; other 28 h: 10 x 0.5 = 5
    cfe_by_hand = 12 * 9.2 + 8 * 8 + 28 * 5  # 314.4 kWh
    assert m.consumption_kwh == 480.0 and m.hourly_matched_kwh == pytest.approx(72.0)
    assert m.cfe_score == pytest.approx(cfe_by_hand / 480)
    assert m.location_g == pytest.approx(20 * 10 * 50 + 28 * 10 * 100)  # 38,000 g
    # Market, hourly: unmatched kWh at the hour's grid average (standing in for the residual mix).
    assert m.market_hourly_g == pytest.approx(12 * 4 * 50 + 8 * 10 * 50 + 28 * 10 * 100)  # 34,400 g
    assert m.residual_approximated
    # Annual matching counts the certificates too: min(480, 72 + 200) kWh, the rest at the average 38,000/480 g/kWh.
    assert m.annual_matched_share == pytest.approx(272 / 480)
    assert m.market_annual_g == pytest.approx((480 - 272) * 38000 / 480)
    assert m.market_annual_g < m.market_hourly_g  # annual matching flatters: the certificates cover nights too
    assert m.by_hour_of_day[12] == pytest.approx({"consumption_kwh": 20.0, "matched_kwh": 12.0, "cfe_kwh": 18.4})
    given = match(consumption, contracts, grid, residual_g_per_kwh={"FR": 120.0})
    assert given.market_hourly_g == pytest.approx((480 - 72) * 120.0) and not given.residual_approximated


def test_matching_ledger_records_with_a_csv_feed(feed_ctx: Context, tmp_path: Path) -> None:
    from wattlens.grid.contracts import grid_cfe_share, load, match_records
    from wattlens.report.demo import records as demo_records

    recs = list(demo_records(["gpt-4o-mini"], ["FR"], start=at("2026-01-15T02:30:00Z"), limit=40))
    m = match_records(recs, load(contracts_file(tmp_path)), feed_ctx)
    kwh = sum(float(r["footprint"]["facility_wh"]["mid"]) for r in recs) / 1000
    assert m.consumption_kwh == pytest.approx(kwh)
    # All in the 02:00 hour: no hourly contract, so the CFE score is the grid's carbon-free share then.
    assert m.hourly_matched_kwh == 0 and m.cfe_score == pytest.approx(grid_cfe_share({"nuclear": 0.9, "wind": 0.1}))
    assert m.location_g == pytest.approx(kwh * 20.0)  # the file's 02:00 intensity
    assert m.annual_matched_share == pytest.approx(1.0)  # 200 kWh of certificates cover it on paper


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("FR,2026-01-15T10:00:00Z,2026-01-15T10:00:00Z,1,ppa,wind,x", "end must be after start"),
        ("FR,2026-01-15T10:30:00Z,2026-01-15T11:30:00Z,1,ppa,wind,x", "whole hours"),
        ("FR,2026-01-15T10:00:00Z,2026-01-15T11:00:00Z,-1,ppa,wind,x", "must not be negative"),
        ("FR,2026-01-15T10:00:00Z,2026-01-15T11:00:00Z,1,rec,wind,x", "kind must be"),
        ("FR,2026-01-15T10:00:00Z,2026-01-15T11:00:00Z,1,ppa,gas,x", "fossil or bioenergy"),
        ("FR,2026-01-15 10:00,2026-01-15T11:00:00Z,1,ppa,wind,x", "no UTC offset"),
    ],
)
def test_a_bad_contracts_file_is_refused_with_the_line(tmp_path: Path, row: str, message: str) -> None:
    from wattlens.grid.contracts import load

    f = tmp_path / "c.csv"
    f.write_text("zone,start,end,volume_mwh,kind,technology,source\n" + row + "\n")
    with pytest.raises(ConfigError, match=f"line 2: .*{message}"):
        load(f)


# --- carbon-aware timing (wattlens run --within) --------------------------------------------------


def test_the_plan_picks_the_lowest_intensity_start_in_the_window() -> None:
    from wattlens.errors import InputError
    from wattlens.grid.live import Sample
    from wattlens.grid.timing import parse_duration, plan

    h = dt.timedelta(hours=1)
    t0 = at("2026-01-15T00:00:00Z")
    fc = [Sample(t0 + i * h, h, g) for i, g in enumerate([80.0, 60.0, 20.0, 40.0, 20.0, 5.0])]
    now = t0 + dt.timedelta(minutes=20)
    p = plan(fc, now, parse_duration("3h"))  # candidates: now (80), 01:00 (60), 02:00 (20), 03:00 (40)
    assert (p.start, p.chosen_g_per_kwh, p.now_g_per_kwh, p.candidates) == (t0 + 2 * h, 20.0, 80.0, 4)
    assert p.saving_share == pytest.approx((80 - 20) / 80) and p.wait_s == 100 * 60
    assert p.avoided_g(500.0) == pytest.approx(500 * (80 - 20) / 1000)  # 500 Wh: 30 g avoided
    assert plan(fc, now, parse_duration("1h30m")).start == t0 + h  # 02:00 is outside the window
    assert plan(fc, now, parse_duration("30m")).start == now  # nothing better in 30 min: start now
    assert parse_duration("90m") == dt.timedelta(minutes=90)
    with pytest.raises(InputError, match="6h, 90m"):
        parse_duration("six hours")
    with pytest.raises(InputError, match="does not cover now"):
        plan(fc, t0 - h, parse_duration("3h"))


def test_run_within_plans_from_the_csv_forecast(tmp_path: Path) -> None:
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rows = [(0, 80), (1, 60), (2, 20), (3, 40)]
    f = tmp_path / "forecast.csv"
    f.write_text(
        "zone,timestamp,intensity_g_per_kwh\n"
        + "".join(f"FR,{(hour + dt.timedelta(hours=i)).isoformat().replace('+00:00', 'Z')},{g}\n" for i, g in rows)
    )
    wl = [sys.executable, "-m", "wattlens.cli", "run", "--zone", "FR", "--grid", f"csv:{f}"]
    dry = subprocess.run([*wl, "--within", "6h", "--dry-run", "--json", "--", "false"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr  # nothing ran (false would exit 1)
    p = json.loads(dry.stdout)
    assert (p["start"], p["chosen_g_per_kwh"], p["now_g_per_kwh"]) == (
        (hour + dt.timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        20.0,
        80.0,
    )
    assert p["saving_share"] == pytest.approx(0.75)
    # Nothing better than now in the window: it runs at once and says what it compared.
    later = tmp_path / "later.csv"
    later.write_text(f.read_text().replace(",20\n", ",90\n").replace(",40\n", ",95\n").replace(",60\n", ",85\n"))
    wl[-1] = f"csv:{later}"
    r = subprocess.run([*wl, "--within", "3h", "--json", "--", sys.executable, "-c", "pass"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    receipt = json.loads(r.stderr[r.stderr.index("{") :])
    assert receipt["run"]["carbon_aware"]["avoided_g"] == 0.0 and receipt["grid"]["intensity_g_per_kwh"] == 80.0
    annual = subprocess.run([*wl[:-2], "--within", "6h", "--dry-run", "--", "true"], capture_output=True, text=True)
    assert annual.returncode == 2 and "no forecast" in annual.stderr
