"""Live grid feeds against loopback servers that speak each provider's documented wire format.

Each fake answers the provider's real paths, parameters, auth header and JSON/XML shapes (as the
providers' API references give them); the clients are the real ones, over real HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wattlens.context import Context, Place
from wattlens.errors import ConfigError
from wattlens.factors import builtin
from wattlens.grid.live import LiveFeed
from wattlens.plugins import grid_feed
from wattlens.receipt import LLMRequest, estimate_footprint

TOKEN = "s3cr3t-T0KEN-abc"
Answer = tuple[int, str, dict[str, str]]
Route = Callable[[str, dict[str, str], dict[str, str]], Answer]


class Fake:
    """A loopback HTTP server; `route(path, query, headers)` answers; every request is recorded."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.delay_s = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                u = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(u.query))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append((u.path, query, headers))
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                status, body, extra = fake.route(u.path, query, headers)
                data = body.encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def serve() -> Iterator[Callable[[Route], Fake]]:
    fakes: list[Fake] = []

    def start(route: Route) -> Fake:
        fakes.append(Fake(route))
        return fakes[-1]

    yield start
    for f in fakes:
        f.close()


def js(obj: Any, status: int = 200) -> Answer:
    return status, json.dumps(obj), {"Content-Type": "application/json"}


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def feed(spec: str, fake: Fake, tmp: Path, env: dict[str, str], **options: Any) -> LiveFeed:
    """The feed as `--grid SPEC` builds it, with the environment and [grid] keys given."""
    opts = {"base_url": fake.url, "cache_dir": str(tmp / "cache"), "timeout_s": 2, **options}
    import os

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        f = grid_feed(spec, opts)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert isinstance(f, LiveFeed)
    return f


REQ = LLMRequest(model="gpt-4o-mini", input_tokens=800, output_tokens=400)
EM_ENV = {"WATTLENS_ELECTRICITYMAPS_TOKEN": TOKEN}


# --- Electricity Maps ------------------------------------------------------------------------


def em_route(intensity: dict[str, float]) -> Route:
    """Electricity Maps v3: auth-token header; latest/history/past/forecast shapes."""

    def ci(zone: str, when: str) -> dict[str, Any]:
        return {
            "zone": zone,
            "carbonIntensity": intensity[when],
            "datetime": when,
            "updatedAt": "2026-11-25T10:00:00.000Z",
            "emissionFactorType": "lifecycle",
            "isEstimated": False,
            "estimationMethod": None,
        }

    def pb(zone: str, when: str) -> dict[str, Any]:
        return {
            "zone": zone,
            "datetime": when,
            "powerConsumptionBreakdown": {"nuclear": 6000, "wind": 2000, "gas": 1500, "hydro discharge": 500, "solar": None},
            "powerProductionBreakdown": {"nuclear": 6500},
            "fossilFreePercentage": 85,
            "renewablePercentage": 25,
        }

    def route(path: str, q: dict[str, str], h: dict[str, str]) -> Answer:
        if h.get("auth-token") != TOKEN:
            return js({"message": "Invalid authentication credentials"}, 401)
        kind, _, which = path.removeprefix("/v3/").partition("/")
        one = ci if kind == "carbon-intensity" else pb
        if which == "past":
            key = q["datetime"].replace(":00Z", ":00.000Z")
            return js(one(q["zone"], key)) if key in intensity else js({"error": "No data"}, 404)
        if which == "history":
            return js({"zone": q["zone"], "history": [one(q["zone"], k) for k in sorted(intensity)]})
        if which == "latest":
            return js(one(q["zone"], max(intensity)))
        if which == "forecast":
            return js({"zone": q["zone"], "forecast": [ci(q["zone"], k) for k in sorted(intensity)]})
        return js({"error": "not found"}, 404)

    return route


