"""The append-only, hash-chained ledger of receipts.

open_ledger(location) picks the backend: a file path (SQLite, the default) or a
postgresql:// URL. LedgerWriter batches appends off the request path.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from wattlens.ledger.chain import Problem, Row, verify

FLUSH_S = 0.2  # a crash loses at most this much (well under a second)
BATCH = 512


class Ledger(Protocol):
    def append(self, bodies: Sequence[Mapping[str, Any]]) -> None: ...
    def rows(self) -> Iterator[Row]: ...
    def records(self, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "wattlens" / "ledger.db"


def open_ledger(location: str | Path | None = None) -> Ledger:
    loc = str(location or default_path())
    if loc.startswith(("postgresql://", "postgres://")):
        from wattlens.ledger.postgres import PostgresLedger

        return PostgresLedger(loc)
    from wattlens.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(loc.removeprefix("sqlite:///"))


class LedgerWriter:
    """Queue records from any thread; a daemon thread appends them in batches."""

    def __init__(self, ledger: Ledger, flush_s: float = FLUSH_S) -> None:
        self.ledger, self.flush_s = ledger, flush_s
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="wattlens-ledger", daemon=True)
        self._closed = False
        self.errors: list[str] = []
        self._busy = False
        self._thread.start()

    def submit(self, record: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue a record, or a function that makes one (it then runs in the writer thread)."""
        self._q.put(record)  # type: ignore[arg-type]

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[dict[str, Any]] = []
            try:
                item = self._q.get(timeout=self.flush_s)
                if item is None:
                    stop = True
                else:
                    batch.append(item)
                while len(batch) < BATCH:
                    item = self._q.get_nowait()
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            if batch:
                self._busy = True
                self._write(batch)
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
        self._write(rest)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        try:
            batch = [r() if callable(r) else r for r in batch]
            self.ledger.append(batch)
        except Exception as e:  # keep serving; the error is reported on /healthz and at close
            self.errors.append(f"{type(e).__name__}: {e}")
            for r in batch:  # retried at the next flush rather than lost
                self._q.put(r)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is written (for readers that must see it)."""
        import time

        deadline = time.monotonic() + timeout_s
        while (self._q.unfinished_tasks or self._busy) and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join()
        self.ledger.close()


__all__ = ["Ledger", "LedgerWriter", "Problem", "default_path", "open_ledger", "verify"]
