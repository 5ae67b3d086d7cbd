"""RFC 9162 Merkle tree arithmetic: tree heads, compact ranges, inclusion and consistency proofs.

leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), the empty tree's head is
SHA-256(""). Indices are 0-based. Pure functions over lists of leaf hashes (32 bytes each):
the ledger keeps only the compact range (the roots of the perfect subtrees along the right edge,
at most log2(n) of them), so an append costs O(log n) node hashes and never rehashes the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
Node = tuple[int, int, bytes]  # (level, index, hash) of a perfect subtree: leaves [index * 2**level, (index + 1) * 2**level)
NodeSource = Callable[[int, int], bytes]  # (level, index) -> that subtree's hash; level 0 is the leaf itself


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes], lo: int = 0, hi: int | None = None) -> bytes:
    """MTH(D[lo:hi]): the head of the tree over those leaf hashes."""
    hi = len(leaves) if hi is None else hi
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(root(leaves, lo, lo + k), root(leaves, lo + k, hi))


# -- compact range -------------------------------------------------------------------------------
def compact_append(stack: list[bytes], size: int, leaf: bytes, nodes: list[Node] | None = None) -> int:
    """Append one leaf hash to the compact range of a tree of `size` leaves, in place; returns size + 1.

    stack holds the roots of the perfect subtrees that make up the tree, largest (leftmost) first,
    one per set bit of size. `nodes`, when given, receives every interior node this append
    completes, as (level, index, hash): the node over leaves [index * 2**level, (index + 1) * 2**level).
    """
    h, s, level = leaf, size, 0
    while s & 1:
        h = node_hash(stack.pop(), h)
        s >>= 1
        level += 1
        if nodes is not None:
            nodes.append((level, size >> level, h))
    stack.append(h)
    return size + 1


def compact_root(stack: Sequence[bytes]) -> bytes:
    """The tree head from its compact range."""
    if not stack:
        return EMPTY_ROOT
    r = stack[-1]
    for h in reversed(stack[:-1]):
        r = node_hash(h, r)
    return r


def compact_range(leaves: Sequence[bytes]) -> list[bytes]:
    stack: list[bytes] = []
    for i, leaf in enumerate(leaves):
        compact_append(stack, i, leaf)
    return stack


# -- inclusion (RFC 9162 2.1.3) ------------------------------------------------------------------
def inclusion_proof(index: int, leaves: Sequence[bytes], lo: int = 0, hi: int | None = None) -> list[bytes]:
    """PATH(index, D[lo:hi]): the audit path of a leaf, lowest level first."""
    hi = len(leaves) if hi is None else hi
    n = hi - lo
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaves, lo, lo + k), root(leaves, lo + k, hi)]
    return [*inclusion_proof(index - k, leaves, lo + k, hi), root(leaves, lo, lo + k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The tree head that the audit path implies, or None when the path cannot be one (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], head: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, path) == head


# -- consistency (RFC 9162 2.1.4) ----------------------------------------------------------------
def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): shows that the tree of the first old_size leaves is a prefix of this one."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"a tree of {n} cannot extend one of {old_size}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaves, 0, n, True)


def _subproof(m: int, leaves: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if whole else [root(leaves, lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves, lo, lo + k, whole), root(leaves, lo + k, hi)]
    return [*_subproof(m - k, leaves, lo + k, hi, False), root(leaves, lo, lo + k)]


def verify_consistency(old_size: int, new_size: int, old_head: bytes, new_head: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does the tree (new_size, new_head) extend (old_size, old_head)?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_head == new_head
    if old_size == 0:
        return not proof and old_head == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old head is a node of the new tree
        path.insert(0, old_head)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_head and sr == new_head and sn == 0


# -- proofs from stored nodes (O(log n) reads) ---------------------------------------------------
# The ledger stores every perfect subtree's hash (its leaves at level 0, interior nodes above), so a
# proof reads the O(log n) nodes it needs instead of every leaf. Each subtree that RFC 9162's
# recursion asks for, MTH(D[lo:hi]), starts at a multiple of its largest power of two, so it is the
# fold of at most log2(n) stored perfect subtrees; those on the right edge are shared between the
# levels of one proof, and a cache makes each a single read.
def range_root(lo: int, hi: int, node: NodeSource) -> bytes:
    """MTH(D[lo:hi]) from stored perfect subtrees; lo must be aligned as RFC 9162's recursion keeps it."""
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    parts, pos = [], lo
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            if pos % (1 << level):
                raise ValueError(f"the range [{lo}, {hi}) is not made of aligned subtrees")
            parts.append(node(level, pos >> level))
            pos += 1 << level
    r = parts[-1]
    for h in reversed(parts[:-1]):
        r = node_hash(h, r)
    return r


