"""The ledger in PostgreSQL, for several gateway replicas writing one chain.

Each batch takes a transaction-scoped advisory lock, reads the chain head and appends, so
replicas interleave whole batches and the chain stays linear.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wattlens.errors import WattlensError
from wattlens.ledger import merkle
from wattlens.ledger.chain import GENESIS, Row, leaves_of, link_batch, time_filter
from wattlens.ledger.tree import Entry, TreeState, leaf_of
from wattlens.ledger.usage import postgres_columns, usage_record

STREAM_ROWS = 5000  # rows a server-side cursor fetches at a time: memory stays flat, round trips few
READ_AHEAD = 3  # chunks a stream's reader thread fetches ahead of its caller
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
ALTER TABLE wattlens_records ADD COLUMN IF NOT EXISTS leaf TEXT;
CREATE TABLE IF NOT EXISTS wattlens_log_state (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    size BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    range TEXT NOT NULL
);
ALTER TABLE wattlens_log_state ADD COLUMN IF NOT EXISTS nodes BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS wattlens_log_nodes (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS wattlens_log_checkpoints (
    id BIGSERIAL PRIMARY KEY,
    size BIGINT NOT NULL,
    ts TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wattlens_log_checkpoints_size ON wattlens_log_checkpoints (size);
"""

BUDGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS wattlens_budgets (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wattlens_budget_alerts (
    budget TEXT, period_start TEXT, level TEXT, PRIMARY KEY (budget, period_start, level)
);
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
            # Under the appenders' lock: the ALTERs take their tables' exclusive locks, and a replica
            # starting while another appends deadlocked with it (PostgreSQL then aborted the append).
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
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
                    rows, last, _ = link_batch(fresh, seq, head)
                    fresh_ids = [None if b.get("id") is None else str(b["id"]) for b in fresh]
                    leaves = leaves_of(fresh, rows)
                    state = self._state(db, seq)
                    with db.cursor() as cur:
                        cols = "seq, ts, body, prev_hash, hash, id, leaf"
                        insert = f"INSERT INTO wattlens_records ({cols}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                        params = [(*r, i, lf.hex()) for r, i, lf in zip(rows, fresh_ids, leaves, strict=True)]
                        cur.executemany(insert, params)
                    if rows:
                        self._save_nodes(db, state.extend(leaves, last))
                        self._save_state(db, state)
            except self._psycopg.OperationalError as e:
                raise WattlensError(f"the PostgreSQL ledger at {self.host} is unavailable: {type(e).__name__}") from e
            return len(rows)

    def _state(self, db: Any, head_seq: int) -> TreeState:
        """The stored tree, brought up to the chain head when it is behind (inside the advisory lock)."""
        row = db.execute("SELECT size, seq, range, nodes FROM wattlens_log_state WHERE k = 0").fetchone()
        if row and int(row[1]) == head_seq and int(row[3]) == int(row[0]):
            return TreeState(int(row[0]), int(row[1]), TreeState.decode_range(str(row[2])))
        state = TreeState(0, 0, [])
        missing, leaves = [], []
        for s, body, leaf in db.execute("SELECT seq, body, leaf FROM wattlens_records ORDER BY seq").fetchall():
            lf = bytes.fromhex(leaf) if leaf else leaf_of(str(body))
            if not leaf:
                missing.append((lf.hex(), int(s)))
            leaves.append(lf)
        if missing:
            with db.cursor() as cur:
                cur.executemany("UPDATE wattlens_records SET leaf = %s WHERE seq = %s", missing)
        db.execute("DELETE FROM wattlens_log_nodes")  # rebuilt whole: a lagging or older tree's nodes are not trusted
        self._save_nodes(db, state.extend(leaves, head_seq))
        self._save_state(db, state)
        return state

    def _save_nodes(self, db: Any, nodes: list[merkle.Node]) -> None:
        if nodes:
            with db.cursor() as cur:
                q = (
                    "INSERT INTO wattlens_log_nodes (level, idx, hash) VALUES (%s, %s, %s) "
                    "ON CONFLICT (level, idx) DO UPDATE SET hash = EXCLUDED.hash"
                )
                cur.executemany(q, nodes)

    @property
    def node(self) -> merkle.Batched:
        """Stored hashes of perfect subtrees, for proofs: `node(level, index)`, or all a proof needs at once."""
        return merkle.Batched(self._leaf_hashes, self._inner_nodes, "run wattlens log migrate")

    def _leaf_hashes(self, indices: list[int]) -> list[tuple[int, bytes]]:
        q = "SELECT seq, leaf FROM wattlens_records WHERE seq = ANY(%s) AND leaf IS NOT NULL"
        with self._lock:
            rows = self._connection().execute(q, ([i + 1 for i in indices],)).fetchall()
        return [(int(s) - 1, bytes.fromhex(str(h))) for s, h in rows]

    def _inner_nodes(self, keys: list[merkle.NodeKey]) -> list[tuple[int, int, bytes]]:
        q = (
            "SELECT n.level, n.idx, n.hash FROM wattlens_log_nodes n "
            "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx"
        )
        with self._lock:
            rows = self._connection().execute(q, ([lv for lv, _ in keys], [i for _, i in keys])).fetchall()
        return [(int(lv), int(i), bytes(h)) for lv, i, h in rows]

    def put_checkpoint(self, size: int, note: str, ts: str) -> None:
        """Keep a signed checkpoint of the log (the gateway signs them); the same note is kept once."""
        with self._lock:
            self._connection().execute(
                "INSERT INTO wattlens_log_checkpoints (size, ts, note) SELECT %s, %s, %s "
                "WHERE NOT EXISTS (SELECT 1 FROM wattlens_log_checkpoints WHERE size = %s AND note = %s)",
                (size, ts, note, size, note),
            )

    def latest_checkpoint(self) -> str | None:
        """The signed checkpoint of the largest tree kept, or None."""
        with self._lock:
            q = "SELECT note FROM wattlens_log_checkpoints ORDER BY size DESC, id DESC LIMIT 1"
            row = self._connection().execute(q).fetchone()
        return str(row[0]) if row else None

    def _save_state(self, db: Any, state: TreeState) -> None:
        db.execute(
            "INSERT INTO wattlens_log_state (k, size, seq, range, nodes) VALUES (0, %s, %s, %s, %s) "
            "ON CONFLICT (k) DO UPDATE SET size = EXCLUDED.size, seq = EXCLUDED.seq, range = EXCLUDED.range, "
            "nodes = EXCLUDED.nodes",
            (state.size, state.seq, state.encode_range(), state.size),
        )

    def tree_state(self) -> TreeState:
        """The stored tree (its size and compact range), brought up to date if an older writer lagged."""
        with self._lock:
            db = self._connection()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                row = db.execute("SELECT seq FROM wattlens_records ORDER BY seq DESC LIMIT 1").fetchone()
                return self._state(db, int(row[0]) if row else 0)

    def stored_state(self) -> TreeState | None:
        row = self._db.execute("SELECT size, seq, range FROM wattlens_log_state WHERE k = 0").fetchone()
        return TreeState(int(row[0]), int(row[1]), TreeState.decode_range(str(row[2]))) if row else None

    def stored_nodes(self) -> Iterator[merkle.Node]:
        for lv, i, h in self._stream("SELECT level, idx, hash FROM wattlens_log_nodes"):
            yield int(lv), int(i), bytes(h)

    def _stream(self, query: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a query read in chunks by a server-side cursor on a connection of its own.

        A plain query would hold every row in memory (1 million receipts are gigabytes); the
        separate connection keeps the ledger's own free for appends and budget reads meanwhile.
        A reader thread fetches the next chunks while the caller works on this one (the server and
        the network then overlap with verification, instead of taking turns); at most READ_AHEAD
        chunks wait, so memory stays flat.
        """
        chunks: queue.Queue[list[tuple[Any, ...]] | BaseException] = queue.Queue(READ_AHEAD)
        stop = threading.Event()

        def put(item: list[tuple[Any, ...]] | BaseException) -> bool:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                db = self._psycopg.connect(self._url)
                try:
                    with db.transaction(), db.cursor(name="wattlens_stream") as cur:
                        cur.execute(query, args)
                        while True:
                            rows = cur.fetchmany(STREAM_ROWS)
                            if not put(rows) or not rows:
                                break
                finally:
                    db.close()
            except BaseException as e:  # the caller raises it, in its own thread
                put(e)

        reader = threading.Thread(target=read, name="wattlens-ledger-read", daemon=True)
        reader.start()
        try:
            while True:
                item = chunks.get()
                if isinstance(item, BaseException):
                    raise item
                if not item:
                    return
                yield from item
        finally:
            stop.set()  # a caller that stopped early: the reader puts nothing more and closes its connection
            reader.join()

    def entries(self) -> Iterator[Entry]:
        """Every record in order, as stored. (Not with ts and id read by PostgreSQL's JSON functions, as
        SQLite's: each `->` on a json value parses the whole body again, 56 µs a record against 7 µs
        for the plain row and a parse in Python.)"""
        q = "SELECT seq, ts, body, leaf, id FROM wattlens_records ORDER BY seq"
        for seq, ts, body, leaf, rid in self._stream(q):
            yield Entry(int(seq), str(ts), str(body), None if leaf is None else str(leaf), None if rid is None else str(rid))

    def leaves(self, after_seq: int = 0) -> list[bytes]:
        self.tree_state()
        rows = self._stream("SELECT leaf FROM wattlens_records WHERE seq > %s ORDER BY seq", (after_seq,))
        return [bytes.fromhex(str(r[0])) for r in rows]

    def locate(self, record_id: str) -> tuple[int, str] | None:
        # Not "ORDER BY seq LIMIT 1": before the table's statistics exist PostgreSQL answers that by
        # walking the primary key (7 ms at 20,000 records, growing with the log) instead of the id index.
        rows = self._db.execute("SELECT seq, body FROM wattlens_records WHERE id = %s", (record_id,)).fetchall()
        if not rows:
            return None
        seq, body = min(rows, key=lambda r: int(r[0]))  # the first, if a replay stored it twice
        return int(seq) - 1, str(body)

    def rows(self) -> Iterator[Row]:
        # In sequence order: a record moved to another number fails its hash (seq is hashed in).
        for seq, body, prev, h in self._stream("SELECT seq, body, prev_hash, hash FROM wattlens_records ORDER BY seq"):
            yield Row(int(seq), str(body), str(prev), str(h))

    def records(self, since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        q, args = time_filter("wattlens_records", since, until, "%s")
        for (body,) in self._stream(q, args):
            yield json.loads(body)

    # -- budgets (wattlens.gateway.budgets): usage by query, run-time budgets, alerts fired once ----------
    @property
    def location(self) -> str:
        """Where this ledger is, for open_ledger (it may hold a password: never print it)."""
        return self._url

    def usage_after(self, seq: int, since: str | None = None, limit: int = 5000) -> list[tuple[int, dict[str, Any]]]:
        """(seq, record) of up to `limit` records appended after `seq` (from the ISO time `since` on),
        reduced by PostgreSQL's JSON operators to what budgets count (no full record decoded)."""
        # Appends hold one advisory lock until they commit, so seq order is commit order: a reader that
        # remembers the last seq it saw misses nothing.
        q, args = "SELECT seq, body::jsonb AS j FROM wattlens_records WHERE seq > %s", list[Any]([seq])
        if since:
            q, args = q + " AND ts >= %s", [*args, since]
        q = f"SELECT seq, {postgres_columns()} FROM ({q} ORDER BY seq LIMIT %s) AS r ORDER BY seq"
        with self._lock:
            rows = self._connection().execute(q, [*args, limit]).fetchall()
        return [(int(r[0]), usage_record(r[1:])) for r in rows]

    def _budget_tables(self) -> Any:
        """The connection, with the budget tables created once per connection (not at every sync)."""
        db = self._connection()
        if getattr(self, "_budget_db", None) is not db:
            db.execute(BUDGET_SCHEMA)
            self._budget_db = db
        return db

    def budget_overrides(self) -> dict[str, dict[str, Any] | None]:
        """Budgets set at run time by the admin API: name -> definition (None: deleted)."""
        with self._lock:
            db = self._budget_tables()
            rows = db.execute("SELECT name, body FROM wattlens_budgets").fetchall()
        return {str(n): json.loads(b) for n, b in rows}

    def put_budget_override(self, name: str, body: dict[str, Any] | None) -> None:
        with self._lock:
            db = self._budget_tables()
            db.execute(
                "INSERT INTO wattlens_budgets (name, body) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
                (name, json.dumps(body)),
            )

    def claim_alert(self, budget: str, period_start: str, level: str) -> bool:
        """True for the one caller (of every replica) that records this crossing first."""
        with self._lock:
            db = self._budget_tables()
            cur = db.execute(
                "INSERT INTO wattlens_budget_alerts (budget, period_start, level) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (budget, period_start, level),
            )
            return bool(cur.rowcount == 1)

    def count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM wattlens_records").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            if not self._db.closed:
                self._db.close()
