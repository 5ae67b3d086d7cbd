"""The LiteLLM, LangChain and LlamaIndex adapters, with the real packages, against a real upstream on loopback.

Each adapter's receipt is compared number for number with `wattlens.metering.settle` of the
same call (and, for the LiteLLM proxy, with the wattlens gateway's receipt for the same
request); each ledger record has LedgerRecord's keys and the adapter as its source.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import upstream as up
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from wattlens.config import load_settings
from wattlens.context import Place
from wattlens.footprint import Tokens
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.metering import Call, LedgerRecord, settle
from wattlens.protocols import protocol

ROOT = Path(__file__).parents[1]
PROMPT = "what powers the grid"  # the upstream counts 3 words + 10 = 14 prompt tokens
MSG = [{"role": "user", "content": PROMPT}]
TOKENS = protocol("openai").tokens(up.usage(14, len(up.WORDS) + 2))  # 14 in (4 cached), 8 out, 2 reasoning


async def chat_with_finish_reason(request: Request) -> Response:
    """The upstream's chat, with the finish_reason that real OpenAI streams carry (LiteLLM insists on it)."""
    resp = await up.chat(request)
    if not isinstance(resp, StreamingResponse):
        return resp
    inner = resp.body_iterator

    async def gen() -> AsyncIterator[bytes]:
        async for raw in inner:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            if text.startswith("data: {"):
                d = json.loads(text[6:])
                choices = d.get("choices") or []
                if choices and choices[0]["delta"].get("content") == up.WORDS[-1]:
                    choices[0]["finish_reason"] = "stop"
                    text = f"data: {json.dumps(d)}\n\n"
            yield text.encode()

    return StreamingResponse(gen(), media_type="text/event-stream")


APP = Starlette(routes=[Route("/v1/chat/completions", chat_with_finish_reason, methods=["POST"]), *up.app.routes])


@pytest.fixture(scope="module")
def server() -> Iterator[up.ServerThread]:
    with up.ServerThread(APP) as s:
        yield s


def expected(tokens: Tokens = TOKENS, model: str = "gpt-4o-mini", source: str = "test") -> dict[str, Any]:
    """The receipt wattlens.metering.settle gives the same call, at the adapters' place (zone FR)."""
    ctx = load_settings().context().at(Place(zone="FR"))
    receipt = settle(Call(source, "openai", "/chat/completions", model, upstream="u", tokens=tokens), ctx).receipt
    assert receipt is not None
    return receipt


def records(writer: LedgerWriter, path: Path, source: str) -> list[dict[str, Any]]:
    """The ledger's records after the writer closed, each checked for the one record shape."""
    writer.close()
    recs = list(open_ledger(path).records())
    for r in recs:
        assert set(r) == set(LedgerRecord.__slots__)
        assert r["source"] == source
    return recs


