"""Configuration, read once at the edge: command-line options > environment > config file.

The file is $WATTLENS_CONFIG, else ./wattlens.toml. Every command and `instrument()` read it
through `load_settings`, and the gateway reads its own sections ([server], [[upstreams]],
[[routes]]) from the same file. An unknown section or key is an error naming the nearest
valid one. Example:

    [defaults]
    zone = "FR"            # or region = "europe-west9"
    facility = "google"    # PUE/WUE row; or pue = 1.2, wue_l_per_kwh = 0.4
    boundary = "datacenter"

    [market]
    renewable_share = 0.8  # or g_per_kwh = 35 (a supplier-specific factor)

    [factors]
    files = ["my_datacentre.csv"]   # extend or override the reference tables

    [grid]
    feed = "annual"        # a grid feed registered by wattlens or a plugin

    [ledger]
    location = "~/.local/share/wattlens/ledger.db"   # or postgresql://...

Environment: WATTLENS_ZONE, WATTLENS_REGION, WATTLENS_FACILITY, WATTLENS_BOUNDARY,
WATTLENS_FACTORS (paths separated by ':'), WATTLENS_GRID_FEED, WATTLENS_LEDGER.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlens.context import BOUNDARIES, Context, Place
from wattlens.errors import ConfigError

# Every section and key the file may hold; the gateway's sections are checked in gateway/config.py.
SECTIONS: dict[str, tuple[str, ...]] = {
    "defaults": ("zone", "region", "provider", "facility", "pue", "wue_l_per_kwh", "boundary"),
    "market": ("renewable_share", "g_per_kwh"),
    "factors": ("files",),
    "grid": ("feed", "cache_dir", "timeout_s", "base_url", "token_env", "fetch"),
    "ledger": ("location",),
    "server": ("host", "port", "ledger", "max_body_mb", "keys_file", "allowed_hosts", "header_timeout_s"),
    "upstreams": (
        "name",
        "kind",
        "base_url",
        "api_key_env",
        "models",
        "zone",
        "region",
        "provider",
        "facility",
        "pue",
        "wue_l_per_kwh",
        "hardware",
        "gpus",
        "batch_size",
        "model_params",
        "timeout_s",
        "model_info",
    ),
    "routes": ("name", "small", "large", "artefact", "threshold", "embed_all", "embedder"),
    "log": ("key_file", "checkpoint_interval_s", "state_file", "witnesses"),  # the gateway signs the log (gateway/logapi.py)
    "budgets": (
        "name",
        "scope",
        "match",
        "unit",
        "period",
        "timezone",
        "soft",
        "hard",
        "on_hard",
        "reroute_to",
        "webhook",
    ),
}


@dataclass(frozen=True)
class Settings:
    """The configuration as read: the place, the boundary, the data files, the ledger."""

    place: Place = field(default_factory=Place)
    boundary: str = "datacenter"
    factor_files: tuple[str, ...] = ()
    grid_feed: str = "annual"
    grid_options: dict[str, Any] = field(default_factory=dict)  # [grid] keys for live feeds (docs/grid.md)
    ledger: str | None = None
    path: str | None = None  # the config file read, if any
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole file, for the gateway's sections

    def context(self, extra_factor_files: tuple[str, ...] = ()) -> Context:
        """The Context every computation of this run gets: factor set and grid feed loaded now."""
        from wattlens.factors import get_factors
        from wattlens.plugins import grid_feed

        return Context(
            place=self.place,
            boundary=self.boundary,
            factors=get_factors([*self.factor_files, *extra_factor_files]),
            grid=grid_feed(self.grid_feed, self.grid_options),
        )


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict, or a ConfigError that names the file and what it was for."""
    p = Path(path).expanduser()
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {what} {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from e


def check_keys(table: Mapping[str, Any], allowed: tuple[str, ...] | list[str], where: str) -> None:
    """An unknown key is an error that names the nearest valid one."""
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(allowed)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _num(section: Mapping[str, Any], key: str, where: str) -> float | None:
    v = section.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}: {key} must be a number, got {v!r}")
    return float(v)


def _str(section: Mapping[str, Any], key: str, where: str) -> str | None:
    v = section.get(key)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}: {key} must be a string, got {v!r}")
    return v


def _tables(data: Mapping[str, Any], name: str, where: str) -> None:
    """An array of tables ([[upstreams]], [[routes]]): each table's keys checked."""
    items = data.get(name, [])
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise ConfigError(f"{where}: {name} must be written [[{name}]]")
    for i, t in enumerate(items):
        keys = SECTIONS[name] if "api_key" not in t else (*SECTIONS[name], "api_key")  # api_key gets its own error
        check_keys(t, keys, f"{where} [[{name}]] #{i + 1}")


