"""`wattlens serve --self-test`: start the gateway, send one request through it, return its receipt."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from wattlens.errors import WattlensError
from wattlens.gateway.config import GatewayConfig


def _chat_model(local: Any) -> str | None:
    """The chat model the built-in upstream serves, if it has one installed."""
    if local is None:
        return None
    from wattlens.gateway.local import CHAT_MODEL, chat_model_path

    if local.chat_model:
        return str(local.chat_model)
    try:
        chat_model_path()
    except WattlensError:
        return None
    return CHAT_MODEL


def self_test(config: GatewayConfig, local: Any = None, timeout_s: float = 120.0) -> dict[str, Any]:
    import dataclasses

    import httpx
    import uvicorn

    from wattlens.gateway import check_exposure
    from wattlens.gateway.app import create_app
    from wattlens.ledger import LedgerWriter, open_ledger

    check_exposure(config)
    if local is not None:
        local.embedder()  # load before the clock: the request should not be charged for loading
    with socket.socket() as s:  # a free port, so a running gateway is not disturbed
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ups = tuple(
        dataclasses.replace(u, base_url=u.base_url.replace(f":{config.port}/", f":{port}/")) for u in config.upstreams
    )
    cfg = dataclasses.replace(config, host="127.0.0.1", port=port, upstreams=ups)
    ledger = LedgerWriter(open_ledger(cfg.ledger)) if cfg.ledger != "none" else None
    server = uvicorn.Server(
        uvicorn.Config(create_app(cfg, ledger, local), host="127.0.0.1", port=port, log_level="error", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            if time.time() > deadline:
                raise WattlensError("the gateway did not start")
            time.sleep(0.05)
        model = "sentence-transformers/all-MiniLM-L6-v2" if local is not None else cfg.upstreams[0].models[0]
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings",
            timeout=timeout_s,
            json={"model": model, "input": ["How much energy does one query use?"]},
        )
        body = r.json()
        if r.status_code != 200:
            raise WattlensError(f"self-test request failed ({r.status_code}): {body}")
        fp = (body.get("usage") or {}).get("footprint")
        if not fp:
            raise WattlensError("the response carried no receipt")
        chat = _chat_model(local)
        if chat is None:
            return dict(fp)
        # The built-in chat model is installed: the main job is chatting, so the self-test chats too.
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            timeout=timeout_s,
            json={"model": chat, "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        )
        body = r.json()
        fp = (body.get("usage") or {}).get("footprint") if r.status_code == 200 else None
        if not fp or not body["choices"][0]["message"]["content"]:
            raise WattlensError(f"self-test chat request failed ({r.status_code}): {str(body)[:300]}")
        return dict(fp)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
