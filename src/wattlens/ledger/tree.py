"""The Merkle log beside the hash chain: leaf hashes, the stored compact range, and their checks.

Record number `seq` is leaf `seq - 1`. Each record's leaf is SHA-256(0x00 || RFC 8785 JSON of its
body), stored with it in the same transaction; the tree's compact range (at most log2(n) subtree
roots) is stored in one row and updated per batch, so appending costs one leaf hash per record and
O(log n) node hashes, and the tree head is always at hand for a checkpoint. Every interior node
(the hash of each perfect subtree) is stored too, written with the leaves that complete it, so an
inclusion or consistency proof reads O(log n) stored hashes (merkle.inclusion_path), never every leaf.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from wattlens.ledger import jcs, merkle
from wattlens.ledger.chain import Problem
from wattlens.ledger.note import Checkpoint


def leaf_of(body_text: str) -> bytes:
    """The leaf hash of a stored record body (its canonical JSON text)."""
    return merkle.leaf_hash(jcs.entry_bytes(json.loads(body_text)))


@dataclass(slots=True)
class TreeState:
    """What is stored of the tree: its size, the record number of its last leaf and its compact range."""

    size: int = 0
    seq: int = 0
    stack: list[bytes] | None = None

    def encode_range(self) -> str:
        return ",".join(h.hex() for h in self.stack or [])

    @staticmethod
    def decode_range(text: str) -> list[bytes]:
        return [bytes.fromhex(h) for h in text.split(",") if h]

    @property
    def root(self) -> bytes:
        return merkle.compact_root(self.stack or [])

    def extend(self, leaves: Iterable[bytes], last_seq: int) -> list[merkle.Node]:
        """Append leaves; returns the interior nodes they complete, to store beside them (about one per leaf)."""
        stack = self.stack if self.stack is not None else []
        nodes: list[merkle.Node] = []
        for leaf in leaves:
            self.size = merkle.compact_append(stack, self.size, leaf, nodes)
        self.stack, self.seq = stack, last_seq
        return nodes


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored record as the tree sees it."""

    seq: int
    ts: str
    body: str
    leaf: str | None  # hex; None for a record written before the log existed and not yet logged
    id: str | None
    # The body's top-level ts and id as the database's JSON functions read them (SQLite, in C), when it
    # did: check_tree then parses in Python only a body that does not hash to its leaf.
    extracted: bool = False
    body_ts: object = None
    body_id: object = None


