"""Demo ledger, reports and plans: totals equal the records, a plan matches a hand computation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wattlens.factors import builtin
from wattlens.ledger import open_ledger
from wattlens.report import build, period_bounds
from wattlens.report.demo import records, write_demo
from wattlens.report.plan import Scenario, per_query, project
from wattlens.report.render import write


@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    assert write_demo(str(path), ["gpt-4o-mini", "claude-haiku-4-5"], ["FR", "PL"], limit=3000) == 3000
    return path


def test_report_totals_equal_the_sum_of_the_records(demo_ledger: Path) -> None:
    led = open_ledger(demo_ledger)
    recs = list(led.records())
    led.close()
    r = build(recs, ["model", "zone", "team"])
    for q, path in (
        ("energy_wh", ("energy_wh",)),
        ("carbon_location_g", ("carbon_g", "location")),
        ("carbon_embodied_g", ("carbon_g", "embodied")),
    ):
        for b in ("low", "mid", "high"):
            by_hand = 0.0
            for x in recs:
                d = x["footprint"]
                for p in path:
                    d = d[p]
                by_hand += d[b]
            assert r.total[q][b] == pytest.approx(by_hand, rel=1e-12)
            assert sum(g[q][b] for g in r.groups["zone"].values()) == pytest.approx(by_hand, rel=1e-12)
    assert r.total["requests"] == 3000 and r.total["methods"]["estimated"] == 3000
    assert set(r.groups["zone"]) == {"FR", "PL"}
    assert r.total["energy_wh"]["low"] <= r.total["energy_wh"]["mid"] <= r.total["energy_wh"]["high"]
    assert sum(r.mix.values()) == pytest.approx(1.0)
    assert r.hosting["purchased"]["requests"] == 3000  # API models: Scope 3


def test_report_formats(demo_ledger: Path, tmp_path: Path) -> None:
    r = build(open_ledger(demo_ledger).records(), ["model", "day"], "demo")
    md = write(r, "md", None, builtin())
    assert md is not None and "## Totals" in md and "Scope 3, category 1" in md
    assert "Our World in Data" in md and "EcoLogits" in md  # every factor used, with its source
    data = json.loads(write(r, "json", None, builtin()) or "")
    assert data["total"]["requests"] == 3000 and data["intensity"]["energy_wh"]["per_1000_queries"]["mid"] > 0
    csv_text = write(r, "csv", None, builtin()) or ""
    assert csv_text.splitlines()[1].startswith("total,all,3000")
    html_path = tmp_path / "r.html"
    write(r, "html", str(html_path), builtin())
    html = html_path.read_text()
    assert "<table>" in html and "data:image/png;base64," in html  # figures embedded
    pdf_path = tmp_path / "r.pdf"
    write(r, "pdf", str(pdf_path), builtin())
    assert pdf_path.read_bytes().startswith(b"%PDF") and pdf_path.stat().st_size > 10_000


def test_period_bounds() -> None:
    assert period_bounds("2026-10", None, None)[:2] == ("2026-10-01", "2026-11-01")
    assert period_bounds("2026-12", None, None)[:2] == ("2026-12-01", "2027-01-01")
    assert period_bounds("2026", None, None)[:2] == ("2026-01-01", "2027-01-01")


def test_demo_records_follow_the_trace() -> None:
    first = next(records(["gpt-4o-mini"], ["FR"], limit=1))
    assert first["tokens"]["input"] == 374 and first["tokens"]["output"] == 44  # the trace's first request
    assert first["footprint"]["grid"]["zone"] == "FR"


def test_plan_reproduces_a_hand_computed_case() -> None:
    s = Scenario(
        users=1000,
        queries_per_user_per_day=10,
        input_tokens=500,
        output_tokens=300,
        models={"gpt-4o-mini": 1.0},
        growth_per_year=0.5,
        years=3,
        zone="PL",
        decarbonisation_per_year=0.1,
        renewable_share=0.25,
        router_saving=0.2,
    )
    q = per_query(s)
    years = project(s, q, peak_ratio=1.5)
    y3 = years[2]
    users = 1000 * 1.5**2
    queries = users * 10 * 365
    mwh = q.facility_wh.mid * queries * 0.8 / 1e6
    assert y3.users == pytest.approx(2250.0) and y3.queries == pytest.approx(8_212_500.0)
    assert y3.energy_mwh.mid == pytest.approx(mwh, rel=1e-12)
    assert y3.average_mw.mid == pytest.approx(mwh / 8760, rel=1e-12)
    assert y3.peak_mw.mid == pytest.approx(mwh / 8760 * 1.5, rel=1e-12)
    carbon = mwh * q.intensity_g_per_kwh * 0.9**2 / 1000
    assert y3.carbon_t.mid == pytest.approx(carbon, rel=1e-12)
    assert y3.carbon_market_t.mid == pytest.approx(carbon * 0.75, rel=1e-12)
    assert y3.water_m3.mid == pytest.approx(q.water_ml.mid * queries * 0.8 / 1e6, rel=1e-12)
    assert q.zone == "PL"


def test_plan_cli_with_scenarios(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text('[[scenarios]]\nname = "base"\n[[scenarios]]\nname = "router"\nrouter_saving = 0.5\n')
    out = tmp_path / "p.csv"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wattlens.cli",
            "plan",
            "--users",
            "5000",
            "--years",
            "2",
            "--zone",
            "FR",
            "--scenarios",
            str(sc),
            "--csv",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    base = [x for x in rows if x["scenario"] == "base"]
    routed = [x for x in rows if x["scenario"] == "router"]
    assert routed[0]["energy_mwh_mid"] == pytest.approx(base[0]["energy_mwh_mid"] * 0.5)
    assert len(out.read_text().splitlines()) == 5
    bad = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "plan", "--model", "gpt-4o=0.5"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "sum to 1" in bad.stderr


def test_disclose_sums_training_receipts_and_reads_the_ledger(demo_ledger: Path, tmp_path: Path) -> None:
    from wattlens.receipt import LLMRequest, Place, estimate_footprint
    from wattlens.report.disclose import document, inference, markdown, training

    fp = estimate_footprint(LLMRequest(model="gpt-4o-mini", input_tokens=10, output_tokens=10), Place(zone="FR"))
    for i in range(2):
        (tmp_path / f"run{i}.json").write_text(json.dumps(fp.as_dict()))
    t = training([tmp_path / "run0.json", tmp_path / "run1.json"], None, "estimated")
    assert t is not None and t["runs"] == 2
    # Receipts carry six significant digits, so the sum matches to that precision.
    assert t["energy_kwh"]["mid"] == pytest.approx(2 * fp.facility_wh.mid / 1000, rel=1e-5)
    recs = list(open_ledger(demo_ledger).records())
    i = inference("gpt-4o-mini", recs)
    mine = [r for r in recs if r["model_served"] == "gpt-4o-mini"]
    by_hand = sum(r["footprint"]["facility_wh"]["mid"] for r in mine) / len(mine) * 1000
    assert i["queries"] == len(mine) and i["per_1000_queries_wh"]["mid"] == pytest.approx(by_hand)
    md = markdown(document("gpt-4o-mini", t, i, None))
    assert "Annex XI" in md and "method: estimated" in md
    assert training([], 1200.0, "measured")["energy_kwh"]["mid"] == 1200.0  # type: ignore[index]


def test_columnar_report_equals_the_python_one(demo_ledger: Path, tmp_path: Path) -> None:
    from wattlens.ledger.export import export
    from wattlens.report.columnar import build_from_parquet

    pq = tmp_path / "l.parquet"
    led = open_ledger(demo_ledger)
    export(led.records(), "parquet", str(pq))
    py = build(led.records(), ["model", "zone", "day"])
    led.close()
    col = build_from_parquet(pq, ["model", "zone", "day"], factors=builtin())
    assert col.total["requests"] == py.total["requests"] and col.users == py.users
    for q in ("energy_wh", "carbon_location_g", "carbon_embodied_g", "water_ml"):
        for b in ("low", "mid", "high"):
            assert col.total[q][b] == pytest.approx(py.total[q][b], rel=1e-9)
            for k, g in py.groups["zone"].items():
                assert col.groups["zone"][k][q][b] == pytest.approx(g[q][b], rel=1e-9)
    assert col.total["tokens"] == py.total["tokens"] and col.total["methods"] == py.total["methods"]
    for s, v in py.mix.items():
        assert col.mix[s] == pytest.approx(v, abs=1e-6)
