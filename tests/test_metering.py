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


def test_the_entry_is_made_once_by_the_fast_encoder_and_stored_as_it_is(tmp_path: Path) -> None:
    """The answer's entry hash and the ledger commit to the same bytes, encoded once (orjson's path)."""
    import hashlib

    from wattlens.ledger import jcs
    from wattlens.ledger.chain import CanonicalRecord, canonical

    call = Call("gateway", "openai", "/chat/completions", "gpt-4o-mini", upstream="u", tokens=Tokens(input=50, output=20))
    s = settle(call, Context(Place(zone="FR")), eager=True)
    entry = s.entry()
    assert type(entry) is CanonicalRecord and s.record_dict() is entry and s.entry() is entry
    plain = s.record().as_dict()
    assert jcs._orjson_form(plain) == entry.text == canonical(plain)  # a record takes the fast encoder
    assert s.entry_hash() == hashlib.sha256(b"\x00" + entry.text.encode()).hexdigest()
    # the writer takes the leaf made for the answer's header; a plain dict's is computed, the same
    from wattlens.ledger.chain import leaves_of, link_batch

    rows, _, _ = link_batch([entry, plain], 0, "0" * 64)
    assert entry.leaf() is entry.leaf() and leaves_of([entry, plain], rows) == [entry.leaf(), entry.leaf()]
    led = open_ledger(tmp_path / "l.db")
    writer = LedgerWriter(led, flush_s=0.01)
    writer.submit(s.record_dict)
    writer.close()
    led = open_ledger(tmp_path / "l.db")
    assert led.leaves() == [bytes.fromhex(s.entry_hash() or "")]
    led.close()
    bad = Call("gateway", "openai", "/chat/completions", "m", upstream="u", ttft_s=float("nan"))
    unstorable = settle(bad, Context())  # NaN has no canonical form
    assert unstorable.entry_hash() is None and type(unstorable.record_dict()) is dict  # the writer sets it aside
    hostile = Call("gateway", "openai", "/chat/completions", "m\ud800", upstream="u", tokens=Tokens(input=1, output=1))
    stored = settle(hostile, Context())  # the client's model name, in the record and in the receipt, made valid
    assert stored.entry_hash() is not None and stored.receipt is not None and stored.receipt["model"] == "m\ufffd"


def test_the_record_puts_every_field_where_its_name_says() -> None:
    """Settlement.record() builds the LedgerRecord by position (the hot path): each field by name."""
    call = Call(
        "sdk",
        "anthropic",
        "/messages",
        "asked",
        upstream="up",
        tokens=Tokens(input=3, output=4),
        served_model="served",
        status=201,
        stream=True,
        key_id="k1",
        team="t",
        user="u",
        tags={"a": "b"},
        hosting="own",
        ttft_s=0.25,
    )
    s = settle(call, Context(Place(zone="FR")), eager=True)
    r = s.record()
    assert s.record_body() == r.as_dict()  # the entry's dict, made without the LedgerRecord
    receipt = s.receipt
    assert receipt is not None
    expected = LedgerRecord(
        id=call.request_id,
        ts=r.ts,
        source="sdk",
        endpoint="/messages",
        protocol="anthropic",
        model_requested="asked",
        model_served="served",
        upstream="up",
        status=201,
        outcome=call.outcome,
        stream=True,
        latency_s=r.latency_s,
        ttft_s=0.25,
        tokens=call.tokens.as_dict(),
        key_id="k1",
        team="t",
        user="u",
        tags={"a": "b"},
        hosting="own",
        footprint=receipt,
        footprint_error=None,
        factors_version=receipt["factors_version"],
    )
    assert r == expected and r.schema_version == SCHEMA_VERSION
    assert isinstance(r.ts, str) and (r.latency_s is None or r.latency_s >= 0)
