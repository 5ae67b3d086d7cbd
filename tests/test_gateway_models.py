"""Every model name gets a receipt through the gateway, with what Ollama, vLLM and llama.cpp say about their models.

The fake upstreams answer on loopback in the documented JSON shapes: Ollama's `POST /api/show`
(docs/api.md), vLLM's `GET /v1/models` ModelCard with `root`/`parent`/`max_model_len`
(vllm/entrypoints/openai/protocol.py), llama.cpp's `GET /v1/models` with `meta` and `GET /props`
(tools/server/README.md). The client is the official openai SDK.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import upstream as up
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import wattlens
from wattlens.factors import builtin
from wattlens.gateway.app import create_app
from wattlens.gateway.config import ApiKey, GatewayConfig, Upstream
from wattlens.gateway.modelinfo import ModelInfo, from_llamacpp, from_ollama
from wattlens.gateway.transport import MockRequest, MockTransport
from wattlens.metering import Call
from wattlens.receipt import LLMRequest, Place, estimate_footprint

CLIENT_KEY = "wl-client-key-never-forwarded"
VLLM_KEY = "sk-vllm-upstream-key"
META: list[dict[str, Any]] = []  # metadata requests as the fake upstreams received them

# Ollama /api/show (docs/api.md), for a custom model whose name says nothing: 8.0B at Q4_K_M.
OLLAMA_SHOW = {
    "modelfile": "FROM llama3.1:8b\n",
    "parameters": "num_keep 24",
    "template": "{{ .Prompt }}",
    "details": {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "8.0B",
        "quantization_level": "Q4_K_M",
    },
    "model_info": {"general.architecture": "llama", "general.parameter_count": 8030261248, "llama.block_count": 32},
    "capabilities": ["completion"],
}
OLLAMA_MODELS = ("llama3.1:8b", "qwen2.5:7b", "mistral", "support-bot:latest", "nonsense-model")


def _seen(request: Request, body: Any = None) -> None:
    META.append({"path": request.url.path, "headers": dict(request.headers), "body": body, "port": request.url.port})


async def ollama_show(request: Request) -> Response:
    body = await request.json()
    _seen(request, body)
    if body.get("model") == "support-bot:latest":
        return JSONResponse(OLLAMA_SHOW)
    return JSONResponse({"error": f"model '{body.get('model')}' not found"}, status_code=404)


async def ollama_models(request: Request) -> Response:
    _seen(request)  # Ollama's OpenAI-compatible list: names only
    data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "library"} for m in OLLAMA_MODELS]
    return JSONResponse({"object": "list", "data": data})


async def vllm_models(request: Request) -> Response:
    _seen(request)
    cards = [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", None),
        ("house-llama", "/models/Llama-3.1-70B-Instruct", None),  # --served-model-name over a local path
        ("sql-lora", "/adapters/sql-lora", "meta-llama/Llama-3.1-8B-Instruct"),  # a LoRA adapter on its base
    ]
    data = [
        {
            "id": i,
            "object": "model",
            "created": 1700000000,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": 131072,
            "permission": [],
        }
        for i, root, parent in cards
    ]
    return JSONResponse({"object": "list", "data": data})


async def llamacpp_models(request: Request) -> Response:
    _seen(request)
    meta = {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 262144, "n_embd": 2048}
    meta |= {"n_params": 30532122624, "size": 18556685312}  # a 30.5B MoE at ~4.9 bits per weight
    return JSONResponse(
        {
            "object": "list",
            "data": [{"id": "house-moe", "object": "model", "created": 1735142223, "owned_by": "llamacpp", "meta": meta}],
        }
    )


async def llamacpp_props(request: Request) -> Response:
    _seen(request)
    return JSONResponse(
        {
            "default_generation_settings": {"id": 0, "id_task": -1, "n_ctx": 4096, "params": {"n_predict": -1}},
            "total_slots": 1,
            "model_path": "/models/Qwen3-30B-A3B-Instruct-2507-Q4_K_M.gguf",
            "chat_template": "",
        }
    )


def server(*extra: Route) -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", up.chat, methods=["POST"]),
            Route("/v1/embeddings", up.embeddings, methods=["POST"]),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    ollama = server(Route("/api/show", ollama_show, methods=["POST"]), Route("/v1/models", ollama_models))
    vllm = server(Route("/v1/models", vllm_models))
    llamacpp = server(Route("/v1/models", llamacpp_models), Route("/props", llamacpp_props))
    with (
        up.ServerThread(ollama) as o,
        up.ServerThread(vllm) as v,
        up.ServerThread(llamacpp) as lc,
        up.ServerThread(up.app) as oai,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("FAKE_VLLM_KEY", VLLM_KEY)
        cfg = GatewayConfig(
            upstreams=(
                Upstream("ollama", "openai", o.url + "/v1", models=OLLAMA_MODELS, place=Place(zone="FR")),
                Upstream(
                    "vllm",
                    "openai",
                    v.url + "/v1",
                    api_key_env="FAKE_VLLM_KEY",
                    models=("meta-llama/*", "house-llama", "sql-lora"),
                    place=Place(zone="FR"),
                ),
                Upstream("llamacpp", "openai", lc.url + "/v1", models=("house-moe",), place=Place(zone="FR")),
                Upstream("oai", "openai", oai.url + "/v1", models=("text-embedding-*", "*"), place=Place(zone="FR")),
            ),
            keys=(ApiKey("k1", hashlib.sha256(CLIENT_KEY.encode()).hexdigest()),),
        )
        with up.ServerThread(create_app(cfg)) as gw:
            yield gw.url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def chat(url: str, model: str) -> dict[str, Any]:
    r = client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "what powers the grid"}])
    fp = r.usage.footprint  # type: ignore[union-attr]
    assert isinstance(fp, dict), f"{model}: no receipt"
    return fp


def expected(model: str, fp: dict[str, Any], **params: Any) -> dict[str, Any]:
    """The receipt the library gives for the same tokens (what the gateway must have computed)."""
    t = fp["tokens"]
    req = LLMRequest(
        model=model,
        input_tokens=t["input"],
        cached_input_tokens=t["cached_input"],
        output_tokens=t["output"],
        reasoning_tokens=t["reasoning"],
        **params,
    )
    return estimate_footprint(req, Place(zone="FR"), unknown_generic=True).as_dict()


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
        ("llama3.1:8b", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
        ("qwen2.5:7b", "Qwen/Qwen2.5-7B-Instruct"),
        ("mistral", "mistralai/Mistral-7B-Instruct-v0.3"),
    ],
)
def test_names_vllm_and_ollama_users_send_get_their_rows(gateway: str, model: str, row: str) -> None:
    fp = chat(gateway, model)
    assert fp["model"] == row and fp["method"] == "estimated"
    assert fp["energy_wh"] == pytest.approx(expected(model, fp)["energy_wh"], rel=1e-6)
    assert "model-unknown-generic" not in fp["warnings"]


def test_a_nonsense_name_gets_a_generic_receipt(gateway: str) -> None:
    fp = chat(gateway, "nonsense-model")  # Ollama's /api/show says 404: nothing known
    assert "model-unknown-generic" in fp["warnings"] and fp["model"] == "nonsense-model"
    e = fp["energy_wh"]
    assert 0 < e["low"] < e["mid"] < e["high"]
    assert fp["energy_wh"] == pytest.approx(expected("nonsense-model", fp)["energy_wh"], rel=1e-6)


def test_embeddings_get_a_receipt_per_input_token(gateway: str) -> None:
    c = client(gateway)
    short = c.embeddings.create(model="text-embedding-3-small", input="the grid")
    long = c.embeddings.create(model="text-embedding-3-small", input="the grid in France is mostly nuclear " * 20)
    fs, fl = short.usage.footprint, long.usage.footprint  # type: ignore[attr-defined]
    assert fs["tokens"]["input"] == 2 and fs["tokens"]["output"] == 0
    assert fl["tokens"]["input"] == 140
    assert "params-estimated" in fs["warnings"] and "model-unknown-generic" not in fs["warnings"]
    assert fl["energy_wh"]["mid"] > fs["energy_wh"]["mid"]  # more input tokens, more energy
    assert fl["energy_wh"] == pytest.approx(expected("text-embedding-3-small", fl)["energy_wh"], rel=1e-6)


def test_ollama_show_tells_what_a_custom_model_is(gateway: str) -> None:
    before = len([m for m in META if m["path"] == "/api/show"])
    fp = chat(gateway, "support-bot:latest")
    assert "model-params-from-upstream" in fp["warnings"] and "model-unknown-generic" not in fp["warnings"]
    # 8030261248 parameters at Q4_K_M (4-bit), from /api/show.
    want = expected("support-bot:latest", fp, active_params_b=8.030261248, total_params_b=8.030261248, precision="int4")
    assert fp["energy_wh"] == pytest.approx(want["energy_wh"], rel=1e-6)
    chat(gateway, "support-bot:latest")  # asked once per (upstream, model)
    shows = [m for m in META if m["path"] == "/api/show"][before:]
    assert [m["body"] for m in shows] == [{"model": "support-bot:latest"}]


def test_vllm_root_and_parent_name_the_served_model(gateway: str) -> None:
    fp = chat(gateway, "house-llama")  # root /models/Llama-3.1-70B-Instruct
    row = builtin().models.get("meta-llama/Meta-Llama-3.1-70B-Instruct")
    p = row.active_params_b.mid
    assert "model-params-from-upstream" in fp["warnings"]
    want = expected("house-llama", fp, active_params_b=p, total_params_b=row.total_params_b.mid, precision=row.precision)
    assert fp["energy_wh"] == pytest.approx(want["energy_wh"], rel=1e-6)
    lora = chat(gateway, "sql-lora")  # parent meta-llama/Llama-3.1-8B-Instruct
    base = builtin().models.get("meta-llama/Meta-Llama-3.1-8B-Instruct")
    a, t = base.active_params_b.mid, base.total_params_b.mid
    want = expected("sql-lora", lora, active_params_b=a, total_params_b=t, precision=base.precision)
    assert lora["energy_wh"] == pytest.approx(want["energy_wh"], rel=1e-6)
    # The vLLM upstream got its own key on the metadata request, never the client's.
    vllm = [m for m in META if m["path"] == "/v1/models" and m["headers"].get("authorization") == f"Bearer {VLLM_KEY}"]
    assert vllm
    assert all(CLIENT_KEY not in str(m["headers"]) for m in META)


def test_llamacpp_meta_and_props(gateway: str) -> None:
    fp = chat(gateway, "house-moe")
    assert "model-params-from-upstream" in fp["warnings"]
    # n_params 30532122624; the GGUF file name says A3B of 30B, so 3/30 of the total is active;
    # Q4_K_M in the file name: int4.
    total = 30.532122624
    want = expected("house-moe", fp, active_params_b=total * 3 / 30, total_params_b=total, precision="int4")
    assert fp["energy_wh"] == pytest.approx(want["energy_wh"], rel=1e-6)


def test_parsers_read_the_documented_shapes() -> None:
    r = from_ollama("x", OLLAMA_SHOW)
    assert r is not None and (r.params.active_params_b, r.params.precision) == (8.030261248, "int4")
    assert from_ollama("x", {"error": "not found"}) is None
    # An MoE whose name does not say the active share: left to the name rules.
    moe = {
        "details": {"parameter_size": "30.5B", "quantization_level": "Q4_K_M"},
        "model_info": {"qwen3moe.expert_count": 128},
    }
    assert from_ollama("house-moe:latest", moe) is None
    assert from_ollama("house-moe:30b-a3b", moe) is not None
    # Bits per weight give the precision when the file name does not: 4912898304 B for 8030261312 weights = 4.9 bits.
    entry = {"id": "x", "meta": {"n_params": 8030261312, "size": 4912898304}}
    got = from_llamacpp(entry, None)
    assert got is not None and got.params.precision == "int4" and got.params.total_params_b == pytest.approx(8.030261312)
    f16 = from_llamacpp({"id": "x", "meta": {"n_params": 1000, "size": 2000}}, None)
    assert f16 is not None and f16.params.precision == "fp16"


def test_a_failing_or_slow_upstream_never_holds_up_a_request() -> None:
    async def handler(req: MockRequest) -> tuple[int, bytes]:
        if req.url.endswith("/models"):
            await asyncio.sleep(30)  # far beyond the lookup's time limit
        return 500, b"boom"

    u = Upstream("slow", "openai", "http://upstream.invalid/v1", models=("*",))
    info = ModelInfo({"slow": MockTransport(handler)}, lambda name: builtin())

    async def run() -> float:
        import wattlens.gateway.modelinfo as mi

        mi_lookup, mi.LOOKUP_S = mi.LOOKUP_S, 0.05
        try:
            t0 = time.perf_counter()
            await info.learn(u, "whatever-model")
            return time.perf_counter() - t0
        finally:
            mi.LOOKUP_S = mi_lookup

    took = asyncio.run(run())
    assert took < 5.0  # bounded by the lookup limit, not the upstream's 30 s
    call = Call("gateway", "openai", "/chat/completions", "whatever-model", served_model="whatever-model")
    assert info.serving(u, call) is u.serving and call.warnings == []


def test_instrument_gives_embeddings_a_receipt() -> None:
    with up.ServerThread(up.app) as s:
        c = wattlens.instrument(openai.OpenAI(base_url=s.url + "/v1", api_key="sk-test", max_retries=0), zone="FR")
        r = c.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
        fp = r.footprint  # type: ignore[attr-defined]
        assert fp is not None and fp["tokens"]["input"] == 5 and fp["model"] == "text-embedding-3-small"
        unknown = c.chat.completions.create(model="nonsense-model", messages=[{"role": "user", "content": "hi"}])
        assert "model-unknown-generic" in unknown.footprint["warnings"]  # type: ignore[attr-defined]


def test_lookups_can_be_turned_off_per_upstream(tmp_path: Any) -> None:
    from wattlens.gateway.config import load_gateway_config

    f = tmp_path / "wattlens.toml"
    f.write_text(
        '[[upstreams]]\nname = "ollama"\nbase_url = "http://127.0.0.1:11434/v1"\nmodel_info = false\n'
        '[[upstreams]]\nname = "vllm"\nbase_url = "http://127.0.0.1:8000/v1"\n'
    )
    cfg = load_gateway_config(f)
    off, on = cfg.upstreams
    info = ModelInfo({}, lambda name: builtin())
    assert not off.model_info and not info.worth_asking(off, "support-bot:latest")
    assert on.model_info and info.worth_asking(on, "support-bot:latest")
    assert not info.worth_asking(on, "gpt-4o")  # the catalogue knows it: nothing to ask


@pytest.mark.parametrize(
    "models",
    [b'{"object": "list", "data": null}', b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"data": "many"}'],
    ids=["data-null", "nested-5000-deep", "data-a-string"],
)
def test_a_hostile_model_list_never_breaks_a_request(models: bytes) -> None:
    """GET /v1/models and a chat for an uncatalogued model (which asks the upstream) both still answer."""
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    chat = json.dumps({"id": "c", "object": "chat.completion", "model": "my-finetune", "usage": usage}).encode()

    async def handler(req: MockRequest) -> tuple[int, bytes]:
        return 200, models if req.url.endswith("/models") else chat

    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://up.invalid/v1", models=("my-*",)),))
    app = create_app(cfg, None, transports={"u": MockTransport(handler)})

    async def go() -> list[Any]:
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            listed = await c.get("/v1/models")
            body = {"model": "my-finetune", "messages": [{"role": "user", "content": "hi"}]}
            return [listed, await c.post("/v1/chat/completions", json=body), await c.post("/v1/chat/completions", json=body)]

    listed, *chats = asyncio.run(go())
    assert listed.status_code == 200 and listed.json()["data"] == []
    for r in chats:
        assert r.status_code == 200 and r.json()["usage"]["footprint"]["model"] == "my-finetune", r.text