def _quick_loads(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # the standard library's answer (or error) for what orjson will not read


def check_tree(entries: Iterable[Entry], state: TreeState | None) -> tuple[list[Problem], list[bytes]]:
    """Recompute every leaf from its body; name what does not match. Returns the problems and the leaves.

    Names a body that no longer matches its stored leaf, a `ts` column that differs from the time
    inside the hashed body (reports filter on that column), a record id stored twice (a replay),
    and a stored tree head that is not the head of the records.
    """
    problems: list[Problem] = []
    leaves: list[bytes] = []
    seqs: list[int] = []  # the records are read once, as they stream by: only hashes and numbers are kept
    seen: dict[str, int] = {}
    for e in entries:
        seqs.append(e.seq)
        try:
            # Bodies written since the log are stored in their RFC 8785 form, so their leaf is the hash of
            # the stored bytes; only a body that does not hash to its leaf (an older json.dumps form, or an
            # edit) is parsed and canonicalised again in Python, which is most of the cost of a large log.
            # (The database reads ts and id of the others: a canonical body has no repeated keys, so it
            # reads them as Python would.)
            leaf = merkle.leaf_hash(e.body.encode("utf-8", "surrogatepass"))
            fast = e.leaf == leaf.hex()
            if fast and e.extracted and isinstance(e.body_ts, str | None) and isinstance(e.body_id, str | None):
                body: object = {"ts": e.body_ts, "id": e.body_id}
            elif fast:  # only its ts and id are read: orjson, ~4x the standard library (exact ints do not matter)
                body = _quick_loads(e.body)
            else:  # duplicate keys refused: readers disagree on which value counts (SQLite's json_extract: the first)
                body = json.loads(e.body, object_pairs_hook=_unique_keys)
            if not fast:
                leaf = merkle.leaf_hash(jcs.entry_bytes(body))
        except ValueError as ex:
            problems.append(Problem(e.seq, "changed", f"the record is not valid JSON any more: {ex}"))
            leaves.append(merkle.leaf_hash(e.body.encode("utf-8", "replace")))
            continue
        leaves.append(leaf)
        if e.leaf is None:
            # Not yet logged is normal before the log's first use, and for records an older
            # wattlens appended since; a leaf removed from a logged record is not.
            if state is not None and e.seq <= state.seq:
                problems.append(Problem(e.seq, "unlogged", "the record's leaf was removed from the Merkle log"))
        elif e.leaf != leaf.hex():
            problems.append(Problem(e.seq, "changed", "the record's content no longer matches its leaf hash"))
        ts = body.get("ts") if isinstance(body, dict) else None
        if ts is not None and str(ts) != e.ts:
            problems.append(Problem(e.seq, "changed", f"the ts column ({e.ts}) is not the record's time ({ts})"))
        rid = body.get("id") if isinstance(body, dict) else None
        if rid is not None and e.id is not None and str(rid) != e.id:  # proofs and the gateway look records up by it
            problems.append(Problem(e.seq, "changed", f"the id column ({e.id}) is not the record's id ({rid})"))
        if rid is not None:
            first = seen.setdefault(str(rid), e.seq)
            if first != e.seq:
                problems.append(Problem(e.seq, "replayed", f"record id {rid} was already stored as number {first}"))
    if state is not None:
        # The stored head covers the records up to state.seq (an older writer may have appended since).
        n, k = len(leaves), state.size
        if k > n or state.root != merkle.root(leaves[:k]) or (k and seqs[k - 1] != state.seq):
            last = seqs[-1] if seqs else 0
            problems.append(
                Problem(last, "head", f"the stored tree head (size {k}) is not the head of the first {k} of {n} records")
            )
    return problems, leaves


def check_nodes(leaves: Sequence[bytes], state: TreeState | None, stored: Iterable[merkle.Node]) -> list[Problem]:
    """The stored interior nodes (what proofs are served from) are the hashes of the records' leaves.

    A node not stored (a ledger from before nodes were kept) is not a problem: proofs then say to migrate.
    Without this, an edited node passed verify while every proof through it was refused by clients."""
    if state is None or not state.size or state.size > len(leaves):
        return []  # no tree, or a head check_tree already named
    want = {(lv, i): h for lv, i, h in TreeState(0, 0, []).extend(leaves[: state.size], state.seq)}
    bad = sorted((lv, i) for lv, i, h in stored if want.get((lv, i), h) != h)
    if not bad:
        return []
    lv, i = bad[0]
    first = i * 2**lv + 1  # the first record under that node
    detail = f"{len(bad)} stored proof node(s) are not the hash of their records (first: level {lv}, index {i})"
    return [Problem(first, "nodes", detail + ": the log_nodes table was edited, and proofs served from it fail")]


def check_extends(leaves: Sequence[bytes], old: Checkpoint) -> tuple[bool, str]:
    """Does the log of these leaves extend the checkpoint? Proven with an RFC 9162 consistency proof."""
    n = len(leaves)
    if n < old.size:
        return False, f"the log holds {n} records but the checkpoint commits to {old.size}: records were removed"
    new_head = merkle.root(leaves)
    proof = merkle.consistency_proof(old.size, leaves)
    if not merkle.verify_consistency(old.size, n, old.root, new_head, proof):
        return False, (
            f"the first {old.size} records are not the ones the checkpoint commits to: "
            "the log was rewritten, rolled back or forked"
        )
    return True, f"the log ({n} records) extends the checkpoint ({old.size} records), {len(proof)}-hash consistency proof"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return d