# -- LiteLLM ------------------------------------------------------------------------------------
@pytest.fixture
def litellm_mod() -> Iterator[Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the remote price list
    mod = pytest.importorskip("litellm")
    saved = {name: list(getattr(mod, name)) for name in LITELLM_CALLBACK_LISTS}
    yield mod
    for name, value in saved.items():
        setattr(mod, name, value)


LITELLM_CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def test_litellm_sdk_calls_and_streams_get_the_settled_receipt(
    server: up.ServerThread, tmp_path: Path, litellm_mod: Any
) -> None:
    from wattlens.integrations.litellm import WattlensLogger

    writer = LedgerWriter(open_ledger(tmp_path / "l.db"))
    meter = WattlensLogger(zone="FR", ledger=writer, tags={"team": "search"})
    litellm_mod.callbacks = [meter]
    kw = {"model": "openai/gpt-4o-mini", "api_base": server.url + "/v1", "api_key": "sk-test", "messages": MSG}
    r = litellm_mod.completion(**kw)
    receipt = meter.receipt(r)  # LiteLLM logs in a thread after returning: this waits for it
    assert receipt == expected() and r._hidden_params["wattlens"] == receipt

    s = litellm_mod.completion(**kw, stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == "".join(up.WORDS)
    streamed = meter.settlement(s)
    assert streamed is not None and streamed.receipt == expected()
    assert streamed.call.stream and streamed.call.outcome == "ok" and streamed.call.ttft_s is not None

    async def acall() -> Any:
        return await meter.areceipt(await litellm_mod.acompletion(**kw))  # logged by a task on this loop

    assert asyncio.run(acall()) == expected()

    with pytest.raises(Exception, match="exploded"):
        litellm_mod.completion(**{**kw, "model": "openai/fail-500"})
    deadline = time.time() + 5
    while len(meter.recent.settlements()) < 4 and time.time() < deadline:
        time.sleep(0.01)

    recs = records(writer, tmp_path / "l.db", "litellm")
    by_id = {rec["id"]: rec for rec in recs}
    assert by_id[r._hidden_params["litellm_call_id"]]["footprint"] == receipt
    ok = [rec for rec in recs if rec["outcome"] == "ok"]
    assert len(ok) == 3 and all(rec["footprint"] == receipt and rec["team"] == "search" for rec in ok)
    assert [rec["stream"] for rec in ok].count(True) == 1
    failed = [rec for rec in recs if rec["outcome"] == "upstream_error"]
    assert [(rec["status"], rec["model_requested"]) for rec in failed] == [(500, "fail-500")]


def test_litellm_stream_without_usage_is_marked(server: up.ServerThread, litellm_mod: Any) -> None:
    from wattlens.integrations.litellm import WattlensLogger

    meter = WattlensLogger(zone="FR")
    litellm_mod.callbacks = [meter]
    s = litellm_mod.completion(
        model="openai/gpt-4o-mini", api_base=server.url + "/v1", api_key="sk-test", messages=MSG, stream=True
    )
    list(s)
    settled = meter.settlement(s)
    assert settled is not None and settled.call.outcome == "no_usage"  # LiteLLM counted the tokens itself
    assert settled.receipt is not None and settled.receipt["tokens"]["output"] > 0


def test_litellm_anthropic_usage_settles_as_the_anthropic_protocol_reads_it(
    server: up.ServerThread, litellm_mod: Any
) -> None:
    from wattlens.integrations.litellm import WattlensLogger

    meter = WattlensLogger(zone="FR")
    litellm_mod.callbacks = [meter]
    kw = {"model": "anthropic/claude-sonnet-4-6", "api_base": server.url, "api_key": "sk-test", "messages": MSG}
    # LiteLLM turns Anthropic's usage into OpenAI's shape; read by the openai parser it must give
    # what the anthropic protocol reads from the upstream's own usage (cache reads and writes in the input).
    u = {"input_tokens": 20, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 9}
    want = expected(protocol("anthropic").tokens(u), model="claude-sonnet-4-6")
    r = litellm_mod.completion(**kw, max_tokens=10)
    assert meter.receipt(r) == want
    s = litellm_mod.completion(**kw, max_tokens=10, stream=True)
    list(s)
    settled = meter.settlement(s)
    assert settled is not None and settled.receipt == want
    assert (settled.call.protocol, settled.call.endpoint, settled.call.outcome) == ("anthropic", "/messages", "ok")


def litellm_proxy() -> Path | None:
    """A `litellm` command with the proxy extra: $WATTLENS_LITELLM_PROXY, or bench/.venv-litellm's."""
    exe = Path(os.environ.get("WATTLENS_LITELLM_PROXY") or ROOT / "bench" / ".venv-litellm" / "bin" / "litellm")
    return exe if exe.exists() else None


RECORDER = '''
import json, os
from litellm.integrations.custom_logger import CustomLogger

class Recorder(CustomLogger):
    """Listed after wattlens: writes down the receipt it finds in the logged metadata."""

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        meta = (kwargs.get("standard_logging_object") or {}).get("metadata") or {}
        with open(os.environ["RECORDER_OUT"], "a") as f:
            f.write(json.dumps({"id": kwargs.get("litellm_call_id"), "wattlens": meta.get("wattlens")}) + "\\n")

recorder = Recorder()
'''


def test_litellm_proxy_receipts_equal_the_gateways(server: up.ServerThread, tmp_path: Path) -> None:
    exe = litellm_proxy()
    if exe is None:
        pytest.skip(
            "no LiteLLM proxy: litellm[proxy] pins packages the dev environment cannot share (starlette, rich) "
            "and needs litellm-proxy; install it with `python -m venv bench/.venv-litellm && "
            "bench/.venv-litellm/bin/pip install 'litellm[proxy]' -e .` or set WATTLENS_LITELLM_PROXY"
        )
    from wattlens.gateway.app import create_app
    from wattlens.gateway.config import GatewayConfig, Upstream

    key = "sk-test-" + "5f0c" * 16  # the proxy refuses to start without a strong master key
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "config.yaml").write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {server.url}/v1\n      api_key: sk-test\n"
        "litellm_settings:\n  telemetry: false\n"
        '  callbacks: ["wattlens.integrations.litellm.proxy_handler", "recorder.recorder"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTLENS_")}
    env.update(
        LITELLM_MASTER_KEY=key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        WATTLENS_ZONE="FR",  # the proxy's wattlens reads its place and ledger from the environment
        WATTLENS_LEDGER=str(tmp_path / "proxy.db"),
        RECORDER_OUT=str(tmp_path / "recorder.jsonl"),
        PYTHONPATH=str(ROOT / "src"),  # this checkout's wattlens
    )
    port = up.free_port()
    log = (tmp_path / "proxy.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "--config", str(tmp_path / "config.yaml"), "--port", str(port), "--num_workers", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url, auth = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {key}"}
    body = {"model": "gpt-4o-mini", "messages": MSG}
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "proxy.log").read_text()[-3000:]
            time.sleep(0.2)
        unary = httpx.post(url + "/v1/chat/completions", json=body, headers=auth, timeout=30)
        assert unary.status_code == 200, unary.text
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", url + "/v1/chat/completions", json=stream_body, headers=auth, timeout=30) as rs:
            assert rs.status_code == 200
            list(rs.iter_lines())
        ids = [unary.headers["x-litellm-call-id"], rs.headers["x-litellm-call-id"]]
        ledger = open_ledger(tmp_path / "proxy.db")
        deadline = time.time() + 15
        while ledger.count() < 2 and time.time() < deadline:
            time.sleep(0.1)
        recs = {r["id"]: r for r in ledger.records()}
        ledger.close()
    finally:
        up.stop(proc)
        log.close()
    assert sorted(recs) == sorted(ids), (tmp_path / "proxy.log").read_text()[-3000:]
    unary_rec, stream_rec = recs[ids[0]], recs[ids[1]]
    for rec in (unary_rec, stream_rec):
        assert set(rec) == set(LedgerRecord.__slots__) and rec["source"] == "litellm"
    assert (unary_rec["stream"], stream_rec["stream"]) == (False, True)

    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", server.url + "/v1", place=Place(zone="FR")),))
    with up.ServerThread(create_app(cfg, None)) as gw:
        via = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30).json()
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=stream_body, timeout=30) as gs:
            chunks = [json.loads(line[6:]) for line in gs.iter_lines() if line.startswith("data: {")]
    gw_stream = next(c["usage"]["footprint"] for c in chunks if c.get("usage"))
    assert unary_rec["footprint"] == via["usage"]["footprint"]  # number for number, through the same seam
    assert stream_rec["footprint"] == gw_stream
    seen = {d["id"]: d["wattlens"] for d in map(json.loads, (tmp_path / "recorder.jsonl").read_text().splitlines())}
    assert seen == {i: recs[i]["footprint"] for i in ids}  # the loggers after wattlens see the receipt


