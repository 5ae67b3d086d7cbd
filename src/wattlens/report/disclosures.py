"""A report's figures in the layouts of the standards: GHG Protocol (CSV), ESRS E1-5/E1-6, SCI for AI, model cards.

Every figure here is a total of the report, which is the sum of the ledger's records bound by
bound; nothing is recomputed. docs/disclosures.md maps each field to its source and states the
boundary of each standard that wattlens' records do not cover.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from wattlens.factors.records import FOSSIL, RENEWABLE
from wattlens.report import Report, numbers

BOUNDS = ("low", "mid", "high")
GHG_COLUMNS = (
    "period_start",
    "period_end",
    "scope",
    "category",
    "category_name",
    "method",
    "activity",
    "activity_amount",
    "activity_unit",
    "co2e_kg",
    "co2e_kg_low",
    "co2e_kg_high",
    "requests",
    "source",
)


def _scaled(d: dict[str, float], factor: float) -> dict[str, float]:
    return {b: float(d[b]) * factor for b in BOUNDS}


def ghg_rows(r: Report) -> list[dict[str, Any]]:
    """One row per GHG Protocol line: Scope 2 (location, market) of own hardware, Scope 3 categories 1 and 2."""
    own, bought = r.hosting["own"], r.hosting["purchased"]
    src = "wattlens ledger receipts (docs/methodology.md)"

    def row(
        scope: str, cat: str, name: str, method: str, activity: str, kwh: float | None, t: dict[str, Any], key: str
    ) -> dict[str, Any]:
        kg = _scaled(t[key], 1e-3)
        return {
            "period_start": r.since or r.first_ts[:10],
            "period_end": r.until or r.last_ts[:10],
            "scope": scope,
            "category": cat,
            "category_name": name,
            "method": method,
            "activity": activity,
            "activity_amount": "" if kwh is None else kwh,
            "activity_unit": "" if kwh is None else "kWh",
            "co2e_kg": kg["mid"],
            "co2e_kg_low": kg["low"],
            "co2e_kg_high": kg["high"],
            "requests": t["requests"],
            "source": src,
        }

    own_kwh = own["facility_wh"]["mid"] / 1000
    bought_kwh = bought["facility_wh"]["mid"] / 1000
    electricity = "electricity of AI inference (facility energy, with PUE)"
    return [
        row(
            "2",
            "",
            "purchased electricity: hardware you run",
            "location-based",
            electricity,
            own_kwh,
            own,
            "carbon_location_g",
        ),
        row(
            "2", "", "purchased electricity: hardware you run", "market-based", electricity, own_kwh, own, "carbon_market_g"
        ),
        row(
            "3",
            "1",
            "purchased goods and services: AI services",
            "location-based",
            "the provider's electricity for your requests",
            bought_kwh,
            bought,
            "carbon_location_g",
        ),
        row(
            "3",
            "1",
            "purchased goods and services: AI services",
            "embodied",
            "the provider's hardware manufacturing, share of your requests",
            None,
            bought,
            "carbon_embodied_g",
        ),
        row(
            "3",
            "2",
            "capital goods: hardware you run",
            "embodied",
            "manufacturing of your hardware, share used by your requests",
            None,
            own,
            "carbon_embodied_g",
        ),
    ]


def ghg_csv(r: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(GHG_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(ghg_rows(r))
    return buf.getvalue()


def energy_mix(r: Report, hosting: str = "own") -> dict[str, dict[str, float]]:
    """Facility energy (MWh) from fossil, nuclear and renewable sources, by the grids' generation mix."""
    by = r.facility_by_source_wh.get(hosting, {})

    def total(sources: tuple[str, ...]) -> dict[str, float]:
        return {b: sum(by.get(s, {}).get(b, 0.0) for s in sources) / 1e6 for b in BOUNDS}

    return {"fossil": total(FOSSIL), "nuclear": total(("nuclear",)), "renewable": total(RENEWABLE)}