def test_electricitymaps_prices_each_hour_with_its_intensity_and_mix_and_caches_past_hours(
    serve: Callable[[Route], Fake], tmp_path: Path
) -> None:
    now_hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    recent = now_hour - dt.timedelta(hours=3)
    stamp = lambda x: x.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
    values = {"2026-01-15T03:00:00.000Z": 42.0, stamp(recent): 130.0, stamp(now_hour): 95.0}
    fake = serve(em_route(values))
    f = feed("electricitymaps", fake, tmp_path, EM_ENV)
    ctx = Context(Place(zone="FR"), grid=f)
    old = estimate_footprint(REQ, ctx, at=t("2026-01-15T03:20:00Z"))
    assert {p for p, _, _ in fake.requests} == {"/v3/carbon-intensity/past", "/v3/power-breakdown/past"}
    by_hand = old.facility_wh.mid * 42.0 / 1000
    assert old.carbon_location_g.mid == pytest.approx(by_hand)
    g = old.as_dict()["grid"]
    assert (g["resolution"], g["basis"], g["at"]) == ("hourly", "life-cycle", "2026-01-15T03:00:00Z")
    assert "Electricity Maps" in g["source"]
    # consumption breakdown 6000 nuclear, 2000 wind, 1500 gas, 500 hydro discharge (of 10,000 MW)
    assert (g["mix"]["nuclear"], g["mix"]["wind"], g["mix"]["gas"], g["mix"]["hydro"]) == (0.6, 0.2, 0.15, 0.05)
    n = len(fake.requests)
    again = estimate_footprint(
        REQ, Context(Place(zone="FR"), grid=feed("electricitymaps", fake, tmp_path, EM_ENV)), at=t("2026-01-15T03:59:00Z")
    )
    assert len(fake.requests) == n and again.grid.intensity_g_per_kwh == 42.0  # a past hour: from the disk cache
    hist = estimate_footprint(REQ, ctx, at=recent + dt.timedelta(minutes=10))
    assert hist.grid.intensity_g_per_kwh == 130.0 and fake.requests[-1][0].endswith("/history")
    latest = estimate_footprint(REQ, ctx)
    assert latest.grid.intensity_g_per_kwh == 95.0 and fake.requests[-1][0].endswith("/latest")
    fc = f.forecast(builtin().zones.get("FR"), now_hour, now_hour + dt.timedelta(hours=6))
    assert [s.intensity_g_per_kwh for s in fc] == [95.0]
    assert all(h.get("auth-token") == TOKEN for _, _, h in fake.requests)


@pytest.mark.parametrize(
    ("status", "code"), [(401, "grid-feed-unauthorised"), (500, "grid-feed-unavailable"), (429, "grid-feed-rate-limited")]
)
def test_a_failing_provider_falls_back_to_annual_with_a_warning(
    serve: Callable[[Route], Fake], tmp_path: Path, status: int, code: str
) -> None:
    fake = serve(lambda p, q, h: js({"message": f"failure with {TOKEN}"}, status))
    f = feed("electricitymaps", fake, tmp_path, EM_ENV)
    fp = estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-15T03:20:00Z"))
    annual = estimate_footprint(REQ, Context(Place(zone="FR")), at=t("2026-01-15T03:20:00Z"))
    assert code in fp.warnings and fp.grid.resolution == "annual"
    assert fp.carbon_location_g == annual.carbon_location_g
    assert TOKEN not in json.dumps(fp.as_dict())
    if status in (429, 500):  # back-off: the provider is not asked again while it cools down
        n = len(fake.requests)
        estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-16T03:20:00Z"))
        assert len(fake.requests) == n


def test_a_provider_that_does_not_answer_in_time_falls_back(serve: Callable[[Route], Fake], tmp_path: Path) -> None:
    fake = serve(em_route({"2026-01-15T03:00:00.000Z": 42.0}))
    fake.delay_s = 1.0
    f = feed("electricitymaps", fake, tmp_path, EM_ENV, timeout_s=0.2)
    fp = estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-15T03:20:00Z"))
    assert "grid-feed-unavailable" in fp.warnings and fp.grid.resolution == "annual"


