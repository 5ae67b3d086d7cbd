"""One settlement for every metered call: a Call and its Context -> one receipt and one ledger record.

Whoever made the call — the gateway, the SDK wrapper, `wattlens run`, the demo, an
integration — describes it as a `Call` and settles it here, so the same call gets the same
receipt and the same record everywhere. Observers (the ledger writer, Prometheus metrics,
OpenTelemetry) watch settled calls; none of them is written into the gateway.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from wattlens.context import Context
from wattlens.errors import WattlensError
from wattlens.footprint import Footprint, Tokens, positional_builder

if TYPE_CHECKING:
    from wattlens.ledger.chain import CanonicalRecord
    from wattlens.measure.meter import Measurement
    from wattlens.receipt import Receipt

SCHEMA_VERSION = 2  # 2: a measured receipt keeps its window (footprint.measurement)
Hosting = Literal["own", "purchased"]


def public_url(url: str) -> str:
    """An upstream's URL as logs and records may show it: without user, password, query or fragment
    (where keys hide)."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    try:
        u = urlsplit(url)
        host = u.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{u.port}" if u.port else "")
    except ValueError:
        return "(unparsable URL)"
    return urlunsplit((u.scheme, netloc, u.path, "", ""))


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class ModelParams:
    """A model outside the catalogue, described by its operator."""

    active_params_b: float
    total_params_b: float | None = None
    precision: str | None = None


@dataclass(frozen=True)
class Serving:
    """How an upstream serves its models, when known: hardware, replica size, concurrency, models' sizes."""

    hardware: str | None = None
    gpus: int | None = None
    batch_size: float | None = None
    model_params: dict[str, ModelParams] = field(default_factory=dict)


@dataclass
class Call:
    """One metered unit of work, whoever made it; filled in while it runs, then settled once."""

    source: str  # gateway | sdk | run | demo | an integration's name
    protocol: str  # a wire protocol's name, or "process" for `wattlens run`
    endpoint: str
    model: str  # as requested
    served_model: str | None = None
    upstream: str | None = None
    status: int = 200
    outcome: str = "ok"  # ok | rejected | upstream_error | client_disconnected | no_usage | failed
    stream: bool = False
    tokens: Tokens = field(default_factory=Tokens)
    started: float = field(default_factory=time.perf_counter)
    ts: str | None = None  # ISO time the call started; None: from wall_s, formatted off the request path
    wall_s: float = field(default_factory=time.time)
    request_id: str = field(default_factory=lambda: secrets.token_hex(16))
    latency_s: float | None = None  # None: measured from `started` when settled
    timed: bool = True  # False for replays: no latency is recorded
    ttft_s: float | None = None
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    hosting: Hosting = "purchased"  # "own": hardware you run (Scope 2); "purchased": an AI service (Scope 3)
    routing: dict[str, Any] | None = None  # set when a virtual route chose the model
    measurement: Measurement | None = None  # measured energy; else the receipt is estimated from tokens
    warnings: list[str] = field(default_factory=list)  # codes the source adds to the receipt (usage-invalid)
    no_inference: bool = False  # a call that runs no model (Anthropic's count_tokens): recorded, no receipt


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """The one record of a settled call, the same for every source (schema_version marks its shape)."""

    id: str
    ts: str
    source: str
    endpoint: str
    protocol: str
    model_requested: str
    model_served: str
    upstream: str | None
    status: int
    outcome: str
    stream: bool
    latency_s: float | None
    ttft_s: float | None
    tokens: dict[str, int]
    key_id: str | None
    team: str | None
    user: str | None
    tags: dict[str, str]
    hosting: str
    footprint: dict[str, Any] | None
    footprint_error: str | None
    factors_version: str
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


# LedgerRecord(...) by position without the frozen dataclass's per-field machinery: a record per request
_new_record: Callable[..., LedgerRecord] = positional_builder(LedgerRecord)
_RECORD_FIELDS: tuple[str, ...] = LedgerRecord.__slots__  # the fields, in order


def estimated_receipt(model: str, tokens: Tokens, ctx: Context, serving: Serving, at: dt.datetime | None = None) -> Receipt:
    """The receipt of a served call estimated from its tokens, as receipt.Receipt (Footprint or JSON form)."""
    from wattlens.receipt import LLMRequest, estimate_receipt

    params = serving.model_params.get(model)
    req = LLMRequest(
        model=model,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cached_input_tokens=tokens.cached_input,
        reasoning_tokens=tokens.reasoning,
        active_params_b=params.active_params_b if params else None,
        total_params_b=params.total_params_b if params else None,
        precision=params.precision if params else None,
        hardware=serving.hardware,
        gpus=serving.gpus,
        batch_size=serving.batch_size,
    )
    return estimate_receipt(req, ctx, at=at, unknown_generic=True)  # a served call always gets a receipt


