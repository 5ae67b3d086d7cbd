"""Hash chaining and verification: any changed, removed, inserted or reordered record shows."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wattlens.ledger.jcs import canonical_text
from wattlens.ledger.merkle import leaf_hash

GENESIS = "0" * 64
NEAR = 8  # how far a swapped record is looked for around its place


def canonical(body: Mapping[str, Any]) -> str:
    """One byte-exact JSON form of a record: RFC 8785 (sorted keys, no spaces, ECMAScript numbers), UTF-8.

    It is also the entry that the record's Merkle leaf commits to (wattlens.ledger.tree). Records
    written before the log used json.dumps's form; either verifies, as the chain hashes the stored text.

    Raises ValueError for what no ledger can store: NaN or infinity, an integer past 2**53, or text
    that is not valid Unicode (a lone UTF-16 surrogate, which JSON allows as an escape). The writer
    sets such a record aside instead of letting it block the ones behind it.
    """
    text = canonical_text(body)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the record holds text that is not valid Unicode: {e.reason}") from e
    return text


class CanonicalRecord(dict[str, Any]):
    """A record with its canonical text, made once where the record is settled.

    The response that carried the entry's hash and the ledger then commit to the same bytes, and
    the writer does not encode the record a second time. The dict must not change afterwards.
    """

    __slots__ = ("_leaf", "text")

    def __init__(self, body: dict[str, Any]) -> None:
        self.text = canonical(body)  # of the plain dict (the fast encoder takes no subclass); ValueError: none
        self._leaf: bytes | None = None
        super().__init__(body)

    def leaf(self) -> bytes:
        """Its RFC 9162 leaf hash, SHA-256(0x00 || entry): what a proof of it proves (made once, for the
        answer's header and the writer alike)."""
        lf = self._leaf
        if lf is None:
            lf = self._leaf = leaf_hash(self.text.encode("utf-8"))
        return lf

    def leaf_hash(self) -> str:
        """The leaf hash in hex."""
        return self.leaf().hex()


def scrub(value: Any) -> Any:
    """A JSON value with every string made valid Unicode (lone surrogates become U+FFFD)."""
    if type(value) is str and value.isascii():  # most text: no copy, no encoding (a record has several)
        return value
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def link(prev_hash: str, seq: int, body_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{body_json}".encode()).hexdigest()


def link_batch(
    bodies: Iterable[Mapping[str, Any]], seq: int, head: str
) -> tuple[list[tuple[int, str, str, str, str]], int, str]:
    """Chain new records after (seq, head): rows of (seq, ts, body, prev_hash, hash) and the new head."""
    rows = []
    for b in bodies:
        text = b.text if type(b) is CanonicalRecord else canonical(b)
        seq += 1
        h = link(head, seq, text)
        rows.append((seq, str(b.get("ts", "")), text, head, h))
        head = h
    return rows, seq, head


def leaves_of(bodies: Sequence[Mapping[str, Any]], rows: Sequence[tuple[int, str, str, str, str]]) -> list[bytes]:
    """The leaf hash of each row `link_batch` made of `bodies` (the stored text is the RFC 8785 entry);
    a CanonicalRecord's own where the request path made it already."""
    return [b.leaf() if type(b) is CanonicalRecord else leaf_hash(r[2].encode()) for b, r in zip(bodies, rows, strict=True)]


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


def _written_as(r: Row, seq_of: Mapping[str, int]) -> int | None:
    """The sequence number an intact record was hashed under, if it now sits elsewhere.

    Candidates: right after where its original predecessor (named by its prev_hash) sits now,
    and a few places around its own position (a swap). A ledger whose every record was
    changed then costs a few hashes per record, not a search over thousands.
    """
    before = 0 if r.prev_hash == GENESIS else seq_of.get(r.prev_hash)
    near = range(max(1, r.seq - NEAR), r.seq + NEAR + 1)
    candidates = ([before + 1] if before is not None else []) + list(near)
    for s in dict.fromkeys(candidates):
        if s != r.seq and link(r.prev_hash, s, r.body) == r.hash:
            return s
    return None


def verify(rows: Iterable[Row] | Callable[[], Iterable[Row]]) -> list[Problem]:
    """Walk the chain in storage order and name every break.

    Given a function that reads the rows (`ledger.rows`), it streams them instead of holding them all,
    and reads them a second time only to place a record whose hash fails (the index of every hash):
    memory then grows with the hashes, not the records.
    """
    read: Callable[[], Iterable[Row]]
    if callable(rows):
        read = rows
    else:
        held = list(rows)
        read = lambda: held  # noqa: E731 - the same rows each time
    index: dict[str, int] | None = None
    problems: list[Problem] = []
    prev_hash, prev_seq = GENESIS, 0
    seen: set[int] = set()
    for r in read():
        if link(r.prev_hash, r.seq, r.body) != r.hash:
            if index is None:
                index = {x.hash: x.seq for x in read()}
            moved = _written_as(r, index)
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
