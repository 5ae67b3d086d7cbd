"""wattlens.instrument on the real SDKs against a real upstream on loopback (wattlens.sdk)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import upstream as up

import wattlens
from wattlens.context import Place
from wattlens.errors import InputError
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.ledger import LedgerWriter, open_ledger


@pytest.fixture(scope="module")
def server() -> Iterator[up.ServerThread]:
    with up.ServerThread(up.app) as s:
        yield s


def client(server: up.ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


MSG = [{"role": "user", "content": "what powers the grid"}]


def test_chat_receipt_equals_the_gateways(server: up.ServerThread) -> None:
    c = wattlens.instrument(client(server), zone="FR")
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert isinstance(r, openai.types.chat.ChatCompletion)
    fp = r.footprint  # type: ignore[attr-defined]
    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", server.url + "/v1", place=Place(zone="FR")),))
    with up.ServerThread(create_app(cfg, None)) as gw:
        via = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MSG
        )
    assert json.loads(json.dumps(fp)) == via.usage.footprint  # type: ignore[union-attr]


def test_streams_get_the_receipt_once_at_the_end(server: up.ServerThread) -> None:
    c = wattlens.instrument(client(server), zone="FR")
    s = c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    chunks = list(s)
    assert all(ch.usage is None for ch in chunks)  # the usage chunk we asked for is not shown
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "".join(up.WORDS)
    assert s.footprint["tokens"] == {"input": 14, "cached_input": 4, "output": 8, "reasoning": 2}
    s2 = c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True})
    assert any(ch.usage is not None for ch in s2) and s2.footprint is not None


def test_embeddings_and_responses(server: up.ServerThread) -> None:
    c = wattlens.instrument(client(server), zone="FR", model_params={"text-embedding-3-small": {"active_params_b": 0.3}})
    e = c.embeddings.create(model="text-embedding-3-small", input=["a b c"])
    assert e.footprint["tokens"]["input"] == 3  # type: ignore[attr-defined]
    r = c.responses.create(model="gpt-4o-mini", input="x")
    assert r.footprint["tokens"]["reasoning"] == 4  # type: ignore[attr-defined]


def test_anthropic_messages_sync_and_stream(server: up.ServerThread) -> None:
    c = wattlens.instrument(anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0), region="us-east-1")
    m = c.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
    assert m.footprint["tokens"] == {"input": 125, "cached_input": 100, "output": 9, "reasoning": 0}  # type: ignore[attr-defined]
    s = c.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG, stream=True)
    types = [ev.type for ev in s]
    assert types[0] == "message_start" and s.footprint["tokens"]["output"] == 9


def test_async_client_and_a_stream_cut_off_early(server: up.ServerThread, tmp_path: Path) -> None:
    writer = LedgerWriter(open_ledger(tmp_path / "l.db"))

    async def main() -> tuple[Any, Any]:
        c = wattlens.instrument(
            openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0),
            zone="FR",
            ledger=writer,
            tags={"team": "search"},
        )
        r = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        s = await c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        agen = s.__aiter__()
        seen = [await agen.__anext__() for _ in range(3)]  # read three chunks, then walk away
        await agen.aclose()
        assert len(seen) == 3
        return r, s

    r, s = asyncio.run(main())
    assert r.footprint["tokens"]["input"] == 14
    assert s.footprint["tokens"]["output"] == 3  # what was seen before the cut
    writer.close()
    recs = list(open_ledger(tmp_path / "l.db").records())
    assert [x["outcome"] for x in recs] == ["ok", "client_disconnected"]
    assert recs[0]["team"] == "search" and recs[0]["footprint"]["grid"]["zone"] == "FR"


def test_only_this_client_and_undo(server: up.ServerThread) -> None:
    a, b = client(server), client(server)
    wattlens.instrument(a)
    assert hasattr(a.chat.completions.create(model="gpt-4o-mini", messages=MSG), "footprint")
    assert not hasattr(b.chat.completions.create(model="gpt-4o-mini", messages=MSG), "footprint")
    with pytest.raises(InputError, match="already"):
        wattlens.instrument(a)
    wattlens.uninstrument(a)
    assert not hasattr(a.chat.completions.create(model="gpt-4o-mini", messages=MSG), "footprint")
    with pytest.raises(InputError):
        wattlens.instrument(object())


def test_unknown_model_gets_a_generic_receipt_that_says_so(server: up.ServerThread) -> None:
    c = wattlens.instrument(client(server))
    r = c.chat.completions.create(model="mystery-model", messages=MSG)
    fp = r.footprint  # type: ignore[attr-defined]
    assert fp is not None and "model-unknown-generic" in fp["warnings"]
    assert fp["energy_wh"]["high"] / fp["energy_wh"]["low"] > 5  # a generic model is a wide guess


def test_next_on_a_metered_stream_keeps_one_iterator(server: up.ServerThread) -> None:
    c = wattlens.instrument(client(server), zone="FR")
    s = c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    first, second = next(s), next(s)  # two next() calls must not restart (and so cut off) the stream
    assert first.choices[0].delta.content == up.WORDS[0] and second.choices[0].delta.content == up.WORDS[1]
    rest = list(s)
    assert len(rest) == len(up.WORDS) - 2 and s.footprint["tokens"]["output"] == 8