# -- LangChain ----------------------------------------------------------------------------------
def test_langchain_invoke_generate_stream_and_async(server: up.ServerThread, tmp_path: Path) -> None:
    lc_openai = pytest.importorskip("langchain_openai")
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import HumanMessage

    from wattlens.integrations.langchain import WattlensCallbackHandler

    class Tracer(BaseCallbackHandler):  # listed after wattlens, as a tracer would be: sees the run's output
        def __init__(self) -> None:
            self.outputs: list[Any] = []

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.outputs.append(response.llm_output)

    writer = LedgerWriter(open_ledger(tmp_path / "lc.db"))
    meter, tracer = WattlensCallbackHandler(zone="FR", ledger=writer), Tracer()
    opts = {"model": "gpt-4o-mini", "base_url": server.url + "/v1", "api_key": "sk-test", "max_retries": 0}
    llm = lc_openai.ChatOpenAI(**opts, callbacks=[meter, tracer])
    msg = llm.invoke(PROMPT)
    assert msg.response_metadata["wattlens"] == expected() == tracer.outputs[-1]["wattlens"]
    result = llm.generate([[HumanMessage(PROMPT)]])
    assert result.generations[0][0].message.response_metadata["wattlens"] == expected()
    assert tracer.outputs[-1]["wattlens"] == expected()

    streaming = lc_openai.ChatOpenAI(**opts, stream_usage=True)
    chunks = list(streaming.stream(PROMPT, config={"callbacks": [meter]}))
    assert "".join(str(c.content) for c in chunks) == "".join(up.WORDS)
    assert meter.receipt(chunks[-1]) == expected() == meter.receipts[-1]  # the last chunk's id names the run
    streamed = meter.settlement(chunks[-1])
    assert streamed is not None and streamed.call.stream and streamed.call.outcome == "ok"

    assert asyncio.run(llm.ainvoke(PROMPT)).response_metadata["wattlens"] == expected()
    with pytest.raises(Exception, match="exploded"):
        lc_openai.ChatOpenAI(**{**opts, "model": "fail-500"}, callbacks=[meter]).invoke(PROMPT)

    recs = records(writer, tmp_path / "lc.db", "langchain")
    assert [r["outcome"] for r in recs] == ["ok"] * 4 + ["upstream_error"]
    assert all(r["footprint"] == expected() for r in recs[:4]) and recs[4]["status"] == 500
    assert [r["stream"] for r in recs] == [False, False, True, False, False]
    assert recs[0]["upstream"] == server.url + "/v1" and recs[0]["protocol"] == "openai"


