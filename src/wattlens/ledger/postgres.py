"""The ledger in PostgreSQL, for several gateway replicas writing one chain.

Each batch takes a transaction-scoped advisory lock, reads the chain head and appends, so
replicas interleave whole batches and the chain stays linear.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wattlens.errors import WattlensError
from wattlens.ledger.chain import GENESIS, Row, link_batch, time_filter

LOCK_KEY = 0x7761_7474  # "watt": the advisory lock that serialises appends
SCHEMA = """
CREATE TABLE IF NOT EXISTS wattlens_records (
    seq BIGINT PRIMARY KEY,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wattlens_records_ts ON wattlens_records (ts);
ALTER TABLE wattlens_records ADD COLUMN IF NOT EXISTS id TEXT;
CREATE INDEX IF NOT EXISTS wattlens_records_id ON wattlens_records (id);
"""


class PostgresLedger:
    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise WattlensError("a PostgreSQL ledger needs psycopg: pip install 'wattlens[postgres]'") from e
        self._psycopg = psycopg
        self._url = url
        # The URL may hold a password: only the host part is ever named.
        self.host = url.split("@")[-1].split("/")[0]
        try:
            self._db = psycopg.connect(url, autocommit=True)
            self._db.execute(SCHEMA)
        except psycopg.Error as e:
            raise WattlensError(f"cannot open the PostgreSQL ledger at {self.host}: {type(e).__name__}") from e
        self._lock = threading.Lock()
        from wattlens.ledger import default_path

        spill_dir = default_path().parent
        tag = self.host.replace(":", "_").replace("/", "_")
        self.spill_path = spill_dir / f"postgres-{tag}.spill.jsonl"
        self.dead_path = spill_dir / f"postgres-{tag}.dead.jsonl"

    def _connection(self) -> Any:
        """The connection, opened again after the server restarted (the writer backs off between tries)."""
        if self._db.closed or self._db.broken:
            self._db = self._psycopg.connect(self._url, autocommit=True)
        return self._db

    def append(self, bodies: Sequence[Mapping[str, Any]]) -> int:
        """Append in one transaction; records whose id is already in the ledger are skipped. Returns how many."""
        if not bodies:
            return 0
        with self._lock:
            db = self._connection()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    row = db.execute("SELECT seq, hash FROM wattlens_records ORDER BY seq DESC LIMIT 1").fetchone()
                    seq, head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
                    ids = [str(b["id"]) for b in bodies if b.get("id") is not None]
                    known = {str(r[0]) for r in db.execute("SELECT id FROM wattlens_records WHERE id = ANY(%s)", (ids,))}
                    fresh = []
                    for b in bodies:
                        i = b.get("id")
                        if i is None or str(i) not in known:
                            fresh.append(b)
                            if i is not None:
                                known.add(str(i))
                    rows, _, _ = link_batch(fresh, seq, head)
                    fresh_ids = [None if b.get("id") is None else str(b["id"]) for b in fresh]
                    with db.cursor() as cur:
                        cols = "seq, ts, body, prev_hash, hash, id"
                        insert = f"INSERT INTO wattlens_records ({cols}) VALUES (%s, %s, %s, %s, %s, %s)"
                        cur.executemany(insert, [(*r, i) for r, i in zip(rows, fresh_ids, strict=True)])
            except self._psycopg.OperationalError as e:
                raise WattlensError(f"the PostgreSQL ledger at {self.host} is unavailable: {type(e).__name__}") from e
            return len(rows)

    def rows(self) -> Iterator[Row]:
        # In sequence order: a record moved to another number fails its hash (seq is hashed in).
        cur = self._db.execute("SELECT seq, body, prev_hash, hash FROM wattlens_records ORDER BY seq")
        for seq, body, prev, h in cur:
            yield Row(int(seq), str(body), str(prev), str(h))

    def records(self, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        q, args = time_filter("wattlens_records", since, until, "%s")
        for (body,) in self._db.execute(q, args):
            yield json.loads(body)

    def count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM wattlens_records").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            if not self._db.closed:
                self._db.close()
