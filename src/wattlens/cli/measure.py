"""Measuring local work: sensors, run, score."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wattlens.cli.common import ConfigOpt, FactorsOpt, GridOpt, JsonOpt, app, err, out, settings_for


@app.command()
def sensors(config: ConfigOpt = None, factors: FactorsOpt = None, as_json: JsonOpt = False) -> None:
    """Show the energy sensors found on this machine, the method each uses, and why."""
    from wattlens.measure.sensors import probe_all

    det = probe_all(settings_for(config, factors).context().factors)
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "backend": p.backend,
                        "reason": p.reason,
                        "sensors": [
                            {"device": s.device, "kind": s.kind, "method": s.method, "reason": s.reason} for s in p.sensors
                        ],
                    }
                    for p in det.probes
                ]
            )
        )
        return
    t = Table(title=f"energy sensors · overall method: {det.method}", title_justify="left")
    for col in ("backend", "device", "kind", "method", "why"):
        t.add_column(col)
    for p in det.probes:
        if not p.sensors:
            t.add_row(p.backend, "-", "-", "[dim]none[/]", p.reason)
        for s in p.sensors:
            style = "green" if s.method == "measured" else "yellow"
            t.add_row(p.backend, s.device, s.kind, f"[{style}]{s.method}[/]", s.reason)
    out.print(t)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    zone: Annotated[str | None, typer.Option(help="Grid zone of this machine, e.g. FR or US-CA.")] = None,
    region: Annotated[str | None, typer.Option(help="Cloud region of this machine.")] = None,
    pue: Annotated[float | None, typer.Option(help="PUE of the room (1.0 for a desk or office).")] = None,
    facility: Annotated[str | None, typer.Option(help="Facility row for PUE/WUE.")] = None,
    ledger: Annotated[str | None, typer.Option(help="Also record the receipt in this ledger (path or URL).")] = None,
    grid: GridOpt = None,
    within: Annotated[
        str | None,
        typer.Option(
            help="Carbon-aware start: wait for the lowest-intensity time within this window (6h, 90m, 1h30m) "
            "in the grid feed's forecast (--grid csv:FILE, electricitymaps, watttime:REGION, ukci)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --within: print the chosen start and the saving, run nothing.")
    ] = False,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a command, measure its energy and print its receipt: wattlens run [--zone FR] -- CMD ARGS...

    The receipt goes to standard error so the command's own output stays clean; the command's
    exit code is passed through. With --within 6h it first waits for the lowest-carbon start in
    the forecast and says what it chose and the expected saving.
    """
    from wattlens.cli.present import receipt_table
    from wattlens.measure.meter import Meter, measured_footprint
    from wattlens.measure.run import run_command

    argv = list(ctx.args)
    st = settings_for(config, factors, zone=zone, region=region, pue=pue, facility=facility, grid_feed=grid)
    context = st.context()
    timing = _carbon_aware_wait(context, within, dry_run, as_json) if within else None
    meter = Meter(context=context)
    started = dt.datetime.now(dt.UTC)
    res = run_command(argv, meter)
    fp = measured_footprint(res.measurement, context, started if grid or st.grid_feed != "annual" else None)
    if ledger:
        from wattlens.ledger import open_ledger
        from wattlens.metering import Call, settle

        call = Call(
            "run",
            "process",
            "run",
            argv[0],
            upstream="this host",
            status=res.returncode,
            outcome="ok" if res.returncode == 0 else "failed",
            latency_s=res.whole.duration_s,
            tags={"command": " ".join(argv)[:500]},
            hosting="own",
            measurement=res.measurement,
            wall_s=started.timestamp(),
        )
        led = open_ledger(ledger)
        try:
            led.append([settle(call, context).record_dict()])
        finally:
            led.close()
    if as_json:
        d = fp.as_dict()
        d["run"] = {
            "command": argv,
            "returncode": res.returncode,
            "duration_s": round(res.whole.duration_s, 6),
            "cpu_share": res.cpu_share,
            "attribution": res.attribution,
            "whole_devices_j": {k: v.as_dict() for k, v in res.whole.energy_j.items()},
        }
        if timing is not None:
            d["run"]["carbon_aware"] = {**timing.as_dict(), "avoided_g": timing.avoided_g(fp.facility_wh.mid)}
        err.print_json(json.dumps(d))
    else:
        err.print(receipt_table(fp))
        err.print(f"[dim]{res.whole.duration_s:.3f} s · {res.attribution}[/]")
    if timing is not None and not as_json:
        avoided = timing.avoided_g(fp.facility_wh.mid)
        err.print(f"carbon-aware start: about {avoided:.3g} gCO2e avoided against starting at {timing.now:%H:%M}Z")
    raise typer.Exit(res.returncode)


