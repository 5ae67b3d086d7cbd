"""Projections: plan."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from wattlens.cli.common import ConfigOpt, FactorsOpt, JsonOpt, app, err, out, settings_for
from wattlens.report import numbers


@app.command()
def plan(
    users: Annotated[float, typer.Option(help="Users in year 1.")] = 10_000,
    queries_per_day: Annotated[float, typer.Option(help="Queries per user per day.")] = 10,
    input_tokens: Annotated[int, typer.Option(help="Input tokens per query.")] = 500,
    output_tokens: Annotated[int, typer.Option(help="Output tokens per query.")] = 300,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="MODEL=SHARE, repeatable (shares sum to 1).")
    ] = None,
    growth: Annotated[float, typer.Option(help="User growth per year, e.g. 0.5 for +50 %.")] = 0.0,
    years: Annotated[int, typer.Option(min=1, max=10, help="Years to project (1-10).")] = 5,
    zone: Annotated[str | None, typer.Option(help="Grid zone.")] = None,
    region: Annotated[str | None, typer.Option(help="Cloud region.")] = None,
    decarbonisation: Annotated[float, typer.Option(help="Yearly fall of the grid's intensity, e.g. 0.04.")] = 0.0,
    renewable_share: Annotated[float | None, typer.Option(help="Contracted renewable share (market-based).")] = None,
    router_saving: Annotated[float, typer.Option(help="Share of energy saved by routing to small models.")] = 0.0,
    scenarios: Annotated[str | None, typer.Option(help="TOML file of [[scenarios]] overriding these options.")] = None,
    csv_out: Annotated[str | None, typer.Option("--csv", help="Write every figure to this CSV file.")] = None,
    figure_out: Annotated[str | None, typer.Option("--figure", help="Write a PNG figure of the projection.")] = None,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Project usage forward: MWh per year, average and peak MW, water, carbon; scenarios side by side."""
    import csv as csvmod

    from wattlens.report.plan import Scenario, as_rows, check_labels, load_scenarios, per_query, project
    from wattlens.report.plan import figure as plan_figure

    mix: dict[str, float] = {}
    for m in model or ["gpt-4o-mini=1"]:
        name, _, share = m.rpartition("=")
        if not name:
            name, share = m, "1"
        try:
            mix[name] = float(share)
        except ValueError as e:
            raise typer.BadParameter(f"--model takes MODEL=SHARE, got {m!r}") from e
    base = Scenario(
        "base",
        users,
        queries_per_day,
        input_tokens,
        output_tokens,
        mix,
        growth,
        years,
        zone,
        region,
        decarbonisation,
        renewable_share,
        router_saving,
    )
    todo = load_scenarios(scenarios, base) if scenarios else [base]
    context = settings_for(config, factors).context()  # a scenario's zone or region refines the configured place
    per = [(s, per_query(s, context)) for s in todo]
    check_labels(per)
    results = [(s, project(s, q, context=context)) for s, q in per]
    rows = [r for (s, ys), (_, q) in zip(results, per, strict=True) for r in as_rows(s, ys, q)]
    if csv_out:
        with open(csv_out, "w", newline="") as fh:
            w = csvmod.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        err.print(f"wrote {len(rows)} rows to {csv_out}")
    if figure_out:
        plan_figure(results, figure_out)
        err.print(f"wrote the figure to {figure_out}")
    if as_json:
        out.print_json(json.dumps(rows))
        return
    a = Table(title="assumptions of each scenario", title_justify="left")
    for col in ("scenario", "model (share)", "hardware", "tokens in/out", "grid", "facility energy per query"):
        a.add_column(col, overflow="fold")
    for s, q in per:
        for i, ma in enumerate(q.models):
            hw = f"{ma.hardware}" + (f" ×{ma.gpus}" if ma.gpus else "") + f", {ma.precision}"
            if ma.active_params_b is not None:
                hw += f", {numbers.number(ma.active_params_b, 2)}B active params"
            a.add_row(
                s.name if i == 0 else "",
                f"{ma.model} ({ma.share:.0%})",
                hw,
                f"{s.input_tokens:,} / {s.output_tokens:,}" if i == 0 else "",
                f"{q.zone} {q.grid_year or ''}, {q.intensity_g_per_kwh:.0f} gCO2e/kWh" if i == 0 else "",
                numbers.iv(ma.facility_wh.as_dict(), "Wh"),
            )
    out.print(a)
    t = Table(title="wattlens plan (mid (low–high) per year)", title_justify="left")
    for col in (
        "scenario",
        "year",
        "users",
        "queries",
        "energy",
        "average power",
        "peak power",
        "water",
        "carbon (location)",
        "carbon (market)",
    ):
        t.add_column(col, justify="left" if col == "scenario" else "right", overflow="fold")
    for s, ys in results:
        for y in ys:
            t.add_row(
                s.name,
                str(y.year),
                f"{y.users:,.0f}",
                f"{y.queries:,.0f}",
                numbers.iv(y.energy_mwh.as_dict(), "MWh"),
                numbers.iv(y.average_mw.as_dict(), "MW"),
                numbers.iv(y.peak_mw.as_dict(), "MW"),
                numbers.iv(y.water_m3.as_dict(), "m³"),
                numbers.iv(y.carbon_t.as_dict(), "tCO2e"),
                numbers.iv(y.carbon_market_t.as_dict(), "tCO2e"),
            )
    out.print(t)
