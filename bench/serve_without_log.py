"""`wattlens serve` with the SQLite ledger's Merkle log switched off, for bench/gateway.py --without-log only.

The gateway has no setting to run without its transparency log (records must be verifiable), so
this launcher patches it out of the SQLite ledger in this one process: no leaf hash, no interior
nodes, no tree state, and no entry hash in the answers (x-wattlens-entry, computed on the request
path). What remains is what the ledger did before the log (the RFC 8785 entry, encoded in the
writer's thread, the hash chain, the id index), so the difference from the plain gateway is the
log's own cost.
"""

from __future__ import annotations

import sys
from typing import Any

from wattlens import metering
from wattlens.ledger import sqlite


class _NoTree:
    size = 0

    def extend(self, leaves: Any, head_seq: int) -> list[Any]:
        return []


def main() -> None:
    sqlite.merkle.leaf_hash = lambda entry: b""  # type: ignore[assignment]
    metering.Settlement.entry_hash = lambda self: None  # type: ignore[method-assign]
    sqlite.SQLiteLedger._state = lambda self, head_seq: _NoTree()  # type: ignore[assignment, method-assign, return-value]
    sqlite.SQLiteLedger._save_nodes = lambda self, nodes: None  # type: ignore[method-assign]
    sqlite.SQLiteLedger._save_state = lambda self, state: None  # type: ignore[method-assign]
    from wattlens.cli import main as cli_main

    sys.argv = ["wattlens", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
