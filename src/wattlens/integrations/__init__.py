"""Metering of calls made through other frameworks: LiteLLM, LangChain and LlamaIndex.

Each adapter is a callback of its framework (`wattlens.integrations.litellm`, `.langchain`,
`.llamaindex`; import the one you use: this package imports none of them). It describes every
finished call as a `wattlens.metering.Call` and settles it with `wattlens.metering.settle`, the
same seam as the gateway and `instrument()`, so the same call gets the same receipt and the same
ledger record whoever made it. No adapter computes a receipt itself.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from wattlens.context import Context, Place
from wattlens.footprint import Tokens
from wattlens.metering import Call, LedgerObserver, ModelParams, Observer, Serving, Settlement, settle
from wattlens.protocols.base import count
from wattlens.protocols.base import field as field_of

if TYPE_CHECKING:
    from wattlens.ledger import LedgerWriter
    from wattlens.protocols import WireProtocol

KEEP = 1000  # settled calls an adapter remembers for look-ups by id (older ones are dropped)


class MeterOptions(TypedDict, total=False):
    """The keyword arguments that `instrument()` and every adapter take, passed on to `metering()`:
    zone, region, facility, hardware, ledger, tags, model_params, context, config, observers."""

    zone: str | None
    region: str | None
    facility: str | None
    hardware: str | None
    ledger: Any
    tags: dict[str, str] | None
    model_params: dict[str, dict[str, float]] | None
    context: Context | None
    config: str | None
    observers: Sequence[Observer]


@dataclass
class Metering:
    """What every call metered by one adapter object shares: where it ran, how it is served, who watches."""

    source: str
    context: Context
    serving: Serving
    observers: list[Observer] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    writer: LedgerWriter | None = None

    def call(self, protocol: str, endpoint: str, model: str, **kw: Any) -> Call:
        t = self.tags
        if t:  # runs in every metered call: no dict work when there are no tags
            kw.setdefault("team", t.get("team"))
            kw.setdefault("user", t.get("user"))
            kw["tags"] = dict(t)
        return Call(self.source, protocol, endpoint, model, **kw)

    def settle(self, call: Call, eager: bool) -> Settlement:
        return settle(call, self.context, self.serving, self.observers, eager=eager)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the ledger has written every record queued so far."""
        if self.writer is not None:
            self.writer.flush(timeout_s)


def metering(
    source: str,
    *,
    zone: str | None = None,
    region: str | None = None,
    facility: str | None = None,
    hardware: str | None = None,
    ledger: Any = None,
    tags: dict[str, str] | None = None,
    model_params: dict[str, dict[str, float]] | None = None,
    context: Context | None = None,
    config: str | None = None,
    observers: Sequence[Observer] = (),
) -> Metering:
    """The shared settings of one adapter object, read as `instrument()` reads them.

    Where it runs: zone/region/facility over `context` when given, else over the configuration
    (WATTLENS_* environment, then $WATTLENS_CONFIG or ./wattlens.toml, or the `config` file).
    ledger: a path or postgresql:// URL, or a LedgerWriter; when omitted, the configuration's
    ledger ([ledger] location or WATTLENS_LEDGER) if it names one (a proxy's only way to set it).
    """
    from wattlens import otel
    from wattlens.config import load_settings
    from wattlens.ledger import LedgerWriter, open_ledger
    from wattlens.protocols import protocols

    settings = load_settings(config)
    if context is None:
        context = settings.context()
    ctx = context.at(Place(zone=zone, region=region, facility=facility))
    if ledger is None:
        ledger = settings.ledger
    writer = ledger if isinstance(ledger, LedgerWriter) or ledger is None else LedgerWriter(open_ledger(ledger))
    params = {
        m: ModelParams(float(p["active_params_b"]), p.get("total_params_b"), p.get("precision"))  # type: ignore[arg-type]
        for m, p in (model_params or {}).items()
    }
    obs: list[Observer] = list(observers)
    if writer is not None:
        obs.append(LedgerObserver(writer))
    if otel.enabled():
        obs.append(otel.SpanObserver(protocols()))
    return Metering(source, ctx, Serving(hardware=hardware, model_params=params), obs, dict(tags or {}), writer)


class Recent:
    """The last KEEP settlements by id, for look-ups from any thread; `wait` blocks until one is settled."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._by_id: OrderedDict[str, Settlement] = OrderedDict()
        self._cond = threading.Condition()
        self._waiting = 0  # add() takes the lock only when someone waits: it runs in every metered call

    def add(self, key: str, s: Settlement) -> None:
        by_id = self._by_id
        by_id[key] = s  # one dict operation: atomic under the GIL
        if len(by_id) > self.keep:
            try:  # noqa: SIM105 - contextlib.suppress() costs a µs in every metered call
                by_id.popitem(last=False)
            except KeyError:  # another thread popped the last one first
                pass
        if self._waiting:
            with self._cond:
                self._cond.notify_all()

    def get(self, key: str) -> Settlement | None:
        return self._by_id.get(key)

    def wait(self, key: str, timeout_s: float) -> Settlement | None:
        with self._cond:
            self._waiting += 1  # before the check: an add() after it sees the waiter and notifies
            try:
                self._cond.wait_for(lambda: key in self._by_id, timeout=timeout_s)
            finally:
                self._waiting -= 1
            return self._by_id.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_id

    def settlements(self) -> list[Settlement]:
        return list(self._by_id.values())


_OPENAI: list[WireProtocol] = []  # the openai protocol, looked up once (a registry look-up per call costs µs)


def openai_usage_tokens(usage: Any) -> Tokens:
    """Tokens of usage in OpenAI's shape (LiteLLM's, LangChain's `token_usage`), by the protocol's parser."""
    if not _OPENAI:
        from wattlens.protocols import protocol

        _OPENAI.append(protocol("openai"))
    return _OPENAI[0].tokens(usage)


def usage_metadata_tokens(um: Any) -> Tokens:
    """Tokens of LangChain's provider-neutral `usage_metadata` (its input includes cache reads and writes)."""
    inp = count(um, "input_tokens")
    cached = count(field_of(um, "input_token_details"), "cache_read")
    reasoning = count(field_of(um, "output_token_details"), "reasoning")
    out = count(um, "output_tokens")  # includes reasoning, as OpenAI counts it
    return Tokens(input=inp, cached_input=min(cached, inp), output=max(out - reasoning, 0), reasoning=reasoning)


def iso_utc(t: dt.datetime) -> str:
    """A framework's timestamp (naive ones are local time) in the ledger's form."""
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")


_NAMES: dict[str, str] = {}  # provider name -> protocol name, worked out once per provider


def protocol_name(provider: str | None, default: str = "openai") -> str:
    """The wire protocol of a framework's provider name: a registered protocol's name, else the provider's own."""
    if not provider:
        return default
    name = _NAMES.get(provider)
    if name is None:
        from wattlens.protocols import protocols

        p = provider.lower()
        name = p if p in protocols() else {"azure": "openai", "azure_openai": "openai", "openai_like": "openai"}.get(p, p)
        _NAMES[provider] = name
    return name


__all__ = [
    "KEEP",
    "MeterOptions",
    "Metering",
    "Recent",
    "iso_utc",
    "metering",
    "openai_usage_tokens",
    "protocol_name",
    "usage_metadata_tokens",
]
