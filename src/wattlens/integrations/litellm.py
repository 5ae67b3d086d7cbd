"""LiteLLM: a `CustomLogger` that gives every LiteLLM SDK call and LiteLLM proxy request a receipt.

    import litellm
    from wattlens.integrations.litellm import WattlensLogger

    meter = WattlensLogger(zone="FR", ledger="ledger.db")
    litellm.callbacks = [meter]
    r = litellm.completion(model="openai/gpt-4o-mini", messages=[...])
    meter.receipt(r)                     # waits for LiteLLM's logging thread; then also in
    r._hidden_params["wattlens"]         # the response's hidden params
    await meter.areceipt(await litellm.acompletion(...))   # async: logged in a task on the loop

Proxy (`config.yaml`): `litellm_settings: {callbacks: ["wattlens.integrations.litellm.proxy_handler"]}`;
it reads the place and the ledger from the wattlens configuration (WATTLENS_ZONE, WATTLENS_LEDGER,
$WATTLENS_CONFIG ...) and puts each receipt in the ledger and in the logged payload's metadata
(`standard_logging_object["metadata"]["wattlens"]`) that the callbacks listed after it receive.

LiteLLM calls its loggers after the response is returned (a logging thread for the sync API, a
task for the async one), so the receipt is computed there, off the caller's path. Usage comes in
OpenAI's shape whatever the provider (LiteLLM normalises it) and is read by the openai protocol's
parser; an OpenAI stream has provider-counted usage only with `stream_options={"include_usage": True}`
(else LiteLLM counts the tokens itself and the call's outcome is "no_usage"; Anthropic streams
always carry usage).
"""

from __future__ import annotations

from typing import Any, Unpack

from litellm.integrations.custom_logger import CustomLogger

from wattlens.footprint import Tokens
from wattlens.integrations import KEEP, Metering, MeterOptions, Recent, iso_utc, metering, openai_usage_tokens, protocol_name
from wattlens.metering import Call, Settlement, public_url
from wattlens.protocols.base import field

# LiteLLM call types -> the endpoint of the provider's wire protocol (Anthropic's is always /messages)
ENDPOINTS = {
    "completion": "/chat/completions",
    "acompletion": "/chat/completions",
    "text_completion": "/completions",
    "atext_completion": "/completions",
    "embedding": "/embeddings",
    "aembedding": "/embeddings",
    "responses": "/responses",
    "aresponses": "/responses",
    "anthropic_messages": "/messages",
}


