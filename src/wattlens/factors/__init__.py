"""Reference data with provenance, loaded lazily through typed repositories.

Tables live in ``factors/data/*.csv``; every row names its source and licence.
A user extends or overrides any table with CSV files of their own (same columns;
a row whose key exists replaces only the columns it gives).
"""

from __future__ import annotations

import builtins
import csv
import difflib
import functools
import io
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from wattlens.errors import FactorError, UnknownKeyError
from wattlens.factors.records import CloudRegion, CpuPower, Facility, Hardware, ModelSpec, Row, SourceFactor, Zone

FACTORS_VERSION = "2026.12"


class Record(Protocol):
    @property
    def names(self) -> tuple[str, ...]: ...


T = TypeVar("T", bound=Record)


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    required: tuple[str, ...]
    parse: Callable[[Row], object]


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec("zones", "zone", ("zone", "name", "kind", "year", "intensity_g_per_kwh", "source", "licence"), Zone.parse),
        TableSpec("cloud_regions", "region", ("provider", "region", "zone", "source", "licence"), CloudRegion.parse),
        TableSpec(
            "facilities", "facility", ("facility", "pue_mid", "wue_l_per_kwh_mid", "source", "licence"), Facility.parse
        ),
        TableSpec("hardware", "hardware_id", ("hardware_id", "kind", "max_power_w", "source", "licence"), Hardware.parse),
        TableSpec("models", "model_id", ("provider", "model_id", "architecture", "source", "licence"), ModelSpec.parse),
        TableSpec("cpu_power", "cpu_model", ("cpu_model", "tdp_w", "source"), CpuPower.parse),
        TableSpec("source_factors", "energy_source", ("energy_source", "carbon_g_per_kwh", "source"), SourceFactor.parse),
    )
}


class Repository(Generic[T]):
    """Rows of one table: get by any of a row's names (case-insensitive), list, search."""

    def __init__(self, kind: str, rows: Sequence[T]) -> None:
        self.kind = kind
        self._rows = list(rows)
        self._index: dict[str, T] = {}
        for r in self._rows:
            for n in r.names:
                self._index.setdefault(n.lower(), r)

    def get(self, key: str) -> T:
        hit = self._index.get(key.strip().lower())
        if hit is None:
            raise UnknownKeyError(self.kind, key, self.suggest(key))
        return hit

    def find(self, key: str) -> T | None:
        return self._index.get(key.strip().lower())

    def list(self) -> builtins.list[T]:
        return list(self._rows)

    def search(self, query: str) -> builtins.list[T]:
        q = query.strip().lower()
        return [r for r in self._rows if any(q in n.lower() for n in r.names)]

    def suggest(self, key: str, n: int = 5) -> builtins.list[str]:
        names = list(self._index)
        close = difflib.get_close_matches(key.lower(), names, n=n, cutoff=0.6)
        if not close:
            close = [k for k in names if key.lower() in k][:n]
        if not close and len(self._rows) <= 2 * n:  # a short table (facilities): name every row
            return [r.names[0] for r in self._rows]
        seen: dict[str, None] = {}
        for c in close:
            seen.setdefault(self._index[c].names[0], None)
        return list(seen)

    def __len__(self) -> int:
        return len(self._rows)


KINDS = {
    "zones": "zone",
    "cloud_regions": "cloud region",
    "facilities": "facility",
    "hardware": "hardware",
    "models": "model",
    "source_factors": "energy source",
    "cpu_power": "CPU model",
}


class FactorSet:
    """All reference tables, with the version and the user files merged in.

    Each table is read on first use, so a program that needs only zones never parses the
    model catalogue.
    """

    def __init__(self, user_rows: dict[str, list[tuple[str, list[Row]]]], user_files: tuple[str, ...]) -> None:
        self._user_rows = user_rows
        self.user_files = user_files
        self.version = FACTORS_VERSION + ("+user" if user_files else "")
        self._repos: dict[str, Repository[Any]] = {}
        self._lock = threading.Lock()

    def _repo(self, table: str, kind: str) -> Repository[Any]:
        repo = self._repos.get(table)
        if repo is None:
            with self._lock:
                repo = self._repos.get(table)
                if repo is None:
                    rows = _builtin_rows(table)
                    for origin, extra in self._user_rows.get(table, []):
                        rows = merge(table, rows, extra, origin)
                    repo = Repository(kind, _parse(table, rows))
                    self._repos[table] = repo
        return repo

    @property
    def zones(self) -> Repository[Zone]:
        return self._repo("zones", KINDS["zones"])

    @property
    def cloud_regions(self) -> Repository[CloudRegion]:
        return self._repo("cloud_regions", KINDS["cloud_regions"])

    @property
    def facilities(self) -> Repository[Facility]:
        return self._repo("facilities", KINDS["facilities"])

    @property
    def hardware(self) -> Repository[Hardware]:
        return self._repo("hardware", KINDS["hardware"])

    @property
    def models(self) -> Repository[ModelSpec]:
        return self._repo("models", KINDS["models"])

    @property
    def source_factors(self) -> Repository[SourceFactor]:
        return self._repo("source_factors", KINDS["source_factors"])

    @property
    def cpu_power(self) -> Repository[CpuPower]:
        return self._repo("cpu_power", KINDS["cpu_power"])


