"""Report sections about when and how the energy was supplied: the hour-of-day profile and the
hourly matching with contracts (24/7 carbon-free energy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattlens.report import numbers

if TYPE_CHECKING:
    from wattlens.report import Report


def hour_profile(r: Report) -> list[str]:
    """Energy and carbon by hour of day (UTC): where a time-resolved grid makes the hour matter."""
    if not any(h["energy_wh"] for h in r.hours.values()):
        return []
    total = sum(h["energy_wh"] for h in r.hours.values()) or 1.0
    out = ["## Hour of day (UTC)", "", "| hour | energy (mid) | share | carbon, location-based (mid) | gCO2e/kWh |"]
    out.append("|---:|---:|---:|---:|---:|")
    for hour, h in sorted(r.hours.items()):
        if h["energy_wh"]:
            g_per_kwh = h["carbon_location_g"] / h["energy_wh"] * 1000 if h["energy_wh"] else 0.0
            out.append(
                f"| {hour:02d} | {numbers.quantity(h['energy_wh'], 'Wh')} | {numbers.share(h['energy_wh'], total)} | "
                f"{numbers.quantity(h['carbon_location_g'], 'gCO2e')} | {g_per_kwh:.0f} |"
            )
    return [*out, ""]


def cfe_section(r: Report) -> list[str]:
    """24/7 carbon-free energy and hourly vs annual market-based carbon, when contracts were given."""
    if not r.cfe:
        return []
    c, g = r.cfe, r.cfe["carbon_g"]
    out = [
        "## Contracts and 24/7 carbon-free energy",
        "",
        "Consumption (facility energy, mid) matched hour by hour with the contracts given (`--contracts`); "
        "the CFE score counts contracted energy in the same hour plus the grid's carbon-free share of the rest "
        "(Google's 24/7 definition; docs/grid.md).",
        "",
        "| | value |",
        "|---|---:|",
        f"| consumption | {numbers.quantity(c['consumption_kwh'] * 1000, 'Wh')} |",
        f"| CFE score | {c['cfe_score']:.1%} |",
        f"| matched hour by hour | {c['hourly_matched_share']:.1%} |",
        f"| matched over the year | {c['annual_matched_share']:.1%} |",
        f"| carbon, location-based | {numbers.quantity(g['location'], 'gCO2e')} |",
        f"| carbon, market-based, hourly matching | {numbers.quantity(g['market_hourly'], 'gCO2e')} |",
        f"| carbon, market-based, annual matching | {numbers.quantity(g['market_annual'], 'gCO2e')} |",
        f"| residual mix | {c['residual']} |",
        "",
        "Contracts: " + "; ".join(c.get("contracts", [])) + ".",
        "",
        "| hour (UTC) | consumption | matched | CFE |",
        "|---:|---:|---:|---:|",
    ]
    for hour, h in c["by_hour_of_day"].items():
        if h["consumption_kwh"]:
            load = h["consumption_kwh"]
            out.append(
                f"| {int(hour):02d} | {numbers.quantity(load * 1000, 'Wh')} | "
                f"{numbers.share(h['matched_kwh'], load)} | {numbers.share(h['cfe_kwh'], load)} |"
            )
    return [*out, ""]
