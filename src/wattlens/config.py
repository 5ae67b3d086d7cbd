"""Configuration from a TOML file and the environment; command-line options win over both.

Search order for the file: $WATTLENS_CONFIG, then ./wattlens.toml. Example:

    [defaults]
    zone = "FR"            # or region = "europe-west9"
    facility = "google"    # PUE/WUE row; or pue = 1.2, wue_l_per_kwh = 0.4
    boundary = "datacenter"

    [market]
    renewable_share = 0.8  # or g_per_kwh = 35 (a supplier-specific factor)

    [factors]
    files = ["my_datacentre.csv"]   # extend or override the reference tables

Environment: WATTLENS_ZONE, WATTLENS_REGION, WATTLENS_FACTORS (paths separated by ':').
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlens.errors import ConfigError


@dataclass(frozen=True)
class Config:
    zone: str | None = None
    region: str | None = None
    provider: str | None = None
    facility: str | None = None
    pue: float | None = None
    wue_l_per_kwh: float | None = None
    boundary: str = "datacenter"
    market_g_per_kwh: float | None = None
    renewable_share: float | None = None
    factor_files: tuple[str, ...] = field(default_factory=tuple)
    path: str | None = None


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict, or a ConfigError that names the file and what it was for."""
    p = Path(path).expanduser()
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {what} {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from e


def _num(section: dict[str, Any], key: str, where: str) -> float | None:
    v = section.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}: {key} must be a number, got {v!r}")
    return float(v)


def _str(section: dict[str, Any], key: str, where: str) -> str | None:
    v = section.get(key)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}: {key} must be a string, got {v!r}")
    return v


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    candidate = path or env.get("WATTLENS_CONFIG") or ("wattlens.toml" if Path("wattlens.toml").is_file() else None)
    data: dict[str, Any] = {}
    if candidate:
        data = read_toml(candidate, "config file")
    where = str(candidate or "config")
    d = data.get("defaults", {})
    m = data.get("market", {})
    fa = data.get("factors", {})
    files = fa.get("files", [])
    if not isinstance(files, list) or not all(isinstance(x, str) for x in files):
        raise ConfigError(f"{where}: [factors] files must be a list of paths")
    base = Path(candidate).expanduser().parent if candidate else Path(".")
    paths = [str((base / x) if not Path(x).is_absolute() else Path(x)) for x in files]
    paths += [x for x in env.get("WATTLENS_FACTORS", "").split(os.pathsep) if x]
    return Config(
        zone=env.get("WATTLENS_ZONE") or _str(d, "zone", where),
        region=env.get("WATTLENS_REGION") or _str(d, "region", where),
        provider=_str(d, "provider", where),
        facility=_str(d, "facility", where),
        pue=_num(d, "pue", where),
        wue_l_per_kwh=_num(d, "wue_l_per_kwh", where),
        boundary=_str(d, "boundary", where) or "datacenter",
        market_g_per_kwh=_num(m, "g_per_kwh", where),
        renewable_share=_num(m, "renewable_share", where),
        factor_files=tuple(paths),
        path=str(candidate) if candidate else None,
    )