def read_rows(text: str, origin: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    rows = [dict(r) for r in reader]
    if reader.fieldnames is None:
        raise FactorError(f"{origin}: empty file, expected a CSV header")
    return rows


def _builtin_rows(table: str) -> list[Row]:
    text = resources.files("wattlens.factors").joinpath("data", f"{table}.csv").read_text(encoding="utf-8")
    return read_rows(text, f"{table}.csv")


def table_for_file(path: Path, header: Iterable[str]) -> str:
    """Which table a user file extends: by file-name prefix, else by its key column."""
    stem = path.stem.lower()
    for name in sorted(TABLES, key=len, reverse=True):
        if stem.startswith(name) or stem.startswith(name.rstrip("s")):
            return name
    cols = set(header)
    for name, spec in TABLES.items():
        if spec.key in cols:
            return name
    raise FactorError(
        f"{path}: cannot tell which table this file extends; name it after a table "
        f"({', '.join(TABLES)}) or give that table's key column"
    )


def merge(table: str, base: list[Row], extra: list[Row], origin: str) -> list[Row]:
    spec = TABLES[table]
    by_key = {r[spec.key].lower(): dict(r) for r in base}
    order = [r[spec.key].lower() for r in base]
    for i, r in enumerate(extra, start=2):
        key = (r.get(spec.key) or "").strip()
        if not key:
            raise FactorError(f"{origin} line {i}: missing key column {spec.key!r}")
        if not (r.get("source") or "").strip():
            raise FactorError(f"{origin} line {i}: every row needs a 'source' (where the value comes from)")
        given = {k: v for k, v in r.items() if k is not None and v not in (None, "")}
        if key.lower() in by_key:
            by_key[key.lower()].update(given)
        else:
            missing = [c for c in spec.required if c not in given and c != "licence"]
            if missing:
                raise FactorError(f"{origin} line {i}: new {table} row {key!r} lacks {', '.join(missing)}")
            given.setdefault("licence", "user data")
            by_key[key.lower()] = given
            order.append(key.lower())
    return [by_key[k] for k in order]


def _parse(table: str, rows: list[Row]) -> list[object]:
    spec = TABLES[table]
    try:
        return [spec.parse(r) for r in rows]
    except KeyError as e:
        raise FactorError(f"{table}: a row lacks column {e}") from e


def load(user_files: Sequence[str | Path] = ()) -> FactorSet:
    """The built-in tables with the user's files merged over them (checked now, parsed on use)."""
    user_rows: dict[str, list[tuple[str, list[Row]]]] = {}
    for f in user_files:
        path = Path(f).expanduser()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise FactorError(f"cannot read factor file {path}: {e.strerror}") from e
        rows = read_rows(text, str(path))
        table = table_for_file(path, rows[0].keys() if rows else ())
        user_rows.setdefault(table, []).append((str(path), rows))
    fs = FactorSet(user_rows, tuple(str(f) for f in user_files))
    for table in user_rows:  # a bad user file fails here, not at the first receipt
        fs._repo(table, KINDS[table])
    return fs


@functools.lru_cache(maxsize=8)
def _cached(user_files: tuple[str, ...]) -> FactorSet:
    return load(user_files)


def get_factors(user_files: Sequence[str | Path] = ()) -> FactorSet:
    """The factor set for these user files, loaded once per process (for the edges: CLI, config)."""
    return _cached(tuple(str(f) for f in user_files))


def builtin() -> FactorSet:
    """The built-in tables alone: the default of a Context that names no user files."""
    return _cached(())


__all__ = [
    "FACTORS_VERSION",
    "CloudRegion",
    "CpuPower",
    "Facility",
    "FactorSet",
    "Hardware",
    "ModelSpec",
    "Repository",
    "SourceFactor",
    "Zone",
    "builtin",
    "get_factors",
    "load",
]
