"""The reference tables: provenance, coverage and consistency, checked on the shipped files."""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import pytest

from wattlens.errors import FactorError, UnknownKeyError
from wattlens.factors import TABLES, FactorSet, load
from wattlens.factors.records import ENERGY_SOURCES

DATA = resources.files("wattlens.factors").joinpath("data")
UNIT_SUFFIXES = ("_g_per_kwh", "_l_per_kwh", "_w", "_gb", "_tb_per_s", "_tflops", "_kg", "_years", "_b", "_share")
NUMERIC_EXEMPT = {"year", "pue_low", "pue_mid", "pue_high"}  # PUE is a ratio, year is a date


def rows(table: str) -> list[dict[str, str]]:
    return list(csv.DictReader(DATA.joinpath(f"{table}.csv").read_text(encoding="utf-8").splitlines()))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_row_names_source_and_licence(table: str) -> None:
    for r in rows(table):
        assert r["source"].strip(), f"{table}: row without a source: {r}"
        assert r["licence"].strip(), f"{table}: row without a licence: {r}"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_numeric_columns_carry_units_in_their_names(table: str) -> None:
    for col in rows(table)[0]:
        values = [r[col] for r in rows(table) if r[col]]
        numeric = values and all(re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", v) for v in values)
        if numeric and col not in NUMERIC_EXEMPT:
            stem = re.sub(r"_(low|mid|high)$", "", col)
            assert stem.endswith(UNIT_SUFFIXES) or stem.startswith("share_"), f"{table}.{col} has no unit"


def test_zone_mix_shares_sum_to_one(factors: FactorSet) -> None:
    for z in factors.zones.list():
        assert set(z.mix) == set(ENERGY_SOURCES)
        assert sum(z.mix.values()) == pytest.approx(1.0, abs=1e-6), z.zone
        assert all(0.0 <= v <= 1.0 for v in z.mix.values())
        assert 0 < z.intensity_g_per_kwh < 1500, z.zone
        assert z.water_offsite_l_per_kwh >= 0


def test_zone_coverage(factors: FactorSet) -> None:
    kinds = [z.kind for z in factors.zones.list()]
    assert kinds.count("country") >= 200
    assert kinds.count("us-state") >= 50
    assert kinds.count("ca-province") >= 10
    assert kinds.count("world") == 1
    fr = factors.zones.get("FR")
    assert factors.zones.get("FRA") is fr and factors.zones.get("france") is fr
    assert factors.zones.get("us-ca").parent == "US"


def test_cloud_regions(factors: FactorSet) -> None:
    regions = factors.cloud_regions.list()
    gcp = [r for r in regions if r.provider == "gcp"]
    assert len(gcp) >= 40 and all(r.intensity_g_per_kwh is not None for r in gcp)
    assert sum(r.provider == "aws" for r in regions) >= 25
    assert sum(r.provider == "azure" for r in regions) >= 25
    for r in regions:
        factors.zones.get(r.zone)  # every region maps to a zone we have
    assert factors.cloud_regions.get("eu-west-3").zone == "FR"


def test_hardware_catalogue(factors: FactorSet) -> None:
    needed = [
        "A100-40GB",
        "A100-80GB",
        "H100-SXM",
        "H100-PCIe",
        "H200",
        "B200",
        "GB200",
        "L4",
        "L40S",
        "MI300X",
        "TPU-v5e",
        "TPU-v5p",
        "TPU-v6e",
    ]
    for hw in needed:
        h = factors.hardware.get(hw)
        assert h.max_power_w > 0 and h.memory_gb > 0
        assert h.embodied_kg.low <= h.embodied_kg.mid <= h.embodied_kg.high
    assert any(h.kind == "server" for h in factors.hardware.list())
    # NVIDIA's HGX H100 footprint: 1,312 kg per 8-GPU board.
    assert factors.hardware.get("H100").embodied_kg.mid == pytest.approx(1312 / 8, rel=0.01)


def test_model_catalogue_families(factors: FactorSet) -> None:
    ids = " ".join(m.model_id.lower() for m in factors.models.list())
    for family in ("gpt-4o", "claude", "gemini", "mistral", "llama", "qwen", "deepseek", "command", "gpt-oss"):
        assert family in ids, family
    m = factors.models.get("gpt-4o-mini")
    assert m.active_params_b.low < m.active_params_b.high  # unpublished: a range
    assert "estimated" in m.params_basis
    oss = factors.models.get("openai/gpt-oss-120b")
    assert oss.architecture == "moe" and oss.active_params_b.mid < oss.total_params_b.mid


def test_world_average_is_explicit_and_generation_weighted(factors: FactorSet) -> None:
    world = factors.zones.get("WORLD")
    assert world.kind == "world"
    countries = [z for z in factors.zones.list() if z.kind == "country"]
    lo = min(z.intensity_g_per_kwh for z in countries)
    hi = max(z.intensity_g_per_kwh for z in countries)
    assert lo < world.intensity_g_per_kwh < hi


def test_unknown_key_suggests_nearest(factors: FactorSet) -> None:
    with pytest.raises(UnknownKeyError) as e:
        factors.models.get("gpt-4o-mni")
    assert "gpt-4o-mini" in e.value.suggestions
    with pytest.raises(UnknownKeyError) as e2:
        factors.zones.get("Frnace")
    assert "FR" in e2.value.suggestions


def test_search(factors: FactorSet) -> None:
    assert {m.provider for m in factors.models.search("claude")} == {"anthropic"}
    assert [z.zone for z in factors.zones.search("poland")] == ["PL"]


def test_user_file_overrides_and_extends(tmp_path: Path) -> None:
    f = tmp_path / "facilities_mine.csv"
    f.write_text(
        "facility,pue_low,pue_mid,pue_high,source\n"
        "default,1.2,1.25,1.3,our 2025 metering\n"
        "ourdc,1.1,1.12,1.15,our 2025 metering\n"
    )
    with pytest.raises(FactorError, match="lacks"):
        load([f])  # the new row lacks WUE and year
    f.write_text("facility,pue_low,pue_mid,pue_high,source\ndefault,1.2,1.25,1.3,our 2025 metering\n")
    fs = load([f])
    assert fs.facilities.get("default").pue.mid == 1.25
    assert fs.facilities.get("default").wue_l_per_kwh.mid == 1.8  # untouched column kept
    assert fs.version.endswith("+user")
    g = tmp_path / "models_private.csv"
    g.write_text(
        "provider,model_id,architecture,total_params_b_low,total_params_b_mid,total_params_b_high,"
        "active_params_b_low,active_params_b_mid,active_params_b_high,source\n"
        "acme,acme-7b,dense,7,7,7,7,7,7,internal model card\n"
    )
    assert load([g]).models.get("acme-7b").active_params_b.mid == 7


def test_user_row_without_source_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "zones_x.csv"
    f.write_text("zone,intensity_g_per_kwh,source\nFR,40,\n")
    with pytest.raises(FactorError, match="source"):
        load([f])


def test_missing_user_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FactorError, match="cannot read"):
        load([tmp_path / "nope.csv"])
