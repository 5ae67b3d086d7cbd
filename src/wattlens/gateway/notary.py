"""The gateway's signer: signs checkpoints of its ledger, never one that contradicts an earlier signature.

Before it signs, it derives the tree head from the records' leaves and proves (RFC 9162 consistency
proof) that the log extends the last checkpoint it signed (kept outside the database, and in it);
then it asks the configured witnesses to cosign (gateway.logapi describes the whole service).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlens.errors import WattlensError

if TYPE_CHECKING:
    from wattlens.ledger import Ledger
    from wattlens.ledger.note import Signer, Verifier
    from wattlens.ledger.tree import TreeState

log = logging.getLogger("wattlens.log")


class RollbackError(WattlensError):
    """The log does not extend a checkpoint already signed: it was truncated, rolled back or forked."""


class Notary:
    """Signs checkpoints of one ledger, never one that contradicts an earlier signature."""

    def __init__(
        self,
        ledger: Ledger,
        signer: Signer,
        last_path: Path,
        registry: Any = None,
        witnesses: tuple[tuple[str, Verifier], ...] = (),
        origin: str | None = None,
    ) -> None:
        from prometheus_client import Counter, Gauge

        self.ledger, self.signer, self.last_path = ledger, signer, last_path
        if origin is not None and origin != signer.name:  # verifiers take the key's name as the log's origin
            from wattlens.errors import ConfigError

            raise ConfigError(
                f"the origin {origin!r} must be the signing key's name {signer.name!r}: "
                "make a key named after the log (wattlens keys signing new --name ORIGIN)"
            )
        self.origin = signer.name
        self.witnesses = witnesses
        self._witnessed: dict[str, int] = {}  # URL -> the size that witness last cosigned (0: ask it)
        self.cosigned = Counter(
            "wattlens_log_cosignatures", "Cosignatures received from witnesses", ["witness"], registry=registry
        )
        self.cosign_failures = Counter(
            "wattlens_log_cosignature_failures",
            "Checkpoints a witness did not cosign (unreachable, refused, or a rollback it saw)",
            ["witness"],
            registry=registry,
        )
        self.signed = Counter("wattlens_log_checkpoints_signed", "Checkpoints of the log signed", registry=registry)
        self.refused = Counter(
            "wattlens_log_signing_refusals",
            "Checkpoints not signed: the log does not extend the last one signed (truncated, rolled back or forked)",
            registry=registry,
        )
        self.size = Gauge("wattlens_log_signed_size", "Tree size of the last signed checkpoint", registry=registry)
        self.last_error: str | None = None
        self._own: TreeState | None = None  # the tree as this notary derived it from the records' leaves

    def sign(self) -> str:
        """Sign the log's head now (or return the last note when the log has not grown); RollbackError if it must not."""
        from wattlens.ledger import merkle
        from wattlens.ledger.note import Checkpoint, read_checkpoint, sign_checkpoint

        state = self.ledger.tree_state()  # brings leaves and nodes up to date first
        self._check_state(state)
        earlier = [n for n in (self._outside(), self.ledger.latest_checkpoint()) if n and self._mine(n)]
        for note in earlier:
            old = read_checkpoint(note, self.signer.verifier)
            if old.size > state.size:
                self._refuse(f"the log holds {state.size} records but a checkpoint of {old.size} was signed with this key")
            proof = merkle.consistency_path(old.size, state.size, self.ledger.node)
            if not merkle.verify_consistency(old.size, state.size, old.root, state.root, proof):
                self._refuse(f"the first {old.size} records are not the ones a checkpoint signed with this key commits to")
        if earlier:
            last = read_checkpoint(earlier[0], self.signer.verifier)
            if last.size == state.size and last.root == state.root:
                self.last_error = None
                return earlier[0]
        note = sign_checkpoint(Checkpoint(self.origin, state.size, state.root), self.signer)
        self.ledger.put_checkpoint(state.size, note, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        self._keep_outside(note)
        self.signed.inc()
        self.size.set(state.size)
        self.last_error = None
        return note

    def cosign(self, note: str) -> str:
        """The note with a cosignature from every witness that gives one (each asked once; none raise)."""
        from wattlens.ledger import merkle
        from wattlens.ledger.note import NoteError, open_cosigned, read_checkpoint
        from wattlens.ledger.witness import WitnessError, http_post, request_cosignature

        size, before = read_checkpoint(note).size, note
        for url, wv in self.witnesses:
            try:
                open_cosigned(note, wv)
                continue  # already cosigned by this witness
            except NoteError:
                pass
            try:
                note, held = request_cosignature(
                    url,
                    note,
                    wv,
                    lambda m: merkle.consistency_path(m, size, self.ledger.node),
                    http_post(5.0),
                    self._witnessed.get(url, 0),
                )
            except WitnessError as e:
                self.cosign_failures.labels(wv.name).inc()
                self.last_error = str(e)
                log.error("no cosignature: %s", e)
                continue
            self._witnessed[url] = held
            self.cosigned.labels(wv.name).inc()
        if note != before:  # kept beside the log-signed note; the latest kept (this one) is what is served
            self.ledger.put_checkpoint(size, note, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            self._keep_outside(note)
        return note

    def _mine(self, note: str) -> bool:
        """A checkpoint this key signed; one signed by another key (a rotated key, another tool) is not
        this gateway's promise: it is set aside with a warning rather than blocking every signature."""
        from wattlens.ledger.note import NoteError, read_checkpoint

        try:
            read_checkpoint(note, self.signer.verifier)
            return True
        except NoteError as e:
            log.warning("a kept checkpoint is not signed by this gateway's key (%s); not compared with", e)
            return False

    def _check_state(self, state: TreeState) -> None:
        """The stored tree head must be the one the records' leaf hashes give: derived here from the
        leaves (all of them at first, then only the new ones), so a forged tree state is refused,
        not signed. (The consistency proof may come from stored nodes: forged ones can only make it
        fail against true roots, never pass.)"""
        from wattlens.ledger.tree import TreeState

        kept, self._own = self._own, None
        # what was derived before, extended; or, if that does not match (a database swapped under a
        # running gateway), everything again
        for own in ([kept] if kept is not None and kept.size <= state.size else []) + [TreeState()]:
            own.extend(self.ledger.leaves(own.seq)[: state.size - own.size], state.seq)
            if own.size == state.size and own.root == state.root:
                self._own = own
                return
        self._refuse(
            f"the stored tree head ({state.size} records) is not the one the records' leaf hashes give: "
            "the tree state was edited (run wattlens verify)"
        )

    def _refuse(self, why: str) -> None:
        self.refused.inc()
        self.last_error = why
        log.error("refusing to sign a checkpoint of the log: %s (truncated, rolled back or forked?)", why)
        raise RollbackError(f"refusing to sign: {why}")

    def _outside(self) -> str | None:
        try:
            return self.last_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _keep_outside(self, note: str) -> None:
        """Written whole (a temporary file renamed over it): a crash leaves the old note or the new one."""
        self.last_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.last_path.with_name(self.last_path.name + ".tmp")
        tmp.write_text(note, encoding="utf-8")
        os.replace(tmp, self.last_path)

    def try_sign(self) -> str | None:
        """For the timer: sign, or log why not (never raising into the server)."""
        try:
            note = self.sign()
            return self.cosign(note) if self.witnesses else note
        except RollbackError:
            return None  # already logged and counted
        except Exception as e:  # a database error: the next tick tries again
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("could not sign a checkpoint of the log: %s", self.last_error)
            return None