def estimated_footprint(
    model: str, tokens: Tokens, ctx: Context, serving: Serving, at: dt.datetime | None = None
) -> Footprint:
    return estimated_receipt(model, tokens, ctx, serving, at).footprint


class Settlement:
    """A settled call: its receipt (computed once, on first use) and its ledger record."""

    __slots__ = ("_entry", "_est", "_fp", "_receipt", "call", "ctx", "ended", "replaced", "serving")

    def __init__(self, call: Call, ctx: Context, serving: Serving, replaced: tuple[Context, Serving] | None) -> None:
        self.call, self.ctx, self.serving, self.replaced = call, ctx, serving, replaced
        self.ended = time.perf_counter()
        self._fp: tuple[Footprint | None, str | None] | None = None
        self._est: Receipt | None = None  # an estimated receipt's figures, before its Footprint is built
        self._receipt: dict[str, Any] | None = None
        self._entry: CanonicalRecord | None = None

    def _settle(self) -> tuple[Footprint | Receipt | None, str | None]:
        c = self.call
        if c.upstream is None and c.measurement is None:
            return None, "no upstream: the request was refused before it reached one"
        if c.no_inference:
            return None, "no model ran (the upstream only counted tokens): there is no energy to charge"
        model = c.served_model or c.model
        try:
            if c.measurement is not None:
                import dataclasses

                from wattlens.measure.meter import measured_footprint

                fp = measured_footprint(c.measurement, self.ctx, self.at)
                if c.protocol == "process":  # a command, not a model: the receipt names neither model nor tokens
                    return fp, None
                return dataclasses.replace(fp, model=model, tokens=c.tokens), None
            return estimated_receipt(model, c.tokens, self.ctx, self.serving, self.at), None
        except WattlensError as e:
            return None, f"{e} (describe it under [upstreams.model_params] in the gateway config)"

    def _settled(self) -> None:
        """Works out the receipt's figures (once); an estimate's Footprint waits until someone asks for it."""
        from wattlens.receipt import Receipt

        got, why = self._settle()
        if isinstance(got, Receipt):
            self._est = got
            self._fp = (None, None)
        else:
            self._fp = (self._merged(got), why)

    def _merged(self, fp: Footprint | None) -> Footprint | None:
        """The receipt with the codes the source added (usage-invalid)."""
        if fp is not None and self.call.warnings:
            import dataclasses

            fp = dataclasses.replace(fp, warnings=tuple(dict.fromkeys((*fp.warnings, *self.call.warnings))))
        return fp

    @property
    def footprint(self) -> Footprint | None:
        if self._fp is None:
            self._settled()
        assert self._fp is not None
        fp = self._fp[0]
        if fp is None and self._est is not None:  # built now, from the figures (a thread may read receipt meanwhile)
            fp = self._merged(self._est.footprint)
            self._fp = (fp, None)
        return fp

    @property
    def error(self) -> str | None:
        if self._fp is None:
            self._settled()
        assert self._fp is not None
        return self._fp[1]

    @property
    def receipt(self) -> dict[str, Any] | None:
        """The receipt in its one JSON form (with `routing` when a route chose the model)."""
        if self._receipt is None:
            if self._fp is None:
                self._settled()
            est = self._est
            if est is not None and self.call.routing is None:
                d = est.as_dict(self.call.warnings)  # straight from the figures
            else:
                fp = self.footprint
                if fp is None:
                    return None
                d = fp.as_dict()
                if self.call.routing is not None:
                    d["routing"] = self._savings(fp)
            m = d.get("model")
            if m is not None and not m.isascii():  # the client's text: made valid Unicode, as the record's
                from wattlens.ledger.chain import scrub

                d["model"] = scrub(m)
            self._receipt = d
        return self._receipt

    def _savings(self, fp: Footprint) -> dict[str, Any]:
        """Energy saved against the model the route replaced, both estimated the same way."""
        routing = self.call.routing or {}
        out = dict(routing)
        replaced = routing.get("instead_of")
        saved = {"low": 0.0, "mid": 0.0, "high": 0.0}
        if replaced and self.replaced is not None:
            try:
                big: Footprint | None = estimated_footprint(replaced, self.call.tokens, *self.replaced)
            except WattlensError:
                big = None
            if big is not None:
                diffs = sorted([big.energy_wh.low - fp.energy_wh.low, big.energy_wh.high - fp.energy_wh.high])
                saved = {"low": diffs[0], "mid": big.energy_wh.mid - fp.energy_wh.mid, "high": diffs[1]}
                saved["low"], saved["high"] = min(saved["low"], saved["mid"]), max(saved["high"], saved["mid"])
        out["energy_saved_wh"] = saved
        return out

    @property
    def at(self) -> dt.datetime | None:
        """When the call ran, for a time-resolved grid feed (the annual tables do not ask)."""
        if self.ctx.grid.name == "annual":
            return None
        c = self.call
        return dt.datetime.fromisoformat(c.ts) if c.ts else dt.datetime.fromtimestamp(c.wall_s, dt.UTC)

    @property
    def latency_s(self) -> float:
        c = self.call
        return c.latency_s if c.latency_s is not None else self.ended - c.started

    def record(self) -> LedgerRecord:
        """The ledger record; text a client sent is made valid Unicode so that any request can be recorded."""
        return _new_record(*self._fields())

    def record_body(self) -> dict[str, Any]:
        """`record().as_dict()`, made straight from the fields (once per request on the gateway's path)."""
        return dict(zip(_RECORD_FIELDS, self._fields(), strict=True))

    def _fields(self) -> tuple[Any, ...]:
        from wattlens.ledger.chain import scrub

        c, receipt = self.call, self.receipt
        return (  # LedgerRecord's fields, in their order
            c.request_id,  # id
            c.ts or dt.datetime.fromtimestamp(c.wall_s, dt.UTC).isoformat(timespec="microseconds"),  # ts
            c.source,
            c.endpoint,
            c.protocol,
            scrub(c.model),  # model_requested
            scrub(c.served_model or c.model),  # model_served
            c.upstream,
            c.status,
            c.outcome,
            c.stream,
            round(self.latency_s, 6) if c.timed else None,  # latency_s
            round(c.ttft_s, 6) if c.ttft_s is not None else None,  # ttft_s
            c.tokens.as_dict(),
            c.key_id,
            scrub(c.team),
            scrub(c.user),
            scrub(c.tags),
            c.hosting,
            receipt,  # footprint
            self.error,  # footprint_error
            receipt["factors_version"] if receipt is not None else self.ctx.factors.version,  # factors_version
            SCHEMA_VERSION,
        )

    def entry(self) -> CanonicalRecord:
        """The record as the ledger stores it, with its canonical text: made once, in whichever thread asks
        first (the response's entry hash and the writer then use the same bytes). ValueError: it has none."""
        if self._entry is None:
            from wattlens.ledger.chain import CanonicalRecord

            self._entry = CanonicalRecord(self.record_body())
        return self._entry

    def record_dict(self) -> dict[str, Any]:
        """What the ledger writer stores: the entry, or the bare record when it has no canonical form
        (the writer then sets it aside as a dead letter, and says so)."""
        try:
            return self.entry()
        except (ValueError, TypeError):
            return self.record_body()

    def entry_hash(self) -> str | None:
        """The record's RFC 9162 leaf hash in hex (what its inclusion proof proves); None: it cannot be stored."""
        try:
            return self.entry().leaf_hash()
        except (ValueError, TypeError):
            return None