def test_langchain_without_attach_or_stream_usage(server: up.ServerThread) -> None:
    lc_openai = pytest.importorskip("langchain_openai")
    from wattlens.integrations.langchain import WattlensCallbackHandler

    meter = WattlensCallbackHandler(zone="FR", attach=False)
    llm = lc_openai.ChatOpenAI(model="gpt-4o-mini", base_url=server.url + "/v1", api_key="sk-test", callbacks=[meter])
    msg = llm.invoke(PROMPT)
    assert "wattlens" not in msg.response_metadata and meter.receipts == [expected()]  # computed when read
    list(llm.stream(PROMPT))  # no stream_usage: the provider sends no usage
    s = meter.recent.settlements()[-1]
    assert s.call.outcome == "no_usage" and s.call.tokens == Tokens(output=len("".join(up.WORDS)) // 4 + 1)


def test_langchain_handler_keeps_each_models_run_apart(server: up.ServerThread, tmp_path: Path) -> None:
    """One handler, two models and two base URLs: a run's description is worked out once per kind of
    run, so each record must still name its own model and upstream, its run's id and its own start time."""
    lc_openai = pytest.importorskip("langchain_openai")
    from langchain_core.callbacks import BaseCallbackHandler

    from wattlens.integrations.langchain import WattlensCallbackHandler

    class Runs(BaseCallbackHandler):
        def __init__(self) -> None:
            self.ids: list[str] = []

        def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
            self.ids.append(run_id.hex)

    writer = LedgerWriter(open_ledger(tmp_path / "two.db"))
    meter, runs = WattlensCallbackHandler(zone="FR", ledger=writer, attach=False), Runs()
    small = lc_openai.ChatOpenAI(model="gpt-4o-mini", base_url=server.url + "/v1", api_key="sk-test")
    large = lc_openai.ChatOpenAI(model="gpt-4o", base_url=server.url + "/v1/", api_key="sk-test")
    before = time.time()
    for llm in (small, large, small, large):
        llm.invoke(PROMPT, config={"callbacks": [meter, runs]})
    after = time.time()
    recs = records(writer, tmp_path / "two.db", "langchain")
    assert [r["model_requested"] for r in recs] == ["gpt-4o-mini", "gpt-4o"] * 2
    assert [r["upstream"] for r in recs] == [server.url + "/v1", server.url + "/v1/"] * 2
    assert [r["id"] for r in recs] == runs.ids and len(set(runs.ids)) == 4
    stamps = [dt.datetime.fromisoformat(r["ts"]) for r in recs]
    assert all(s.utcoffset() == dt.timedelta(0) for s in stamps)  # formatted in UTC off the caller's path
    assert before - 1e-3 <= stamps[0].timestamp() <= stamps[-1].timestamp() <= after and stamps == sorted(stamps)
    assert [r["footprint"] for r in recs[::2]] == [expected()] * 2
    assert [r["footprint"] for r in recs[1::2]] == [expected(model="gpt-4o")] * 2


def test_llamaindex_request_ids_come_from_span_ids() -> None:
    pytest.importorskip("llama_index.core")
    from wattlens.integrations.llamaindex import request_id

    u = "6f1c2a0e-9b7d-4c3e-8a21-0d5e4f3b2a19"
    assert request_id(f"OpenAI.chat-{u}") == u.replace("-", "")
    assert request_id(f"OpenAI.chat-{u.upper()}") == u.replace("-", "")  # the ledger's ids are lower-case hex
    for other in ("OpenAI.chat", f"OpenAI.chat-{u[:-1]}g", "", None):  # no UUID in it: a fresh one
        rid = request_id(other)
        assert len(rid) == 32 and int(rid, 16) >= 0 and rid != u.replace("-", "")


# -- LlamaIndex ---------------------------------------------------------------------------------
def test_llamaindex_chat_stream_complete_and_async(server: up.ServerThread, tmp_path: Path) -> None:
    li_openai = pytest.importorskip("llama_index.llms.openai")
    from llama_index.core.llms import ChatMessage

    from wattlens.integrations.llamaindex import instrument, uninstrument

    writer = LedgerWriter(open_ledger(tmp_path / "li.db"))
    meter = instrument(zone="FR", ledger=writer)
    try:
        opts = {"model": "gpt-4o-mini", "api_base": server.url + "/v1", "api_key": "sk-test", "max_retries": 0}
        llm = li_openai.OpenAI(**opts, additional_kwargs={"stream_options": {"include_usage": True}})
        messages = [ChatMessage(role="user", content=PROMPT)]
        r = llm.chat(messages)
        assert r.additional_kwargs["wattlens"] == expected()
        *_, last = llm.stream_chat(messages)
        assert last.additional_kwargs["wattlens"] == expected() == meter.receipts[-1]
        assert llm.complete(PROMPT).additional_kwargs["wattlens"] == expected()
        assert asyncio.run(llm.achat(messages)).additional_kwargs["wattlens"] == expected()
        *_, plain = li_openai.OpenAI(**opts).stream_chat(messages)  # not asked for usage: none comes
        assert plain.additional_kwargs["wattlens"]["tokens"] == Tokens(output=len(up.WORDS)).as_dict()
    finally:
        uninstrument(meter)
    recs = records(writer, tmp_path / "li.db", "llamaindex")
    assert [(r["outcome"], r["stream"]) for r in recs] == [
        ("ok", False),
        ("ok", True),
        ("ok", False),
        ("ok", False),
        ("no_usage", True),
    ]
    assert all(r["footprint"] == expected() for r in recs[:4])
    assert recs[1]["ttft_s"] is not None and recs[0]["ttft_s"] is None


def test_adapter_modules_are_not_imported_by_wattlens() -> None:
    code = (
        "import sys, wattlens, wattlens.integrations; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('litellm', 'langchain_core', 'llama_index')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
