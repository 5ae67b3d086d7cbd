"""The ledger and what is built from it: verify, export, demo, report, disclose."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wattlens.cli.common import ConfigOpt, FactorsOpt, app, err, group, out, settings_for
from wattlens.context import Context


@app.command()
def verify(
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL (default: the data dir).")] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="An earlier signed checkpoint: prove the log still extends it.")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="The log's verifier key (NAME+ID+BASE64, or a file): checks the signature.")
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(help="A witness's verifier key: the checkpoint must carry its cosignature (repeatable)."),
    ] = None,
    recompute: Annotated[
        bool,
        typer.Option("--recompute", help="Also recompute each receipt from the inputs its record keeps (edited figures)."),
    ] = False,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
) -> None:
    """Check the ledger's hash chain and Merkle log: any changed, removed, inserted, reordered or replayed record is named.

    With --checkpoint, also prove (RFC 9162 consistency proof) that the log extends that earlier
    checkpoint: truncation, rollback, forks and rewrites show. With --recompute, also estimate each
    receipt again from its model, tokens and assumptions, and check its carbon against its energy
    and grid intensity: an edited figure shows even when its hashes were recomputed.
    """
    import os

    from wattlens.cli.log import check_witnesses
    from wattlens.ledger import open_ledger
    from wattlens.ledger import verify as verify_rows
    from wattlens.ledger.note import NoteError, Verifier, read_checkpoint, read_note_file
    from wattlens.ledger.tree import check_extends, check_nodes, check_tree

    old, cosigned = None, ""
    if checkpoint:
        try:
            verifier = None
            if key:
                verifier = Verifier.parse(Path(key).read_text(encoding="utf-8") if os.path.isfile(key) else key)
            note = read_note_file(checkpoint)
            old = read_checkpoint(note, verifier)
            cosigned = check_witnesses(note, witness or [])
        except NoteError as e:
            err.print(f"[bold red]the checkpoint does not verify[/]: {escape(str(e))}")
            raise typer.Exit(1) from e
        if not key:
            err.print("[yellow]the checkpoint's signature is not checked: give --key to check it[/]")
    elif witness:
        raise typer.BadParameter("--witness checks the cosignatures of a --checkpoint: give one")
    location = settings_for(config, ledger=ledger).ledger
    led = open_ledger(location, create=False)
    if ledger is None:  # say which ledger the configuration chose
        err.print(f"ledger: {escape(str(location))}", highlight=False)
    try:
        problems = verify_rows(led.rows)  # read twice, never all held: memory grows with hashes, not records
        state = led.stored_state()
        tree_problems, leaves = check_tree(led.entries(), state)
        tree_problems += check_nodes(leaves, state, led.stored_nodes())
        if recompute:
            from wattlens.cli.log import recompute_problems

            tree_problems += recompute_problems(led.entries(), settings_for(config, factors).context().factors)
    finally:
        led.close()
    problems += tree_problems
    extends, why = check_extends(leaves, old) if old else (True, "")
    if not problems and extends:
        out.print(f"[green]ledger verifies[/]: {len(leaves)} records, chain intact, Merkle log intact")
        if old:
            out.print(f"[green]consistent with the checkpoint[/]: {why}{cosigned}", highlight=False)
        return
    for p in problems[:50]:
        err.print(f"[red]record {p.seq}: {p.kind}[/] - {escape(p.detail)}")
    if not extends:
        err.print(
            f"[bold red]not consistent with the checkpoint[/] ({old.origin if old else ''}): {escape(why)}", highlight=False
        )
    err.print(f"[bold red]ledger does not verify[/]: {len(problems) + (not extends)} problem(s) in {len(leaves)} records")
    raise typer.Exit(1)


@app.command()
def demo(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model to serve the replay (repeatable).")] = None,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Grid zone (repeatable).")] = None,
    ledger: Annotated[str | None, typer.Option(help="Demo ledger file (default: demo-ledger.db in the data dir).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay only the first N requests.")] = None,
    report: Annotated[str | None, typer.Option(help="Also write a report here (.md, .html or .pdf).")] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Then start the gateway on the demo ledger and open its dashboard.")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port for --serve.")] = 8787,
    contracts: Annotated[
        str | None,
        typer.Option(
            help="Contracts for the report's 24/7 CFE section (default: illustrative contracts shipped for the demo's hour)."
        ),
    ] = None,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
) -> None:
    """Replay one hour of production LLM traffic (Azure trace, CC BY 4.0) into a demo ledger, offline."""
    from rich.progress import Progress

    from wattlens.ledger import default_path
    from wattlens.report.demo import CITATION, write_demo

    context = settings_for(config, factors).context()
    models = model or ["gpt-4o-mini", "claude-haiku-4-5", "meta-llama/Meta-Llama-3.1-8B-Instruct"]
    zones = zone or ["FR", "US-VA", "PL"]
    path = ledger or str(default_path().with_name("demo-ledger.db"))
    if Path(path).exists():
        raise typer.BadParameter(f"{path} exists: give a new --ledger path (the demo never appends to a ledger)")
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying the trace", total=limit or 28185)
        n = write_demo(path, models, zones, limit=limit, progress=lambda k: bar.update(task, completed=k), context=context)
    err.print(f"wrote {n:,} receipts to {path} ({CITATION})")
    err.print(
        f"next: wattlens report --ledger {path} --format html -o report.html; "
        f"wattlens serve --upstream ... --ledger {path} shows them on /dashboard"
    )
    if report:
        fmt = Path(report).suffix.lstrip(".") or "md"
        from importlib import resources

        shipped = resources.files("wattlens.report").joinpath("demo_contracts.csv")
        with resources.as_file(shipped) as demo_contracts:
            cfe = contracts or str(demo_contracts)
            _report(path, None, None, None, "model,team,zone,day", fmt, report, context=context, contracts=cfe)
    if serve_after:
        import dataclasses
        import threading
        import webbrowser

        from wattlens.gateway import embedded_config
        from wattlens.gateway import serve as run_gateway
        from wattlens.gateway.local import LocalModels

        url = f"http://127.0.0.1:{port}/dashboard"
        err.print(f"dashboard: {url}  (Ctrl-C to stop)")
        threading.Timer(3.0, lambda: webbrowser.open(url)).start()  # a no-op where there is no browser
        run_gateway(dataclasses.replace(embedded_config(port, context), ledger=path), local=LocalModels())


def _report(
    ledger: str | None,
    period: str | None,
    since: str | None,
    until: str | None,
    by: str,
    fmt: str,
    output: str | None,
    parquet: str | None = None,
    *,
    context: Context,
    reprice: bool = False,
    allow_empty: bool = False,
    contracts: str | None = None,
) -> None:
    from wattlens.ledger import open_ledger
    from wattlens.report import build, checkpoint_of, period_bounds
    from wattlens.report.render import write

    lo, hi, label = period_bounds(period, since, until)
    keys = [b.strip() for b in by.split(",") if b.strip()]
    if parquet and contracts:
        raise typer.BadParameter("--contracts works on a ledger, not on a Parquet export")
    if parquet:
        from wattlens.report.columnar import build_from_parquet

        r = build_from_parquet(parquet, keys, label, lo, hi, factors=context.factors)
    else:
        led = open_ledger(ledger, create=False)
        try:
            r = build(led.records(lo, hi), keys, label, reprice_with=context if reprice else None)
            r.checkpoint = checkpoint_of(led)
            if contracts:
                from wattlens.grid import contracts as cx

                book = cx.load(contracts)
                r.cfe = cx.match_records(led.records(lo, hi), book, context).as_dict()
                r.cfe["contracts"] = sorted({f"{c.zone}: {c.source}" for c in book.items})
        finally:
            led.close()
    r.since, r.until = lo, hi
    if r.is_empty and not allow_empty:
        err.print(
            f"[bold red]no records in {label}[/]: nothing to report. Check --period/--since/--until and --ledger, "
            "or give --allow-empty to write a report that says the period is empty."
        )
        raise typer.Exit(1)
    text = write(r, fmt, output, context.factors)
    if text is not None:
        sys.stdout.write(text)
    else:
        err.print(f"wrote the {fmt} report to {output}")


@app.command()
def report(
    period: Annotated[str | None, typer.Option(help="YYYY or YYYY-MM.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive.")] = None,
    by: Annotated[
        str,
        typer.Option(
            help="Breakdowns: model, team, zone, day, month, upstream, user, method, or tag:NAME for a free-form tag "
            "(at most 20 values per tag; the rest are summed as 'other')."
        ),
    ] = "model,team,zone,day",
    format: Annotated[
        str, typer.Option("--format", help="md, html, pdf, csv, json; disclosures: ghg-csv, esrs, sci.")
    ] = "md",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL.")] = None,
    parquet: Annotated[str | None, typer.Option(help="A Parquet export instead (DuckDB: millions of records).")] = None,
    grid: Annotated[
        str | None,
        typer.Option("--grid", help="Re-price each record's carbon at its own time with this feed, e.g. csv:FILE."),
    ] = None,
    contracts: Annotated[
        str | None,
        typer.Option(
            help="CSV of PPAs/certificates (docs/grid.md): adds the 24/7 CFE score and hourly vs annual market-based "
            "carbon, each hour priced by --grid."
        ),
    ] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Write the report even when the period has no records (it says so).")
    ] = False,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
) -> None:
    """Footprint report from the ledger: totals with intervals, intensities, breakdowns, sources, methodology.

    --format ghg-csv, esrs, sci write the period's figures in the layouts of the GHG Protocol, ESRS E1
    and the SCI for AI (docs/disclosures.md). A period with no records is an error unless --allow-empty.
    """
    st = settings_for(config, factors, ledger=ledger, grid_feed=grid)
    ctx = st.context()
    reprice = grid is not None and ctx.grid.name != "annual"
    _report(
        st.ledger,
        period,
        since,
        until,
        by,
        format,
        output,
        parquet,
        context=ctx,
        reprice=reprice,
        allow_empty=allow_empty,
        contracts=contracts,
    )


@app.command()
def disclose(
    model: Annotated[str, typer.Argument(help="The model documented (a catalogue name, or any name with --active-params).")],
    training_receipt: Annotated[
        list[str] | None, typer.Option(help="`wattlens run --json` receipt of a training run.")
    ] = None,
    training_kwh: Annotated[float | None, typer.Option(help="Training energy entered by hand (kWh).")] = None,
    training_method: Annotated[str, typer.Option(help="measured or estimated.")] = "estimated",
    ledger: Annotated[str | None, typer.Option(help="Ledger with this model's inference receipts.")] = None,
    score_json: Annotated[str | None, typer.Option("--score", help="A `wattlens score --json` result.")] = None,
    active_params: Annotated[
        float | None, typer.Option(help="Active parameters in billions, for a model outside the catalogue.")
    ] = None,
    total_params: Annotated[float | None, typer.Option(help="Total parameters in billions (mixture of experts).")] = None,
    precision: Annotated[str | None, typer.Option(help="Weights' precision: bf16, fp8, int8, int4 ...")] = None,
    kind: Annotated[
        str | None, typer.Option(help="chat or embedding (default: from the catalogue or the model's name).")
    ] = None,
    model_params: Annotated[
        str | None,
        typer.Option(help='TOML file with [model_params."MODEL"] (active_params_b, total_params_b, precision, kind).'),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="md, json, or model-card (Hugging Face YAML metadata).")] = "md",
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
) -> None:
    """The energy section for EU AI Act technical documentation (training, inference, Energy Score).

    Works for any model: a catalogue name, or your own with --active-params/--total-params/--precision
    (or --model-params FILE). An embedding model is estimated as embedding queries and must come with an
    embedding Energy Score (sentence-similarity).
    """
    from wattlens.report import disclose as d

    if format not in ("md", "json", "model-card"):
        raise typer.BadParameter("--format takes md, json or model-card")
    records = None
    if ledger:
        from wattlens.ledger import open_ledger

        led = open_ledger(ledger, create=False)
        records = list(led.records())
        led.close()
    score = json.loads(Path(score_json).read_text()) if score_json else None
    context = settings_for(config, factors).context()
    facts = d.model_facts(model, context, active_params, total_params, precision, kind, model_params)
    d.check_score(facts, score)
    tokens = (
        round(float(score["input_tokens_mean"]))
        if score and facts.kind == "embedding" and score.get("input_tokens_mean")
        else None
    )
    train = d.training(training_receipt or [], training_kwh, training_method)
    doc = d.document(model, train, d.inference(model, records, context, facts, tokens), score)
    if format == "model-card":
        from wattlens.report.disclosures import model_card

        sys.stdout.write(model_card(doc))
        return
    sys.stdout.write(json.dumps(doc, indent=2) + "\n" if format == "json" else d.markdown(doc))


ledger_app = group("Read the ledger of receipts.")
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("export")
def ledger_export(
    format: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "jsonl",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive.")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL.")] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Write the export (its header only) even when there are no records.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Export ledger records as CSV, JSON lines or Parquet (CSV and Parquet always carry their columns).

    No records in the range is an error unless --allow-empty.
    """
    import itertools

    from wattlens.ledger import open_ledger
    from wattlens.ledger.export import export

    led = open_ledger(settings_for(config, ledger=ledger).ledger, create=False)
    try:
        records = led.records(since, until)
        first = next(records, None)
        if first is None and not allow_empty:
            err.print(
                f"[bold red]no records[/] from {since or 'the start'} to {until or 'now'}: nothing exported. "
                "Check --since/--until and --ledger, or give --allow-empty to write the header only."
            )
            raise typer.Exit(1)
        n = export(itertools.chain([first] if first is not None else [], records), format, output)
    finally:
        led.close()
    if output:
        err.print(f"wrote {n} records to {output}")
