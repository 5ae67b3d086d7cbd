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
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        return  # the PDF needs WeasyPrint and Pango (.ci/run installs them); test_pdf_is_typeset... says so
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
    for h, g in py.hosting.items():  # a loop variable once replaced this dict by a string: every renderer failed
        assert col.hosting[h]["requests"] == g["requests"]
        assert col.hosting[h]["energy_wh"]["mid"] == pytest.approx(g["energy_wh"]["mid"], rel=1e-9)
    for fmt in ("md", "csv", "json", "html"):
        assert write(col, fmt, None, builtin()), fmt
    rows = [str(write(r, "csv", None, builtin())).splitlines() for r in (col, py)]
    assert [x.split(",")[:3] for x in rows[0]] == [x.split(",")[:3] for x in rows[1]]  # same rows (sums: float order)


# -- honest numbers, empty periods, records without a receipt, tags, the typeset PDF ---------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the wattlens command in this process: (exit code, stdout, stderr)."""
    from wattlens.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_numbers_pick_a_unit_and_significant_digits() -> None:
    from wattlens.report import numbers

    # The dashboard's old "2.17e+3 mL (448–1.78e+4)": 2,170 mL is 2.17 L; bounds in the middle's unit.
    assert numbers.interval(2170.0, 448.0, 17800.0, "mL") == "2.2 L (0.45–18 L)"
    assert numbers.quantity(0.0023, "MW") == "2.3 kW"  # the plan's old "0.0023 MW"
    assert numbers.quantity(1_234_567.0, "Wh") == "1.2 MWh"
    assert numbers.quantity(5e9, "mL") == "5,000 m³"  # m³ is the top of the water ladder
    assert numbers.quantity(0.31, "Wh") == "0.31 Wh"  # below 1 the base unit stays
    assert numbers.quantity(448.0, "mL") == "448 mL"  # whole digits are not rounded away
    assert numbers.quantity(9.96, "Wh") == "10 Wh"  # rounding up does not add a digit
    assert numbers.quantity(2500.0, "gCO2e") == "2.5 kgCO2e"
    assert numbers.counts({"estimated": 1, "measured": 0}) == "estimated 1 (100 %)"
    assert numbers.share(3, 1000) == "0.30 %"