def _carbon_aware_wait(context: Any, within: str, dry_run: bool, as_json: bool) -> Any:
    """Plan the start from the feed's forecast, say it, and wait for it (unless --dry-run); None: start now."""
    import time

    from wattlens.errors import InputError
    from wattlens.grid.http import FeedError
    from wattlens.grid.timing import forecast_of, parse_duration, plan
    from wattlens.impacts import resolve_site

    window = parse_duration(within)
    now = dt.datetime.now(dt.UTC)
    zone = resolve_site(context).zone
    try:
        samples, basis = forecast_of(context.grid, zone, now, window)
        p = plan(samples, now, window, basis)
    except (FeedError, InputError) as e:
        if dry_run:
            raise
        err.print(f"[yellow]no usable forecast ({e}): starting now[/]")
        return None
    if as_json and dry_run:
        out.print_json(json.dumps({"zone": zone.zone, **p.as_dict()}))
    else:
        when = "now" if p.wait_s == 0 else f"at {p.start:%Y-%m-%d %H:%M}Z (in {p.wait_s / 3600:.1f} h)"
        err.print(
            f"carbon-aware start in {zone.zone}: {when}; {p.chosen_g_per_kwh:.0f} g/kWh ({p.basis}) against "
            f"{p.now_g_per_kwh:.0f} now, {p.saving_share:.0%} less per kWh; {p.candidates} start times compared"
        )
    if dry_run:
        raise typer.Exit(0)
    deadline = time.monotonic() + p.wait_s
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 60.0))  # short naps so Ctrl-C answers at once
    return p


def _advance(bar: Any, task_id: Any, done: int, total: int) -> None:
    bar.update(task_id, completed=done, total=total)


@app.command("score")
def score_cmd(
    models: Annotated[
        list[str],
        typer.Argument(
            help="MODEL (Hugging Face id, local path, or all-MiniLM-L6-v2, built in), or: compare MODEL MODEL ..."
        ),
    ],
    task: Annotated[
        str, typer.Option(help="text-generation or sentence-similarity (more are registered).")
    ] = "sentence-similarity",
    samples: Annotated[int, typer.Option(min=1, help="Samples per repetition (built-in sets hold 100).")] = 100,
    repetitions: Annotated[int, typer.Option(min=1, help="Repetitions (the spread is reported).")] = 3,
    scale: Annotated[str, typer.Option(help="log (default) or leaderboard-2025-02.")] = "log",
    random_weights: Annotated[bool, typer.Option("--random-weights", help="Architecture only: random weights.")] = False,
    label: Annotated[str | None, typer.Option(help="Write the label here (.svg or .png).")] = None,
    model_card: Annotated[bool, typer.Option("--model-card", help="Print a Markdown section for a model card.")] = False,
    dataset: Annotated[str | None, typer.Option(help="A standard dataset (hub id or path).")] = None,
    column: Annotated[str, typer.Option(help="Dataset column(s), comma-separated (QA: question,context).")] = "text",
    as_json: JsonOpt = False,
) -> None:
    """Measure a model on a task (batch size 1, warm-up, repetitions), rate it 1-5 stars, print its label.

    `wattlens score compare A B C --task ...` scores several models the same way and names the lowest.
    """
    from rich.progress import Progress

    from wattlens.score import score as run_score
    from wattlens.score.label import label_png, label_svg
    from wattlens.score.label import model_card as card

    names = models[1:] if models[0] == "compare" else models[:1]
    if models[0] == "compare" and len(names) < 2:
        raise typer.BadParameter("compare needs at least two models")
    if models[0] != "compare" and len(models) > 1:
        raise typer.BadParameter("give one model, or `compare A B ...`")
    results = []
    with Progress(transient=True, console=err) as bar:
        for name in names:
            t = bar.add_task(f"scoring {name} on {task}", total=samples * repetitions)
            results.append(
                run_score(
                    name,
                    task,
                    samples,
                    repetitions,
                    scale,
                    random_weights,
                    progress=functools.partial(_advance, bar, t),
                    dataset=dataset,
                    columns=[c.strip() for c in column.split(",") if c.strip()],
                )
            )
    if models[0] == "compare":
        tab = Table(title=f"Energy Score · {task}", title_justify="left")
        for col in ("model", "Wh per 1,000 queries", "stars", "spread"):
            tab.add_column(col)
        for r in sorted(results, key=lambda x: x.wh_per_1000):
            tab.add_row(
                r.model,
                f"{r.wh_per_1000:.3g} ({r.wh_per_1000_low:.3g}–{r.wh_per_1000_high:.3g})",
                "★" * r.stars + "☆" * (5 - r.stars),
                f"{r.spread:.1%}",
            )
        out.print(tab)
        out.print(f"lowest energy: [bold]{min(results, key=lambda x: x.wh_per_1000).model}[/]")
        out.print(f"measured on {results[0].hardware_class}; stars {results[0].comparability}")
        return
    r = results[0]
    if label:
        if label.endswith(".png"):
            label_png(r, label)
        else:
            Path(label).write_text(label_svg(r), encoding="utf-8")
        err.print(f"wrote the label to {label}")
    if model_card:
        sys.stdout.write(card(r))
    elif as_json:
        out.print_json(json.dumps(r.as_dict()))
    else:
        out.print(
            f"{r.model} · {r.task}: [bold]{r.wh_per_1000:.3g} Wh per 1,000 queries[/] "
            f"({r.wh_per_1000_low:.3g}–{r.wh_per_1000_high:.3g}), {'★' * r.stars}{'☆' * (5 - r.stars)} "
            f"({r.scale}) · {r.method}, {r.boundary} · spread {r.spread:.1%} over {r.repetitions} repetitions"
        )
        out.print(f"measured on {r.hardware_class}, charged {r.attribution}; stars {r.comparability}")