def _section(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    s = data.get(name, {})
    if not isinstance(s, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    check_keys(s, SECTIONS[name], f"{where} [{name}]")
    return s


def _relative(feed: str | None, base: Path) -> str | None:
    """A file named in the config file's [grid] feed is relative to that file, as [factors] files are."""
    if feed is None or not feed.startswith("csv:"):
        return feed
    path = Path(feed[4:]).expanduser()
    return feed if path.is_absolute() else f"csv:{base / path}"


def _grid_options(g: Mapping[str, Any], where: str) -> dict[str, Any]:
    """[grid] keys other than feed, checked: they configure the live feeds (wattlens.grid.http.FeedOptions)."""
    _num(g, "timeout_s", where)
    for key in ("cache_dir", "base_url", "token_env"):
        _str(g, key, where)
    if g.get("fetch", "inline") not in ("inline", "background"):
        raise ConfigError(f'{where}: [grid] fetch must be "inline" or "background", got {g["fetch"]!r}')
    return {k: v for k, v in g.items() if k != "feed"}


def _env_num(env: Mapping[str, str], name: str) -> float | None:
    v = env.get(name)
    if not v:
        return None
    try:
        return float(v)
    except ValueError as e:
        raise ConfigError(f"{name} must be a number, got {v!r}") from e


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Settings from flags (keyword arguments; None = not given) over the environment over the file.

    flags: any Place field, boundary, factor_files (added after the file's and environment's),
    grid_feed, ledger.
    """
    env = os.environ if env is None else env
    candidate = path or env.get("WATTLENS_CONFIG") or ("wattlens.toml" if Path("wattlens.toml").is_file() else None)
    data: dict[str, Any] = read_toml(candidate, "config file") if candidate else {}
    where = str(candidate or "config")
    check_keys(data, list(SECTIONS), where)
    d, m = _section(data, "defaults", where), _section(data, "market", where)
    fa, g, led = _section(data, "factors", where), _section(data, "grid", where), _section(data, "ledger", where)
    server = _section(data, "server", where)
    _tables(data, "upstreams", where)
    _tables(data, "routes", where)
    _tables(data, "budgets", where)
    files = fa.get("files", [])
    if not isinstance(files, list) or not all(isinstance(x, str) for x in files):
        raise ConfigError(f"{where}: [factors] files must be a list of paths")
    base = Path(candidate).expanduser().parent if candidate else Path(".")
    paths = [str(base / x if not Path(x).is_absolute() else Path(x)) for x in files]
    paths += [x for x in env.get("WATTLENS_FACTORS", "").split(os.pathsep) if x]
    paths += list(flags.pop("factor_files", None) or ())
    from_file = Place(
        zone=_str(d, "zone", where),
        region=_str(d, "region", where),
        provider=_str(d, "provider", where),
        facility=_str(d, "facility", where),
        pue=_num(d, "pue", where),
        wue_l_per_kwh=_num(d, "wue_l_per_kwh", where),
        market_g_per_kwh=_num(m, "g_per_kwh", where),
        renewable_share=_num(m, "renewable_share", where),
    )
    from_env = Place(
        zone=env.get("WATTLENS_ZONE") or None,
        region=env.get("WATTLENS_REGION") or None,
        facility=env.get("WATTLENS_FACILITY") or None,
        pue=_env_num(env, "WATTLENS_PUE"),
    )
    place_fields = {f.name for f in dataclasses.fields(Place)}
    unknown = set(flags) - place_fields - {"boundary", "grid_feed", "ledger"}
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(sorted(unknown))}")
    from_flags = Place(**{k: v for k, v in flags.items() if k in place_fields})
    boundary = flags.get("boundary") or env.get("WATTLENS_BOUNDARY") or _str(d, "boundary", where) or "datacenter"
    if boundary not in BOUNDARIES:
        raise ConfigError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    return Settings(
        place=from_flags.over(from_env.over(from_file)),
        boundary=boundary,
        factor_files=tuple(paths),
        grid_feed=flags.get("grid_feed")
        or env.get("WATTLENS_GRID_FEED")
        or _relative(_str(g, "feed", where), base)
        or "annual",
        grid_options=_grid_options(g, where),
        ledger=flags.get("ledger")
        or env.get("WATTLENS_LEDGER")
        or _str(led, "location", where)
        or _str(server, "ledger", where),
        path=str(candidate) if candidate else None,
        data=data,
    )


__all__ = ["SECTIONS", "Settings", "check_keys", "load_settings", "read_toml"]
