"""Build wattlens' reference tables from the cited source data.

Run from the repository root:  python scripts/build_factors.py [--shared ../shared/data]

Reads the public data sets listed in ../shared/data/README.md plus the curated
inputs in scripts/factor_inputs/, and writes zones.csv, cloud_regions.csv and
models.csv into src/wattlens/factors/data/. Every row written names its source
and licence. The package never runs this at run time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "wattlens" / "factors" / "data"
INPUTS = Path(__file__).resolve().parent / "factor_inputs"
SOURCES = ("coal", "gas", "oil", "nuclear", "hydro", "wind", "solar", "bioenergy", "other")
LBS_TO_G = 453.59237
OWID_COLUMNS = {
    "coal": "coal_TWh",
    "gas": "gas_TWh",
    "oil": "oil_TWh",
    "nuclear": "nuclear_TWh",
    "hydro": "hydroelectricity_TWh",
    "wind": "wind_TWh",
    "solar": "solar_TWh",
    "bioenergy": "biofuel_TWh",
    "other": "other_renewable_exc_biofuel_TWh",
}
CANADA = {
    "alberta": "AB",
    "british columbia": "BC",
    "manitoba": "MB",
    "new brunswick": "NB",
    "newfoundland and labrador": "NL",
    "northwest territories": "NT",
    "nova scotia": "NS",
    "nunavut": "NU",
    "ontario": "ON",
    "prince edward island": "PE",
    "quebec": "QC",
    "saskatchewan": "SK",
    "yukon": "YT",
}
CANADA_COLUMNS = {
    "coal": ("coal",),
    "gas": ("naturalGas",),
    "oil": ("petroleum",),
    "nuclear": ("nuclear",),
    "hydro": ("hydro", "tidal"),
    "wind": ("wind",),
    "solar": ("solar",),
    "bioenergy": ("biomass",),
    "other": ("other",),
}
ZONE_FIELDS = [
    "zone",
    "alpha3",
    "name",
    "kind",
    "parent",
    "year",
    "intensity_g_per_kwh",
    "intensity_basis",
    *[f"share_{s}" for s in SOURCES],
    "mix_basis",
    "water_offsite_l_per_kwh",
    "water_basis",
    "source",
    "licence",
]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, fields: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows):4d} rows to {path.relative_to(ROOT)}")


def shares(amounts: dict[str, float]) -> dict[str, float]:
    total = sum(amounts.values())
    return {s: round(amounts[s] / total, 6) for s in SOURCES}


def fmt_shares(sh: dict[str, float]) -> dict[str, object]:
    # Round, then put the rounding residue on the largest share so the row sums to 1 exactly.
    out = {s: round(v, 5) for s, v in sh.items()}
    big = max(out, key=lambda s: out[s])
    out[big] = round(out[big] + 1.0 - sum(out.values()), 5)
    return {f"share_{s}": out[s] for s in SOURCES}


def mix_value(sh: dict[str, float], per_source: dict[str, float]) -> float:
    return sum(sh[s] * per_source[s] for s in SOURCES)


def build_zones(shared: Path) -> list[dict[str, object]]:
    src = shared / "sources"
    factors = read_csv(OUT / "source_factors.csv")
    carbon_per_source = {r["energy_source"]: float(r["carbon_g_per_kwh"]) for r in factors}
    water_per_source = {r["energy_source"]: float(r["water_l_per_kwh"]) for r in factors}
    mixes = json.loads((src / "codecarbon-3.3.2" / "global_energy_mix.json").read_text())
    alpha2 = {r["Code"]: r["alpha-2"] for r in read_csv(src / "carbontracker-2.4.7" / "carbon-intensities.csv")}
    alpha2["NAM"] = "NA"  # Namibia's code is read as "not available" by some CSV tools upstream
    eco = json.loads((src / "ecologits-0.11.3" / "electricity_mixes.json").read_text())["electricity_mixes"]
    published_water = {
        m["name"]: float(m["wue"]) for m in eco if "electricity-mix-wue-world" not in (m.get("warnings") or [])
    }
    rows: list[dict[str, object]] = []
    owid = "Our World in Data / Ember via CodeCarbon 3.3.2 global_energy_mix.json"
    world_twh = dict.fromkeys(SOURCES, 0.0)
    world_weighted = 0.0
    world_total = 0.0
    for a3, m in sorted(mixes.items()):
        amounts = {s: float(m[c]) for s, c in OWID_COLUMNS.items()}
        if sum(amounts.values()) <= 0:
            continue
        sh = shares(amounts)
        for s in SOURCES:
            world_twh[s] += amounts[s]
        world_weighted += max(
            float(m["carbon_intensity"]), mix_value(sh, carbon_per_source) if float(m["carbon_intensity"]) <= 0 else 0
        ) * float(m["total_TWh"])
        world_total += float(m["total_TWh"])
        water, water_basis, water_src = water_for(a3, sh, published_water, water_per_source)
        intensity, basis = float(m["carbon_intensity"]), "life-cycle"
        if intensity <= 0:  # a few small grids carry 0 upstream; derive from their mix instead
            intensity, basis = (
                mix_value(sh, carbon_per_source),
                "life-cycle; derived from the mix (upstream value was 0)",
            )
        rows.append(
            {
                "zone": alpha2[a3],
                "alpha3": a3,
                "name": m["country_name"],
                "kind": "country",
                "parent": "",
                "year": m["year"],
                "intensity_g_per_kwh": round(intensity, 3),
                "intensity_basis": basis,
                **fmt_shares(sh),
                "mix_basis": "generation by source (TWh)",
                "water_offsite_l_per_kwh": round(water, 4),
                "water_basis": water_basis,
                "source": f"{owid} ({m['year']}); water: {water_src}",
                "licence": "MIT (CodeCarbon); CC BY 4.0 (OWID)",
            }
        )
    by_zone = {str(r["zone"]): r for r in rows}
    world_sh = shares(world_twh)
    world_water, wb, ws = water_for("WOR", world_sh, published_water, water_per_source)
    rows.append(
        {
            "zone": "WORLD",
            "alpha3": "WOR",
            "name": "World average",
            "kind": "world",
            "parent": "",
            "year": 2023,
            "intensity_g_per_kwh": round(world_weighted / world_total, 3),
            "intensity_basis": "life-cycle; generation-weighted mean of the country rows",
            **fmt_shares(world_sh),
            "mix_basis": "sum of the country rows' generation (TWh)",
            "water_offsite_l_per_kwh": round(world_water, 4),
            "water_basis": wb,
            "source": f"{owid}, aggregated by scripts/build_factors.py; water: {ws}",
            "licence": "MIT (CodeCarbon); CC BY 4.0 (OWID)",
        }
    )
    us = by_zone["US"]
    usa = json.loads((src / "codecarbon-3.3.2" / "usa_emissions.json").read_text())
    for name, v in sorted(usa.items()):
        if name.startswith("_") or len(v["regionCode"]) != 2:  # skip metadata and the national total
            continue
        rows.append(
            {
                "zone": f"US-{v['regionCode']}",
                "alpha3": "",
                "name": f"{name.title()} (US)",
                "kind": "us-state",
                "parent": "US",
                "year": 2023,
                "intensity_g_per_kwh": round(float(v["emissions"]) * LBS_TO_G / 1000, 3),
                "intensity_basis": "direct combustion CO2e output rate (eGRID STC2ERTA), not life-cycle",
                **{f"share_{s}": us[f"share_{s}"] for s in SOURCES},
                "mix_basis": "parent country (US national mix; state mixes are not in the reference data)",
                "water_offsite_l_per_kwh": us["water_offsite_l_per_kwh"],
                "water_basis": "parent country",
                "source": "EPA eGRID2023 via CodeCarbon 3.3.2 usa_emissions.json; mix and water: US row",
                "licence": "MIT (CodeCarbon); US public domain (eGRID)",
            }
        )
    canada = json.loads((src / "codecarbon-3.3.2" / "canada_energy_mix.json").read_text())
    for name, v in sorted(canada.items()):
        if name not in CANADA:
            continue
        amounts = {s: sum(float(v[c]) for c in cols) for s, cols in CANADA_COLUMNS.items()}
        sh = shares(amounts)
        rows.append(
            {
                "zone": f"CA-{CANADA[name]}",
                "alpha3": "",
                "name": f"{name.title()} (Canada)",
                "kind": "ca-province",
                "parent": "CA",
                "year": 2022,
                "intensity_g_per_kwh": round(mix_value(sh, carbon_per_source), 3),
                "intensity_basis": "life-cycle; derived from the mix and IPCC AR5 per-source medians",
                **fmt_shares(sh),
                "mix_basis": "generation shares (%) by source",
                "water_offsite_l_per_kwh": round(mix_value(sh, water_per_source), 4),
                "water_basis": "derived from mix (Macknick et al. 2012 per-source medians)",
                "source": "Canada Energy Regulator provincial profiles via CodeCarbon 3.3.2 canada_energy_mix.json",
                "licence": "MIT (CodeCarbon); Open Government Licence - Canada",
            }
        )
    return rows


def water_for(
    a3: str, sh: dict[str, float], published: dict[str, float], per_source: dict[str, float]
) -> tuple[float, str, str]:
    if a3 in published:
        return (
            published[a3],
            "published",
            "WRI method, as tabulated in EcoLogits 0.11.3 electricity_mixes (values used as facts)",
        )
    return (
        mix_value(sh, per_source),
        "derived from mix",
        "derived from the mix and Macknick et al. 2012 per-source medians",
    )


def build_regions(shared: Path, zones: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    gcp = {r["Google Cloud Region"]: r for r in read_csv(shared / "sources" / "gcp-region-carbon-info" / "2024.csv")}
    rows: list[dict[str, object]] = []
    for r in read_csv(INPUTS / "cloud_region_locations.csv"):
        if r["zone"] not in zones:
            raise SystemExit(f"cloud region {r['region']} maps to unknown zone {r['zone']}")
        row: dict[str, object] = {
            "provider": r["provider"],
            "region": r["region"],
            "location": r["location"],
            "zone": r["zone"],
            "intensity_g_per_kwh": "",
            "cfe_share": "",
            "year": "",
            "source": r["source"],
            "licence": "facts",
        }
        if r["provider"] == "gcp":
            g = gcp[r["region"]]
            row.update(
                {
                    "intensity_g_per_kwh": float(g["Grid carbon intensity (gCO2eq / kWh)"]),
                    "cfe_share": float(g["Google CFE"]) if g["Google CFE"] else "",
                    "year": 2024,
                    "source": f"{r['source']}; intensity and CFE: GoogleCloudPlatform/region-carbon-info 2024.csv",
                    "licence": "Apache-2.0",
                }
            )
        rows.append(row)
    return rows


# Quantisation tags in a model id, checked in order, and the precision each one means. q5/q6 GGUF
# quants sit between the estimator's 4- and 8-bit classes; they are counted as 8-bit (more bytes, not fewer).
QUANT_TAGS: tuple[tuple[str, str], ...] = (
    (r"mxfp4", "mxfp4"),
    (r"nvfp4|(?<![a-z0-9])fp4(?![a-z0-9])", "fp4"),
    (r"fp8|(?<![a-z0-9])sfp(?![a-z0-9])", "fp8"),
    (r"int8|8bit|w8a8|(?<![a-z0-9])q8_0(?![a-z0-9])|(?<![a-z0-9])i?q[5-6](_[0-9a-z]+)*(?![a-z0-9])", "int8"),
    (r"int4|4bit|nf4|awq|gptq|w4a16|(?<![a-z0-9])i?q[1-4](_[0-9a-z]+)*(?![a-z0-9])", "int4"),
    (r"(?<![a-z0-9])quant(?![a-z0-9])", ""),  # quantised, width not in the name: a model card must say
)
# Repackagings of the same weights (file format or runtime), longest first; the precision is the base
# model's unless the packaging quantises. Source of each quantising packaging in the note.
FORMAT_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("-quant-pytorch", "int8", "int8 quantised checkpoint for github.com/google/gemma_pytorch (its README)"),
    ("-sfp-cpp", "fp8", "8-bit switched floating point (SFP) weights for github.com/google/gemma.cpp (its README)"),
    ("-pytorch", "", ""),
    ("-keras", "", ""),
    ("-flax", "", ""),
    ("-tflite", "", ""),
    ("-cpp", "", ""),
    ("-GGUF", "", ""),
)
# An API row's precision is an assumption unless the provider publishes it; the serving basis says which.
CLOSED_PRECISION = "serving precision not published: bf16 assumed"
CARD_PRECISION = "serving precision not published: the released weights' precision (model card) assumed"


def name_precision(model_id: str) -> str | None:
    """The precision a quantisation tag in the id implies; "" for a tag without a width; None for no tag."""
    low = model_id.lower()
    for pattern, precision in QUANT_TAGS:
        if re.search(pattern, low):
            return precision
    return None


def build_models(shared: Path) -> list[dict[str, object]]:
    serving = {r["provider"]: r for r in read_csv(INPUTS / "provider_serving.csv")}
    cards = {r["model_id"]: r for r in read_csv(INPUTS / "model_cards.csv")}
    eco = json.loads((shared / "sources" / "ecologits-0.11.3" / "models.json").read_text())
    by_name = {m["name"]: m for m in eco["models"]}
    aliases: dict[tuple[str, str], list[str]] = {}
    for a in eco["aliases"]:
        # EcoLogits lists the catalogue entry under "alias" and its other spelling under "name".
        aliases.setdefault((a["provider"], a["alias"]), []).append(a["name"])
    rows: dict[str, dict[str, object]] = {}
    org_provider = {
        "meta-llama": "meta",
        "google": "google",
        "microsoft": "microsoft",
        "mistralai": "mistral",
        "mistral-community": "mistral",
        "databricks": "databricks",
        "CohereForAI": "cohere",
        "openai": "openai",
    }
    for m in eco["models"]:
        prov = {"google_genai": "google", "mistralai": "mistral"}.get(m["provider"], m["provider"])
        open_weights = prov == "huggingface_hub"
        if open_weights:
            prov = org_provider[m["name"].split("/")[0]]
        arch = m["architecture"]
        total, active = params(arch)
        warnings = m.get("warnings") or []
        estimated = "model-arch-not-released" in warnings
        host = serving["meta" if open_weights else prov]
        src_url = (m.get("sources") or [""])[0]
        row: dict[str, object] = {
            "provider": prov,
            "model_id": m["name"],
            "aliases": ";".join(aliases.get((m["provider"], m["name"]), [])),
            "architecture": arch["type"],
            **interval_cols("total_params_b", total),
            **interval_cols("active_params_b", active),
            "params_basis": (
                "estimated by EcoLogits from public evidence (architecture not released)" if estimated else "published"
            ),
            "precision": "bf16",
            "hardware": host["hardware"],
            "facility": host["facility"],
            "zone": host["zone"],
            "serving_basis": host["basis"] if not open_weights else serving["meta"]["basis"],
            "source": f"EcoLogits 0.11.3 model catalogue (values used as facts); primary: {src_url}",
            "licence": "MPL-2.0 data used as facts with attribution",
        }
        card = cards.pop(m["name"], None)
        if card is not None:
            apply_card(row, card)
        elif open_weights:
            apply_format_variant(row, by_name)
        if not open_weights:
            row["serving_basis"] = f"{row['serving_basis']}; {CARD_PRECISION if card else CLOSED_PRECISION}"
        check_precision(row)
        rows[m["name"]] = row
    if cards:
        raise SystemExit(f"model_cards.csv names models EcoLogits does not list: {', '.join(sorted(cards))}")
    for r in read_csv(INPUTS / "models_extra.csv"):
        host = serving[r["provider"]]
        t, a = float(r["total_params_b"]), float(r["active_params_b"])
        rows[r["model_id"]] = {
            "provider": r["provider"],
            "model_id": r["model_id"],
            "aliases": r["aliases"],
            "architecture": r["architecture"],
            **interval_cols("total_params_b", (t, t, t)),
            **interval_cols("active_params_b", (a, a, a)),
            "params_basis": "published",
            "precision": r["precision"],
            "hardware": host["hardware"],
            "facility": host["facility"],
            "zone": host["zone"],
            "serving_basis": host["basis"],
            "source": r["source"],
            "licence": "facts",
        }
        check_precision(rows[r["model_id"]])
    return sorted(rows.values(), key=lambda r: (str(r["provider"]), str(r["model_id"])))


def apply_card(row: dict[str, object], card: dict[str, str]) -> None:
    """Precision and real parameter counts from the model card; the card becomes the row's first source."""
    row["precision"] = card["precision"]
    basis = "published (model card)"
    if card["total_params_b"]:
        t, a = float(card["total_params_b"]), float(card["active_params_b"])
        if (t, a) != (row["total_params_b_mid"], row["active_params_b_mid"]):
            basis += f"; EcoLogits listed {row['total_params_b_mid']}B/{row['active_params_b_mid']}B"
        row.update(interval_cols("total_params_b", (t, t, t)))
        row.update(interval_cols("active_params_b", (a, a, a)))
    row["params_basis"] = basis
    row["source"] = f"{card['source']}; catalogue row: {row['source']}"


