"""A plugin package installed in the test environment adds a grid feed and a protocol; wattlens uses both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding the plugin as pip installs it: the module and a .dist-info with its entry point."""
    d = tmp_path_factory.mktemp("site")
    shutil.copy(HERE / "plugin_example" / "wattlens_example_plugin.py", d)
    info = d / "wattlens_example_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wattlens-example-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[wattlens]\nexample = wattlens_example_plugin\n")
    return d


def run(site: Path, code: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **env},
    )


def test_the_plugin_is_found_through_its_entry_point(site: Path) -> None:
    r = run(site, "from wattlens.plugins import registry; r = registry(); print(sorted(r.grid_feeds), sorted(r.protocols))")
    assert r.returncode == 0, r.stderr
    feeds = "['annual', 'csv', 'electricitymaps', 'entsoe', 'flat-100', 'ukci', 'watttime']"
    assert r.stdout.strip() == f"{feeds} ['anthropic', 'echo', 'openai']"


def test_the_configured_grid_feed_prices_the_receipt(site: Path, tmp_path: Path) -> None:
    (tmp_path / "wattlens.toml").write_text('[defaults]\nzone = "PL"\n[grid]\nfeed = "flat-100"\n')
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "estimate", "--example", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {k: d["grid"][k] for k in ("zone", "year", "intensity_g_per_kwh", "mix")} == {
        "zone": "PL",
        "year": 2026,
        "intensity_g_per_kwh": 100.0,
        "mix": {"wind": 1.0},
    }
    # carbon = facility Wh x 100 g/kWh / 1000, bound by bound
    for b in ("low", "mid", "high"):
        assert d["carbon_g"]["location"][b] == pytest.approx(d["facility_wh"][b] * 0.1, rel=1e-5)


def test_the_gateway_serves_the_plugin_protocol(site: Path, tmp_path: Path) -> None:
    code = f"""
        import asyncio, json, httpx
        from wattlens.context import Context, Place
        from wattlens.gateway.app import create_app
        from wattlens.gateway.config import GatewayConfig, Upstream
        from wattlens.gateway.transport import MockTransport
        from wattlens.ledger import LedgerWriter, open_ledger

        async def upstream(req):
            sent = json.loads(req.body)
            assert req.url == "http://echo.invalid/v1/echo", req.url
            meta = {{"tokens_in": 7, "tokens_out": 5}}
            return 200, json.dumps({{"model": sent["model"], "text": sent["text"], "meta": meta}}).encode()

        cfg = GatewayConfig(upstreams=(Upstream("e", "echo", "http://echo.invalid/v1"),), context=Context(Place(zone="FR")))
        writer = LedgerWriter(open_ledger({str(tmp_path / "l.db")!r}))
        app = create_app(cfg, writer, transports={{"e": MockTransport(upstream)}})

        async def main():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
                ok = await c.post("/v1/echo", json={{"model": "gpt-4o-mini", "text": "hi"}})
                bad = await c.post("/v1/echo", json={{"text": "no model"}})
            return ok, bad

        ok, bad = asyncio.run(main())
        writer.close()
        rec = list(open_ledger({str(tmp_path / "l.db")!r}).records())
        print(json.dumps([ok.status_code, ok.json(), bad.status_code, bad.json(), rec]))
    """
    r = run(site, code)
    assert r.returncode == 0, r.stderr
    status, body, bad_status, bad_body, records = json.loads(r.stdout)
    assert status == 200 and body["text"] == "hi"
    fp = body["meta"]["footprint"]
    assert fp["tokens"] == {"input": 7, "cached_input": 0, "output": 5, "reasoning": 0} and fp["grid"]["zone"] == "FR"
    assert bad_status == 400 and "model" in bad_body["echo_error"]  # the plugin's own error shape
    assert [x["protocol"] for x in records] == ["echo", "echo"] and records[0]["footprint"] == fp
    assert (records[1]["outcome"], records[1]["status"], records[1]["footprint"]) == ("rejected", 400, None)
