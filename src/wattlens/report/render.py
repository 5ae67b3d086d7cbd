"""Render a Report as Markdown, HTML, PDF, CSV or JSON (figures with matplotlib, when installed)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlens.errors import InputError
from wattlens.report import SOURCES, Report, numbers
from wattlens.report.grid_sections import cfe_section, hour_profile
from wattlens.report.typeset import CHECKPOINT, md_to_html, pdf

if TYPE_CHECKING:
    from wattlens.factors import FactorSet

ROWS = [
    ("energy (IT)", "energy_wh", "Wh"),
    ("energy (facility, with PUE)", "facility_wh", "Wh"),
    ("carbon, location-based", "carbon_location_g", "gCO2e"),
    ("carbon, market-based", "carbon_market_g", "gCO2e"),
    ("carbon, embodied (hardware manufacturing)", "carbon_embodied_g", "gCO2e"),
    ("water (on-site + off-site)", "water_ml", "mL"),
]


def f(x: float) -> str:
    """A bare number (three significant digits) for cells whose unit is in the column head."""
    return numbers.number(x, 3)


def iv(d: dict[str, float] | None, unit: str) -> str:
    return numbers.iv(d, unit)


def methods_line(t: dict[str, Any]) -> str:
    return numbers.counts(t["methods"], "receipts")


def coverage(r: Report) -> list[str]:
    """What the figures cover: an empty period, and the records without a receipt and why."""
    t = r.total
    n, with_receipt = int(t["requests"]), int(t["with_receipt"])
    if n == 0:
        return [
            "**No records in this period.** Every figure below is zero because the ledger holds no request "
            f"for {r.period}, not because the requests used no energy.",
            "",
        ]
    without = n - with_receipt
    if not without:
        return [f"All {n:,} records carry a receipt.", ""]
    out = [
        f"**{without:,} of {n:,} records ({numbers.share(without, n)}) carry no receipt** and are not in the "
        "totals; the totals cover the other "
        f"{with_receipt:,}. Why they have none:",
        "",
    ]
    out += [f"- {why}: {k:,} ({numbers.share(k, n)})" for why, k in r.missing.items()]
    return [*out, ""]


def markdown(r: Report, fs: FactorSet, figures: dict[str, str] | None = None) -> str:
    t = r.total
    out = [
        f"# AI footprint report: {r.period}",
        "",
        f"Generated {r.generated} by wattlens · factor data {', '.join(r.factors_versions) or '–'} · "
        f"{t['requests']:,} requests, {t['with_receipt']:,} with a receipt · {r.users} users"
        + (f" · records from {r.first_ts[:19]} to {r.last_ts[:19]} (UTC)" if r.first_ts else ""),
        "",
        *([f"{CHECKPOINT}{r.checkpoint}", ""] if r.checkpoint else []),
        *coverage(r),
        "Every figure is the middle of an interval, mid (low–high), summed bound by bound over the ledger "
        "records; the method of each receipt is counted below.",
        "",
        "## Totals",
        "",
        "| quantity | mid | low | high |",
        "|---|---:|---:|---:|",
    ]
    for name, key, unit in ROWS:
        q = t[key]
        div, label = numbers.scale(q["mid"], unit)
        out.append(f"| {name} | {f(q['mid'] / div)} {label} | {f(q['low'] / div)} {label} | {f(q['high'] / div)} {label} |")
    out += ["", "## Intensity", "", "| | energy | carbon (location) | water |", "|---|---|---|---|"]
    ie, ic, iw = r.intensity("energy_wh"), r.intensity("carbon_location_g"), r.intensity("water_ml")
    for label, k in (
        ("per 1,000 queries", "per_1000_queries"),
        ("per user", "per_user"),
        ("per million tokens", "per_million_tokens"),
    ):
        out.append(f"| {label} | {iv(ie[k], 'Wh')} | {iv(ic[k], 'gCO2e')} | {iv(iw[k], 'mL')} |")
    out += [
        "",
        "## How the figures were obtained",
        "",
        f"Receipts by method: {methods_line(t)}. Grid intensity: {r.grid_basis}.",
        "",
        "## Accounting view (GHG Protocol)",
        "",
        "| line | category | energy (facility) | carbon, location-based | carbon, market-based |",
        "|---|---|---|---|---|",
    ]
    own, bought = r.hosting["own"], r.hosting["purchased"]
    out.append(
        f"| electricity of hardware you run yourself | Scope 2 | {iv(own['facility_wh'], 'Wh')} | "
        f"{iv(own['carbon_location_g'], 'gCO2e')} | {iv(own['carbon_market_g'], 'gCO2e')} |"
    )
    out.append(
        f"| purchased AI services (their electricity) | Scope 3, category 1 | {iv(bought['facility_wh'], 'Wh')} | "
        f"{iv(bought['carbon_location_g'], 'gCO2e')} | {iv(bought['carbon_market_g'], 'gCO2e')} |"
    )
    out.append(
        f"| purchased AI services (their hardware's manufacturing) | Scope 3, category 1 | – | "
        f"{iv(bought['carbon_embodied_g'], 'gCO2e')} | {iv(bought['carbon_embodied_g'], 'gCO2e')} |"
    )
    out.append(
        f"| manufacturing of hardware you run | Scope 3, category 2 | – | {iv(own['carbon_embodied_g'], 'gCO2e')} | "
        f"{iv(own['carbon_embodied_g'], 'gCO2e')} |"
    )
    out += [
        "",
        "A request counts as your own hardware when the gateway served it from a `local` upstream "
        "(or it was measured); everything else is a purchased service. `--format ghg-csv`, `esrs` and `sci` "
        "write these figures in the layouts of the standards (docs/disclosures.md).",
        "",
        "## Energy sources behind the total",
        "",
        "Energy-weighted generation mix of the grids that powered the requests:",
        "",
        "| " + " | ".join(SOURCES) + " |",
        "|" + "---:|" * len(SOURCES),
        "| " + " | ".join(f"{r.mix[s]:.1%}" for s in SOURCES) + " |",
        "",
    ]
    if figures:
        for title, path in figures.items():
            out += [f"![{title}]({path})", ""]
    for by, groups in r.groups.items():
        name = f"tag {by[4:]}" if by.startswith("tag:") else by
        out += [
            f"## By {name}",
            "",
            f"| {name} | requests | energy (IT) | carbon (location) | water | per 1,000 queries | measured |",
            "|---|---:|---|---|---|---:|---:|",
        ]
        for k, g in groups.items():
            per1k = numbers.quantity(g["energy_wh"]["mid"] / g["with_receipt"] * 1000, "Wh") if g["with_receipt"] else "–"
            n = sum(g["methods"].values())
            out.append(
                f"| {k} | {g['requests']:,} | {iv(g['energy_wh'], 'Wh')} | {iv(g['carbon_location_g'], 'gCO2e')} | "
                f"{iv(g['water_ml'], 'mL')} | {per1k} | {numbers.share(g['methods']['measured'], n)} |"
            )
        out.append("")
    out += hour_profile(r)
    out += cfe_section(r)
    out += appendix(r, fs)
    return "\n".join(out) + "\n"


def appendix(r: Report, fs: FactorSet) -> list[str]:
    """Formulas and every zone, model and facility factor the report used, with its source."""
    out = [
        "## Appendix: methodology and data sources",
        "",
        "- facility energy = IT energy × PUE; carbon (location) = facility energy × grid intensity; carbon "
        "(market) = facility energy × contractual factor, or × (1 − renewable share), else = location; "
        "embodied = hardware embodied kgCO2e × occupied time ÷ lifetime; water = IT energy × WUE + facility "
        "energy × the grid's water per kWh. Full formulas: docs/methodology.md.",
        "- Estimated requests use wattlens' calibrated inference model (docs/estimator.md), cross-validated "
        "against measurements in docs/estimator-validation.md.",
        "",
        "### Grid zones used",
        "",
        "| zone | name | year | gCO2e/kWh | water L/kWh | source |",
        "|---|---|---|---:|---:|---|",
    ]
    for z in r.zones:
        row = fs.zones.find(z)
        if row:
            out.append(
                f"| {row.zone} | {row.name} | {row.year} | {row.intensity_g_per_kwh:.0f} | "
                f"{row.water_offsite_l_per_kwh:.2f} | {row.source} ({row.licence}) |"
            )
    out += [
        "",
        "### Models used",
        "",
        "| model | active params (B) | total params (B) | basis | source |",
        "|---|---|---|---|---|",
    ]
    for m in r.models:
        spec = fs.models.find(m)
        if spec:
            a, tot = spec.active_params_b, spec.total_params_b
            out.append(
                f"| {spec.model_id} | {f(a.low)}–{f(a.high)} | {f(tot.low)}–{f(tot.high)} | "
                f"{spec.params_basis} | {spec.source} |"
            )
        else:
            out.append(f"| {m} | – | – | measured or given by the operator | – |")
    out += ["", "### Facilities (PUE and on-site water)", "", "| facility | PUE | WUE L/kWh | source |", "|---|---|---|---|"]
    for fac in fs.facilities.list():
        out.append(
            f"| {fac.facility} | {fac.pue.low}–{fac.pue.high} | {fac.wue_l_per_kwh.low}–"
            f"{fac.wue_l_per_kwh.high} | {fac.source} |"
        )
    return [*out, ""]


def figures(r: Report, outdir: Path) -> dict[str, str]:
    """PNG figures beside the report; {} when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    outdir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    colours = {
        "coal": "#4a4a4a",
        "gas": "#d9822b",
        "oil": "#8c2d19",
        "nuclear": "#8e6bd1",
        "hydro": "#2f7fd8",
        "wind": "#35b7c4",
        "solar": "#e8c12f",
        "bioenergy": "#4c8c2b",
        "other": "#59d49a",
    }
    for by in ("model", "day"):
        groups = r.groups.get(by)
        if not groups or len(groups) < 2:  # one bar says nothing a table does not (a one-hour trace by day)
            continue
        keys = list(groups)
        mids = [groups[k]["energy_wh"]["mid"] for k in keys]
        lows = [m - groups[k]["energy_wh"]["low"] for k, m in zip(keys, mids, strict=True)]
        highs = [groups[k]["energy_wh"]["high"] - m for k, m in zip(keys, mids, strict=True)]
        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
        ax.bar(range(len(keys)), mids, yerr=[lows, highs], color="#0a7d4f", capsize=3)
        ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("energy (Wh)")
        ax.set_title(f"Energy by {by} (bars: mid; whiskers: low–high)", fontsize=10)
        fig.tight_layout()
        name = f"energy_by_{by}.png"
        fig.savefig(outdir / name)
        plt.close(fig)
        made[f"Energy by {by}"] = name
    fig, ax = plt.subplots(figsize=(7, 1.6), dpi=120)
    left = 0.0
    for s in SOURCES:
        ax.barh([0], [r.mix[s]], left=left, color=colours[s], label=f"{s} {r.mix[s]:.0%}")
        left += r.mix[s]
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.set_title("Energy sources behind the total (energy-weighted grid mix)", fontsize=10)
    ax.set_xticks([])  # the shares are in the legend
    ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.05), frameon=False)
    fig.tight_layout()
    fig.savefig(outdir / "grid_mix.png", bbox_inches="tight")
    plt.close(fig)
    made["Energy sources"] = "grid_mix.png"
    return made


