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
# Record ids in their own column (added to older ledgers): a plain index, cheap to keep, where an
# index over json_extract(body) cost a JSON parse per insert.
ID_COLUMN = """
ALTER TABLE records ADD COLUMN id TEXT;
CREATE INDEX IF NOT EXISTS records_id ON records (id);
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
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(records)")}
            if "id" not in columns:
                self._db.executescript(ID_COLUMN)
        except (OSError, sqlite3.Error) as e:
            raise WattlensError(f"cannot open ledger {self.path}: {e}") from e
        self._lock = threading.Lock()
        self.spill_path = self.path.with_name(self.path.name + ".spill.jsonl")
        self.dead_path = self.path.with_name(self.path.name + ".dead.jsonl")

    def append(self, bodies: Sequence[Mapping[str, Any]]) -> int:
        """Append in one transaction; records whose id is already in the ledger are skipped. Returns how many."""
        if not bodies:
            return 0
        with self._lock:
            # The head is read inside the write lock of the database, never cached: another
            # process appending to the same file (an overlapping restart) extends the same chain.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
                seq, head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
                fresh = self._fresh(bodies)
                rows, _, _ = link_batch(fresh, seq, head)
                ids = [None if b.get("id") is None else str(b["id"]) for b in fresh]
                self._db.executemany(
                    "INSERT INTO records (seq, ts, body, prev_hash, hash, id) VALUES (?, ?, ?, ?, ?, ?)",
                    [(*r, i) for r, i in zip(rows, ids, strict=True)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(rows)

    def _fresh(self, bodies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The bodies whose id is neither in the ledger nor earlier in the batch (a replayed spill file)."""
        ids = [str(b.get("id")) for b in bodies if b.get("id") is not None]
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT id FROM records WHERE id IN ({marks})"
            known.update(str(r[0]) for r in self._db.execute(q, chunk))
        out = []
        for b in bodies:
            rid = b.get("id")
            if rid is not None and str(rid) in known:
                continue
            if rid is not None:
                known.add(str(rid))
            out.append(b)
        return out

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
