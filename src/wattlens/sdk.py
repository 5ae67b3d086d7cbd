"""In-process metering of SDK clients (the official `openai` and `anthropic`, or a plugin protocol's).

    client = wattlens.instrument(openai.OpenAI(), zone="US-VA")
    r = client.chat.completions.create(...)
    r.footprint              # the same receipt the gateway returns, as a dict

Only the given client object is changed: its resource objects get instance attributes that
shadow the SDK methods, and `uninstrument(client)` deletes them again. Token usage is read by
the same protocol code as the gateway's (wattlens.protocols) and each call is settled by
wattlens.metering; the receipt is computed on first access of `.footprint` (or in the ledger
thread), straight as its JSON form (receipt.Receipt.as_dict): about 15 µs in a tight loop, some
40 µs inside a real call; the metering of the call itself adds tens of µs (bench/results/instrument.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Unpack

from wattlens.errors import InputError
from wattlens.integrations import Metering, MeterOptions, metering
from wattlens.metering import Call, Settlement, public_url
from wattlens.protocols import StreamTracker, WireProtocol, protocols
from wattlens.protocols.base import InvalidUsage
from wattlens.protocols.base import field as field_of

_MARK = "_wattlens_instrumented"


@dataclass(frozen=True)
class Settings:
    """What every metered call of one client shares: the adapters' shared settings, its protocol and its URL."""

    proto: WireProtocol
    metering: Metering
    upstream: str

    def call(self, endpoint: str, model: str, started: float, stream: bool) -> Call:
        return self.metering.call(self.proto.name, endpoint, model, upstream=self.upstream, stream=stream, started=started)

    def settle(self, call: Call) -> Settlement:
        return self.metering.settle(call, eager=False)


_SUBCLASSES: dict[type, type] = {}


def _footprinted(cls: type) -> type:
    """A subclass of the SDK's response model whose `footprint` is computed on first access."""
    sub = _SUBCLASSES.get(cls)
    if sub is None:

        def footprint(self: Any) -> dict[str, Any] | None:
            s: Settlement = self.__dict__["_wattlens_settlement"]
            return s.receipt

        sub = type(cls.__name__, (cls,), {"footprint": property(footprint), "__module__": cls.__module__})
        _SUBCLASSES[cls] = sub
    return sub


def _attach(obj: Any, s: Settlement) -> Any:
    try:
        obj.__class__ = _footprinted(type(obj))
        obj.__dict__["_wattlens_settlement"] = s
    except (TypeError, AttributeError):  # not a pydantic model (e.g. a raw httpx response): leave it alone
        pass
    return obj


class _StreamState:
    """A stream's tracker and its call; settles exactly once."""

    __slots__ = ("call", "done", "settings", "tracker")

    def __init__(self, settings: Settings, call: Call, tracker: StreamTracker) -> None:
        self.settings, self.call, self.tracker = settings, call, tracker
        self.done: Settlement | None = None

    def pass_on(self, ev: Any, hide_usage: bool) -> bool:
        """See one event; settle as soon as usage arrives; False to hide an injected usage chunk."""
        t = self.tracker
        if t.see(None, ev) == "usage" and self.done is None and t.tokens is not None and not t.invalid_usage:
            self.call.tokens = t.tokens
            self.call.served_model = t.served_model or self.call.model
            self.done = self.settings.settle(self.call)
        return not (hide_usage and t.hides(ev))

    def finish(self, outcome: str) -> None:
        if self.done is None:
            t = self.tracker
            if t.tokens is not None and not t.invalid_usage:  # a running usage, but no final usage event
                self.call.tokens = t.tokens
                self.call.outcome = "ok" if outcome == "no_usage" else outcome
            else:
                self.call.outcome = outcome
                self.call.tokens = t.cut_off()  # cut off: what was seen
                if t.invalid_usage:
                    self.call.warnings.append("usage-invalid")
            self.done = self.settings.settle(self.call)


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
        self._state.finish("no_usage")

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
        return self._state.done.receipt if self._state.done else None

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
        self._state.finish("no_usage")

    async def __aenter__(self) -> AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._state.finish("client_disconnected")
        await self._inner.close()


def _wrap(orig: Callable[..., Any], settings: Settings, endpoint: str, is_async: bool) -> Callable[..., Any]:
    proto = settings.proto

    def after(result: Any, kwargs: dict[str, Any], asked: bool, started: float) -> Any:
        model = str(kwargs.get("model", ""))
        call = settings.call(endpoint, model, started, bool(kwargs.get("stream")))
        if call.stream:
            state = _StreamState(settings, call, proto.tracker(endpoint))
            cls = AsyncMeteredStream if is_async else MeteredStream
            return cls(result, state, hide_usage=not asked)
        try:
            call.tokens = proto.tokens(proto.usage_of(result))
        except InvalidUsage:
            call.warnings.append("usage-invalid")
        call.served_model = field_of(result, "model") or model
        return _attach(result, settings.settle(call))

    if is_async:

        @functools.wraps(orig)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            kwargs, asked = proto.prepare(endpoint, kwargs)
            return after(await orig(*args, **kwargs), kwargs, asked, started)

        return awrapper

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        kwargs, asked = proto.prepare(endpoint, kwargs)
        return after(orig(*args, **kwargs), kwargs, asked, started)

    return wrapper


def _protocol_of(client: Any) -> WireProtocol:
    for p in protocols().values():
        if p.sdk_client(client):
            return p
    raise InputError(f"instrument() takes an openai or anthropic client, got {type(client).__name__}")


def instrument(client: Any, **options: Unpack[MeterOptions]) -> Any:
    """Meter every call of this client; returns the same client.

    options (wattlens.integrations.MeterOptions): zone, region, facility, hardware, ledger, tags,
    model_params, context, config, observers; a name outside them is a TypeError.
    Where it runs: zone/region/facility, over `context` when given, else over the configuration
    (WATTLENS_* environment, then $WATTLENS_CONFIG or ./wattlens.toml, or the `config` file).
    ledger: a path or postgresql:// URL, or a LedgerWriter (records are written in batches
    off the calling thread); when omitted, the configuration's ledger if it names one.
    model_params: {"my-model": {"active_params_b": 8}} for models
    outside the catalogue (an OpenAI client pointed at vLLM or Ollama).
    """
    proto = _protocol_of(client)
    if getattr(client, _MARK, None):
        raise InputError("this client is already instrumented; call wattlens.uninstrument(client) first")
    m = metering("sdk", **options)
    settings = Settings(proto, m, public_url(str(getattr(client, "base_url", "")).rstrip("/")))
    is_async = type(client).__name__.startswith("Async")
    wrapped = []
    for path, method, endpoint in proto.sdk_targets:
        resource = client
        try:
            for attr in path:
                resource = getattr(resource, attr)
        except AttributeError:
            continue  # an older SDK without this resource
        orig = getattr(resource, method)
        setattr(resource, method, _wrap(orig, settings, endpoint, is_async))
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
