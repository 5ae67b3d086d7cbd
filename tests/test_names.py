"""Model names people send resolve to catalogue rows, to the size their name states, or to a generic model."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

from wattlens.errors import UnknownKeyError
from wattlens.estimate.names import canonical, known_names, precision_of, resolve, size_of
from wattlens.factors import builtin
from wattlens.receipt import LLMRequest, Place, estimate_footprint


@pytest.mark.parametrize(
    ("name", "how", "row", "precision"),
    [
        # Hugging Face ids: the catalogue spells Llama 3.1 "Meta-Llama-3.1-..."
        ("meta-llama/Llama-3.1-8B-Instruct", "matched", "meta-llama/Meta-Llama-3.1-8B-Instruct", None),
        ("Llama-3.1-8B", "matched", "meta-llama/Meta-Llama-3.1-8B", None),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "matched", "Qwen/Qwen2.5-7B-Instruct", "int4"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "catalogue", "meta-llama/Meta-Llama-3.1-8B-Instruct", None),
        # Ollama tags: the instruct model, 4-bit unless the tag says otherwise
        ("llama3.1:8b", "matched", "meta-llama/Meta-Llama-3.1-8B-Instruct", "int4"),
        ("llama3.1:70b", "matched", "meta-llama/Meta-Llama-3.1-70B-Instruct", "int4"),
        ("qwen2.5:7b", "matched", "Qwen/Qwen2.5-7B-Instruct", "int4"),
        ("qwen2.5:7b-instruct-q4_K_M", "matched", "Qwen/Qwen2.5-7B-Instruct", "int4"),
        ("qwen2.5:7b-instruct-q8_0", "matched", "Qwen/Qwen2.5-7B-Instruct", "int8"),
        ("qwen3:30b-a3b", "matched", "Qwen/Qwen3-30B-A3B-Instruct-2507", "int4"),
        ("mixtral:8x7b", "matched", "mistralai/Mixtral-8x7B-Instruct-v0.1", "int4"),
        ("gpt-oss:20b", "matched", "openai/gpt-oss-20b", "mxfp4"),  # Ollama ships gpt-oss in MXFP4
        ("hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", "matched", "meta-llama/Llama-3.2-3B-Instruct", "int4"),
        # bare family names Ollama serves: their default tag (model_names.csv, ollama.com library)
        ("mistral", "known", "mistralai/Mistral-7B-Instruct-v0.3", "int4"),
        ("mistral:latest", "known", "mistralai/Mistral-7B-Instruct-v0.3", "int4"),
        ("llama3.2", "known", "meta-llama/Llama-3.2-3B-Instruct", "int4"),
        # GGUF file names
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "matched", "meta-llama/Meta-Llama-3.1-8B-Instruct", "int4"),
        # dated snapshots and -latest aliases
        ("gpt-4o-2024-08-06", "catalogue", "gpt-4o-2024-08-06", None),
        ("gpt-4o-mini-2099-01-01", "catalogue", "gpt-4o-mini", None),
        ("claude-sonnet-4-6-20260101", "catalogue", "claude-sonnet-4-6", None),
        ("gpt-4.1-latest", "catalogue", "gpt-4.1", None),
        # cloud and router wrappers: OpenAI fine-tunes, Bedrock ids, Gemini API paths, LiteLLM prefixes
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "catalogue", "gpt-4o-mini-2024-07-18", None),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "catalogue", "claude-sonnet-4-5-20250929", None),
        ("models/gemini-2.5-flash", "matched", "gemini-2.5-flash", None),
        ("ollama/llama3.1:8b", "matched", "meta-llama/Meta-Llama-3.1-8B-Instruct", "int4"),
    ],
)
def test_names_resolve_to_catalogue_rows(name: str, how: str, row: str, precision: str | None) -> None:
    r = resolve(name, builtin())
    assert (r.how, r.spec.model_id if r.spec else None, r.precision) == (how, row, precision)
    assert r.active_params_b == r.spec.active_params_b and r.warnings == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "active", "total", "precision"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", 0.135, 0.135, "int4"),
        ("my-finetune-13b-fp8", 13.0, 13.0, "fp8"),
        ("acme/Foo-1.5B-Instruct-GPTQ-Int8", 1.5, 1.5, "int8"),
        ("acme/foo-70b-mxfp4", 70.0, 70.0, "mxfp4"),
        ("acme/foo-32b-4bit", 32.0, 32.0, "int4"),
        ("someone/moe-47b-a6b", 6.0, 47.0, "bf16"),
        ("custom:14b", 14.0, 14.0, "int4"),  # an Ollama tag without a quantisation: Ollama's 4-bit default
        ("acme/foo-7b-instruct-1m", 7.0, 7.0, "bf16"),  # "1m" is a context length, not a size
        # NxMb without a row: Mixtral's shape (46.7B of 8x7 = 56, 12.9B active = 1.84 x 7)
        ("acme/foo-8x7b", 1.8 * 7, 0.82 * 56, "bf16"),
    ],
)
def test_size_and_precision_read_from_the_name(name: str, active: float, total: float, precision: str) -> None:
    r = resolve(name, builtin())
    assert r.how == "name" and r.spec is None and r.warnings == ("model-params-from-name",)
    assert r.active_params_b.mid == pytest.approx(active) and r.total_params_b.mid == pytest.approx(total)
    assert r.precision == precision


@pytest.mark.parametrize(
    ("quant", "precision"),
    [
        ("Q4_K_M", "int4"),
        ("q4_0", "int4"),
        ("Q5_K_S", "int4"),
        ("Q6_K", "int8"),
        ("Q8_0", "int8"),
        ("IQ4_XS", "int4"),
        ("foo-FP8-Dynamic", "fp8"),
        ("foo-AWQ", "int4"),
        ("foo-w8a8", "int8"),
        ("foo-nvfp4", "fp4"),
        ("foo.F16", "fp16"),
        ("foo-bf16", "bf16"),
        ("gpt-4o", None),
        ("qwen3-14b", None),
    ],
)
def test_precision_words(quant: str, precision: str | None) -> None:
    assert precision_of(quant) == precision


def test_canonical_forms_meet() -> None:
    assert canonical("llama3.1:8b") == canonical("meta-llama/Meta-Llama-3.1-8B") == "llama-3.1-8b"
    assert canonical("Qwen/Qwen2.5-7B-Instruct-AWQ") == canonical("qwen2.5:7b-instruct") == "qwen-2.5-7b-instruct"
    assert size_of("gpt-4o") is None and size_of("claude-3-5-sonnet") is None and size_of("deepseek-v3") is None


def test_unknown_names_get_the_generic_range_of_the_catalogue() -> None:
    fs = builtin()
    r = resolve("nonsense-model", fs)
    assert r.how == "generic" and not r.known and r.spec is None
    assert r.warnings == ("model-unknown-generic",)
    # The generic range is the catalogue's 10th / 50th / 90th percentile of active parameters.
    mids = [m.active_params_b.mid for m in fs.models.list()]
    deciles = statistics.quantiles(mids, n=10)
    assert (r.active_params_b.low, r.active_params_b.mid, r.active_params_b.high) == pytest.approx(
        (deciles[0], statistics.median(mids), deciles[-1])
    )
    assert r.total_params_b.mid >= r.active_params_b.mid
    e = resolve("acme-embed-multilingual", fs)  # an unknown embedding model: the embedding range
    assert e.how == "generic" and e.kind == "embedding"
    assert e.active_params_b == known_names()["text-embedding-3-small"].params_b


def test_embedding_models_are_known_with_their_source() -> None:
    fs = builtin()
    for name in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002", "embed-english-v3.0"):
        r = resolve(name, fs)
        assert r.how == "known" and r.kind == "embedding" and r.warnings == ("params-estimated",)
    mini = resolve("all-minilm", fs)
    assert mini.spec is not None and mini.spec.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    nomic = resolve("nomic-embed-text", fs)
    assert nomic.active_params_b.mid == pytest.approx(0.137) and nomic.warnings == ()


def test_every_known_name_has_a_source_and_a_real_row() -> None:
    fs = builtin()
    for k in set(known_names().values()):
        assert k.source.strip(), k.name
        assert (k.catalogue_model and fs.models.find(k.catalogue_model) is not None) or k.params_b is not None, k.name
        if k.params_b is not None:
            assert 0 < k.params_b.low <= k.params_b.mid <= k.params_b.high


def test_receipts_follow_the_resolution() -> None:
    fs = builtin()
    tokens = {"input_tokens": 600, "output_tokens": 200}
    # An Ollama tag gets the same receipt as its catalogue row served at the tag's precision.
    tag = estimate_footprint(LLMRequest(model="llama3.1:8b", **tokens), Place(zone="FR"))
    row = estimate_footprint(
        LLMRequest(model="meta-llama/Meta-Llama-3.1-8B-Instruct", precision="int4", **tokens), Place(zone="FR")
    )
    assert tag.energy_wh == row.energy_wh and tag.model == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    # 4-bit weights are read faster than bf16: the tag's receipt is smaller than the bf16 row's.
    bf16 = estimate_footprint(LLMRequest(model="meta-llama/Meta-Llama-3.1-8B-Instruct", **tokens), Place(zone="FR"))
    assert tag.energy_wh.mid < bf16.energy_wh.mid
    # A name with nothing known: refused by default (with suggestions), generic for metering.
    with pytest.raises(UnknownKeyError):
        estimate_footprint(LLMRequest(model="gpt-4o-mni", **tokens), Place(zone="FR"))
    generic = estimate_footprint(LLMRequest(model="nonsense-model", **tokens), Place(zone="FR"), unknown_generic=True)
    assert "model-unknown-generic" in generic.warnings and generic.model == "nonsense-model"
    # Its interval spans what a known mid-sized model's does, and more.
    g = resolve("nonsense-model", fs)
    assert generic.energy_wh.high / generic.energy_wh.low > bf16.energy_wh.high / bf16.energy_wh.low
    assert g.active_params_b.low < 8.03 < g.active_params_b.high


def wl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "wattlens.cli", *args], capture_output=True, text=True, timeout=60, env=env)


def test_cli_refuses_a_name_it_cannot_place_unless_given_parameters() -> None:
    r = wl("estimate", "nonsense-model", "--output-tokens", "10")
    assert r.returncode == 2 and "nonsense-model" in r.stderr and "--active-params" in r.stderr
    r = wl("estimate", "gpt-4o-mni", "--output-tokens", "10")
    assert r.returncode == 2 and "gpt-4o-mini" in r.stderr  # the nearest catalogue names
    r = wl("estimate", "nonsense-model", "--active-params", "3", "--output-tokens", "10", "--json")
    assert r.returncode == 0, r.stderr
    assert "model-not-in-catalogue" in json.loads(r.stdout)["warnings"]
    r = wl("estimate", "qwen2.5:7b", "--output-tokens", "10", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["model"] == "Qwen/Qwen2.5-7B-Instruct"
    r = wl("models", "llama3.1:8b", "--json")  # no row contains the tag: the row it resolves to
    assert r.returncode == 0 and [m["model_id"] for m in json.loads(r.stdout)] == ["meta-llama/Meta-Llama-3.1-8B-Instruct"]
