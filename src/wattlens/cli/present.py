"""Rich renderings of a Footprint for the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from wattlens.codes import WARNINGS
from wattlens.factors.records import FOSSIL, RENEWABLE
from wattlens.footprint import Footprint
from wattlens.report.numbers import number
from wattlens.units import Interval

SOURCE_STYLE = {
    "coal": "grey35",
    "gas": "orange3",
    "oil": "dark_red",
    "nuclear": "medium_purple",
    "hydro": "dodger_blue2",
    "wind": "cyan",
    "solar": "yellow",
    "bioenergy": "green4",
    "other": "spring_green3",
}


def fmt(x: float) -> str:
    """A bare number with three significant digits (the unit is beside it); one formatter: report.numbers."""
    return number(x, 3)


def mix_bar(mix: dict[str, float], width: int = 40) -> Text:
    bar = Text()
    for source, share in sorted(mix.items(), key=lambda kv: -kv[1]):
        n = round(share * width)
        if n:
            bar.append("█" * n, style=SOURCE_STYLE.get(source, "white"))
    return bar


def receipt_table(fp: Footprint) -> Group:
    t = Table(title=f"wattlens receipt · {fp.model or 'work'} · {fp.method}", title_justify="left")
    t.add_column("quantity")
    t.add_column("low", justify="right")
    t.add_column("mid", justify="right", style="bold")
    t.add_column("high", justify="right")
    t.add_column("unit")
    rows: list[tuple[str, Interval, str]] = [
        ("energy (IT)", fp.energy_wh, "Wh"),
        ("energy (facility)", fp.facility_wh, "Wh"),
        ("carbon, location-based", fp.carbon_location_g, "gCO2e"),
        ("carbon, market-based", fp.carbon_market_g, "gCO2e"),
        ("carbon, embodied", fp.embodied_g, "gCO2e"),
        ("water, on-site", fp.water_onsite_ml, "mL"),
        ("water, off-site", fp.water_offsite_ml, "mL"),
    ]
    for name, iv, unit in rows:
        if name == "carbon, embodied" and "embodied" not in fp.boundary:
            t.add_row(name, "", "[dim]not in boundary[/]", "", unit)
            continue
        t.add_row(name, fmt(iv.low), fmt(iv.mid), fmt(iv.high), unit)
    g = fp.grid
    fossil = sum(g.mix.get(s, 0.0) for s in FOSSIL)
    renewable = sum(g.mix.get(s, 0.0) for s in RENEWABLE)
    lines: list[Text | Table] = [t]
    lines.append(
        Text.assemble(
            ("grid ", "bold"),
            f"{g.zone} ({g.year}) · {g.intensity_g_per_kwh:.0f} gCO2e/kWh · ",
            f"fossil {fossil:.0%} · nuclear {g.mix.get('nuclear', 0.0):.0%} · renewable {renewable:.0%}",
        )
    )
    lines.append(mix_bar(g.mix))
    lines.append(
        Text(
            "  ".join(f"{k} {v:.0%}" for k, v in sorted(g.mix.items(), key=lambda kv: -kv[1]) if v >= 0.005),
            style="dim",
        )
    )
    if fp.tokens is not None:
        tk = fp.tokens
        lines.append(
            Text(
                f"tokens: input {tk.input} (cached {tk.cached_input}) · output {tk.output} · reasoning {tk.reasoning}",
                style="dim",
            )
        )
    lines.append(Text(f"boundary: {', '.join(fp.boundary)} · factors {fp.factors_version}", style="dim"))
    for code in fp.warnings:
        lines.append(Text.assemble(("! ", "yellow"), (code, "yellow"), f"  {WARNINGS.get(code, '')}"))
    return Group(*lines)
