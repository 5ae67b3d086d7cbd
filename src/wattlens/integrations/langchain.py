"""LangChain: a callback handler that settles every chat-model and LLM run through wattlens.metering.

    from langchain_openai import ChatOpenAI
    from wattlens.integrations.langchain import WattlensCallbackHandler

    meter = WattlensCallbackHandler(zone="FR", ledger="ledger.db")
    llm = ChatOpenAI(model="gpt-4o-mini", stream_usage=True, callbacks=[meter])
    msg = llm.invoke("What powers the grid?")
    msg.response_metadata["wattlens"]          # the receipt, on the returned AIMessage
    meter.receipts[-1]                         # the same, kept by the handler (streams too)

Where the receipt goes, when `attach=True` (the default): the run's `LLMResult.llm_output["wattlens"]`
(what handlers and tracers listed after this one, LangSmith's included, get in on_llm_end) and
every generation's `message.response_metadata["wattlens"]` (`generation_info` for text LLMs), so
the AIMessage that `invoke` returns carries it. A stream's chunks are yielded before LangChain
ends the run, so a streamed call's receipt is in `meter.receipts` / `meter.receipt(run_id or chunk)`.

Tokens: the provider's usage in OpenAI's shape (`llm_output["token_usage"]`) through the openai
protocol's parser, else the message's provider-neutral `usage_metadata`. A stream has usage only
when the model is asked for it (ChatOpenAI(stream_usage=True)); without it the call's outcome is
"no_usage" and its output tokens are estimated from the text (about four characters a token).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Unpack
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, GenerationChunk, LLMResult
from langchain_core.outputs.chat_generation import ChatGenerationChunk

from wattlens.footprint import Tokens
from wattlens.integrations import (
    KEEP,
    Metering,
    MeterOptions,
    Recent,
    metering,
    openai_usage_tokens,
    protocol_name,
    usage_metadata_tokens,
)
from wattlens.metering import Call, Settlement, public_url

CHARS_PER_TOKEN = 4  # a stream without usage: output tokens estimated from its text
BASE_URL_KEYS = ("openai_api_base", "base_url", "anthropic_api_url", "api_base", "azure_endpoint", "endpoint")
DESCRIBED_MAX = 256  # kinds of run (provider, model, base URL) whose description is kept
_EMPTY: dict[str, Any] = {}  # read-only stand-in for a missing mapping
_CHUNKS = (ChatGenerationChunk, GenerationChunk)


class _Run(NamedTuple):
    """A started run: what on_*_start knew, waiting for its end (a tuple: the cheapest record to make)."""

    started: float  # perf_counter, for the latency
    wall_s: float  # time.time(); the ledger's ISO timestamp is formatted from it off the caller's path
    protocol: str
    endpoint: str
    model: str
    upstream: str


class WattlensCallbackHandler(BaseCallbackHandler):
    """Meters LangChain chat models and LLMs; takes instrument()'s keyword arguments plus observers.

    attach: put each receipt on the run's output, computing it in the callback (tens of µs a call:
    it must be a plain dict when the call returns; see bench/results/integrations.md); with
    False it is computed when first read (`receipts`) or in the ledger's thread.
    """

    run_inline = True  # async runs too: the receipt must be on the message before ainvoke returns it

    def __init__(
        self,
        *,
        attach: bool = True,
        keep: int = KEEP,
        **options: Unpack[MeterOptions],
    ) -> None:
        self.metering: Metering = metering("langchain", **options)
        self.attach = attach
        self.recent = Recent(keep)
        self._runs: dict[UUID, _Run] = {}
        self._described: dict[tuple[Any, ...], tuple[str, str, str, str]] = {}

    # Only model runs are metered: LangChain then skips this handler for every other event.
    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # -- runs ---------------------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(serialized, run_id, metadata, kwargs.get("invocation_params"), chat=True)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(serialized, run_id, metadata, kwargs.get("invocation_params"), chat=False)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        gens = response.generations
        first = gens[0][0] if gens and gens[0] else None
        out = response.llm_output
        msg = getattr(first, "message", None)
        meta = getattr(msg, "response_metadata", None) or _EMPTY
        raw = (out.get("token_usage") if out else None) or meta.get("token_usage")
        outcome = "ok"
        if raw:  # the provider's own usage in OpenAI's shape (the run's, shared by its n generations)
            tokens = openai_usage_tokens(raw)
        elif um := getattr(msg, "usage_metadata", None):
            tokens = usage_metadata_tokens(um)
        else:
            outcome = "no_usage"
            chars = sum(len(g.text) for batch in gens for g in batch)
            tokens = Tokens(output=-(-chars // CHARS_PER_TOKEN))
        served = (out.get("model_name") if out else None) or meta.get("model_name") or meta.get("model") or run.model
        key = run_id.hex
        call = self._call(run, key, tokens=tokens, served_model=served, outcome=outcome, stream=isinstance(first, _CHUNKS))
        s = self.metering.settle(call, eager=self.attach)
        self.recent.add(key, s)
        if self.attach and (receipt := s.receipt) is not None:
            if response.llm_output is None:
                response.llm_output = {}
            response.llm_output["wattlens"] = receipt
            for batch in gens:
                for g in batch:
                    if isinstance(g, ChatGeneration):
                        g.message.response_metadata["wattlens"] = receipt
                    else:
                        g.generation_info = {**(g.generation_info or {}), "wattlens": receipt}

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        key = run_id.hex
        call = self._call(run, key)
        if isinstance(error, GeneratorExit | KeyboardInterrupt) or type(error).__name__ == "CancelledError":
            call.status, call.outcome = 499, "client_disconnected"
        else:
            status = getattr(error, "status_code", None)
            call.status, call.outcome = (status if isinstance(status, int) else 502), "upstream_error"
        partial = kwargs.get("response")
        gens = [g for batch in getattr(partial, "generations", None) or [] for g in batch]
        um = getattr(getattr(gens[0], "message", None), "usage_metadata", None) if gens else None
        if um:  # a stream cut off after its usage arrived
            call.tokens = usage_metadata_tokens(um)
        self.recent.add(key, self.metering.settle(call, eager=self.attach))

    # -- the receipt --------------------------------------------------------------------------
    def settlement(self, run: UUID | str | Any) -> Settlement | None:
        """The settlement of a run: its run_id, or a message it returned (streamed chunks' ids name the run)."""
        key = run_key(run)
        return self.recent.get(key) if key else None

    def receipt(self, run: UUID | str | Any) -> dict[str, Any] | None:
        """The receipt of a run: its run_id, or a message or chunk it returned."""
        s = self.settlement(run)
        return s.receipt if s is not None else None

    @property
    def receipts(self) -> list[dict[str, Any] | None]:
        """The receipts of the last runs, oldest first (computed here when attach=False)."""
        return [s.receipt for s in self.recent.settlements()]

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the ledger has written every record queued so far."""
        self.metering.flush(timeout_s)

    # -- helpers ------------------------------------------------------------------------------
    def _start(
        self, serialized: dict[str, Any] | None, run_id: UUID, metadata: dict[str, Any] | None, params: Any, chat: bool
    ) -> None:
        started, wall_s = time.perf_counter(), time.time()
        meta = metadata or _EMPTY
        inv = params if isinstance(params, dict) else _EMPTY
        kw = (serialized or _EMPTY).get("kwargs") or _EMPTY
        provider = meta.get("ls_provider")
        model = inv.get("model") or inv.get("model_name") or meta.get("ls_model_name") or kw.get("model_name") or ""
        if not isinstance(model, str):
            model = str(model)
        base = None
        for k in BASE_URL_KEYS:
            if k in kw and isinstance(v := kw[k], str):
                base = v
                break
        # What a run's description depends on repeats call after call: work it out once per kind of run.
        key = (provider, model, base, chat)
        described = self._described.get(key)
        if described is None:
            proto = protocol_name(provider)
            endpoint = "/messages" if proto == "anthropic" else "/chat/completions" if chat else "/completions"
            described = (proto, endpoint, model, public_url(str(base or provider or "langchain")))
            if len(self._described) < DESCRIBED_MAX:
                self._described[key] = described
        self._runs[run_id] = _Run(started, wall_s, *described)

    def _call(self, run: _Run, key: str, **kw: Any) -> Call:
        # ts left None: the record's ISO time is formatted from wall_s in the ledger's thread
        return self.metering.call(
            run.protocol,
            run.endpoint,
            run.model,
            upstream=run.upstream,
            started=run.started,
            wall_s=run.wall_s,
            request_id=key,
            **kw,
        )


def run_key(run: UUID | str | Any) -> str | None:
    """A run's key: from its UUID, its hex, or a message id LangChain made from it ("lc_run--<uuid>")."""
    if isinstance(run, UUID):
        return run.hex
    if not isinstance(run, str):
        run = getattr(run, "id", None)
        if not isinstance(run, str):
            return None
    try:
        return UUID(run.removeprefix("lc_run--")).hex
    except ValueError:
        return None


__all__ = ["WattlensCallbackHandler", "run_key"]