NodeKey = tuple[int, int]  # (level, index)


class Batched:
    """A node source that reads every node one proof needs at once (a query per table, not one per node).

    A proof's shape depends only on the index and the sizes, never on the hashes, so the proof is
    first run on placeholder hashes to learn which nodes it reads; `read_many` then fetches them:
    the leaves by `leaves(indices)` -> (index, hash) and the interior nodes by `inner(keys)` ->
    (level, index, hash). Called with one (level, index), it reads that node alone. A node the
    store lacks is an error that says what to do (`hint`).
    """

    __slots__ = ("_hint", "_inner", "_leaves")

    def __init__(
        self,
        leaves: Callable[[list[int]], Iterable[tuple[int, bytes]]],
        inner: Callable[[list[NodeKey]], Iterable[tuple[int, int, bytes]]],
        hint: str,
    ) -> None:
        self._leaves, self._inner, self._hint = leaves, inner, hint

    def read_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        from wattlens.errors import WattlensError

        leaves = [i for lv, i in keys if lv == 0]
        inner = [(lv, i) for lv, i in keys if lv > 0]
        got: dict[NodeKey, bytes] = {}
        if leaves:
            got.update(((0, i), h) for i, h in self._leaves(leaves))
        if inner:
            got.update(((lv, i), h) for lv, i, h in self._inner(inner))
        for k in keys:
            if k not in got:
                raise WattlensError(f"the log has no node {k[0]}/{k[1]}: {self._hint}")
        return got

    def __call__(self, level: int, index: int) -> bytes:
        return self.read_many([(level, index)])[(level, index)]


def _prefetched(node: NodeSource, proof: Callable[[NodeSource], list[bytes]]) -> NodeSource:
    """The node source a proof should read: for a Batched one, its nodes read in one go; else cached."""
    if not isinstance(node, Batched):
        return cached(node)
    want: dict[NodeKey, None] = {}

    def plan(level: int, index: int) -> bytes:
        want[(level, index)] = None
        return EMPTY_ROOT

    proof(plan)
    got = node.read_many(list(want))
    return lambda level, index: got[(level, index)]


def cached(node: NodeSource) -> NodeSource:
    """The node source with each (level, index) read once."""
    seen: dict[tuple[int, int], bytes] = {}

    def get(level: int, index: int) -> bytes:
        key = (level, index)
        if key not in seen:
            seen[key] = node(level, index)
        return seen[key]

    return get


def inclusion_path(index: int, size: int, node: NodeSource) -> list[bytes]:
    """PATH(index, D[size]) as inclusion_proof gives it, reading O(log n) stored nodes."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    return _inclusion(index, size, _prefetched(node, lambda n: _inclusion(index, size, n)))


def _inclusion(index: int, size: int, node: NodeSource) -> list[bytes]:
    path, lo, hi = [], 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(range_root(lo + k, hi, node))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k, node))
            lo += k
    return path[::-1]


def consistency_path(old_size: int, size: int, node: NodeSource) -> list[bytes]:
    """PROOF(old_size, D[size]) as consistency_proof gives it, reading O(log n) stored nodes."""
    if not 0 <= old_size <= size:
        raise ValueError(f"a tree of {size} cannot extend one of {old_size}")
    if old_size in (0, size):
        return []
    return _consistency(old_size, size, _prefetched(node, lambda n: _consistency(old_size, size, n)))


def _consistency(old_size: int, size: int, node: NodeSource) -> list[bytes]:
    out, lo, hi, m, whole = [], 0, size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                out.append(range_root(lo, hi, node))
            break
        k = _split(n)
        if m <= k:
            out.append(range_root(lo + k, hi, node))
            hi = lo + k
        else:
            out.append(range_root(lo, lo + k, node))
            m, lo, whole = m - k, lo + k, False
    return out[::-1]
