"""The embedded ledger: one SQLite file in WAL mode, appended to in batches."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from wattlens.errors import WattlensError
from wattlens.ledger.chain import GENESIS, Row, link_batch, time_filter

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
"""


class SQLiteLedger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise WattlensError(f"cannot open ledger {self.path}: {e}") from e
        self._lock = threading.Lock()
        row = self._db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        self._seq, self._head = (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def append(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        if not bodies:
            return
        with self._lock:
            rows, seq, head = link_batch(bodies, self._seq, self._head)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO records (seq, ts, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._seq, self._head = seq, head

    def rows(self) -> Iterator[Row]:
        cur = self._db.execute("SELECT seq, body, prev_hash, hash FROM records ORDER BY rowid")
        for seq, body, prev, h in cur:
            yield Row(int(seq), str(body), str(prev), str(h))

    def records(self, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        q, args = time_filter("records", since, until, "?")
        for (body,) in self._db.execute(q, args):
            yield json.loads(body)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