def test_a_live_feed_needs_its_token_and_never_shows_it(
    serve: Callable[[Route], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = serve(em_route({"2026-01-15T03:00:00.000Z": 42.0}))
    with pytest.raises(ConfigError, match="WATTLENS_ELECTRICITYMAPS_TOKEN"):
        feed("electricitymaps", fake, tmp_path, {})
    f = feed("electricitymaps", fake, tmp_path, {"MY_EM": TOKEN}, token_env="MY_EM")  # [grid] token_env
    assert (
        estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-15T03:20:00Z")).grid.intensity_g_per_kwh
        == 42
    )
    fake.close()  # the provider goes away: the error path must not carry the token either
    down = feed("electricitymaps", fake, tmp_path, EM_ENV)
    fp = estimate_footprint(REQ, Context(Place(zone="FR"), grid=down), at=t("2026-02-15T03:20:00Z"))
    assert "grid-feed-unavailable" in fp.warnings
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "42" in cached and TOKEN not in cached and TOKEN not in caplog.text
    assert TOKEN not in repr(down.options) and TOKEN not in repr(down.client().__dict__.get("options"))


# --- WattTime --------------------------------------------------------------------------------

WT_USER, WT_PASS = "ada", "pa55-w0rd"
WT_ENV = {"WATTLENS_WATTTIME_USERNAME": WT_USER, "WATTLENS_WATTTIME_PASSWORD": WT_PASS}


def wt_route(path: str, q: dict[str, str], h: dict[str, str]) -> Answer:
    """WattTime v3: /login with Basic auth -> token; Bearer on /v3/*; MOER in lbs/MWh, 5-minute points."""
    if path == "/login":
        expected = "Basic " + base64.b64encode(f"{WT_USER}:{WT_PASS}".encode()).decode()
        return js({"token": TOKEN}) if h.get("authorization") == expected else js({"error": "bad login"}, 403)
    if h.get("authorization") != f"Bearer {TOKEN}":
        return js({"error": "token invalid"}, 401)
    if q.get("region") != "CAISO_NORTH" or q.get("signal_type") != "co2_moer":
        return js({"error": "region not permitted"}, 403)
    meta = {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh", "data_point_period_seconds": 300}
    if path == "/v3/historical":
        start = t(q["start"])
        points = [{"point_time": (start + dt.timedelta(minutes=5 * i)).isoformat(), "value": 900.0 + i} for i in range(12)]
        return js({"data": points, "meta": meta})
    if path == "/v3/forecast":
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        now -= dt.timedelta(minutes=now.minute % 5)
        points = [
            {"point_time": (now + dt.timedelta(minutes=5 * i)).isoformat(), "value": 1000.0 - 10 * i} for i in range(24)
        ]
        return js({"data": points, "meta": {**meta, "generated_at": now.isoformat()}})
    if path == "/v3/signal-index":
        return js(
            {"data": [{"point_time": "2026-11-25T10:00:00+00:00", "value": 37.0}], "meta": {**meta, "units": "percentile"}}
        )
    return js({"error": "not found"}, 404)


def test_watttime_moer_is_the_marginal_figure_and_the_basis_says_so(serve: Callable[[Route], Fake], tmp_path: Path) -> None:
    fake = serve(wt_route)
    with pytest.raises(ConfigError, match="region"):
        feed("watttime", fake, tmp_path, WT_ENV)
    f = feed("watttime:CAISO_NORTH", fake, tmp_path, WT_ENV)
    ctx = Context(Place(zone="US-CA"), grid=f)
    fp = estimate_footprint(REQ, ctx, at=t("2026-01-15T03:17:00Z"))  # the 4th 5-minute point: 903 lbs/MWh
    moer_g_per_kwh = 903.0 * 453.59237 / 1000
    assert fp.grid.marginal_g_per_kwh == pytest.approx(moer_g_per_kwh)
    assert fp.carbon_marginal_g is not None
    assert fp.carbon_marginal_g.mid == pytest.approx(fp.facility_wh.mid * moer_g_per_kwh / 1000)
    annual = estimate_footprint(REQ, Context(Place(zone="US-CA")), at=t("2026-01-15T03:17:00Z"))
    assert fp.carbon_location_g == annual.carbon_location_g  # the average stays the annual one
    assert "grid-marginal-only" in fp.warnings and "MOER" in fp.grid.basis and fp.grid.at == "2026-01-15T03:15:00Z"
    assert fake.requests[0][0] == "/login" and fake.requests[1][0] == "/v3/historical"
    now = estimate_footprint(REQ, ctx)
    assert now.grid.marginal_g_per_kwh == pytest.approx(1000.0 * 453.59237 / 1000)
    assert f.signal_index(builtin().zones.get("US-CA")) == 37.0
    start = dt.datetime.now(dt.UTC)
    fc = f.forecast(builtin().zones.get("US-CA"), start, start + dt.timedelta(hours=1))
    # run --within ranks WattTime's forecast by MOER: 1000, 990, ... lbs/MWh every 5 minutes
    assert len(fc) in (12, 13) and fc[1].intensity_g_per_kwh == pytest.approx(990.0 * 453.59237 / 1000)
    logins = sum(1 for p, _, _ in fake.requests if p == "/login")
    assert logins == 1  # the token is re-used while valid
    bad = feed("watttime:CAISO_NORTH", fake, tmp_path, {**WT_ENV, "WATTLENS_WATTTIME_PASSWORD": "wrong"})
    refused = estimate_footprint(REQ, Context(Place(zone="US-CA"), grid=bad), at=t("2026-03-15T03:17:00Z"))
    assert "grid-feed-unauthorised" in refused.warnings and "wrong" not in json.dumps(refused.as_dict())


# --- UK Carbon Intensity -----------------------------------------------------------------------


def uk_route(path: str, q: dict[str, str], h: dict[str, str]) -> Answer:
    """NESO Carbon Intensity API: no key; half-hours written 2026-01-15T03:00Z."""
    parts = path.strip("/").split("/")
    mix = [
        {"fuel": "gas", "perc": 40.0},
        {"fuel": "wind", "perc": 35.0},
        {"fuel": "nuclear", "perc": 15.0},
        {"fuel": "biomass", "perc": 5.0},
        {"fuel": "imports", "perc": 5.0},
        {"fuel": "coal", "perc": 0.0},
    ]
    if parts[0] == "intensity" and parts[2] == "fw48h":
        start = t(parts[1])
        return js(
            {
                "data": [
                    {
                        "from": (start + dt.timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%MZ"),
                        "to": (start + dt.timedelta(minutes=30 * i + 30)).strftime("%Y-%m-%dT%H:%MZ"),
                        "intensity": {"forecast": 200 - 5 * i, "actual": None, "index": "moderate"},
                    }
                    for i in range(96)
                ]
            }
        )
    if parts[0] == "intensity":
        return js(
            {
                "data": [
                    {"from": parts[1], "to": parts[2], "intensity": {"forecast": 180, "actual": 171, "index": "moderate"}}
                ]
            }
        )
    if parts[0] == "generation":
        return js({"data": [{"from": parts[1], "to": parts[2], "generationmix": mix}]})
    if parts[:2] == ["regional", "intensity"] and parts[4] == "regionid":
        return js(
            {
                "data": {
                    "regionid": int(parts[5]),
                    "dnoregion": "Scottish Hydro Electric Power Distribution",
                    "shortname": "North Scotland",
                    "data": [
                        {
                            "from": parts[2],
                            "to": parts[3],
                            "intensity": {"forecast": 12, "index": "very low"},
                            "generationmix": [{"fuel": "wind", "perc": 90.0}, {"fuel": "hydro", "perc": 10.0}],
                        }
                    ],
                }
            }
        )
    return js({"error": {"code": "400 Bad Request", "message": "Please enter a valid date"}}, 400)


def test_uk_carbon_intensity_national_and_regional(serve: Callable[[Route], Fake], tmp_path: Path) -> None:
    fake = serve(uk_route)
    f = feed("ukci", fake, tmp_path, {})
    fp = estimate_footprint(REQ, Context(Place(zone="GB"), grid=f), at=t("2026-01-15T03:40:00Z"))
    assert [p for p, _, _ in fake.requests] == [
        "/intensity/2026-01-15T03:30Z/2026-01-15T04:00Z",
        "/generation/2026-01-15T03:30Z/2026-01-15T04:00Z",
    ]
    assert fp.grid.intensity_g_per_kwh == 171.0  # the actual, where published
    assert fp.carbon_location_g.mid == pytest.approx(fp.facility_wh.mid * 171.0 / 1000)
    assert (fp.grid.resolution, fp.grid.basis, fp.grid.at) == ("30-minute", "direct combustion", "2026-01-15T03:30:00Z")
    assert fp.grid.mix["gas"] == 0.4 and fp.grid.mix["other"] == 0.05 and "intensity-direct-combustion" in fp.warnings
    north = feed("ukci:1", fake, tmp_path, {})
    r = estimate_footprint(REQ, Context(Place(zone="GB"), grid=north), at=t("2026-01-15T03:40:00Z"))
    assert r.grid.intensity_g_per_kwh == 12.0 and r.grid.mix["wind"] == 0.9
    assert "grid-feed-no-data" in estimate_footprint(REQ, Context(Place(zone="FR"), grid=f)).warnings
    start = dt.datetime(2026, 1, 15, 3, 0, tzinfo=dt.UTC)
    fc = f.forecast(builtin().zones.get("GB"), start, start + dt.timedelta(hours=6))
    assert len(fc) == 12 and fc[-1].intensity_g_per_kwh == 200 - 5 * 11
    with pytest.raises(ConfigError, match="1 to 17"):
        feed("ukci:99", fake, tmp_path, {})


# --- ENTSO-E ---------------------------------------------------------------------------------

NS = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"


def series(psr: str, start: str, resolution: str, quantities: list[float], out: bool = False) -> str:
    domain = "outBiddingZone_Domain.mRID" if out else "inBiddingZone_Domain.mRID"
    points = "".join(
        f"<Point><position>{i + 1}</position><quantity>{q}</quantity></Point>" for i, q in enumerate(quantities)
    )
    end = t(start) + {"PT15M": dt.timedelta(minutes=15), "PT60M": dt.timedelta(hours=1)}[resolution] * len(quantities)
    return (
        f"<TimeSeries><mRID>1</mRID><businessType>A01</businessType><objectAggregation>A08</objectAggregation>"
        f'<{domain} codingScheme="A01">10YFR-RTE------C</{domain}>'
        f"<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>"
        f"<curveType>A01</curveType><MktPSRType><psrType>{psr}</psrType></MktPSRType>"
        f"<Period><timeInterval><start>{start}</start><end>{end.strftime('%Y-%m-%dT%H:%MZ')}</end></timeInterval>"
        f"<resolution>{resolution}</resolution>{points}</Period></TimeSeries>"
    )


def entsoe_route(path: str, q: dict[str, str], h: dict[str, str]) -> Answer:
    """ENTSO-E RESTful API: securityToken in the query; A75/A16 -> GL_MarketDocument (XML)."""
    if q.get("securityToken") != TOKEN:
        return 401, "<html><body>Unauthorized</body></html>", {"Content-Type": "text/html"}
    if (q.get("documentType"), q.get("processType"), q.get("in_Domain")) != ("A75", "A16", "10YFR-RTE------C"):
        return 400, "bad request", {}
    if q["periodStart"] != "202601150300":
        ack = (
            '<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">'
            "<mRID>x</mRID><Reason><code>999</code><text>No matching data found for Data item ACTUAL_GENERATION</text>"
            "</Reason></Acknowledgement_MarketDocument>"
        )
        return 200, ack, {"Content-Type": "text/xml"}
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><GL_MarketDocument xmlns="{NS}"><mRID>d</mRID><type>A75</type>'
        f"<process.processType>A16</process.processType>"
        + series("B14", "2026-01-15T03:00Z", "PT60M", [600.0])  # nuclear
        + series("B04", "2026-01-15T03:00Z", "PT15M", [100.0, 300.0, 200.0, 200.0])  # gas
        + series("B19", "2026-01-15T03:00Z", "PT15M", [150.0, 100.0, 80.0, 80.0])  # wind onshore
        + series("B10", "2026-01-15T03:00Z", "PT60M", [999.0])  # pumped storage output: not generation
        + series("B10", "2026-01-15T03:00Z", "PT60M", [500.0], out=True)  # pumping: consumption
        + "</GL_MarketDocument>"
    )
    return 200, body, {"Content-Type": "text/xml"}


def test_entsoe_generation_per_type_gives_the_mix_and_a_life_cycle_intensity(
    serve: Callable[[Route], Fake], tmp_path: Path
) -> None:
    fake = serve(entsoe_route)
    f = feed("entsoe", fake, tmp_path, {"WATTLENS_ENTSOE_TOKEN": TOKEN})
    fp = estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-15T03:20:00Z"))
    # 03:15-03:30: nuclear 600, gas 300, wind 100 MW -> shares 0.6, 0.3, 0.1;
    # intensity = 0.6 x 12 + 0.3 x 490 + 0.1 x 11 (IPCC AR5 medians) = 155.3 g/kWh
    assert (fp.grid.mix["nuclear"], fp.grid.mix["gas"], fp.grid.mix["wind"]) == (0.6, 0.3, 0.1)
    assert fp.grid.intensity_g_per_kwh == pytest.approx(155.3)
    assert (fp.grid.resolution, fp.grid.at, fp.grid.basis) == ("15-minute", "2026-01-15T03:15:00Z", "life-cycle")
    path, query, _ = fake.requests[0]
    assert path == "/api" and (query["periodStart"], query["periodEnd"]) == ("202601150300", "202601150400")
    n = len(fake.requests)
    estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-15T03:50:00Z"))
    assert len(fake.requests) == n  # the same past hour: from the cache
    assert TOKEN not in "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    none = estimate_footprint(REQ, Context(Place(zone="FR"), grid=f), at=t("2026-01-16T03:20:00Z"))
    assert "grid-feed-no-data" in none.warnings  # an Acknowledgement document: no data
    bad = feed("entsoe", fake, tmp_path, {"WATTLENS_ENTSOE_TOKEN": "nope-nope"})
    refused = estimate_footprint(REQ, Context(Place(zone="FR"), grid=bad), at=t("2026-02-15T03:20:00Z"))
    assert "grid-feed-unauthorised" in refused.warnings


def test_electricitymaps_latest_lagging_an_hour_is_used_and_labelled_with_its_hour(
    serve: Callable[[Route], Fake], tmp_path: Path
) -> None:
    prev = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    fake = serve(em_route({prev.strftime("%Y-%m-%dT%H:%M:%S.000Z"): 77.0}))
    fp = estimate_footprint(REQ, Context(Place(zone="FR"), grid=feed("electricitymaps", fake, tmp_path, EM_ENV)))
    assert fp.grid.intensity_g_per_kwh == 77.0 and fp.grid.at == prev.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_background_fetch_keeps_the_provider_off_the_pricing_path(serve: Callable[[Route], Fake], tmp_path: Path) -> None:
    """[grid] fetch = "background" (for the gateway): a miss settles at annual and fills the cache for later."""
    fake = serve(em_route({"2026-01-15T03:00:00.000Z": 42.0}))
    f = feed("electricitymaps", fake, tmp_path, EM_ENV, fetch="background")
    ctx = Context(Place(zone="FR"), grid=f)
    first = estimate_footprint(REQ, ctx, at=t("2026-01-15T03:20:00Z"))
    assert "grid-feed-pending" in first.warnings and first.grid.resolution == "annual"
    f.wait_for_fetches()
    n = len(fake.requests)
    assert n == 2  # carbon-intensity/past and power-breakdown/past, once, from the background thread
    later = estimate_footprint(REQ, ctx, at=t("2026-01-15T03:40:00Z"))
    assert later.grid.intensity_g_per_kwh == 42.0 and "grid-feed-pending" not in later.warnings
    assert len(fake.requests) == n
    with pytest.raises(ConfigError, match="fetch must be"):
        from wattlens.config import load_settings

        (tmp_path / "w.toml").write_text('[grid]\nfeed = "ukci"\nfetch = "sometimes"\n')
        load_settings(tmp_path / "w.toml", env={})


def test_a_failed_background_fetch_is_not_retried_on_every_request(serve: Callable[[Route], Fake], tmp_path: Path) -> None:
    """A 401 (no back-off of its own) must not turn the gateway's requests into a retry loop; receipts say why."""
    fake = serve(lambda p, q, h: js({"message": "no"}, 401))
    f = feed("electricitymaps", fake, tmp_path, EM_ENV, fetch="background")
    ctx = Context(Place(zone="FR"), grid=f)
    first = estimate_footprint(REQ, ctx, at=t("2026-01-15T03:20:00Z"))
    assert "grid-feed-pending" in first.warnings
    f.wait_for_fetches()
    asked = len(fake.requests)
    assert asked >= 1
    for minute in range(20, 60, 5):  # the rest of the hour: answered from memory, the provider left alone
        fp = estimate_footprint(REQ, ctx, at=t(f"2026-01-15T03:{minute:02d}:00Z"))
        f.wait_for_fetches()
    assert len(fake.requests) == asked
    assert "grid-feed-unauthorised" in fp.warnings and fp.grid.resolution == "annual"
