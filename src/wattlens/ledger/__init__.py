"""The append-only, hash-chained ledger of receipts.

open_ledger(location) picks the backend: a file path (SQLite, the default) or a
postgresql:// URL. LedgerWriter batches appends off the request path.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from wattlens.errors import WattlensError
from wattlens.ledger.chain import CanonicalRecord, Problem, Row, canonical, scrub, verify
from wattlens.ledger.merkle import NodeSource
from wattlens.ledger.tree import Entry, TreeState

FLUSH_S = 0.2  # a crash loses at most this much (well under a second)
BATCH = 512
# After a batch's first record, the writer gathers what arrives for this long (well inside FLUSH_S):
# one transaction per ~50 ms instead of one per request, so the ledger takes far less of the GIL
# that requests need (at concurrency 1 each record was its own transaction).
LINGER_S = 0.05
EXIT_WAIT_S = 10.0  # at interpreter exit, how long the queued records may take to reach the database


class Ledger(Protocol):
    def append(self, bodies: Sequence[Mapping[str, Any]]) -> int: ...
    def rows(self) -> Iterator[Row]: ...
    def records(self, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...
    # The Merkle log beside the chain (wattlens.ledger.tree)
    def entries(self) -> Iterator[Entry]: ...
    def tree_state(self) -> TreeState: ...
    def stored_state(self) -> TreeState | None: ...
    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]: ...  # (level, index, hash), for verify
    def leaves(self, after_seq: int = 0) -> list[bytes]: ...  # of the records after that seq
    def locate(self, record_id: str) -> tuple[int, str] | None: ...
    @property
    def node(self) -> NodeSource: ...  # a merkle.Batched: a proof's nodes read at once
    def put_checkpoint(self, size: int, note: str, ts: str) -> None: ...
    def latest_checkpoint(self) -> str | None: ...


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "wattlens" / "ledger.db"


def open_ledger(location: str | Path | None = None, create: bool = True) -> Ledger:
    """The ledger at a path (SQLite) or postgresql:// URL; create=False for readers: a missing file is an error."""
    loc = str(location or default_path())
    if loc.startswith(("postgresql://", "postgres://")):
        from wattlens.ledger.postgres import PostgresLedger

        return PostgresLedger(loc)
    from wattlens.ledger.sqlite import SQLiteLedger

    path = Path(loc.removeprefix("sqlite:///")).expanduser()
    if not create and not path.is_file():
        raise WattlensError(f"no ledger at {path}: give --ledger PATH, or set [ledger] location or WATTLENS_LEDGER")
    return SQLiteLedger(path)


