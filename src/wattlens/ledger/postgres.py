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
"""


class PostgresLedger:
    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise WattlensError("a PostgreSQL ledger needs psycopg: pip install 'wattlens[postgres]'") from e
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(url, autocommit=True)
            self._db.execute(SCHEMA)
        except psycopg.Error as e:
            # The URL may hold a password: name only the host part.
            host = url.split("@")[-1].split("/")[0]
            raise WattlensError(f"cannot open the PostgreSQL ledger at {host}: {type(e).__name__}") from e
        self._lock = threading.Lock()

    def append(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        if not bodies:
            return
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            row = self._db.execute("SELECT seq, hash FROM wattlens_records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
            rows, seq, head = link_batch(bodies, seq, head)
            with self._db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO wattlens_records (seq, ts, body, prev_hash, hash) VALUES (%s, %s, %s, %s, %s)", rows
                )

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
            self._db.close()
