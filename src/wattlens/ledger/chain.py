"""Hash chaining and verification: any changed, removed, inserted or reordered record shows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(body: Mapping[str, Any]) -> str:
    """One byte-exact JSON form of a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, seq: int, body_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{body_json}".encode()).hexdigest()


def link_batch(
    bodies: Iterable[Mapping[str, Any]], seq: int, head: str
) -> tuple[list[tuple[int, str, str, str, str]], int, str]:
    """Chain new records after (seq, head): rows of (seq, ts, body, prev_hash, hash) and the new head."""
    rows = []
    for b in bodies:
        seq += 1
        text = canonical(b)
        h = link(head, seq, text)
        rows.append((seq, str(b.get("ts", "")), text, head, h))
        head = h
    return rows, seq, head


def time_filter(table: str, since: str | None, until: str | None, mark: str) -> tuple[str, list[str]]:
    """SELECT of record bodies between two ISO times (either open), with the driver's placeholder."""
    q, args = f"SELECT body FROM {table} WHERE 1=1", list[str]()
    if since:
        q, args = q + f" AND ts >= {mark}", [*args, since]
    if until:
        q, args = q + f" AND ts < {mark}", [*args, until]
    return q + " ORDER BY seq", args


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    body: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: str  # changed | removed | inserted | reordered
    detail: str


def _written_as(r: Row, window: int = 1000) -> int | None:
    """The sequence number an intact record was hashed under, if it now sits elsewhere."""
    for s in range(max(1, r.seq - window), r.seq + window + 1):
        if s != r.seq and link(r.prev_hash, s, r.body) == r.hash:
            return s
    return None


def verify(rows: Iterable[Row]) -> list[Problem]:
    """Walk the chain in storage order and name every break."""
    problems: list[Problem] = []
    prev_hash, prev_seq = GENESIS, 0
    seen: set[int] = set()
    for r in rows:
        if link(r.prev_hash, r.seq, r.body) != r.hash:
            moved = _written_as(r)
            if moved is not None:
                problems.append(Problem(r.seq, "reordered", f"this record was written as number {moved}"))
            else:
                problems.append(Problem(r.seq, "changed", "the record's content no longer matches its hash"))
        if r.seq in seen:
            problems.append(Problem(r.seq, "inserted", "a second record with this sequence number"))
        elif r.seq < prev_seq:
            problems.append(Problem(r.seq, "reordered", f"sequence {r.seq} comes after {prev_seq}"))
        elif r.seq > prev_seq + 1:
            problems.append(Problem(r.seq, "removed", f"records {prev_seq + 1}..{r.seq - 1} are missing"))
        elif r.prev_hash != prev_hash:
            problems.append(Problem(r.seq, "inserted", "it does not link to the record before it"))
        seen.add(r.seq)
        prev_hash, prev_seq = r.hash, max(prev_seq, r.seq)
    return problems