def csv_rows(r: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["breakdown", "group", "requests", "with_receipt"]
    for _, key, _unit in ROWS:
        head += [f"{key}_low", f"{key}_mid", f"{key}_high"]
    w.writerow(head)
    sections: list[tuple[str, dict[str, dict[str, Any]]]] = [("total", {"all": r.total})]
    sections += [(b, g) for b, g in r.groups.items()]
    sections += [("hosting", r.hosting)]
    for section, groups in sections:
        for k, g in groups.items():
            row: list[Any] = [section, k, g["requests"], g["with_receipt"]]
            for _, key, _unit in ROWS:
                row += [g[key]["low"], g[key]["mid"], g[key]["high"]]
            w.writerow(row)
    return buf.getvalue()


def _text(text: str, output: str | None) -> str | None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        return None
    return text


def _typeset(r: Report, fs: FactorSet, output: str | None) -> tuple[str, dict[str, str], Path | None]:
    """The Markdown with figures written beside the output file (none on standard output)."""
    base = Path(output).parent if output else None
    figs = figures(r, base / f"{Path(output).stem}_files") if output and base is not None else {}
    if output and base is not None:
        figs = {t: f"{Path(output).stem}_files/{n}" for t, n in figs.items()}
    return markdown(r, fs, figs), figs, base


@dataclass(frozen=True)
class MarkdownRenderer:
    name: str = "md"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        return _text(_typeset(r, fs, output)[0], output)


@dataclass(frozen=True)
class HtmlRenderer:
    name: str = "html"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        md, _, base = _typeset(r, fs, output)
        return _text(md_to_html(md, base), output)


@dataclass(frozen=True)
class PdfRenderer:
    name: str = "pdf"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        if output is None:
            raise InputError("a PDF report needs --output FILE")
        md, _, base = _typeset(r, fs, output)
        pdf(md_to_html(md, base), Path(output))
        return None


@dataclass(frozen=True)
class CsvRenderer:
    name: str = "csv"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        return _text(csv_rows(r), output)


@dataclass(frozen=True)
class JsonRenderer:
    name: str = "json"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        intensity = {q: r.intensity(q) for q in ("energy_wh", "carbon_location_g", "water_ml")}
        return _text(json.dumps({**asdict(r), "intensity": intensity}, indent=2), output)


@dataclass(frozen=True)
class GhgCsvRenderer:
    """GHG Protocol lines as CSV rows (docs/disclosures.md)."""

    name: str = "ghg-csv"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        from wattlens.report.disclosures import ghg_csv

        return _text(ghg_csv(r), output)


@dataclass(frozen=True)
class EsrsRenderer:
    """ESRS E1-5 and E1-6 datapoints AI use contributes to."""

    name: str = "esrs"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        from wattlens.report.disclosures import esrs_markdown

        return _text(esrs_markdown(r), output)


@dataclass(frozen=True)
class SciRenderer:
    """The SCI for AI score (consumer) per token and per query, with its components."""

    name: str = "sci"

    def render(self, r: Report, output: str | None, fs: FactorSet) -> str | None:
        from wattlens.report.disclosures import sci_markdown

        return _text(sci_markdown(r), output)


RENDERERS = (
    MarkdownRenderer(),
    HtmlRenderer(),
    PdfRenderer(),
    CsvRenderer(),
    JsonRenderer(),
    GhgCsvRenderer(),
    EsrsRenderer(),
    SciRenderer(),
)


def write(r: Report, fmt: str, output: str | None, fs: FactorSet) -> str | None:
    """Write the report with a registered renderer; returns the text for stdout when no output file is given."""
    from wattlens.plugins import registry

    renderers = registry().renderers
    if fmt not in renderers:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(renderers)}")
    result = renderers[fmt].render(r, output, fs)
    return result if result is None else str(result)
