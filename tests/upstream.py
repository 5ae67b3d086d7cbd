"""A real HTTP upstream on loopback speaking the OpenAI and Anthropic protocols, for gateway tests.

Model names steer failures: "fail-500", "slow" (sleeps), "badstream" (malformed SSE),
"cutoff" (the stream breaks off).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = ["The", " grid", " in", " France", " is", " mostly", " nuclear", "."]
SEEN: list[dict[str, Any]] = []  # requests as the upstream received them (headers, body)


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


async def chat(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"headers": dict(request.headers), "body": body, "path": request.url.path})
    model = body["model"]
    if model == "fail-500":
        return JSONResponse({"error": {"message": "upstream exploded", "type": "server_error"}}, status_code=500)
    if model == "slow":
        await asyncio.sleep(3)
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])) + 10
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}
                ],
                "usage": usage(prompt, len(WORDS) + 2),
            }
        )
    # "nousage" streams as llama-cpp-python's server does: a role-only first chunk, the words, a finish chunk,
    # and no usage whatever the client asked.
    include = (body.get("stream_options") or {}).get("include_usage") and model != "nousage"

    async def gen() -> AsyncIterator[bytes]:
        if model == "badstream":
            yield b"this is not an event stream\n\n"
            return

        def plain(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            return f"data: {json.dumps(chunk)}\n\n".encode()

        if model == "nousage":
            yield plain({"role": "assistant", "content": ""})
            for w in WORDS:
                yield plain({"content": w})
            yield plain({}, "stop")
            yield b"data: [DONE]\n\n"
            return
        for i, w in enumerate(WORDS):
            if model == "cutoff" and i == 3:
                raise RuntimeError("upstream died")  # the connection breaks mid-stream
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}],
            }
            if include:
                chunk["usage"] = None
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        if include:
            final = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage(prompt, len(WORDS) + 2),
            }
            yield f"data: {json.dumps(final)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


async def completions(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"headers": dict(request.headers), "body": body, "path": request.url.path})
    return JSONResponse(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "text": " nuclear.", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )


async def embeddings(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"headers": dict(request.headers), "body": body, "path": request.url.path})
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    n = sum(len(str(x).split()) for x in inputs)
    return JSONResponse(
        {
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.1] * 8} for i in range(len(inputs))],
            "usage": {"prompt_tokens": n, "total_tokens": n},
        }
    )


async def models(request: Request) -> Response:
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                for m in ("gpt-4o-mini", "gpt-4o", "not-routed")
            ],
        }
    )


async def messages(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"headers": dict(request.headers), "body": body, "path": request.url.path})
    model = body["model"]
    u = {"input_tokens": 20, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 9}
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "".join(WORDS)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": u,
            }
        )

    async def gen() -> AsyncIterator[bytes]:
        def ev(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        start_usage = {**u, "output_tokens": 1}
        yield ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
        yield ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        for w in WORDS:
            yield ev(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
            )
        yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        )
        yield ev("message_stop", {"type": "message_stop"})

    return StreamingResponse(gen(), media_type="text/event-stream")


async def responses(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"headers": dict(request.headers), "body": body, "path": request.url.path})
    u = {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 42,
    }
    resp = {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": body["model"],
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "m1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "".join(WORDS), "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": u,
    }
    if not body.get("stream"):
        return JSONResponse(resp)

    async def gen() -> AsyncIterator[bytes]:
        def ev(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        yield ev(
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": {**resp, "status": "in_progress", "output": [], "usage": None},
            },
        )
        for i, w in enumerate(WORDS):
            yield ev(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": "m1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": w,
                    "sequence_number": i + 1,
                    "logprobs": [],
                },
            )
        yield ev("response.completed", {"type": "response.completed", "sequence_number": 99, "response": resp})

    return StreamingResponse(gen(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/messages", messages, methods=["POST"]),
    ]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server on loopback in a thread, stopped cleanly at the end of the test."""

    def __init__(self, asgi: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="error", access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def stop(proc: Any) -> None:
    """End a server process started by a test: ask, then insist."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