def esrs(r: Report) -> list[dict[str, Any]]:
    """ESRS E1 datapoints AI use contributes to (Delegated Regulation (EU) 2023/2772, Annex I, ESRS E1).

    E1-5 counts the undertaking's own operations: the electricity of hardware you run. E1-6 gives
    Scope 2 (location- and market-based) of that electricity, and the Scope 3 categories of
    purchased AI services (1) and of the hardware you run (2).
    """
    own, bought = r.hosting["own"], r.hosting["purchased"]
    mix = energy_mix(r, "own")
    mwh = _scaled(own["facility_wh"], 1e-6)
    t = 1e-6  # g -> t

    def dp(ref: str, name: str, value: dict[str, float], unit: str, boundary: str) -> dict[str, Any]:
        return {"datapoint": ref, "name": name, "value": value, "unit": unit, "boundary": boundary}

    own_b = "AI inference on hardware you run (records with hosting 'own')"
    bought_b = "AI services you buy (records with hosting 'purchased')"
    loc3 = {b: (bought["carbon_location_g"][b] + bought["carbon_embodied_g"][b]) * t for b in BOUNDS}
    cat2 = _scaled(own["carbon_embodied_g"], t)
    return [
        dp("E1-5 §37", "total energy consumption related to own operations", mwh, "MWh", own_b),
        dp("E1-5 §37(a)", "total energy consumption from fossil sources", mix["fossil"], "MWh", own_b),
        dp("E1-5 §38(e)", "purchased or acquired electricity from fossil sources", mix["fossil"], "MWh", own_b),
        dp("E1-5 §37(b)", "total energy consumption from nuclear sources", mix["nuclear"], "MWh", own_b),
        dp("E1-5 §37(c)", "total energy consumption from renewable sources", mix["renewable"], "MWh", own_b),
        dp(
            "E1-5 §37(c)(ii)",
            "purchased or acquired electricity from renewable sources",
            mix["renewable"],
            "MWh",
            own_b,
        ),
        dp(
            "E1-6 §44(b), §49(a)",
            "gross location-based Scope 2 GHG emissions",
            _scaled(own["carbon_location_g"], t),
            "tCO2eq",
            own_b,
        ),
        dp(
            "E1-6 §44(b), §49(b)",
            "gross market-based Scope 2 GHG emissions",
            _scaled(own["carbon_market_g"], t),
            "tCO2eq",
            own_b,
        ),
        dp("E1-6 §44(c), §51", "Scope 3 category 1, purchased goods and services (AI services)", loc3, "tCO2eq", bought_b),
        dp("E1-6 §44(c), §51", "Scope 3 category 2, capital goods (hardware you run, amortised)", cat2, "tCO2eq", own_b),
        dp(
            "E1-6 §44(d), §52(a)",
            "total GHG emissions of AI use, location-based",
            {b: own["carbon_location_g"][b] * t + loc3[b] + cat2[b] for b in BOUNDS},
            "tCO2eq",
            "all records",
        ),
        dp(
            "E1-6 §44(d), §52(b)",
            "total GHG emissions of AI use, market-based",
            {b: own["carbon_market_g"][b] * t + loc3[b] + cat2[b] for b in BOUNDS},
            "tCO2eq",
            "all records",
        ),
    ]