class WattlensLogger(CustomLogger):
    """Settles every LiteLLM call (success or failure) through wattlens.metering.

    Takes instrument()'s keyword arguments (zone, region, facility, hardware, ledger, tags,
    model_params, context, config) plus observers (e.g. the gateway's Prometheus Metrics).
    """

    def __init__(
        self,
        *,
        keep: int = KEEP,
        **options: Unpack[MeterOptions],
    ) -> None:
        super().__init__()
        # Read now, so that configuration errors show here rather than inside LiteLLM's logging thread.
        self.metering: Metering = metering("litellm", **options)
        self.recent = Recent(keep)

    # -- LiteLLM's hooks ----------------------------------------------------------------------
    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)

    # -- the receipt --------------------------------------------------------------------------
    def settlement(self, response: Any, timeout_s: float = 5.0) -> Settlement | None:
        """The settlement of a response, a stream (after it was read), or a litellm_call_id; waits for the logger."""
        key = call_id_of(response)
        return self.recent.wait(key, timeout_s) if key else None

    def receipt(self, response: Any, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """The receipt of a response, a stream (after it was read) or a litellm_call_id, once LiteLLM logged it."""
        s = self.settlement(response, timeout_s)
        return s.receipt if s is not None else None

    async def areceipt(self, response: Any, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """receipt() for async code: LiteLLM logs an acompletion in a task on this loop, so wait without blocking it."""
        import asyncio

        key = call_id_of(response)
        if not key:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (s := self.recent.get(key)) is None and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return s.receipt if s is not None else None

    @property
    def receipts(self) -> list[dict[str, Any] | None]:
        """The receipts of the last calls, oldest first."""
        return [s.receipt for s in self.recent.settlements()]

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the ledger has written every record queued so far."""
        self.metering.flush(timeout_s)

    def _record(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any, failed: bool) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        call_id = str(kwargs.get("litellm_call_id") or slo.get("litellm_call_id") or slo.get("id") or "")
        if call_id and call_id in self.recent:
            return  # LiteLLM logged this call through both its sync and async paths
        call = self.describe(kwargs, slo, response_obj, start_time, end_time, failed, call_id)
        s = self.metering.settle(call, eager=True)  # off the caller's path: compute it here, once
        receipt = s.receipt
        if receipt is not None:
            hidden = getattr(response_obj, "_hidden_params", None)
            if isinstance(hidden, dict):
                hidden["wattlens"] = receipt
            meta = slo.get("metadata") if isinstance(slo, dict) else None
            if isinstance(meta, dict):
                meta["wattlens"] = receipt  # for the loggers after this one (the proxy's)
        if call_id:
            self.recent.add(call_id, s)

    def describe(
        self,
        kwargs: dict[str, Any],
        slo: dict[str, Any],
        response_obj: Any,
        start_time: Any,
        end_time: Any,
        failed: bool,
        call_id: str = "",
    ) -> Call:
        """The metering.Call of one logged LiteLLM call."""
        params = kwargs.get("litellm_params") or {}
        provider = kwargs.get("custom_llm_provider") or slo.get("custom_llm_provider") or params.get("custom_llm_provider")
        proto = protocol_name(provider)
        call_type = str(kwargs.get("call_type") or slo.get("call_type") or "completion")
        endpoint = "/messages" if proto == "anthropic" else ENDPOINTS.get(call_type, "/chat/completions")
        meta = slo.get("metadata") or {}
        requested = slo.get("model_group") or kwargs.get("model") or slo.get("model") or ""
        stream = bool(kwargs.get("stream") or slo.get("stream"))
        call = self.metering.call(
            proto,
            endpoint,
            str(requested),
            upstream=public_url(str(slo.get("api_base") or params.get("api_base") or provider or "litellm")),
            stream=stream,
            ts=iso_utc(start_time),
            latency_s=(end_time - start_time).total_seconds(),
            **({"request_id": call_id} if call_id else {}),  # the ledger id is LiteLLM's call id
        )
        call.team = meta.get("user_api_key_team_alias") or meta.get("user_api_key_team_id") or call.team
        call.user = slo.get("end_user") or meta.get("user_api_key_user_id") or kwargs.get("user") or call.user
        key_hash = meta.get("user_api_key_hash")
        call.key_id = meta.get("user_api_key_alias") or (str(key_hash)[:12] if key_hash else None)
        if failed:
            exc = kwargs.get("exception")
            status = getattr(exc, "status_code", None)
            call.status = status if isinstance(status, int) else 502
            call.outcome = "upstream_error"
            return call
        response = kwargs.get("complete_streaming_response") or response_obj
        usage = field(response, "usage") or getattr(response, "usage", None)  # ModelResponse keeps it as an extra field
        call.tokens = openai_usage_tokens(usage) if usage is not None else Tokens()
        call.served_model = field(response, "model") or slo.get("model") or call.model
        if stream:
            opts = kwargs.get("stream_options") or {}
            if proto == "openai" and not (isinstance(opts, dict) and opts.get("include_usage")):
                call.outcome = "no_usage"  # an OpenAI stream not asked for usage: LiteLLM counted the tokens
            start, first = slo.get("startTime"), slo.get("completionStartTime")
            if isinstance(start, float) and isinstance(first, float) and first >= start:
                call.ttft_s = first - start
        return call


def call_id_of(obj: Any) -> str | None:
    """The litellm_call_id of a response (its hidden params), a stream wrapper (its logging object) or the id itself."""
    if isinstance(obj, str):
        return obj
    hidden = getattr(obj, "_hidden_params", None)
    if isinstance(hidden, dict) and hidden.get("litellm_call_id"):
        return str(hidden["litellm_call_id"])
    logging_obj = getattr(obj, "logging_obj", None)
    cid = getattr(logging_obj, "litellm_call_id", None)
    return str(cid) if cid else None


_proxy_handler: WattlensLogger | None = None


def __getattr__(name: str) -> Any:
    # The proxy's `callbacks: wattlens.integrations.litellm.proxy_handler`: made on first use, not at import.
    global _proxy_handler
    if name == "proxy_handler":
        if _proxy_handler is None:
            _proxy_handler = WattlensLogger()
        return _proxy_handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENDPOINTS", "WattlensLogger", "call_id_of"]