class Observer(Protocol):
    """Watches settled calls (the ledger, metrics, traces). Must not raise, must not block."""

    def observe(self, s: Settlement) -> None: ...


def settle(
    call: Call,
    ctx: Context,
    serving: Serving | None = None,
    observers: Sequence[Observer] = (),
    replaced: tuple[Context, Serving] | None = None,
    eager: bool = False,
) -> Settlement:
    """Settle a finished call and tell the observers.

    The receipt is computed on first use, or now with eager=True (when the caller needs it anyway,
    so observers in other threads never compute it a second time).
    replaced: where the model a route replaced would have run, to price the energy saved.
    """
    s = Settlement(call, ctx, serving or Serving(), replaced)
    if eager:
        s.receipt  # noqa: B018 - computes and keeps it
    for o in observers:
        o.observe(s)
    return s


class LedgerObserver:
    """Queues each settled call's record on a LedgerWriter; the record is built in its thread."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def observe(self, s: Settlement) -> None:
        self.writer.submit(s.record_dict)


class CallbackObserver:
    """Calls a function with each settlement (tests, integrations)."""

    def __init__(self, fn: Callable[[Settlement], None]) -> None:
        self.fn = fn

    def observe(self, s: Settlement) -> None:
        self.fn(s)


__all__ = [
    "SCHEMA_VERSION",
    "Call",
    "CallbackObserver",
    "LedgerObserver",
    "LedgerRecord",
    "ModelParams",
    "Observer",
    "Serving",
    "Settlement",
    "estimated_footprint",
    "estimated_receipt",
    "now_iso",
    "public_url",
    "settle",
]
