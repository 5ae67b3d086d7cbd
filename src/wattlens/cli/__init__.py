"""The `wattlens` command: a thin layer that parses, calls the library and presents.

One module per group of commands; each reads the configuration once (wattlens.config) and
passes the resulting Context down.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.markup import escape

from wattlens.cli import catalogue, ledger, log, measure, plan, route, serve  # noqa: F401 - each registers its commands
from wattlens.cli.common import app, err
from wattlens.errors import WattlensError


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: user errors become one clear line and exit code 2, never a traceback."""
    try:
        # Typer reports usage errors itself (exit 2); our own errors are caught below.
        app(args=list(argv) if argv is not None else None, prog_name="wattlens")
    except WattlensError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        sys.exit(2)


__all__ = ["app", "main"]
