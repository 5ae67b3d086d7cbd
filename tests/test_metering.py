"""One settlement: every source writes the same record schema, and settling is the same arithmetic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import upstream as up

import wattlens
from wattlens.context import Context, Place
from wattlens.footprint import Tokens
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.metering import SCHEMA_VERSION, Call, CallbackObserver, LedgerRecord, settle
from wattlens.receipt import LLMRequest, estimate_footprint
from wattlens.report.demo import records as demo_records

MSG = [{"role": "user", "content": "x"}]


def read(db: Path) -> list[dict[str, Any]]:
    led = open_ledger(db)
    try:
        return list(led.records())
    finally:
        led.close()


def test_gateway_sdk_run_and_demo_write_the_same_schema(tmp_path: Path) -> None:
    with up.ServerThread(up.app) as server:
        cfg = GatewayConfig(upstreams=(Upstream("u", "openai", server.url + "/v1", place=Place(zone="FR")),))
        gw_writer = LedgerWriter(open_ledger(tmp_path / "gw.db"))
        with up.ServerThread(create_app(cfg, gw_writer)) as gw:
            openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MSG
            )
        sdk_writer = LedgerWriter(open_ledger(tmp_path / "sdk.db"))
        c = wattlens.instrument(openai.OpenAI(base_url=server.url + "/v1", api_key="x"), zone="FR", ledger=sdk_writer)
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        sdk_writer.close()
    run = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "run", "--zone", "FR", "--ledger", str(tmp_path / "run.db"), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    gw_rec, sdk_rec, run_rec = read(tmp_path / "gw.db")[0], read(tmp_path / "sdk.db")[0], read(tmp_path / "run.db")[0]
    demo_rec = next(demo_records(["gpt-4o-mini"], ["FR"], limit=1))
    keys = set(LedgerRecord.__slots__)
    assert set(gw_rec) == set(sdk_rec) == set(run_rec) == set(demo_rec) == keys
    assert {r["schema_version"] for r in (gw_rec, sdk_rec, run_rec, demo_rec)} == {SCHEMA_VERSION}
    assert [r["source"] for r in (gw_rec, sdk_rec, run_rec, demo_rec)] == ["gateway", "sdk", "run", "demo"]
    assert (gw_rec["hosting"], sdk_rec["hosting"], run_rec["hosting"]) == ("purchased", "purchased", "own")
    # The gateway and the SDK wrapper settle the same call into the same receipt.
    assert gw_rec["footprint"] == sdk_rec["footprint"]
    assert gw_rec["status"] == sdk_rec["status"] == 200


def test_settle_is_estimate_footprint_for_the_same_call() -> None:
    ctx = Context(Place(zone="PL"))
    seen = []
    call = Call(
        "test", "openai", "/chat/completions", "gpt-4o", upstream="u", tokens=Tokens(input=500, cached_input=100, output=300)
    )
    s = settle(call, ctx, observers=[CallbackObserver(seen.append)])
    expected = estimate_footprint(LLMRequest("gpt-4o", 500, 300, 100), ctx)
    assert s.footprint == expected and s.receipt == expected.as_dict()
    assert seen == [s] and s.record().footprint == expected.as_dict()


def test_a_call_without_an_upstream_has_no_receipt_but_a_record() -> None:
    call = Call("gateway", "openai", "/chat/completions", "gpt-4o", status=401, outcome="rejected")
    call.upstream = None
    s = settle(call, Context())
    rec = s.record_dict()
    assert rec["footprint"] is None and rec["status"] == 401 and rec["footprint_error"]
