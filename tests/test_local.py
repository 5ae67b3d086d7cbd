"""The built-in local upstream: a real model on CPU behind the real gateway, the openai SDK as client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")

import upstream as up

from wattlens.context import Context, Place
from wattlens.gateway import embedded_config
from wattlens.gateway.app import create_app
from wattlens.gateway.local import LocalModels


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama with random weights and MiniLM's tokenizer: real code path, no download."""
    from tiny_models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="module")
def gateway(tiny_chat_model: Path) -> Iterator[str]:
    port = up.free_port()
    cfg = embedded_config(port, Context(Place(zone="FR")))
    local = LocalModels(str(tiny_chat_model))
    with up.ServerThread(create_app(cfg, None, local), port=port) as gw:
        yield gw.url


def test_embeddings_offline_with_a_receipt(gateway: str) -> None:
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="none", max_retries=0)
    e = c.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=["nuclear power", "wind power"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 384
    a, b = e.data[0].embedding, e.data[1].embedding
    assert abs(sum(x * x for x in a) - 1.0) < 1e-4  # normalised
    assert 0.0 < sum(x * y for x, y in zip(a, b, strict=True)) < 1.0
    fp = e.usage.footprint  # type: ignore[attr-defined]
    assert fp["tokens"]["input"] == 8  # [CLS] nuclear power [SEP] x 2
    assert fp["grid"]["zone"] == "FR" and "host" in fp["boundary"] and fp["energy_wh"]["mid"] > 0


def test_chat_with_a_local_model_streaming_and_not(gateway: str, tiny_chat_model: Path) -> None:
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="none", max_retries=0)
    r = c.chat.completions.create(model=str(tiny_chat_model), messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert r.usage.completion_tokens <= 5 and r.usage.footprint["tokens"]["output"] == r.usage.completion_tokens  # type: ignore[union-attr]
    chunks = list(
        c.chat.completions.create(
            model=str(tiny_chat_model),
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    final = [ch for ch in chunks if ch.usage is not None]
    assert final and final[0].usage.footprint["method"] in ("measured", "estimated")  # type: ignore[union-attr]


def test_serve_self_test_runs_the_main_job() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "serve", "--self-test", "--zone", "FR", "--ledger", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "self-test passed" in r.stdout and "energy (IT)" in r.stdout
