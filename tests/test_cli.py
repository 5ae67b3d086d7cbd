"""The command line, run for real as a user would: exit codes, JSON, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattlens.receipt import LLMRequest, Place, estimate_footprint


def wl(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattlens.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
    )


def test_estimate_json_matches_library() -> None:
    r = wl(
        "estimate",
        "--model",
        "gpt-4o-mini",
        "--input-tokens",
        "800",
        "--output-tokens",
        "400",
        "--zone",
        "FR",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = estimate_footprint(LLMRequest(model="gpt-4o-mini", input_tokens=800, output_tokens=400), Place(zone="FR"))
    assert got == json.loads(json.dumps(want.as_dict()))
    assert got["method"] == "estimated" and got["grid"]["zone"] == "FR"


def test_estimate_table_shows_every_quantity() -> None:
    r = wl("estimate", "--example")
    assert r.returncode == 0, r.stderr
    for word in (
        "energy (IT)",
        "carbon, location-based",
        "carbon, market-based",
        "carbon, embodied",
        "water, on-site",
        "water, off-site",
        "nuclear",
        "boundary",
    ):
        assert word in r.stdout


def test_estimate_for_a_model_outside_the_catalogue() -> None:
    r = wl(
        "estimate",
        "--active-params",
        "70",
        "--total-params",
        "70",
        "--precision",
        "bf16",
        "--hardware",
        "H100",
        "--gpus",
        "4",
        "--batch",
        "64",
        "--input-tokens",
        "250",
        "--output-tokens",
        "350",
        "--boundary",
        "accelerator",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["boundary"] == ["accelerator", "embodied"]
    assert "model-not-in-catalogue" in d["warnings"]
    assert d["energy_wh"]["low"] < d["energy_wh"]["mid"] < d["energy_wh"]["high"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["estimate", "--model", "gpt-4o-mni", "--output-tokens", "10"], "gpt-4o-mini"),
        (["estimate", "--model", "gpt-4o-mini", "--zone", "Frnace"], "FR"),
        (["estimate", "--model", "gpt-4o-mini", "--region", "us-east-9"], "us-east-"),
        (["estimate", "--model", "gpt-4o-mini", "--hardware", "H1000"], "H100"),
        (["estimate", "--model", "gpt-4o-mini", "--pue", "0.5"], "PUE"),
        (["estimate", "--output-tokens", "10"], "--model"),
        (["estimate", "--model", "gpt-4o-mini", "--input-tokens", "-3"], "input-tokens"),
        (["estimate", "--model", "gpt-4o-mini", "--zone", "XX"], "`wattlens zones` lists them"),
        (["estimate", "--model", "gpt-4o-mini", "--facility", "nasa"], "google"),
        (["zones", "--kind", "planet"], "us-state"),
        (["regions", "--provider", "foo"], "azure"),
        (["verify", "--ledger", "missing.db"], "[ledger] location"),  # brackets are text, not markup
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: list[str], needle: str) -> None:
    r = wl(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_listing_commands() -> None:
    zones = json.loads(wl("zones", "--kind", "us-state", "--json").stdout)
    assert len(zones) >= 50 and all(z["zone"].startswith("US-") for z in zones)
    models = json.loads(wl("models", "claude", "--json").stdout)
    assert models and all(m["provider"] == "anthropic" for m in models)
    assert "H100-SXM" in wl("hardware").stdout
    regions = json.loads(wl("regions", "--provider", "azure", "--json").stdout)
    assert len(regions) >= 25


def test_config_file_and_environment(tmp_path: Path) -> None:
    cfg = '[defaults]\nzone = "SE"\nfacility = "google"\n[market]\nrenewable_share = 1.0\n'
    (tmp_path / "wattlens.toml").write_text(cfg)
    d = json.loads(wl("estimate", "--model", "gpt-4o", "--output-tokens", "100", "--json", cwd=tmp_path).stdout)
    assert d["grid"]["zone"] == "SE" and d["carbon_g"]["market"]["mid"] == 0.0
    d2 = json.loads(
        wl(
            "estimate",
            "--model",
            "gpt-4o",
            "--output-tokens",
            "100",
            "--json",
            cwd=tmp_path,
            env={"WATTLENS_ZONE": "NO"},
        ).stdout
    )
    assert d2["grid"]["zone"] == "NO"
    (tmp_path / "wattlens.toml").write_text("[defaults\n")
    r = wl("estimate", "--example", cwd=tmp_path)
    assert r.returncode == 2 and "not valid TOML" in r.stderr


def test_user_factor_file_changes_the_receipt(tmp_path: Path) -> None:
    f = tmp_path / "zones_contract.csv"
    f.write_text("zone,intensity_g_per_kwh,source\nPL,100,our supplier's 2025 disclosure\n")
    base = json.loads(wl("estimate", "--example", "--zone", "PL", "--json").stdout)
    mine = json.loads(wl("estimate", "--example", "--zone", "PL", "--factors", str(f), "--json").stdout)
    assert mine["grid"]["intensity_g_per_kwh"] == 100.0
    assert mine["carbon_g"]["location"]["mid"] < base["carbon_g"]["location"]["mid"]
    assert mine["factors_version"].endswith("+user")


def test_help_lists_commands() -> None:
    r = wl("--help")
    for cmd in ("estimate", "zones", "models", "hardware", "regions", "sensors", "run"):
        assert cmd in r.stdout
    # help text is printed as written: "[[upstreams]]" once came out as "[]"
    assert "[[upstreams]]" in " ".join(wl("serve", "--help").stdout.split())


def test_estimate_without_tokens_says_so() -> None:
    r = wl("estimate", "--model", "gpt-4o-mini", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["tokens"]["input"] == 0
    assert "no tokens given" in r.stderr


def test_sensors_command_explains_each_backend() -> None:
    r = wl("sensors", "--json")
    assert r.returncode == 0, r.stderr
    probes = {p["backend"]: p for p in json.loads(r.stdout)}
    assert {"nvml", "amdsmi", "rapl"} <= set(probes)
    assert all(p["reason"] for p in probes.values())


def test_run_passes_exit_code_and_prints_receipt_to_stderr() -> None:
    r = wl(
        "run",
        "--zone",
        "FR",
        "--json",
        "--",
        sys.executable,
        "-c",
        "import sys; s=sum(i*i for i in range(300000)); print('out'); sys.exit(5)",
    )
    assert r.returncode == 5
    assert r.stdout.strip() == "out"  # the command's output is untouched
    d = json.loads(r.stderr)
    assert d["grid"]["zone"] == "FR" and d["run"]["returncode"] == 5
    assert d["method"] in ("measured", "estimated", "mixed")
    assert d["energy_wh"]["low"] <= d["energy_wh"]["mid"] <= d["energy_wh"]["high"]
    assert d["run"]["attribution"]


def test_run_without_command_or_with_unknown_command() -> None:
    r = wl("run")
    assert r.returncode == 2 and "command" in r.stderr
    r = wl("run", "--", "no-such-command-xyz")
    assert r.returncode == 2 and "command not found" in r.stderr and "Traceback" not in r.stderr


def test_run_records_its_receipt_in_the_ledger(tmp_path: Path) -> None:
    from wattlens.ledger import open_ledger

    db = tmp_path / "l.db"
    r = wl("run", "--zone", "FR", "--ledger", str(db), "--", sys.executable, "-c", "pass")
    assert r.returncode == 0, r.stderr
    recs = list(open_ledger(db).records())
    assert len(recs) == 1 and recs[0]["hosting"] == "own" and recs[0]["footprint"]["grid"]["zone"] == "FR"
