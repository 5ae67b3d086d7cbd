"""In-process metering of the official `openai` and `anthropic` clients.

    client = wattlens.instrument(openai.OpenAI(), zone="US-VA")
    r = client.chat.completions.create(...)
    r.footprint              # the same receipt the gateway returns, as a dict

Only the given client object is changed: its resource objects get instance attributes that
shadow the SDK methods, and `uninstrument(client)` deletes them again. A response's receipt
is computed on first access of `.footprint` (or in the ledger thread), so a call costs a
few microseconds more, not the ~50 µs of a receipt.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wattlens.errors import InputError
from wattlens.footprint import Tokens
from wattlens.gateway.config import ModelParams, Upstream
from wattlens.gateway.receipts import footprint_for

# (resource path, method, protocol, endpoint) for each metered call.
OPENAI_TARGETS = (
    (("chat", "completions"), "create", "openai", "/chat/completions"),
    (("completions",), "create", "openai", "/completions"),
    (("embeddings",), "create", "openai", "/embeddings"),
    (("responses",), "create", "openai", "/responses"),
)
ANTHROPIC_TARGETS = ((("messages",), "create", "anthropic", "/messages"),)
_MARK = "_wattlens_instrumented"


@dataclass
class Settings:
    upstream: Upstream
    ledger: Any = None  # LedgerWriter
    tags: dict[str, str] = field(default_factory=dict)
    otel: bool = False


def _fields(obj: Any) -> dict[str, Any]:
    """A pydantic model's field values without attribute lookups (a missing attribute costs µs)."""
    d = getattr(obj, "__dict__", None)
    return d if isinstance(d, dict) else {}