def esrs_markdown(r: Report) -> str:
    out = [
        f"# ESRS E1 datapoints from AI use: {r.period}",
        "",
        "Figures are mid (low–high), summed over the ledger's records; the table shows each in the unit the "
        "standard asks for. Field mapping and boundaries: docs/disclosures.md.",
        "",
        "| datapoint | name | mid | low | high | unit | boundary |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for d in esrs(r):
        v = d["value"]
        out.append(
            f"| {d['datapoint']} | {d['name']} | {numbers.number(v['mid'], 3)} | {numbers.number(v['low'], 3)} | "
            f"{numbers.number(v['high'], 3)} | {d['unit']} | {d['boundary']} |"
        )
    return "\n".join(out) + "\n"


def sci(r: Report) -> dict[str, Any]:
    """The consumer SCI for AI of the period: ((E × I) + M) / R, per token and per query.

    O = E × I is the location-based carbon of the records' facility energy (SCI does not allow
    market-based instruments); M the embodied carbon of their hardware share; R the functional units.
    """
    t = r.total
    e_kwh = _scaled(t["facility_wh"], 1e-3)
    o_g = _scaled(t["carbon_location_g"], 1.0)
    m_g = _scaled(t["carbon_embodied_g"], 1.0)
    tokens = t["tokens"]["input"] + t["tokens"]["output"] + t["tokens"]["reasoning"]
    queries = t["with_receipt"]
    c = {b: o_g[b] + m_g[b] for b in BOUNDS}

    def per(n: float) -> dict[str, float] | None:
        return {b: c[b] / n for b in BOUNDS} if n else None

    return {
        "specification": "SCI for AI (Green Software Foundation), consumer boundary; ISO/IEC 21031:2024",
        "E_kwh": e_kwh,
        "I_g_per_kwh": o_g["mid"] / e_kwh["mid"] if e_kwh["mid"] else None,
        "O_g": o_g,
        "M_g": m_g,
        "C_g": c,
        "R": {"tokens": tokens, "queries": queries},
        "sci_g_per_token": per(tokens),
        "sci_g_per_million_tokens": per(tokens / 1e6),
        "sci_g_per_query": per(queries),
        "covered": "inference: accelerator, host, idle capacity, facility (PUE), embodied hardware share",
        "not_covered": "your gateways, monitoring, storage and clients (add their carbon to C to complete the boundary)",
    }


def sci_markdown(r: Report) -> str:
    s = sci(r)
    out = [
        f"# SCI for AI (consumer): {r.period}",
        "",
        "SCI = (E × I + M) / R over the period's records (Green Software Foundation, SCI for AI; ISO/IEC 21031:2024).",
        "",
        "| component | value |",
        "|---|---|",
        f"| E, energy (facility) | {numbers.iv(_scaled(s['E_kwh'], 1000), 'Wh')} |",
        f"| I, location-based intensity (energy-weighted) | {numbers.number(s['I_g_per_kwh'] or 0, 3)} gCO2e/kWh |",
        f"| O = E × I, operational carbon | {numbers.iv(s['O_g'], 'gCO2e')} |",
        f"| M, embodied carbon (hardware share) | {numbers.iv(s['M_g'], 'gCO2e')} |",
        f"| R, functional units | {s['R']['tokens']:,} tokens (input + output + reasoning); {s['R']['queries']:,} queries |",
        f"| SCI per million tokens | {numbers.iv(s['sci_g_per_million_tokens'], 'gCO2e')} |",
        f"| SCI per query | {numbers.iv(s['sci_g_per_query'], 'gCO2e')} |",
        "",
        f"Covered: {s['covered']}. Not covered: {s['not_covered']}.",
    ]
    return "\n".join(out) + "\n"


def model_card(doc: dict[str, Any]) -> str:
    """Hugging Face model card metadata (`co2_eq_emissions`, grams) and an energy section, from `disclose`.

    Hugging Face's schema (huggingface.co/docs/hub/model-cards-co2): emissions in grams of CO2e,
    source, training_type, geographical_location, hardware_used.
    """
    t, i, s = doc["training"], doc["inference"], doc["energy_score"]
    lines: list[str] = []
    if t is not None and t.get("carbon_kg") is not None:  # Hugging Face's metadata needs the emissions
        lines += [
            "---",
            "co2_eq_emissions:",
            f"  emissions: {t['carbon_kg']['mid'] * 1000:.6g}",
            f'  source: "wattlens: {t["basis"]}, {t["method"]}"',
            '  training_type: "pre-training"',
        ]
        if t.get("zone"):
            lines.append(f'  geographical_location: "{t["zone"]}"')
        if t.get("hardware"):
            lines.append(f'  hardware_used: "{t["hardware"]}"')
        lines += ["---", ""]
    lines += ["## Energy", ""]
    if t is None:
        lines.append("- Training energy: not documented.")
    else:
        kwh = t["energy_kwh"]
        carbon = (
            f"; carbon {numbers.iv(_scaled(t['carbon_kg'], 1000), 'gCO2e', 3)} (location-based)"
            if t.get("carbon_kg")
            else "; carbon not documented (no receipts with a grid)"
        )
        lines.append(f"- Training: {numbers.iv(_scaled(kwh, 1000), 'Wh', 3)} ({t['method']}, {t['basis']}){carbon}.")
    lines.append(
        f"- Inference: {numbers.iv(i['per_1000_queries_wh'], 'Wh', 3)} per 1,000 {i.get('kind', 'chat')} queries "
        f"({i['basis']})."
    )
    if s:
        lines.append(
            f"- Energy Score ({s['task']}): {numbers.number(s['wh_per_1000'], 3)} Wh per 1,000 queries, "
            f"{s['stars']}/5 stars ({s['scale']} scale), {s['method']}, {s['boundary']}."
        )
    lines += ["", "Prepared with wattlens; method and boundary: wattlens docs/methodology.md.", ""]
    return "\n".join(lines)