def apply_format_variant(row: dict[str, object], by_name: dict[str, dict[str, object]]) -> None:
    """A repackaging of another catalogue row's weights gets that row's counts (EcoLogits rounds some to 2B/7B)."""
    model_id = str(row["model_id"])
    for suffix, precision, note in FORMAT_VARIANTS:
        if not model_id.endswith(suffix) or model_id[: -len(suffix)] not in by_name:
            continue
        base = model_id[: -len(suffix)]
        total, active = params(by_name[base]["architecture"])  # type: ignore[arg-type]
        row.update(interval_cols("total_params_b", total))
        row.update(interval_cols("active_params_b", active))
        row["params_basis"] = f"published (counts of the same weights in {base})"
        row["source"] = f"huggingface.co/{model_id}: {suffix[1:]} packaging of huggingface.co/{base}; {row['source']}"
        if precision:
            row["precision"] = precision
            row["source"] = f"{row['source']}; precision: {note}"
        return


def check_precision(row: dict[str, object]) -> None:
    """A quantisation tag in the id must agree with the row's precision (a 4-bit row is never bf16)."""
    tag = name_precision(str(row["model_id"]))
    if tag is None:
        return
    if row["precision"] in ("bf16", "fp16") or (tag and row["precision"] != tag):
        raise SystemExit(
            f"{row['model_id']}: the name says {tag or 'quantised'} but the row says {row['precision']}; "
            "add or fix its row in scripts/factor_inputs/model_cards.csv"
        )


def params(arch: dict[str, object]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    p = arch["parameters"]
    if arch["type"] == "moe":
        assert isinstance(p, dict)
        return rng(p["total"]), rng(p["active"])
    r = rng(p)
    return r, r


def rng(v: object) -> tuple[float, float, float]:
    if isinstance(v, dict):
        lo, hi = float(v["min"]), float(v["max"])
        return lo, round(math.sqrt(lo * hi), 2), hi  # geometric middle: the range is multiplicative
    x = float(v)  # type: ignore[arg-type]
    return x, x, x


def interval_cols(name: str, v: tuple[float, float, float]) -> dict[str, object]:
    return {f"{name}_low": v[0], f"{name}_mid": v[1], f"{name}_high": v[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    zones = build_zones(args.shared)
    write_csv(OUT / "zones.csv", ZONE_FIELDS, zones)
    regions = build_regions(args.shared, {str(z["zone"]): z for z in zones})
    write_csv(OUT / "cloud_regions.csv", list(regions[0]), regions)
    models = build_models(args.shared)
    write_csv(OUT / "models.csv", list(models[0]), models)


if __name__ == "__main__":
    main()