def test_empty_period_report_and_export_say_so(
    demo_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattlens.ledger.export import COLUMNS

    pdf = tmp_path / "oct.pdf"
    code, _, err = cli(
        capsys, "report", "--ledger", str(demo_ledger), "--period", "2020-10", "--format", "pdf", "-o", str(pdf)
    )
    assert code == 1 and "no records in 2020-10" in err and not pdf.exists()
    code, out, _ = cli(capsys, "report", "--ledger", str(demo_ledger), "--period", "2020-10", "--allow-empty")
    assert code == 0 and "No records in this period" in out
    csv_path = tmp_path / "e.csv"
    args = ("ledger", "export", "--ledger", str(demo_ledger), "--since", "2020-01-01", "--until", "2020-02-01")
    code, _, err = cli(capsys, *args, "--format", "csv", "-o", str(csv_path))
    assert code == 1 and "no records" in err and not csv_path.exists()
    code, _, _ = cli(capsys, *args, "--format", "csv", "-o", str(csv_path), "--allow-empty")
    assert code == 0 and csv_path.read_text().splitlines() == [",".join(COLUMNS)]  # the header, nothing else
    pq_path = tmp_path / "e.parquet"
    code, _, _ = cli(capsys, *args, "--format", "parquet", "-o", str(pq_path), "--allow-empty")
    import pyarrow.parquet as pq

    table = pq.read_table(pq_path)
    assert code == 0 and table.num_rows == 0 and table.schema.names == list(COLUMNS)


def _records(demo_ledger: Path, n: int) -> list[dict[str, object]]:
    led = open_ledger(demo_ledger)
    try:
        return [r for _, r in zip(range(n), led.records(), strict=False)]
    finally:
        led.close()


def test_report_states_records_without_a_receipt_and_why(demo_ledger: Path) -> None:
    import copy

    recs = _records(demo_ledger, 40)
    failed = []
    for i, outcome in enumerate(["upstream_error"] * 3 + ["client_disconnected"]):
        r = copy.deepcopy(recs[i])
        r.update(footprint=None, outcome=outcome, id=f"x{i}")
        failed.append(r)
    r = build(recs + failed, ["model"], "test")
    assert r.total["requests"] == 44 and r.total["with_receipt"] == 40
    assert sum(r.missing.values()) == 4 and len(r.missing) == 2
    md = write(r, "md", None, builtin()) or ""
    assert "**4 of 44 records (9.1 %) carry no receipt**" in md  # 4 / 44 = 9.09 %
    assert "the upstream answered with an error" in md and ": 3 (6.8 %)" in md  # 3 / 44 = 6.82 %


def test_report_by_free_form_tag_collapses_overflow_into_other(demo_ledger: Path, tmp_path: Path) -> None:
    from wattlens.ledger.export import export
    from wattlens.ledger.summary import TAG_VALUES_MAX, summarise
    from wattlens.report.columnar import build_from_parquet

    recs = _records(demo_ledger, 120)
    for i, rec in enumerate(recs):
        rec["tags"] = {"project": f"p{i % 30:02d}"} if i % 4 else {}  # 30 values, a quarter untagged
    r = build(recs, ["tag:project"], "test")
    groups = r.groups["tag:project"]
    assert len(groups) == TAG_VALUES_MAX and "other" in groups and "-" in groups  # "-": no such tag
    assert sum(g["requests"] for g in groups.values()) == 120
    by_hand = sum(float(x["footprint"]["energy_wh"]["mid"]) for x in recs)  # type: ignore[index]
    assert sum(g["energy_wh"]["mid"] for g in groups.values()) == pytest.approx(by_hand, rel=1e-12)
    assert groups["-"]["requests"] == 30  # the largest group is never collapsed
    assert summarise(recs, "tag:project")["groups"].keys() == groups.keys()  # the dashboard's API agrees
    pq_path = tmp_path / "t.parquet"
    export(recs, "parquet", str(pq_path))
    col = build_from_parquet(pq_path, ["tag:project"], factors=builtin())
    assert col.groups["tag:project"].keys() == groups.keys()
    for k, g in groups.items():
        assert col.groups["tag:project"][k]["energy_wh"]["mid"] == pytest.approx(g["energy_wh"]["mid"], rel=1e-9)
    assert "## By tag project" in (write(r, "md", None, builtin()) or "")
    with pytest.raises(Exception, match="tag:NAME"):
        build(recs, ["colour"], "test")


def test_pdf_is_typeset_from_the_html(demo_ledger: Path, tmp_path: Path) -> None:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        pytest.skip("WeasyPrint or the Pango libraries are not installed")
    from pypdf import PdfReader

    r = build(_records(demo_ledger, 300), ["model", "day"], "2023-11")
    r.checkpoint = "Merkle log of 300 records, root test"
    pdf_path = tmp_path / "r.pdf"
    write(r, "pdf", str(pdf_path), builtin())
    pages = [p.extract_text() for p in PdfReader(pdf_path).pages]
    text = "\n".join(pages)
    for markdown_syntax in ("|---", "**", "# ", "| quantity |"):
        assert markdown_syntax not in text, markdown_syntax
    assert "Contents" in pages[0] and "Totals" in text and "Appendix" in text
    assert all("AI footprint report: 2023-11" in p for p in pages)  # the running header names the period
    assert all("Merkle log of 300 records" in p for p in pages)  # and the ledger's checkpoint
    assert f"of {len(pages)}" in pages[-1]  # page numbers


def test_plan_says_what_it_assumes_and_refuses_a_false_smaller_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattlens.report.plan import check_labels

    base = Scenario(models={"gpt-4o-mini": 1.0}, zone="US-VA")
    q = per_query(base)
    assert [m.model for m in q.models] == ["gpt-4o-mini"] and q.models[0].hardware and q.grid_year
    # Which of two models is smaller is decided by the estimator's figures, not by the name.
    pair = {m: per_query(Scenario(models={m: 1.0}, zone="US-VA")).facility_wh.mid for m in ("gpt-4o-mini", "gpt-5-nano")}
    big, small = sorted(pair, key=lambda m: -pair[m])
    b = Scenario(name="base", models={small: 1.0}, zone="US-VA")
    s = Scenario(name="smaller model", models={big: 1.0}, zone="US-VA")
    with pytest.raises(Exception, match="labelled as smaller"):
        check_labels([(b, per_query(b)), (s, per_query(s))])
    check_labels([(s, per_query(s)), (Scenario(name="smaller model", models={small: 1.0}, zone="US-VA"), per_query(b))])
    args = ("plan", "--users", "1000", "--years", "1", "--zone", "US-VA", "--model", "gpt-4o-mini=1")
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "assumptions of each scenario" in out and "e+" not in out  # no exponent notation
    code, out, _ = cli(capsys, *args, "--json")
    row = json.loads(out)[0]
    assert row["models"].startswith("gpt-4o-mini=1 (H100") and row["grid"].startswith("US-VA 2023")
    assert (row["input_tokens"], row["output_tokens"]) == (500, 300)
    assert row["facility_wh_per_query_mid"] == pytest.approx(q.facility_wh.mid)
    sc = tmp_path / "docs-example.toml"
    sc.write_text(Path(__file__).parents[1].joinpath("docs/figures/plan-scenarios.toml").read_text())
    code, _, err = cli(capsys, "plan", "--years", "1", "--zone", "US-VA", "--scenarios", str(sc))
    assert code == 0, err  # the docs' example keeps its word: its "smaller model" is smaller


def test_the_pages_format_numbers_like_the_reports(tmp_path: Path) -> None:
    import shutil

    from wattlens.report import numbers

    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    common = Path(__file__).parents[1] / "src/wattlens/web/common.js"
    cases = [
        (2170.0, "mL"),
        (448.0, "mL"),
        (17800.0, "mL"),
        (9.96, "Wh"),
        (0.0361, "Wh"),
        (1_234_567.0, "Wh"),
        (5e9, "mL"),
        (0.00001234, "Wh"),
        (2.5e4, "gCO2e"),
        (731.0, "W"),
        (0.0, "Wh"),
    ]
    script = tmp_path / "fmt.js"
    script.write_text(
        common.read_text().replace('"use strict";', "")
        + f"\nconsole.log(JSON.stringify({json.dumps(cases)}.map(([x, u]) => qty(x, u))));\n"
    )
    shown = json.loads(subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout)
    assert shown == [numbers.quantity(x, u) for x, u in cases]


def test_the_dashboard_time_axis_adapts_to_the_range(tmp_path: Path) -> None:
    """web/dashboard.js picks minutes for an hour, hours for a day, days for a month, months for years."""
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    from wattlens.ledger.summary import key_of

    web = Path(__file__).parents[1] / "src/wattlens/web"
    stub = """
const el = () => ({ addEventListener() {}, value: "model", hidden: true, textContent: "", innerHTML: "",
  querySelector: () => ({ innerHTML: "", appendChild() {} }) });
globalThis.document = { getElementById: el, createElement: el };
globalThis.setInterval = () => 0;
globalThis.fetch = async (url) => {
  const by = new URL(url, "http://x").searchParams.get("by");
  const groups = {};
  for (const r of RECORDS) {
    const g = groups[r[by]] || (groups[r[by]] = { energy_wh: { low: 0, mid: 0, high: 0 } });
    g.energy_wh.mid += 1;
  }
  return { ok: true, json: async () => ({ groups, total: {} }) };
};
"""
    results = {}
    for name, step_s, n in (("hour", 60, 60), ("day", 600, 144), ("month", 6 * 3600, 120), ("years", 5 * 86400, 150)):
        import datetime as dt

        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        recs = []
        for i in range(n):
            ts = (start + dt.timedelta(seconds=i * step_s)).isoformat()
            recs.append({by: key_of({"ts": ts}, by) for by in ("minute", "hour", "day", "month")})
        script = tmp_path / f"{name}.js"
        script.write_text(
            f"const RECORDS = {json.dumps(recs)};\n"
            + stub
            + (web / "common.js").read_text().replace('"use strict";', "")
            + (web / "dashboard.js").read_text().replace('"use strict";', "").replace("load().catch", "(() => {}).call")
            + "\nseries().then((s) => console.log(JSON.stringify(\n"
            + "  [s.res.by, s.points.length, s.points.reduce((a, p) => a + p.e.mid, 0)])));\n"
        )
        run = subprocess.run([node, str(script)], capture_output=True, text=True, check=True)
        results[name] = json.loads(run.stdout)
    assert results["hour"] == ["minute", 60, 60]  # a one-hour trace: one point per minute, every record counted
    assert results["day"][0] == "hour" and results["day"][2] == 144
    assert results["month"][0] == "day" and results["month"][2] == 120
    assert results["years"][0] == "month" and results["years"][2] == 150
    assert results["years"][1] == 25  # every month from the first to the last, empty ones included


def test_report_with_contracts_shows_the_hourly_matching_of_its_records(
    demo_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --contracts` prints what grid.contracts computes on the same records (CFE score, hourly vs annual)."""
    import datetime as dt

    from wattlens.config import load_settings
    from wattlens.grid import contracts as cx

    led = open_ledger(demo_ledger)
    recs = list(led.records())
    led.close()
    first = min(dt.datetime.fromisoformat(str(r["ts"])) for r in recs).astimezone(dt.UTC)
    hour = first.replace(minute=0, second=0, microsecond=0)
    f = tmp_path / "contracts.csv"
    f.write_text(
        "zone,start,end,volume_mwh,kind,technology,source\n"
        f"FR,{hour:%Y-%m-%dT%H:00:00Z},{hour + dt.timedelta(hours=1):%Y-%m-%dT%H:00:00Z},0.00001,ppa,solar,test PPA\n"
        f"FR,{hour.year}-01-01T00:00:00Z,{hour.year + 1}-01-01T00:00:00Z,0.001,eac,hydro,test GOs\n"
    )
    code, out, err = cli(capsys, "report", "--ledger", str(demo_ledger), "--contracts", str(f), "--format", "json")
    assert code == 0, err
    shown = json.loads(out)["cfe"]
    expected = cx.match_records(recs, cx.load(f), load_settings().context()).as_dict()
    assert shown["cfe_score"] == pytest.approx(expected["cfe_score"])
    assert shown["carbon_g"] == pytest.approx(expected["carbon_g"])
    assert 0 < shown["hourly_matched_share"] <= shown["annual_matched_share"] <= 1  # a year's GOs cover more
    code, md, _ = cli(capsys, "report", "--ledger", str(demo_ledger), "--contracts", str(f))
    assert code == 0 and "## Contracts and 24/7 carbon-free energy" in md and "CFE score" in md


def test_demo_report_shows_the_hour_profile_and_the_cfe_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "demo.md"
    code, _, err = cli(capsys, "demo", "--ledger", str(tmp_path / "d.db"), "--limit", "300", "--report", str(md))
    assert code == 0, err
    text = md.read_text()
    assert "## Hour of day (UTC)" in text and "| CFE score |" in text and "illustrative" in text
