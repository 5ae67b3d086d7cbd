"""Configuration is read once at the edge and reaches every command, instrument() and every computation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import upstream as up

import wattlens
from wattlens.config import load_settings
from wattlens.errors import ConfigError

HW = (
    "hardware_id,kind,max_power_w,memory_gb,memory_bandwidth_tb_per_s,bf16_tflops,"
    "embodied_kg_low,embodied_kg_mid,embodied_kg_high,lifetime_years_low,lifetime_years_mid,lifetime_years_high,source\n"
    "MYCHIP-X,accelerator,500,96,4.0,1200,100,150,200,3,4,5,our datasheet 2026\n"
)


def wl(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WATTLENS_")}
    return subprocess.run(
        [sys.executable, "-m", "wattlens.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "COLUMNS": "200", **env},
        cwd=cwd,
    )


def test_a_users_hardware_file_reaches_the_estimator(tmp_path: Path) -> None:
    hw = tmp_path / "hardware_ours.csv"
    hw.write_text(HW)
    args = ["estimate", "--active-params", "8", "--hardware", "MYCHIP-X", "--gpus", "1", "--output-tokens", "100"]
    r = wl(*args, "--factors", str(hw), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "hardware-uncalibrated" in d["warnings"] and d["factors_version"].endswith("+user")
    # Through the library, the same file gives the same receipt.
    from wattlens.factors import load
    from wattlens.receipt import LLMRequest, estimate_footprint

    fs = load([hw])
    fp = estimate_footprint(LLMRequest(active_params_b=8, hardware="MYCHIP-X", gpus=1, output_tokens=100), factors=fs)
    assert fp.energy_wh.as_dict() == d["energy_wh"]
    # Without the file the chip is unknown.
    assert wl(*args, cwd=tmp_path).returncode == 2


def test_settings_precedence_flags_over_environment_over_file(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('[defaults]\nzone = "SE"\nfacility = "google"\nboundary = "server"\n[market]\nrenewable_share = 0.5\n')
    s = load_settings(f, env={})
    assert (s.place.zone, s.place.facility, s.place.renewable_share, s.boundary) == ("SE", "google", 0.5, "server")
    s = load_settings(f, env={"WATTLENS_ZONE": "NO"})
    assert s.place.zone == "NO" and s.place.facility == "google"
    s = load_settings(f, env={"WATTLENS_ZONE": "NO"}, zone="FR", boundary="accelerator")
    assert s.place.zone == "FR" and s.boundary == "accelerator"
    s = load_settings(f, env={"WATTLENS_REGION": "us-east-1"})  # a region replaces the file's zone: one location
    assert s.place.zone is None and s.place.region == "us-east-1"


@pytest.mark.parametrize(
    ("text", "nearest"),
    [
        ('[defaults]\nfacilty = "google"\n', "facility"),
        ('[defualts]\nzone = "FR"\n', "defaults"),
        ("[market]\nrenewable = 0.5\n", "renewable_share"),
        ('[[upstreams]]\nbase_url = "http://x/v1"\nzone = "FR"\nmodel = ["a"]\n', "models"),
    ],
)
def test_unknown_keys_are_errors_that_name_the_nearest(tmp_path: Path, text: str, nearest: str) -> None:
    f = tmp_path / "wattlens.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=f"did you mean '{nearest}'"):
        st = load_settings(f, env={})
        if st.data.get("upstreams"):
            from wattlens.gateway.config import gateway_config

            gateway_config(st)
    r = wl("estimate", "--example", cwd=tmp_path)
    assert r.returncode == 2 and nearest in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://user:pass@127.0.0.1:9/v1", "user or password"),
        ("http://127.0.0.1:9/v1?api-version=1", "query or fragment"),
        ("http://127.0.0.1:99999/v1", "not a URL"),
        ("ftp://127.0.0.1/v1", "http:// or https://"),
        ("/v1", "with a host"),
    ],
)
def test_an_upstream_base_url_that_would_go_astray_is_refused_at_start(tmp_path: Path, url: str, why: str) -> None:
    from wattlens.gateway.config import gateway_config

    f = tmp_path / "wattlens.toml"
    f.write_text(f'[[upstreams]]\nbase_url = "{url}"\n')
    with pytest.raises(ConfigError, match=why) as e:
        gateway_config(load_settings(f, env={}))
    assert "user:pass@" not in str(e.value)  # the password is not repeated back
    r = wl("serve", "--upstream", url, "--port", "8799", cwd=tmp_path / "..")
    assert r.returncode == 2 and why.split()[0] in r.stderr and "Traceback" not in r.stderr


@pytest.fixture()
def configured(tmp_path: Path) -> Path:
    (tmp_path / "wattlens.toml").write_text('[defaults]\nzone = "SE"\n')
    return tmp_path


def test_estimate_honours_file_and_environment(configured: Path) -> None:
    base = ["estimate", "--model", "gpt-4o", "--output-tokens", "100", "--json"]
    assert json.loads(wl(*base, cwd=configured).stdout)["grid"]["zone"] == "SE"
    assert json.loads(wl(*base, cwd=configured, WATTLENS_ZONE="NO").stdout)["grid"]["zone"] == "NO"


def test_run_honours_file_and_environment(configured: Path) -> None:
    r = wl("run", "--json", "--", sys.executable, "-c", "pass", cwd=configured)
    assert r.returncode == 0 and json.loads(r.stderr)["grid"]["zone"] == "SE"
    r = wl("run", "--json", "--", sys.executable, "-c", "pass", cwd=configured, WATTLENS_ZONE="FR")
    assert json.loads(r.stderr)["grid"]["zone"] == "FR"


def test_plan_honours_the_configured_zone(configured: Path) -> None:
    rows = json.loads(wl("plan", "--years", "1", "--json", cwd=configured).stdout)
    se = rows[0]["zone"]
    rows = json.loads(wl("plan", "--years", "1", "--json", cwd=configured, WATTLENS_ZONE="PL").stdout)
    assert (se, rows[0]["zone"]) == ("SE", "PL")


def test_report_reads_the_configured_ledger_and_factors(configured: Path) -> None:
    led = configured / "demo.db"
    assert wl("demo", "--ledger", str(led), "--limit", "20", cwd=configured).returncode == 0
    (configured / "wattlens.toml").write_text(f'[ledger]\nlocation = "{led}"\n')
    r = wl("report", "--format", "json", cwd=configured)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"]["requests"] == 20
    r = wl("verify", cwd=configured, WATTLENS_LEDGER=str(led))
    assert r.returncode == 0 and "20 records" in r.stdout


def test_serve_honours_the_configured_zone(configured: Path) -> None:
    (configured / "wattlens.toml").write_text(
        '[defaults]\nzone = "SE"\n[[upstreams]]\nname = "u"\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    from wattlens.gateway.app import Gateway
    from wattlens.gateway.config import gateway_config

    cwd = os.getcwd()
    os.chdir(configured)
    try:
        gw = Gateway(gateway_config(load_settings(env={})))
        gw_env = Gateway(gateway_config(load_settings(env={"WATTLENS_ZONE": "FR"})))
    finally:
        os.chdir(cwd)
    assert gw.contexts["u"].place.zone == "SE" and gw_env.contexts["u"].place.zone == "FR"


def test_instrument_honours_file_and_environment(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(configured)
    with up.ServerThread(up.app) as server:

        def zone_of(**kw: Any) -> str:
            c = wattlens.instrument(openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0), **kw)
            r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
            return str(r.footprint["grid"]["zone"])  # type: ignore[attr-defined]

        assert zone_of() == "SE"
        monkeypatch.setenv("WATTLENS_ZONE", "NO")
        assert zone_of() == "NO"
        assert zone_of(zone="FR") == "FR"
