"""What every command shares: the app, the consoles, common options, and the configuration read once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console

from wattlens.config import Settings

app = typer.Typer(
    name="wattlens",
    rich_markup_mode=None,  # help text is plain: "[ledger] location" must not read as markup
    help="The energy meter for AI: energy, carbon and water receipts for every query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()


def group(help: str) -> typer.Typer:
    """A group of subcommands, its help printed as written like the app's."""
    return typer.Typer(rich_markup_mode=None, help=help, no_args_is_help=True)


err = Console(stderr=True)

FactorsOpt = Annotated[
    list[str] | None,
    typer.Option("--factors", help="CSV file extending or overriding a reference table (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
GridOpt = Annotated[
    str | None,
    typer.Option("--grid", help="Grid feed: annual (default), csv:FILE (a time series), or a plugin's feed."),
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="Config file (default $WATTLENS_CONFIG or ./wattlens.toml).")
]


def settings_for(config: str | None = None, factors: Sequence[str] | None = None, **flags: Any) -> Settings:
    """The configuration of this command: its flags (None = not given) over the environment over the file."""
    from wattlens.config import load_settings

    return load_settings(config, factor_files=tuple(factors or ()), **flags)


def as_json(rows: Sequence[Any]) -> str:
    """Reference rows as JSON: every field, intervals as {low, mid, high}."""
    import dataclasses
    import json

    return json.dumps([dataclasses.asdict(r) for r in rows])
