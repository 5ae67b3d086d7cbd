"""Typed rows of the reference tables, parsed from CSV dicts."""

from __future__ import annotations

from dataclasses import dataclass

from wattlens.errors import FactorError
from wattlens.units import Interval

ENERGY_SOURCES = ("coal", "gas", "oil", "nuclear", "hydro", "wind", "solar", "bioenergy", "other")
FOSSIL = ("coal", "gas", "oil")
RENEWABLE = ("hydro", "wind", "solar", "bioenergy", "other")
Row = dict[str, str]


def _f(row: Row, col: str) -> float:
    try:
        return float(row[col])
    except (KeyError, ValueError) as e:
        raise FactorError(f"column {col!r} must be a number, got {row.get(col)!r} in row {_key_of(row)}") from e


def _opt(row: Row, col: str) -> float | None:
    v = row.get(col, "")
    return _f(row, col) if v not in ("", None) else None


def _interval(row: Row, stem: str) -> Interval:
    return Interval(_f(row, f"{stem}_low"), _f(row, f"{stem}_mid"), _f(row, f"{stem}_high"))


def _key_of(row: Row) -> str:
    for k in ("zone", "region", "facility", "hardware_id", "model_id", "energy_source"):
        if k in row:
            return f"{k}={row[k]!r}"
    return "?"


@dataclass(frozen=True, slots=True)
class Zone:
    zone: str
    alpha3: str
    name: str
    kind: str
    parent: str
    year: int
    intensity_g_per_kwh: float
    intensity_basis: str
    mix: dict[str, float]
    mix_basis: str
    water_offsite_l_per_kwh: float
    water_basis: str
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> Zone:
        return cls(
            zone=r["zone"],
            alpha3=r.get("alpha3", ""),
            name=r["name"],
            kind=r["kind"],
            parent=r.get("parent", ""),
            year=int(_f(r, "year")),
            intensity_g_per_kwh=_f(r, "intensity_g_per_kwh"),
            intensity_basis=r.get("intensity_basis", ""),
            mix={s: _f(r, f"share_{s}") for s in ENERGY_SOURCES},
            mix_basis=r.get("mix_basis", ""),
            water_offsite_l_per_kwh=_f(r, "water_offsite_l_per_kwh"),
            water_basis=r.get("water_basis", ""),
            source=r["source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.zone, self.alpha3, self.name) if n)


@dataclass(frozen=True, slots=True)
class CloudRegion:
    provider: str
    region: str
    location: str
    zone: str
    intensity_g_per_kwh: float | None
    cfe_share: float | None
    year: int | None
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> CloudRegion:
        year = _opt(r, "year")
        return cls(
            provider=r["provider"],
            region=r["region"],
            location=r.get("location", ""),
            zone=r["zone"],
            intensity_g_per_kwh=_opt(r, "intensity_g_per_kwh"),
            cfe_share=_opt(r, "cfe_share"),
            year=int(year) if year is not None else None,
            source=r["source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        return (self.region, f"{self.provider}:{self.region}")


@dataclass(frozen=True, slots=True)
class Facility:
    facility: str
    name: str
    pue: Interval
    wue_l_per_kwh: Interval
    year: int
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> Facility:
        return cls(
            facility=r["facility"],
            name=r.get("name", r["facility"]),
            pue=_interval(r, "pue"),
            wue_l_per_kwh=_interval(r, "wue_l_per_kwh"),
            year=int(_f(r, "year")),
            source=r["source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        return (self.facility, self.name)


@dataclass(frozen=True, slots=True)
class Hardware:
    hardware_id: str
    kind: str
    vendor: str
    name: str
    aliases: tuple[str, ...]
    max_power_w: float
    memory_gb: float
    memory_bandwidth_tb_per_s: float | None
    bf16_tflops: float | None
    fp8_tflops: float | None
    fp4_tflops: float | None
    embodied_kg: Interval
    lifetime_years: Interval
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> Hardware:
        return cls(
            hardware_id=r["hardware_id"],
            kind=r["kind"],
            vendor=r.get("vendor", ""),
            name=r.get("name", ""),
            aliases=_split(r.get("aliases", "")),
            max_power_w=_f(r, "max_power_w"),
            memory_gb=_f(r, "memory_gb"),
            memory_bandwidth_tb_per_s=_opt(r, "memory_bandwidth_tb_per_s"),
            bf16_tflops=_opt(r, "bf16_tflops"),
            fp8_tflops=_opt(r, "fp8_tflops"),
            fp4_tflops=_opt(r, "fp4_tflops"),
            embodied_kg=_interval(r, "embodied_kg"),
            lifetime_years=_interval(r, "lifetime_years"),
            source=r["source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        return (self.hardware_id, *self.aliases)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    provider: str
    model_id: str
    aliases: tuple[str, ...]
    architecture: str
    total_params_b: Interval
    active_params_b: Interval
    params_basis: str
    precision: str
    hardware: str
    facility: str
    zone: str
    serving_basis: str
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> ModelSpec:
        return cls(
            provider=r["provider"],
            model_id=r["model_id"],
            aliases=_split(r.get("aliases", "")),
            architecture=r["architecture"],
            total_params_b=_interval(r, "total_params_b"),
            active_params_b=_interval(r, "active_params_b"),
            params_basis=r.get("params_basis", ""),
            precision=r.get("precision") or "bf16",
            hardware=r.get("hardware") or "H100-SXM",
            facility=r.get("facility") or "default",
            zone=r.get("zone", ""),
            serving_basis=r.get("serving_basis", ""),
            source=r["source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        short = self.model_id.split("/")[-1]
        return (self.model_id, short, *self.aliases)


@dataclass(frozen=True, slots=True)
class SourceFactor:
    energy_source: str
    carbon_g_per_kwh: float
    water_l_per_kwh: float
    carbon_source: str
    water_source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> SourceFactor:
        return cls(
            energy_source=r["energy_source"],
            carbon_g_per_kwh=_f(r, "carbon_g_per_kwh"),
            water_l_per_kwh=_f(r, "water_l_per_kwh"),
            carbon_source=r["carbon_source"],
            water_source=r["water_source"],
            licence=r["licence"],
        )

    @property
    def names(self) -> tuple[str, ...]:
        return (self.energy_source,)


def _split(s: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in s.split(";") if a.strip())


@dataclass(frozen=True, slots=True)
class CpuPower:
    cpu_model: str
    tdp_w: float
    source: str
    licence: str

    @classmethod
    def parse(cls, r: Row) -> CpuPower:
        return cls(cpu_model=r["cpu_model"], tdp_w=_f(r, "tdp_w"), source=r["source"], licence=r["licence"])

    @property
    def names(self) -> tuple[str, ...]:
        return (self.cpu_model,)
