"""Standard disclosures from the ledger (GHG Protocol CSV, ESRS E1, SCI for AI, model cards) and `disclose`
for any model: each total is checked against the sum of the ledger's records, computed here by hand."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from wattlens.context import Context, Place
from wattlens.factors.records import FOSSIL, RENEWABLE
from wattlens.receipt import LLMRequest, estimate_footprint
from wattlens.report import build
from wattlens.report.demo import records as demo_records
from wattlens.report.disclosures import esrs, ghg_csv, model_card, sci

BOUNDS = ("low", "mid", "high")


@pytest.fixture(scope="module")
def ledger_records() -> list[dict[str, Any]]:
    """400 demo records in two zones; every third one served from hardware you run (hosting "own")."""
    recs = [copy.deepcopy(r) for r in demo_records(["gpt-4o-mini", "claude-haiku-4-5"], ["FR", "PL"], limit=400)]
    for i, r in enumerate(recs):
        r["hosting"] = "own" if i % 3 == 0 else "purchased"
    return recs


def total(recs: list[dict[str, Any]], path: tuple[str, ...], hosting: str | None = None) -> dict[str, float]:
    out = dict.fromkeys(BOUNDS, 0.0)
    for r in recs:
        if hosting is not None and r["hosting"] != hosting:
            continue
        d: Any = r["footprint"]
        for p in path:
            d = d[p]
        for b in BOUNDS:
            out[b] += float(d[b])
    return out


def test_ghg_protocol_csv_lines_are_the_sums_of_the_records(ledger_records: list[dict[str, Any]]) -> None:
    r = build(ledger_records, ["model"], "test")
    rows = list(csv.DictReader(io.StringIO(ghg_csv(r))))
    assert [(x["scope"], x["category"], x["method"]) for x in rows] == [
        ("2", "", "location-based"),
        ("2", "", "market-based"),
        ("3", "1", "location-based"),
        ("3", "1", "embodied"),
        ("3", "2", "embodied"),
    ]
    expected = [
        total(ledger_records, ("carbon_g", "location"), "own"),
        total(ledger_records, ("carbon_g", "market"), "own"),
        total(ledger_records, ("carbon_g", "location"), "purchased"),
        total(ledger_records, ("carbon_g", "embodied"), "purchased"),
        total(ledger_records, ("carbon_g", "embodied"), "own"),
    ]
    for row, g in zip(rows, expected, strict=True):
        assert float(row["co2e_kg"]) == pytest.approx(g["mid"] / 1000, rel=1e-12)
        assert float(row["co2e_kg_low"]) == pytest.approx(g["low"] / 1000, rel=1e-12)
        assert float(row["co2e_kg_high"]) == pytest.approx(g["high"] / 1000, rel=1e-12)
    own_kwh = total(ledger_records, ("facility_wh",), "own")["mid"] / 1000
    assert float(rows[0]["activity_amount"]) == pytest.approx(own_kwh, rel=1e-12)
    assert int(rows[0]["requests"]) == sum(1 for x in ledger_records if x["hosting"] == "own") == 134
    # Every gram is on exactly one line (market-based Scope 2 replaces the location-based one).
    all_g = sum(total(ledger_records, p)["mid"] for p in (("carbon_g", "location"), ("carbon_g", "embodied")))
    assert sum(float(x["co2e_kg"]) for i, x in enumerate(rows) if i != 1) * 1000 == pytest.approx(all_g, rel=1e-12)


def test_esrs_e1_datapoints_are_the_sums_of_the_records(ledger_records: list[dict[str, Any]]) -> None:
    r = build(ledger_records, ["model"], "test")
    dps = {d["name"]: d for d in esrs(r)}
    own_wh = total(ledger_records, ("facility_wh",), "own")
    for b in BOUNDS:
        assert dps["total energy consumption related to own operations"]["value"][b] == pytest.approx(own_wh[b] / 1e6)
    # The mix of each record's grid, weighted by its facility energy (EFRAG Q&A 36: nuclear in the mix counts).
    by_hand = {"fossil": 0.0, "nuclear": 0.0, "renewable": 0.0}
    for x in ledger_records:
        if x["hosting"] != "own":
            continue
        mwh = x["footprint"]["facility_wh"]["mid"] / 1e6
        mix = x["footprint"]["grid"]["mix"]
        by_hand["fossil"] += mwh * sum(mix[s] for s in FOSSIL)
        by_hand["nuclear"] += mwh * mix["nuclear"]
        by_hand["renewable"] += mwh * sum(mix[s] for s in RENEWABLE)
    assert dps["total energy consumption from fossil sources"]["value"]["mid"] == pytest.approx(by_hand["fossil"])
    assert dps["total energy consumption from nuclear sources"]["value"]["mid"] == pytest.approx(by_hand["nuclear"])
    assert dps["total energy consumption from renewable sources"]["value"]["mid"] == pytest.approx(by_hand["renewable"])
    assert sum(by_hand.values()) == pytest.approx(own_wh["mid"] / 1e6, rel=1e-3)  # the mixes' shares sum to 1 (±rounding)
    scope2 = total(ledger_records, ("carbon_g", "location"), "own")["mid"] / 1e6
    assert dps["gross location-based Scope 2 GHG emissions"]["value"]["mid"] == pytest.approx(scope2)
    cat1 = (
        total(ledger_records, ("carbon_g", "location"), "purchased")["mid"]
        + total(ledger_records, ("carbon_g", "embodied"), "purchased")["mid"]
    ) / 1e6
    cat2 = total(ledger_records, ("carbon_g", "embodied"), "own")["mid"] / 1e6
    assert dps["total GHG emissions of AI use, location-based"]["value"]["mid"] == pytest.approx(scope2 + cat1 + cat2)


def test_sci_for_ai_per_token_and_per_query(ledger_records: list[dict[str, Any]]) -> None:
    s = sci(build(ledger_records, ["model"], "test"))
    o = total(ledger_records, ("carbon_g", "location"))
    m = total(ledger_records, ("carbon_g", "embodied"))
    tokens = sum(x["tokens"]["input"] + x["tokens"]["output"] + x["tokens"]["reasoning"] for x in ledger_records)
    assert s["R"] == {"tokens": tokens, "queries": 400}
    for b in BOUNDS:
        assert s["sci_g_per_token"][b] == pytest.approx((o[b] + m[b]) / tokens)
        assert s["sci_g_per_query"][b] == pytest.approx((o[b] + m[b]) / 400)
    e_kwh = total(ledger_records, ("facility_wh",))["mid"] / 1000
    assert s["I_g_per_kwh"] * e_kwh == pytest.approx(o["mid"])  # O = E × I


def test_disclosure_formats_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wattlens.cli import main
    from wattlens.report.demo import write_demo

    db = tmp_path / "l.db"
    write_demo(str(db), ["gpt-4o-mini"], ["FR"], limit=50)
    for fmt, marker in (("ghg-csv", "scope,category"), ("esrs", "E1-5 §37"), ("sci", "SCI per query")):
        with pytest.raises(SystemExit) as e:
            main(["report", "--ledger", str(db), "--format", fmt])
        assert e.value.code in (0, None)
        assert marker in capsys.readouterr().out


def run_disclose(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from wattlens.cli import main

    try:
        main(["disclose", *argv])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_disclose_a_model_outside_the_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_disclose(capsys, "my-model", "--training-kwh", "1200")
    assert code == 2 and "--active-params" in err  # says what to give
    code, out, _ = run_disclose(capsys, "my-model", "--active-params", "7", "--precision", "fp8", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    fp = estimate_footprint(
        LLMRequest(model="my-model", input_tokens=500, output_tokens=300, active_params_b=7, precision="fp8"), Context()
    )
    assert doc["inference"]["per_1000_queries_wh"]["mid"] == pytest.approx(fp.facility_wh.mid * 1000, rel=1e-5)
    assert "given on the command line" in doc["inference"]["basis"]
    params = tmp_path / "params.toml"
    params.write_text('[model_params."my-model"]\nactive_params_b = 7\nprecision = "fp8"\n')
    code, out, _ = run_disclose(capsys, "my-model", "--model-params", str(params), "--format", "json")
    assert json.loads(out)["inference"]["per_1000_queries_wh"] == doc["inference"]["per_1000_queries_wh"]
    code, out, _ = run_disclose(capsys, "my-model", "--active-params", "7", "--training-kwh", "1200")
    assert code == 0 and "1.20 MWh" in out and "{" not in out  # units, and no Python dict in the text


def test_disclose_an_embedding_model_uses_the_embedding_estimate_and_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_disclose(capsys, "all-MiniLM-L6-v2", "--format", "json")
    doc = json.loads(out)
    embed = estimate_footprint(LLMRequest(model="all-MiniLM-L6-v2", input_tokens=40, output_tokens=0), Context())
    chat = estimate_footprint(LLMRequest(model="all-MiniLM-L6-v2", input_tokens=500, output_tokens=300), Context())
    assert doc["inference"]["kind"] == "embedding"
    assert doc["inference"]["per_1000_queries_wh"]["mid"] == pytest.approx(
        embed.facility_wh.mid * 1000, rel=1e-5
    )  # receipts keep 6 digits
    assert doc["inference"]["per_1000_queries_wh"]["mid"] < chat.facility_wh.mid * 1000  # not the chat estimate
    # A measured Energy Score of this model (docs/energy-score.md: 0.110 Wh per 1,000, 0.057–0.184).
    score: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2",
        "task": "sentence-similarity",
        "wh_per_1000": 0.110,
        "wh_per_1000_low": 0.057,
        "wh_per_1000_high": 0.184,
        "stars": 5,
        "scale": "log",
        "method": "estimated",
        "boundary": "host (CPU and memory: no accelerator here)",
        "hardware": "cpu:model (estimated)",
        "date": "2026-11-24",
    }
    path = tmp_path / "score.json"
    path.write_text(json.dumps(score))
    code, out, _ = run_disclose(capsys, "all-MiniLM-L6-v2", "--score", str(path))
    assert code == 0 and "1,000 embedding queries" in out and "sentence-similarity: 0.110" in out
    ratio = 0.110 / (embed.facility_wh.mid * 1000)
    from wattlens.report.numbers import number

    assert f"The score is {number(ratio, 2)} ×" in out
    path.write_text(json.dumps({**score, "task": "text-generation"}))
    code, _, err = run_disclose(capsys, "all-MiniLM-L6-v2", "--score", str(path))
    assert code == 2 and "embedding model" in err  # a chat score does not describe an embedding model
    code, out, _ = run_disclose(capsys, "all-MiniLM-L6-v2", "--score", str(path), "--kind", "chat")
    assert code == 0 and "1,000 chat queries" not in out and "1,000 queries" in out


def test_model_card_metadata_in_grams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fp = estimate_footprint(LLMRequest(model="gpt-4o-mini", input_tokens=1000, output_tokens=1000), Place(zone="FR"))
    receipts = []
    for i in range(3):
        p = tmp_path / f"run{i}.json"
        p.write_text(json.dumps(fp.as_dict()))
        receipts += ["--training-receipt", str(p)]
    code, out, _ = run_disclose(capsys, "gpt-4o-mini", *receipts, "--format", "model-card")
    assert code == 0 and out.startswith("---\nco2_eq_emissions:\n")
    meta = out.split("---")[1]
    grams = float(meta.split("\n  emissions:")[1].split()[0])
    # Hugging Face wants grams: three receipts' location-based carbon (six significant digits in receipts).
    assert grams == pytest.approx(3 * fp.carbon_location_g.mid, rel=1e-4)
    assert 'geographical_location: "FR"' in meta and "## Energy" in out
    doc = {"training": None, "inference": {"per_1000_queries_wh": {"low": 1, "mid": 2, "high": 3}, "basis": "x"}}
    assert "co2_eq_emissions" not in model_card({**doc, "energy_score": None})  # nothing to state: no metadata