class LedgerWriter:
    """Queue records from any thread; a daemon thread appends them in batches.

    Nothing is dropped without a trace:
    - a record that cannot be stored (not valid Unicode, NaN, its builder failed) is set aside
      in a dead-letter file (`ledger.dead_path`) and counted, so it never blocks the others;
    - when the database cannot be written (down, locked, disk full) the batch goes to a spill
      journal (`ledger.spill_path`, JSON lines) and the writer retries with exponential
      back-off; the journal is replayed first when the database is back (and at the next start);
    - the queue is bounded: past `max_queue` records, new ones go straight to the journal
      instead of growing memory.
    """

    def __init__(
        self, ledger: Ledger, flush_s: float = FLUSH_S, max_queue: int = 100_000, linger_s: float = LINGER_S
    ) -> None:
        self.ledger, self.flush_s, self.linger_s = ledger, flush_s, min(linger_s, flush_s)
        self._hurry = threading.Event()  # set by flush() and close(): write now, do not linger
        self._q: queue.Queue[dict[str, Any] | Callable[[], dict[str, Any]] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="wattlens-ledger", daemon=True)
        self._closed = False
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.written = self.dead = self.spilled = self.lost = 0
        self._held: list[dict[str, Any]] = []  # when neither the database nor the journal can be written
        self._max_held = max_queue
        self.degraded = False  # the last write failed; back to False when one succeeds
        self._busy = False
        self._spill_lock = threading.Lock()
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self.spill_path: Path | None = getattr(ledger, "spill_path", None)
        self.dead_path: Path | None = getattr(ledger, "dead_path", None)
        self._thread.start()
        # A daemon thread stops wherever it is when the interpreter exits: a script's last records
        # would never be written. At exit, write what is queued (bounded: a hung database cannot hang the exit).
        atexit.register(self.close, EXIT_WAIT_S)

    def submit(self, record: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue a record, or a function that makes one (it then runs in the writer thread)."""
        try:
            self._q.put_nowait(record)
        except queue.Full:  # the database has been away for a long time: keep it on disk, not in memory
            self._spill([self._materialise(record)])

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "queued": self._q.qsize(),
            "spilled": self.spilled,
            "dead_letters": self.dead,
            "held_in_memory": len(self._held),
            "lost": self.lost,
            "degraded": self.degraded,
            "errors": list(self.errors)[-3:],
        }

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[Any] = []
            try:
                item = self._q.get(timeout=self.flush_s)
                if item is None:
                    stop = True
                else:
                    batch.append(item)
                    if self._q.qsize() < BATCH - 1 and self.linger_s > 0:
                        self._hurry.wait(self.linger_s)
                while len(batch) < BATCH:
                    item = self._q.get_nowait()
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            self._busy = True
            try:
                self._write(batch, final=stop)
            finally:
                self._busy = False
                for _ in range(len(batch) + (1 if stop else 0)):
                    self._q.task_done()
        rest = []
        while True:  # whatever raced in after the sentinel
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        self._write(rest, final=True)

    def _materialise(self, r: Any) -> dict[str, Any]:
        if not callable(r):
            return r if type(r) is CanonicalRecord else dict(r)
        try:
            made = r()
            return made if type(made) is CanonicalRecord else dict(made)
        except Exception as e:  # the record's builder failed: keep what is known, never lose the request
            import datetime as dt
            import uuid

            return {
                "id": uuid.uuid4().hex,
                "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                "outcome": "record_error",
                "footprint": None,
                "footprint_error": f"record could not be built: {type(e).__name__}: {e}",
            }

    def _write(self, batch: list[Any], final: bool = False) -> None:
        storable = [self._materialise(r) for r in batch]
        if time.monotonic() < self._retry_at and not final:
            self._spill(storable)  # backing off: keep the order by queueing behind the journal
            return
        try:
            self._replay()
            if self._held:  # records neither the database nor the journal could take earlier, in order
                held, self._held = self._held, []
                storable = held + storable
            if storable:
                try:
                    self.ledger.append(storable)
                except (ValueError, TypeError):  # a record with no canonical form: set it aside, write the rest
                    storable = self._storable(storable)
                    self.ledger.append(storable)
            self.written += len(storable)
            if self.degraded:
                self.degraded, self._backoff_s = False, 0.0
        except Exception as e:  # keep serving; the error is reported on /healthz and at close
            self.errors.append(f"{type(e).__name__}: {e}")
            self.degraded = True
            self._backoff_s = min(max(self._backoff_s * 2, 0.1), 30.0)
            self._retry_at = time.monotonic() + self._backoff_s
            self._spill(storable)

    def _storable(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records that have a canonical form; the others go to the dead letters.

        Checked only after a batch failed, so a healthy batch is encoded once, not twice.
        """
        ok = []
        for rec in records:
            try:
                canonical(rec)
                ok.append(rec)
            except (ValueError, TypeError) as e:
                self._dead_letter(rec, e)
        return ok

    def _spill(self, records: list[dict[str, Any]]) -> None:
        records = self._storable(records)  # the journal holds only what the ledger can take later
        if not records:
            return
        try:
            if self.spill_path is None:
                raise OSError("the ledger has no spill journal")
            data = "".join(json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n" for rec in records).encode()
            with self._spill_lock:
                self.spill_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.spill_path, "ab", buffering=0) as f:  # unbuffered: we see every partial write
                    start = f.tell()
                    try:
                        done = 0
                        while done < len(data):
                            done += f.write(data[done:]) or 0
                    except OSError:
                        f.truncate(start)  # no half-written line: the journal stays readable
                        raise
            self.spilled += len(records)
        except OSError as e:  # the disk is full too: hold them in memory (bounded) and retry with the database
            self.errors.append(f"spill journal unwritable: {e}")
            room = max(self._max_held - len(self._held), 0)
            self._held.extend(records[:room])
            self.lost += len(records) - min(room, len(records))

    def _replay(self) -> None:
        """Append what the journal holds, in order, then empty it (ids already written are skipped)."""
        if self.spill_path is None or not self.spill_path.is_file():
            return
        with self._spill_lock:
            records = []
            for line in self.spill_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError as e:  # a line cut by a crash: kept aside, never blocking the others
                    self._dead_letter({"id": None, "journal_line": line[:10_000]}, e)
            for i in range(0, len(records), BATCH):
                self.ledger.append(records[i : i + BATCH])
            self.spill_path.unlink()
        self.written += len(records)

    def _dead_letter(self, rec: dict[str, Any], why: BaseException) -> None:
        self.dead += 1
        self.errors.append(f"record {rec.get('id')} set aside: {why}")
        if self.dead_path is None:
            return
        try:
            self.dead_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.dead_path, "a", encoding="utf-8") as f:  # escaped so that any record can be kept
                line = json.dumps({"why": str(why), "record": scrub(rec)}, default=repr, separators=(",", ":"))
                f.write(line + "\n")
        except OSError as e:
            self.errors.append(f"dead-letter file unwritable: {e}")

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is written (for readers that must see it)."""
        deadline = time.monotonic() + timeout_s
        self._hurry.set()
        try:
            while (self._q.unfinished_tasks or self._busy) and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            self._hurry.clear()

    def close(self, timeout_s: float | None = None) -> None:
        """Write what is queued, then close the ledger (at interpreter exit too, waiting at most EXIT_WAIT_S)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._hurry.set()
        self._q.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # only with a timeout: the database has not answered
            print(
                f"wattlens: the ledger did not answer within {timeout_s:g} s; {self._q.qsize()} queued records were"
                f" not written (the spill journal {self.spill_path} keeps those that reached it)",
                file=sys.stderr,
            )
            return
        if self._held:  # neither the database nor the disk took them: say so rather than lose them silently
            self.lost += len(self._held)
            print(
                f"wattlens: {len(self._held)} ledger records could not be written (database and disk full)", file=sys.stderr
            )
        self.ledger.close()


__all__ = ["Entry", "Ledger", "LedgerWriter", "Problem", "TreeState", "default_path", "open_ledger", "verify"]
