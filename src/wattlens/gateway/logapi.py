"""The gateway's side of the transparency log: it signs checkpoints and serves them with proofs.

    [log]
    key_file = "log.key"              # wattlens keys signing new --name wattlens.example/org-ledger -o log.key
    checkpoint_interval_s = 60        # sign the log's head this often (and once more at shutdown)
    state_file = "log.key.last"       # the last checkpoint this gateway signed, kept OUTSIDE the ledger
    witnesses = [{url = "https://witness.example/", key = "witness.example/w1+5f2a9c01+BAx..."}]

Environment: WATTLENS_LOG_KEY_FILE, WATTLENS_LOG_CHECKPOINT_INTERVAL_S, WATTLENS_LOG_STATE_FILE,
WATTLENS_LOG_WITNESSES ("URL KEY" pairs separated by commas).

Before it signs, the gateway proves (RFC 9162 consistency proof, O(log n) stored hashes) that the
log extends the last checkpoint it signed: the copy in `state_file` (outside the database, so a
database restored from an old backup cannot roll it back too) and the latest one kept in the
ledger. A log that is smaller than, or does not extend, either is never signed: the gateway logs an
error, counts `wattlens_log_signing_refusals_total` and keeps refusing until someone looks.

After signing, the gateway asks each witness to cosign (c2sp.org/tlog-witness add-checkpoint, with
a consistency proof from the size that witness last cosigned), checks each cosignature with the
witness's key and publishes the cosigned checkpoint: /wattlens/log/checkpoint and every proof carry
it, so `verify-receipt --witness` works offline. A witness that is down is asked again at the next
tick; one that has cosigned a larger tree than the log holds shows a rollback (logged as an error).

Read-only routes, with the same client-key check as /v1/models and /wattlens/api/models (a key
where keys are configured; open on a keyless loopback gateway). They reveal hashes and sizes only,
never a record:
    GET /wattlens/log/checkpoint               the latest signed checkpoint (C2SP tlog-checkpoint note)
    GET /wattlens/log/proof/{record_id}        C2SP tlog-proof of a record in that checkpoint
    GET /wattlens/log/consistency?old=M[&new=N]  RFC 9162 consistency proof, one base64 hash a line
                                               (N at most the latest signed checkpoint's size)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlens.errors import ConfigError, WattlensError
from wattlens.gateway.notary import Notary

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from wattlens.config import Settings
    from wattlens.gateway.app import Gateway
    from wattlens.ledger import Ledger
    from wattlens.ledger.note import Verifier

log = logging.getLogger("wattlens.log")
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class LogSettings:
    key_file: Path | None = None  # None: the gateway signs nothing (the routes say so)
    checkpoint_interval_s: float = 60.0
    state_file: Path | None = None  # default: <key_file>.last-checkpoint
    witnesses: tuple[tuple[str, Verifier], ...] = ()  # (submission URL prefix, the witness's verifier key)

    @property
    def last_path(self) -> Path | None:
        if self.state_file is not None:
            return self.state_file
        return self.key_file.with_name(self.key_file.name + ".last-checkpoint") if self.key_file else None


def log_settings(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> LogSettings:
    """[log] of the configuration file, under WATTLENS_LOG_* in the environment; paths relative to the file."""
    from wattlens.config import SECTIONS, check_keys, load_settings

    env = os.environ if env is None else env
    st = settings if settings is not None else load_settings(env=env)
    where = st.path or "config"
    section = st.data.get("log", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [log] must be a table")
    check_keys(section, SECTIONS["log"], f"{where} [log]")
    base = Path(st.path).expanduser().parent if st.path else Path(".")

    def path(env_name: str, key: str) -> Path | None:
        v = env.get(env_name) or section.get(key)
        if v is None or v == "":
            return None
        if not isinstance(v, str):
            raise ConfigError(f"{where} [log]: {key} must be a path, got {v!r}")
        p = Path(v).expanduser()
        return p if p.is_absolute() or env.get(env_name) else base / p

    raw = env.get("WATTLENS_LOG_CHECKPOINT_INTERVAL_S") or section.get("checkpoint_interval_s", 60.0)
    try:
        interval_s = float(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[log] checkpoint_interval_s must be a number of seconds, got {raw!r}") from e
    if not interval_s > 0:
        raise ConfigError(f"[log] checkpoint_interval_s must be above 0, got {raw!r}")
    return LogSettings(
        path("WATTLENS_LOG_KEY_FILE", "key_file"),
        interval_s,
        path("WATTLENS_LOG_STATE_FILE", "state_file"),
        _witnesses(env.get("WATTLENS_LOG_WITNESSES"), section.get("witnesses", []), where),
    )


def _witnesses(from_env: str | None, from_file: Any, where: str) -> tuple[tuple[str, Verifier], ...]:
    """The witnesses to ask: WATTLENS_LOG_WITNESSES ("URL KEY,URL KEY"), else [log] witnesses (url, key tables)."""
    from wattlens.ledger.note import COSIGNATURE_V1, NoteError, Verifier

    if from_env:
        pairs = [tuple(p.split()) for p in from_env.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError('WATTLENS_LOG_WITNESSES: give "URL KEY" pairs separated by commas')
        items: list[Any] = [{"url": u, "key": k} for u, k in pairs]
    else:
        items = from_file
    if not isinstance(items, list) or not all(isinstance(w, dict) and set(w) == {"url", "key"} for w in items):
        raise ConfigError(f'{where} [log]: witnesses is a list of {{url = "https://...", key = "NAME+ID+BASE64"}}')
    out = []
    for w in items:
        url, key = w["url"], w["key"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where} [log] witnesses: url must be an http(s) URL, got {url!r}")
        try:
            verifier = Verifier.parse(str(key))
        except NoteError as e:
            raise ConfigError(f"{where} [log] witnesses: key of {url}: {e}") from e
        if verifier.alg != COSIGNATURE_V1:
            raise ConfigError(f"{where} [log] witnesses: {verifier.name} is not a witness key (type 0x04)")
        out.append((url, verifier))
    return tuple(out)


class LogService:
    """The routes and the signing timer of one gateway."""

    def __init__(self, gw: Gateway, settings: LogSettings) -> None:
        self.gw, self.settings = gw, settings
        self.ledger: Ledger | None = gw.ledger.ledger if gw.ledger is not None else None
        self.notary: Notary | None = None
        self._task: asyncio.Task[None] | None = None
        if settings.key_file is not None and self.ledger is not None:
            from wattlens.ledger.note import NoteError, Signer

            try:
                signer = Signer.parse(settings.key_file.read_text(encoding="utf-8"))
            except OSError as e:
                raise ConfigError(f"[log] key_file: cannot read {settings.key_file}: {e.strerror}") from e
            except NoteError as e:
                raise ConfigError(f"[log] key_file {settings.key_file}: {e}") from e
            assert settings.last_path is not None
            self.notary = Notary(self.ledger, signer, settings.last_path, gw.metrics.registry, settings.witnesses)

    # -- the timer -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.notary is not None:
            self._task = asyncio.get_running_loop().create_task(self._every())

    async def _every(self) -> None:
        from starlette.concurrency import run_in_threadpool

        assert self.notary is not None
        await run_in_threadpool(self.notary.try_sign)  # at start: a rolled-back database shows at once
        while True:
            await asyncio.sleep(self.settings.checkpoint_interval_s)
            await run_in_threadpool(self.notary.try_sign)

    async def stop(self) -> None:
        """At shutdown: every queued record written, then one last checkpoint that covers them."""
        from starlette.concurrency import run_in_threadpool

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.notary is not None and self.gw.ledger is not None:
            await run_in_threadpool(self.gw.ledger.flush, 30.0)
            await run_in_threadpool(self.notary.try_sign)

    # -- the routes ----------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        from starlette.routing import Route

        return [
            Route("/wattlens/log/checkpoint", self._guard(self.checkpoint), methods=["GET"]),
            Route("/wattlens/log/proof/{record_id}", self._guard(self.proof), methods=["GET"]),
            Route("/wattlens/log/consistency", self._guard(self.consistency), methods=["GET"]),
        ]

    def _guard(self, fn: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import PlainTextResponse

        from wattlens.gateway.errors import ApiError, error_response

        async def handler(request: Request) -> Response:
            try:
                self.gw.keys.authenticate(request.headers)  # as /v1/models: a client key where keys are configured
                if self.ledger is None:
                    raise ApiError(404, "this gateway keeps no ledger", "not_found_error", "no_log")
                status, text, headers = await run_in_threadpool(fn, request)
            except ApiError as e:
                return error_response(self.gw.protocols["openai"], e)
            except WattlensError as e:
                return error_response(self.gw.protocols["openai"], ApiError(503, str(e), "api_error", "log_unavailable"))
            return PlainTextResponse(text, status_code=status, headers=headers, media_type=TEXT)

        return handler

    def _latest(self) -> str:
        from wattlens.gateway.errors import ApiError

        assert self.ledger is not None
        note = self.ledger.latest_checkpoint()
        if note is None:
            why = (
                f"the first is signed within {self.settings.checkpoint_interval_s:g} s"
                if self.notary
                else "this gateway has no signing key ([log] key_file)"
            )
            raise ApiError(404, f"no signed checkpoint yet: {why}", "not_found_error", "no_checkpoint")
        return note

    def checkpoint(self, request: Request) -> tuple[int, str, dict[str, str]]:
        return 200, self._latest(), {"cache-control": "no-cache"}

    def proof(self, request: Request) -> tuple[int, str, dict[str, str]]:
        from wattlens.gateway.errors import ApiError
        from wattlens.ledger import merkle
        from wattlens.ledger.note import Proof, read_checkpoint

        assert self.ledger is not None
        record_id = request.path_params["record_id"]
        found = self.ledger.locate(record_id)
        if found is None:
            raise ApiError(404, f"no record {record_id[:100]} in the ledger", "not_found_error", "no_record")
        note = self._latest()
        cp = read_checkpoint(note)
        index = found[0]
        if index >= cp.size:
            retry = f"{self.settings.checkpoint_interval_s:g}"
            raise ApiError(
                404,
                f"record {record_id[:100]} is not yet in a signed checkpoint (the latest covers {cp.size} records); "
                f"try again in {retry} s",
                "not_found_error",
                "not_yet_checkpointed",
            )
        path = merkle.inclusion_path(index, cp.size, self.ledger.node)
        return 200, Proof(index, tuple(path), note).encode(), {}

    def consistency(self, request: Request) -> tuple[int, str, dict[str, str]]:
        from wattlens.gateway.errors import ApiError
        from wattlens.ledger import merkle
        from wattlens.ledger.note import read_checkpoint

        assert self.ledger is not None

        def size(name: str) -> int | None:
            v = request.query_params.get(name)
            if v is None:
                return None
            if not v.isdigit():
                raise ApiError(400, f"{name} must be a tree size (a whole number), got {v[:40]!r}")
            return int(v)

        old, new = size("old"), size("new")
        if old is None:
            raise ApiError(400, "give old=SIZE: the size of the checkpoint to prove consistency from")
        # Up to the latest signed checkpoint only: a proof is checked against a signed root, and a read
        # never takes the ledger's write lock (the tree up to a signed size is complete and never changes).
        signed = read_checkpoint(self._latest()).size
        new = signed if new is None else new
        if not old <= new <= signed:
            raise ApiError(400, f"need old <= new <= {signed} (the latest signed checkpoint), got old={old} new={new}")
        proof = merkle.consistency_path(old, new, self.ledger.node)
        body = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        return 200, body, {"x-wattlens-log-old": str(old), "x-wattlens-log-new": str(new)}


def log_service(gw: Gateway, settings: LogSettings | None = None) -> LogService:
    """The log service of a gateway: `settings`, else [log] of the default config file and WATTLENS_LOG_*."""
    return LogService(gw, settings if settings is not None else log_settings())
