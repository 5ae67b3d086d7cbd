"""The embedded ledger: one SQLite file in WAL mode, appended to in batches."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from wattlens.errors import WattlensError
from wattlens.ledger import merkle
from wattlens.ledger.chain import GENESIS, Row, leaves_of, link_batch, time_filter
from wattlens.ledger.tree import Entry, TreeState, leaf_of
from wattlens.ledger.usage import USAGE_PATHS, usage_record

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
# The Merkle log (wattlens.ledger.tree): each record's leaf hash beside it, and the tree's compact
# range in one row. A ledger from before the log gets both at its first append or checkpoint (one pass).
LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_state (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    size INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    range TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size INTEGER NOT NULL,
    ts TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_checkpoints_size ON log_checkpoints (size);
"""

BUDGET_SCHEMA = "CREATE TABLE IF NOT EXISTS budgets (name TEXT PRIMARY KEY, body TEXT NOT NULL)"
ALERT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS budget_alerts (budget TEXT, period_start TEXT, level TEXT, "
    "PRIMARY KEY (budget, period_start, level))"
)


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
            if "leaf" not in columns:
                self._db.execute("ALTER TABLE records ADD COLUMN leaf TEXT")
            self._db.executescript(LOG_SCHEMA)
            if "nodes" not in {r[1] for r in self._db.execute("PRAGMA table_info(log_state)")}:
                # the tree size up to which interior nodes are stored; behind (0) => rebuilt at first use
                self._db.execute("ALTER TABLE log_state ADD COLUMN nodes INTEGER NOT NULL DEFAULT 0")
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
                rows, last, _ = link_batch(fresh, seq, head)
                ids = [None if b.get("id") is None else str(b["id"]) for b in fresh]
                leaves = leaves_of(fresh, rows)
                state = self._state(seq)
                self._db.executemany(
                    "INSERT INTO records (seq, ts, body, prev_hash, hash, id, leaf) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*r, i, lf.hex()) for r, i, lf in zip(rows, ids, leaves, strict=True)],
                )
                if rows:
                    self._save_nodes(state.extend(leaves, last))
                    self._save_state(state)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite ends the transaction itself on some errors (disk full)
                    self._db.execute("ROLLBACK")
                raise
            return len(rows)

    def _state(self, head_seq: int) -> TreeState:
        """The stored tree, brought up to the chain head first when it is behind (inside the write lock).

        Behind: a ledger from before the log, or records appended by an older wattlens. The
        missing leaves are computed from the stored bodies, once.
        """
        row = self._db.execute("SELECT size, seq, range, nodes FROM log_state WHERE k = 0").fetchone()
        if row and int(row[1]) == head_seq and int(row[3]) == int(row[0]):
            return TreeState(int(row[0]), int(row[1]), TreeState.decode_range(str(row[2])))
        state = TreeState(0, 0, [])
        missing = []
        leaves = []
        for s, body, leaf in self._db.execute("SELECT seq, body, leaf FROM records ORDER BY seq"):
            lf = bytes.fromhex(leaf) if leaf else leaf_of(str(body))
            if not leaf:
                missing.append((lf.hex(), int(s)))
            leaves.append(lf)
        self._db.executemany("UPDATE records SET leaf = ? WHERE seq = ?", missing)
        self._db.execute("DELETE FROM log_nodes")  # rebuilt whole: a lagging or older tree's nodes are not trusted
        self._save_nodes(state.extend(leaves, head_seq))
        self._save_state(state)
        return state

    def _save_nodes(self, nodes: list[merkle.Node]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)

    @property
    def node(self) -> merkle.Batched:
        """Stored hashes of perfect subtrees, for proofs: `node(level, index)`, or all a proof needs at once."""
        return merkle.Batched(self._leaf_hashes, self._inner_nodes, f"run wattlens log migrate --ledger {self.path}")

    def _leaf_hashes(self, indices: list[int]) -> list[tuple[int, bytes]]:
        out = []
        with self._lock:
            for part in _chunks([i + 1 for i in indices], 500):  # SQLite caps a statement's parameters
                q = f"SELECT seq, leaf FROM records WHERE seq IN ({','.join('?' * len(part))}) AND leaf IS NOT NULL"
                out += [(int(s) - 1, bytes.fromhex(str(h))) for s, h in self._db.execute(q, part)]
        return out

    def _inner_nodes(self, keys: list[merkle.NodeKey]) -> list[tuple[int, int, bytes]]:
        out = []
        with self._lock:
            for part in _chunks(keys, 250):
                pairs = ", ".join(["(?, ?)"] * len(part))
                q = f"SELECT level, idx, hash FROM log_nodes WHERE (level, idx) IN (VALUES {pairs})"
                out += [(int(lv), int(i), bytes(h)) for lv, i, h in self._db.execute(q, [x for k in part for x in k])]
        return out

    def put_checkpoint(self, size: int, note: str, ts: str) -> None:
        """Keep a signed checkpoint of the log (the gateway signs them); the same note is kept once."""
        with self._lock:
            self._db.execute(
                "INSERT INTO log_checkpoints (size, ts, note) SELECT ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM log_checkpoints WHERE size = ? AND note = ?)",
                (size, ts, note, size, note),
            )

    def latest_checkpoint(self) -> str | None:
        """The signed checkpoint of the largest tree kept, or None."""
        with self._lock:
            q = "SELECT note FROM log_checkpoints ORDER BY size DESC, rowid DESC LIMIT 1"
            row = self._db.execute(q).fetchone()
        return str(row[0]) if row else None

    def _save_state(self, state: TreeState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO log_state (k, size, seq, range, nodes) VALUES (0, ?, ?, ?, ?)",
            (state.size, state.seq, state.encode_range(), state.size),
        )

    def tree_state(self) -> TreeState:
        """The stored tree (its size and compact range), brought up to date if an older writer lagged."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT seq FROM records ORDER BY seq DESC LIMIT 1").fetchone()
                state = self._state(int(row[0]) if row else 0)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite ends the transaction itself on some errors (disk full)
                    self._db.execute("ROLLBACK")
                raise
            return state

    def stored_state(self) -> TreeState | None:
        """The tree as stored, untouched (for verify)."""
        row = self._db.execute("SELECT size, seq, range FROM log_state WHERE k = 0").fetchone()
        return TreeState(int(row[0]), int(row[1]), TreeState.decode_range(str(row[2]))) if row else None

    def stored_nodes(self) -> Iterator[merkle.Node]:
        """Every stored interior node, untouched (for verify)."""
        for lv, i, h in self._db.execute("SELECT level, idx, hash FROM log_nodes"):
            yield int(lv), int(i), bytes(h)

    def entries(self) -> Iterator[Entry]:
        """Every record in order, with its top-level ts and id read by SQLite's JSON functions (in C, for
        verify's speed); from a body that is not JSON on, the rest are read plainly (verify names it)."""
        last = 0
        fast = (
            "SELECT seq, ts, body, leaf, id, json_extract(body, '$.ts'), json_extract(body, '$.id') "
            "FROM records WHERE seq > ? ORDER BY seq"
        )
        try:
            for seq, ts, body, leaf, rid, bts, bid in self._db.execute(fast, (last,)):
                last = int(seq)
                yield Entry(
                    int(seq), str(ts), str(body), None if leaf is None else str(leaf), None if rid is None else str(rid),
                    True, bts, bid,
                )  # fmt: skip
            return
        except sqlite3.OperationalError:  # malformed JSON
            pass
        cur = self._db.execute("SELECT seq, ts, body, leaf, id FROM records WHERE seq > ? ORDER BY seq", (last,))
        for seq, ts, body, leaf, rid in cur:
            yield Entry(int(seq), str(ts), str(body), None if leaf is None else str(leaf), None if rid is None else str(rid))

    def leaves(self, after_seq: int = 0) -> list[bytes]:
        """The stored leaf hashes in order, of the records after after_seq (the tree is brought up to date first)."""
        self.tree_state()
        rows = self._db.execute("SELECT leaf FROM records WHERE seq > ? ORDER BY seq", (after_seq,))
        return [bytes.fromhex(str(r[0])) for r in rows]

    def locate(self, record_id: str) -> tuple[int, str] | None:
        """The leaf index and body of a record, by id."""
        row = self._db.execute("SELECT seq, body FROM records WHERE id = ? ORDER BY seq LIMIT 1", (record_id,)).fetchone()
        return (int(row[0]) - 1, str(row[1])) if row else None

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

    # -- budgets (wattlens.gateway.budgets): usage by query, run-time budgets, alerts fired once ----------
    @property
    def location(self) -> str:
        """Where this ledger is, for open_ledger (a reader of its own in another thread)."""
        return str(self.path)

    def usage_after(self, seq: int, since: str | None = None, limit: int = 5000) -> list[tuple[int, dict[str, Any]]]:
        """(seq, record) of up to `limit` records appended after `seq` (from the ISO time `since` on),
        reduced in SQLite (in C) to what budgets count: no full record is decoded in Python."""
        cols = ", ".join(f"json_extract(body, '{path}')" for path in USAGE_PATHS)
        q, args = f"SELECT seq, {cols} FROM records WHERE seq > ?", list[Any]([seq])
        if since:
            q, args = q + " AND ts >= ?", [*args, since]
        with self._lock:  # one connection, several threads (budget sync, alerts, the writer): one at a time
            rows = self._db.execute(q + " ORDER BY seq LIMIT ?", [*args, limit]).fetchall()
        return [(int(r[0]), usage_record(r[1:])) for r in rows]

    def budget_overrides(self) -> dict[str, dict[str, Any] | None]:
        """Budgets set at run time by the admin API: name -> definition (None: deleted)."""
        with self._lock:
            self._db.execute(BUDGET_SCHEMA)
            rows = self._db.execute("SELECT name, body FROM budgets").fetchall()
        return {str(n): json.loads(b) for n, b in rows}

    def put_budget_override(self, name: str, body: dict[str, Any] | None) -> None:
        with self._lock:
            self._db.execute(BUDGET_SCHEMA)
            self._db.execute(
                "INSERT INTO budgets (name, body) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                (name, json.dumps(body)),
            )

    def claim_alert(self, budget: str, period_start: str, level: str) -> bool:
        """True for the one caller (of every replica) that records this crossing first."""
        with self._lock:
            self._db.execute(ALERT_SCHEMA)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO budget_alerts (budget, period_start, level) VALUES (?, ?, ?)",
                (budget, period_start, level),
            )
            return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    """Pieces of at most n items: SQLite caps a statement's parameters."""
    for i in range(0, len(items), n):
        yield items[i : i + n]