def _int(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    return v if isinstance(v, int) else 0


def openai_tokens_of(usage: Any) -> Tokens:
    """openai_tokens() on the SDK's usage object (model_dump would cost tens of µs)."""
    if usage is None:
        return Tokens()
    d = _fields(usage)
    if "input_tokens" in d:  # Responses API
        inp, out = _int(d, "input_tokens"), _int(d, "output_tokens")
        cached = _int(_fields(d.get("input_tokens_details")), "cached_tokens")
        reasoning = _int(_fields(d.get("output_tokens_details")), "reasoning_tokens")
    else:
        inp, out = _int(d, "prompt_tokens"), _int(d, "completion_tokens")
        cached = _int(_fields(d.get("prompt_tokens_details")), "cached_tokens")
        reasoning = _int(_fields(d.get("completion_tokens_details")), "reasoning_tokens")
    return Tokens(inp, min(cached, inp), max(out - reasoning, 0), reasoning)


def anthropic_tokens_of(usage: Any, output: int | None = None) -> Tokens:
    if usage is None:
        return Tokens()
    d = _fields(usage)
    read = _int(d, "cache_read_input_tokens")
    inp = _int(d, "input_tokens") + _int(d, "cache_creation_input_tokens") + read
    return Tokens(inp, read, _int(d, "output_tokens") if output is None else output)


class Receipt:
    """A lazily computed receipt: the arithmetic runs once, on first use."""

    __slots__ = ("_fp", "_settings", "_tokens", "endpoint", "model", "outcome", "proto", "started", "stream")

    def __init__(
        self,
        settings: Settings,
        proto: str,
        endpoint: str,
        model: str,
        tokens: Tokens,
        started: float,
        stream: bool,
        outcome: str = "ok",
    ) -> None:
        self._settings, self.proto, self.endpoint = settings, proto, endpoint
        self.model, self._tokens, self.started, self.stream, self.outcome = model, tokens, started, stream, outcome
        self._fp: tuple[dict[str, Any] | None, str | None] | None = None

    def get(self) -> tuple[dict[str, Any] | None, str | None]:
        if self._fp is None:
            fp, why = footprint_for(self._settings.upstream, self.model, self._tokens)
            self._fp = (fp.as_dict() if fp else None, why)
        return self._fp

    @property
    def footprint(self) -> dict[str, Any] | None:
        return self.get()[0]

    def record(self) -> dict[str, Any]:
        import datetime as dt

        fp, why = self.get()
        s = self._settings
        return {
            "id": uuid.uuid4().hex,
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "endpoint": self.endpoint,
            "protocol": self.proto,
            "model_requested": self.model,
            "model_served": self.model,
            "upstream": s.upstream.base_url,
            "status": 200,
            "outcome": self.outcome,
            "stream": self.stream,
            "latency_s": round(time.perf_counter() - self.started, 6),
            "ttft_s": None,
            "tokens": self._tokens.as_dict(),
            "key_id": None,
            "team": s.tags.get("team"),
            "user": s.tags.get("user"),
            "tags": dict(s.tags),
            "footprint": fp,
            "footprint_error": why,
            "factors_version": fp["factors_version"] if fp else None,
            "source": "sdk",
        }

    def done(self) -> None:
        s = self._settings
        if s.ledger is not None:
            s.ledger.submit(self.record)  # computed in the ledger thread, off the caller's
        if s.otel:
            from wattlens import otel

            fp = self.get()[0]
            from wattlens.footprint import Footprint

            f = Footprint.from_dict(fp) if fp else None
            attrs = otel.attributes(self.proto, self.endpoint.strip("/"), self.model, None, self._tokens, f)
            otel.record_span(f"{self.endpoint.strip('/')} {self.model}", self.started, attrs)


_SUBCLASSES: dict[type, type] = {}


def _footprinted(cls: type) -> type:
    """A subclass of the SDK's response model whose `footprint` is computed on first access."""
    sub = _SUBCLASSES.get(cls)
    if sub is None:

        def footprint(self: Any) -> dict[str, Any] | None:
            r: Receipt = self.__dict__["_wattlens_receipt"]
            return r.footprint

        sub = type(cls.__name__, (cls,), {"footprint": property(footprint), "__module__": cls.__module__})
        _SUBCLASSES[cls] = sub
    return sub


def _attach(obj: Any, receipt: Receipt) -> Any:
    try:
        obj.__class__ = _footprinted(type(obj))
        obj.__dict__["_wattlens_receipt"] = receipt
    except (TypeError, AttributeError):  # not a pydantic model (e.g. a raw httpx response): leave it alone
        pass
    return obj


def _wants_usage(kwargs: dict[str, Any]) -> bool:
    opts = kwargs.get("stream_options") or {}
    return bool(opts.get("include_usage")) if isinstance(opts, dict) else False


def _prepare(proto: str, endpoint: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask for usage on OpenAI chat/completion streams; remember whether the caller did."""
    if proto == "openai" and kwargs.get("stream") and endpoint in ("/chat/completions", "/completions"):
        asked = _wants_usage(kwargs)
        if not asked:
            opts = dict(kwargs.get("stream_options") or {})
            opts["include_usage"] = True
            kwargs = {**kwargs, "stream_options": opts}
        return kwargs, asked
    return kwargs, True


class _StreamState:
    """Tokens seen on a stream; finishes the receipt exactly once."""

    __slots__ = ("chunks", "done", "endpoint", "model", "proto", "settings", "start_usage", "started", "tokens")

    def __init__(self, settings: Settings, proto: str, endpoint: str, model: str, started: float) -> None:
        self.settings, self.proto, self.endpoint, self.model, self.started = settings, proto, endpoint, model, started
        self.tokens: Tokens | None = None
        self.chunks = 0
        self.start_usage: Any = None
        self.done: Receipt | None = None

    def see(self, ev: Any) -> bool:
        """Look at one chunk; True if it is an injected usage chunk the caller must not see.

        Runs once per chunk, so it reads the model's field dict instead of attributes.
        """
        d = _fields(ev)
        if self.proto == "anthropic":
            t = d.get("type")
            if t == "message_start":
                self.start_usage = _fields(d.get("message")).get("usage")
            elif t == "message_delta":
                self.tokens = anthropic_tokens_of(self.start_usage, _int(_fields(d.get("usage")), "output_tokens"))
            else:
                self.chunks += 1
            return False
        usage = d.get("usage")
        if usage is not None:
            self.tokens = openai_tokens_of(usage)
            return not d.get("choices", True)
        if d.get("type") == "response.completed":
            self.tokens = openai_tokens_of(_fields(d.get("response")).get("usage"))
            return False
        self.chunks += 1
        return False

    def pass_on(self, ev: Any, hide_usage: bool) -> bool:
        """See one chunk; finish the receipt as soon as usage arrives; False to hide an injected usage chunk."""
        hide = self.see(ev)
        if self.tokens is not None and self.done is None:
            self.finish()
        return not (hide and hide_usage)

    def finish(self, outcome: str = "ok") -> Receipt:
        if self.done is None:
            tokens = self.tokens or Tokens(output=self.chunks)  # cut off: what was seen
            self.done = Receipt(
                self.settings,
                self.proto,
                self.endpoint,
                self.model,
                tokens,
                self.started,
                True,
                outcome if self.tokens is None else "ok",
            )
            self.done.done()
        return self.done


class MeteredStream:
    """Wraps an SDK Stream: the same chunks (less an injected usage chunk), then `.footprint`."""

    def __init__(self, inner: Any, state: _StreamState, hide_usage: bool) -> None:
        self._inner, self._state, self._hide = inner, state, hide_usage
        self._it: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        pass_on, hide = self._state.pass_on, self._hide
        try:
            for ev in self._inner:
                if pass_on(ev, hide):
                    yield ev
        except GeneratorExit:
            self._state.finish("client_disconnected")
            raise
        self._state.finish()

    def __next__(self) -> Any:
        if self._it is None:  # one generator for the whole stream, as the SDK's own Stream does
            self._it = iter(self)
        return next(self._it)

    def __enter__(self) -> MeteredStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._state.finish("client_disconnected")
        self._inner.close()

    @property
    def footprint(self) -> dict[str, Any] | None:
        return self._state.done.footprint if self._state.done else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class AsyncMeteredStream(MeteredStream):
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._agen()

    async def _agen(self) -> AsyncIterator[Any]:
        pass_on, hide = self._state.pass_on, self._hide
        try:
            async for ev in self._inner:
                if pass_on(ev, hide):
                    yield ev
        except GeneratorExit:
            self._state.finish("client_disconnected")
            raise
        self._state.finish()

    async def __aenter__(self) -> AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._state.finish("client_disconnected")
        await self._inner.close()


def _wrap(orig: Callable[..., Any], settings: Settings, proto: str, endpoint: str, is_async: bool) -> Callable[..., Any]:
    def after(result: Any, kwargs: dict[str, Any], asked: bool, started: float) -> Any:
        model = str(kwargs.get("model", ""))
        if kwargs.get("stream"):
            state = _StreamState(settings, proto, endpoint, model, started)
            cls = AsyncMeteredStream if is_async else MeteredStream
            return cls(result, state, hide_usage=not asked)
        usage = getattr(result, "usage", None)
        tokens = anthropic_tokens_of(usage) if proto == "anthropic" else openai_tokens_of(usage)
        served = getattr(result, "model", None) or model
        receipt = Receipt(settings, proto, endpoint, served, tokens, started, False)
        receipt.done()
        return _attach(result, receipt)

    if is_async:

        @functools.wraps(orig)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            kwargs, asked = _prepare(proto, endpoint, kwargs)
            return after(await orig(*args, **kwargs), kwargs, asked, started)

        return awrapper

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        kwargs, asked = _prepare(proto, endpoint, kwargs)
        return after(orig(*args, **kwargs), kwargs, asked, started)

    return wrapper


def _kind(client: Any) -> tuple[str, bool]:
    mod = type(client).__module__
    name = type(client).__name__
    if mod.startswith("openai") or name in ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI"):
        return "openai", name.startswith("Async")
    if mod.startswith("anthropic") or name in ("Anthropic", "AsyncAnthropic"):
        return "anthropic", name.startswith("Async")
    raise InputError(f"instrument() takes an openai or anthropic client, got {type(client).__name__}")


def instrument(
    client: Any,
    *,
    zone: str | None = None,
    region: str | None = None,
    facility: str | None = None,
    hardware: str | None = None,
    ledger: Any = None,
    tags: dict[str, str] | None = None,
    model_params: dict[str, dict[str, float]] | None = None,
) -> Any:
    """Meter every call of this client; returns the same client.

    ledger: a path or postgresql:// URL, or a LedgerWriter (receipts are written in batches
    off the calling thread). model_params: {"my-model": {"active_params_b": 8}} for models
    outside the catalogue (an OpenAI client pointed at vLLM or Ollama).
    """
    proto, is_async = _kind(client)
    if getattr(client, _MARK, None):
        raise InputError("this client is already instrumented; call wattlens.uninstrument(client) first")
    from wattlens import otel
    from wattlens.ledger import LedgerWriter, open_ledger

    writer = ledger if isinstance(ledger, LedgerWriter) or ledger is None else LedgerWriter(open_ledger(ledger))
    params = {
        m: ModelParams(float(p["active_params_b"]), p.get("total_params_b"), p.get("precision"))  # type: ignore[arg-type]
        for m, p in (model_params or {}).items()
    }
    upstream = Upstream(
        "sdk",
        proto,
        str(getattr(client, "base_url", "")).rstrip("/"),
        zone=zone,
        region=region,
        facility=facility,
        hardware=hardware,
        model_params=params,
    )
    settings = Settings(upstream, writer, dict(tags or {}), otel.enabled())
    wrapped = []
    for path, method, p, endpoint in OPENAI_TARGETS if proto == "openai" else ANTHROPIC_TARGETS:
        resource = client
        try:
            for attr in path:
                resource = getattr(resource, attr)
        except AttributeError:
            continue  # an older SDK without this resource
        orig = getattr(resource, method)
        setattr(resource, method, _wrap(orig, settings, p, endpoint, is_async))
        wrapped.append((resource, method))
    object.__setattr__(client, _MARK, (wrapped, settings))
    return client


def uninstrument(client: Any) -> Any:
    """Undo instrument(): the client's resources get their SDK methods back."""
    mark = getattr(client, _MARK, None)
    if not mark:
        return client
    wrapped, _settings = mark
    for resource, method in wrapped:
        resource.__dict__.pop(method, None)
    object.__delattr__(client, _MARK)
    return client
