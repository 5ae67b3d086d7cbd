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


# Quantisation tags in a model id (Hugging Face suffixes, GGUF quant names, gemma.cpp's SFP, gemma_pytorch's quant).
QUANT_TAG = re.compile(
    r"fp8|mxfp4|nvfp4|awq|gptq|int4|int8|4bit|8bit|nf4|(?<![a-z0-9])(sfp|quant|i?q[1-8](_[0-9a-z]+)*)(?![a-z0-9])"
)
# Suffixes that name a repackaging or quantisation of another repository's weights.
WEIGHTS_OF = re.compile(r"-(4bit|awq|gptq|fp8|int8|int4|quant-pytorch|sfp-cpp|pytorch|keras|flax|tflite|cpp|gguf)$")


def test_every_catalogue_precision_is_one_the_estimator_knows(factors: FactorSet) -> None:
    from wattlens.estimate.model import PRECISIONS

    assert {m.precision for m in factors.models.list()} <= set(PRECISIONS)


def test_quantised_rows_carry_their_precision(factors: FactorSet) -> None:
    tagged = [m for m in factors.models.list() if QUANT_TAG.search(m.model_id.lower())]
    assert len(tagged) >= 10  # the EcoLogits catalogue alone has -4bit, -AWQ, -FP8, -INT8, -quant and -sfp rows
    for m in tagged:
        low = m.model_id.lower()
        assert m.precision not in ("bf16", "fp16"), m.model_id
        if "fp8" in low or "sfp" in low:
            assert m.precision == "fp8", m.model_id
        if "int8" in low:
            assert m.precision == "int8", m.model_id
        if any(t in low for t in ("4bit", "awq", "gptq", "int4")):
            assert m.precision == "int4", m.model_id
        assert "huggingface.co" in m.source or "github.com" in m.source, m.model_id  # the card that says so


def test_quantised_and_repackaged_rows_count_the_real_parameters(factors: FactorSet) -> None:
    # Quantising or repackaging keeps every parameter: such a row counts what its base repository counts
    # (a packed 4-bit tensor read as parameters halves the count; EcoLogits listed command-r-plus-4bit at 55B).
    pairs = []
    for m in factors.models.list():
        base = factors.models.find(WEIGHTS_OF.sub("", m.model_id.lower()))
        if base is not None and base is not m:
            pairs.append((m, base))
    assert len(pairs) >= 40
    for m, base in pairs:
        assert m.total_params_b.mid == pytest.approx(base.total_params_b.mid, rel=1e-3), m.model_id
        assert m.active_params_b.mid == pytest.approx(base.active_params_b.mid, rel=1e-3), m.model_id
    plus = factors.models.get("CohereForAI/c4ai-command-r-plus-4bit")
    assert plus.total_params_b.mid >= 100 and plus.precision == "int4"
    assert "model card" in plus.params_basis and "55.05" in plus.params_basis  # says what it corrected


def test_gpt_oss_rows_follow_openai_model_card(factors: FactorSet) -> None:
    # OpenAI's gpt-oss model card: 117B total / 5.1B active and 21B / 3.6B, MoE weights in MXFP4.
    for model_id, total, active in (("openai/gpt-oss-120b", 117, 5.1), ("openai/gpt-oss-20b", 21, 3.6)):
        m = factors.models.get(model_id)
        assert (m.total_params_b.mid, m.active_params_b.mid, m.precision) == (total, active, "mxfp4")
        assert m.total_params_b.low == m.total_params_b.high  # published, not a range
        assert "oai_gpt-oss_model_card" in m.source


def test_deepseek_and_mistral_large_generations(factors: FactorSet) -> None:
    for name in ("deepseek-v3", "deepseek-r1", "deepseek-chat"):
        m = factors.models.get(name)
        assert (m.total_params_b.mid, m.active_params_b.mid, m.precision) == (671, 37, "fp8")
    large2 = factors.models.get("mistral-large-2407")  # Mistral Large 2: dense, the 2024 disclosure's model
    assert large2.model_id == "mistral-large-2407" and large2.architecture == "dense"
    assert large2.total_params_b.mid == large2.active_params_b.mid == pytest.approx(123, abs=1)
    latest = factors.models.get("mistral-large-latest")  # Mistral Large 3: a sparse MoE
    large3 = factors.models.get("mistral-large-2512")
    assert latest.architecture == large3.architecture == "moe"
    assert (latest.total_params_b, latest.active_params_b) == (large3.total_params_b, large3.active_params_b)
    assert latest.total_params_b.mid > 5 * large2.total_params_b.mid > 10 * latest.active_params_b.mid
    assert "Mistral Large 3" in latest.source


def test_closed_api_rows_say_their_precision_is_assumed(factors: FactorSet) -> None:
    closed = [m for m in factors.models.list() if "architecture not released" in m.params_basis]
    assert len(closed) >= 50
    for m in closed:
        assert "precision not published" in m.serving_basis, m.model_id


def test_build_refuses_a_quantised_row_without_its_card() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "build_factors.py"
    spec = importlib.util.spec_from_file_location("build_factors", path)
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.name_precision("bartowski/Llama-3.1-8B-Instruct-Q4_K_M") == "int4"
    assert build.name_precision("llama3.1:8b-instruct-q8_0") == "int8"
    assert build.name_precision("Qwen/Qwen2.5-72B-Instruct") is None  # "qwen" is not a q-quant
    build.check_precision({"model_id": "x/y-FP8", "precision": "fp8"})
    for row in ({"model_id": "x/y-AWQ", "precision": "bf16"}, {"model_id": "x/y-FP8", "precision": "int4"}):
        with pytest.raises(SystemExit, match=r"model_cards\.csv"):
            build.check_precision(row)
