"""The `wattlens` command: a thin layer that parses, calls the library and presents."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from wattlens.errors import UnknownKeyError, WattlensError
from wattlens.present import fmt

app = typer.Typer(
    name="wattlens",
    help="The energy meter for AI: energy, carbon and water receipts for every query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

EXAMPLE_MODEL, EXAMPLE_INPUT, EXAMPLE_OUTPUT, EXAMPLE_ZONE = "gpt-4o-mini", 800, 400, "FR"
EXAMPLE = f"{EXAMPLE_MODEL}, {EXAMPLE_INPUT} input and {EXAMPLE_OUTPUT} output tokens, zone {EXAMPLE_ZONE}"
FactorsOpt = Annotated[
    list[str] | None,
    typer.Option("--factors", help="CSV file extending or overriding a reference table (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _factors(files: Sequence[str] | None, config_files: Sequence[str] = ()) -> Any:
    from wattlens.factors import get_factors

    return get_factors([*config_files, *(files or [])])


@app.command()
def estimate(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Catalogue model name or alias.")] = None,
    input_tokens: Annotated[int, typer.Option(min=0, help="Input (prompt) tokens.")] = 0,
    output_tokens: Annotated[int, typer.Option(min=0, help="Output tokens (excluding reasoning).")] = 0,
    cached_input_tokens: Annotated[int, typer.Option(min=0, help="Input tokens served from a prefix cache.")] = 0,
    reasoning_tokens: Annotated[int, typer.Option(min=0, help="Hidden reasoning tokens.")] = 0,
    active_params: Annotated[
        float | None, typer.Option(help="Active parameters, billions (models not in the catalogue).")
    ] = None,
    total_params: Annotated[float | None, typer.Option(help="Total parameters, billions (MoE).")] = None,
    precision: Annotated[str | None, typer.Option(help="Weight precision: bf16, fp8, mxfp4, int4.")] = None,
    hardware: Annotated[
        str | None, typer.Option(help="Accelerator, e.g. H100, B200, MI300X (see `wattlens hardware`).")
    ] = None,
    gpus: Annotated[int | None, typer.Option(min=1, help="Accelerators serving one replica.")] = None,
    batch: Annotated[float | None, typer.Option(min=1, help="Serving concurrency; omit when unknown.")] = None,
    zone: Annotated[str | None, typer.Option(help="Grid zone: country (FR, FRA), US-CA, CA-QC, WORLD.")] = None,
    region: Annotated[str | None, typer.Option(help="Cloud region, e.g. europe-west9, us-east-1, westeurope.")] = None,
    provider: Annotated[str | None, typer.Option(help="Serving provider (informational; facility via --facility).")] = None,
    facility: Annotated[
        str | None, typer.Option(help="Facility row for PUE/WUE: google, aws, microsoft, meta, default.")
    ] = None,
    pue: Annotated[float | None, typer.Option(help="Your data centre's PUE (overrides the facility row).")] = None,
    wue: Annotated[float | None, typer.Option(help="Your on-site water use, L/kWh.")] = None,
    market_factor: Annotated[float | None, typer.Option(help="Contractual emission factor, gCO2e/kWh.")] = None,
    renewable_share: Annotated[float | None, typer.Option(help="Declared renewable share 0..1 (market-based).")] = None,
    boundary: Annotated[str | None, typer.Option(help="accelerator, server or datacenter (default).")] = None,
    example: Annotated[bool, typer.Option("--example", help=f"Run the built-in example: {EXAMPLE}.")] = False,
    config: Annotated[str | None, typer.Option(help="Config file (default $WATTLENS_CONFIG or ./wattlens.toml).")] = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Estimate the receipt of one LLM request (nothing is fetched from the network)."""
    from wattlens.config import load_config
    from wattlens.receipt import LLMRequest, Place, estimate_footprint

    cfg = load_config(config)
    if example:
        model = model or EXAMPLE_MODEL
        input_tokens = input_tokens or EXAMPLE_INPUT
        output_tokens = output_tokens or EXAMPLE_OUTPUT
        zone = zone or (None if region or cfg.zone or cfg.region else EXAMPLE_ZONE)
    if model is None and active_params is None:
        raise typer.BadParameter("give --model NAME, or --active-params for a model not in the catalogue (or --example)")
    fs = _factors(factors, cfg.factor_files)
    fp = estimate_footprint(
        LLMRequest(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
            active_params_b=active_params,
            total_params_b=total_params,
            precision=precision,
            hardware=hardware,
            gpus=gpus,
            batch_size=batch,
        ),
        Place(
            zone=zone or (None if region else cfg.zone),
            region=region or (None if zone else cfg.region),
            provider=provider or cfg.provider,
            facility=facility or cfg.facility,
            pue=pue if pue is not None else cfg.pue,
            wue_l_per_kwh=wue if wue is not None else cfg.wue_l_per_kwh,
            market_g_per_kwh=market_factor if market_factor is not None else cfg.market_g_per_kwh,
            renewable_share=renewable_share if renewable_share is not None else cfg.renewable_share,
        ),
        boundary=boundary or cfg.boundary,
        factors=fs,
    )
    if as_json:
        out.print_json(json.dumps(fp.as_dict()))
        return
    from wattlens.present import receipt_table

    out.print(receipt_table(fp))


@app.command()
def zones(
    query: Annotated[str | None, typer.Argument(help="Part of a zone code or name.")] = None,
    kind: Annotated[str | None, typer.Option(help="country, us-state, ca-province or world.")] = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List and search grid zones with their intensity, mix and water factor."""
    fs = _factors(factors)
    rows = fs.zones.search(query) if query else fs.zones.list()
    rows = [z for z in rows if kind is None or z.kind == kind]
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "zone": z.zone,
                        "alpha3": z.alpha3,
                        "name": z.name,
                        "kind": z.kind,
                        "year": z.year,
                        "intensity_g_per_kwh": z.intensity_g_per_kwh,
                        "mix": z.mix,
                        "water_offsite_l_per_kwh": z.water_offsite_l_per_kwh,
                        "source": z.source,
                    }
                    for z in rows
                ]
            )
        )
        return
    t = Table(title=f"{len(rows)} zones", title_justify="left")
    for col in ("zone", "name", "year", "gCO2e/kWh", "main sources", "water L/kWh"):
        t.add_column(col, justify="right" if col in ("year", "gCO2e/kWh", "water L/kWh") else "left")
    for z in rows:
        top = sorted(z.mix.items(), key=lambda kv: -kv[1])[:3]
        t.add_row(
            z.zone,
            z.name,
            str(z.year),
            f"{z.intensity_g_per_kwh:.0f}",
            ", ".join(f"{k} {v:.0%}" for k, v in top if v > 0),
            f"{z.water_offsite_l_per_kwh:.2f}",
        )
    out.print(t)


@app.command()
def models(
    query: Annotated[str | None, typer.Argument(help="Part of a model id or alias.")] = None,
    provider: Annotated[str | None, typer.Option(help="openai, anthropic, google, mistral, meta, qwen, ...")] = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List and search the model catalogue (parameters, serving assumptions, sources)."""
    fs = _factors(factors)
    rows = fs.models.search(query) if query else fs.models.list()
    rows = [m for m in rows if provider is None or m.provider == provider]
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "provider": m.provider,
                        "model_id": m.model_id,
                        "aliases": list(m.aliases),
                        "architecture": m.architecture,
                        "active_params_b": m.active_params_b.as_dict(),
                        "total_params_b": m.total_params_b.as_dict(),
                        "params_basis": m.params_basis,
                        "hardware": m.hardware,
                        "zone": m.zone,
                        "source": m.source,
                    }
                    for m in rows
                ]
            )
        )
        return
    t = Table(title=f"{len(rows)} models", title_justify="left")
    for col in ("provider", "model", "arch", "active B", "total B", "basis", "hardware", "zone"):
        t.add_column(col)
    for m in rows:
        a, tot = m.active_params_b, m.total_params_b
        t.add_row(
            m.provider,
            m.model_id,
            m.architecture,
            fmt(a.mid) if a.low == a.high else f"{fmt(a.low)}–{fmt(a.high)}",
            fmt(tot.mid) if tot.low == tot.high else f"{fmt(tot.low)}–{fmt(tot.high)}",
            "estimated" if "estimated" in m.params_basis else "published",
            m.hardware,
            m.zone or "-",
        )
    out.print(t)


@app.command()
def hardware(
    query: Annotated[str | None, typer.Argument(help="Part of a hardware id or alias.")] = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List accelerators and host servers: power, memory, embodied emissions, lifetime."""
    fs = _factors(factors)
    rows = fs.hardware.search(query) if query else fs.hardware.list()
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "hardware_id": h.hardware_id,
                        "kind": h.kind,
                        "max_power_w": h.max_power_w,
                        "memory_gb": h.memory_gb,
                        "embodied_kg": h.embodied_kg.as_dict(),
                        "lifetime_years": h.lifetime_years.as_dict(),
                        "source": h.source,
                    }
                    for h in rows
                ]
            )
        )
        return
    t = Table(title=f"{len(rows)} hardware", title_justify="left")
    for col in ("id", "kind", "max W", "memory GB", "TB/s", "bf16 TFLOP/s", "embodied kgCO2e", "life years"):
        t.add_column(col)
    for h in rows:
        e = h.embodied_kg
        t.add_row(
            h.hardware_id,
            h.kind,
            fmt(h.max_power_w),
            fmt(h.memory_gb),
            fmt(h.memory_bandwidth_tb_per_s) if h.memory_bandwidth_tb_per_s else "-",
            fmt(h.bf16_tflops) if h.bf16_tflops else "-",
            f"{fmt(e.low)}–{fmt(e.high)}",
            f"{fmt(h.lifetime_years.low)}–{fmt(h.lifetime_years.high)}",
        )
    out.print(t)


@app.command()
def regions(
    query: Annotated[str | None, typer.Argument(help="Part of a region name.")] = None,
    provider: Annotated[str | None, typer.Option(help="gcp, aws or azure.")] = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List cloud regions and the grid zone each one draws from."""
    fs = _factors(factors)
    rows = fs.cloud_regions.search(query) if query else fs.cloud_regions.list()
    rows = [r for r in rows if provider is None or r.provider == provider]
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "provider": r.provider,
                        "region": r.region,
                        "location": r.location,
                        "zone": r.zone,
                        "intensity_g_per_kwh": r.intensity_g_per_kwh,
                        "cfe_share": r.cfe_share,
                        "source": r.source,
                    }
                    for r in rows
                ]
            )
        )
        return
    t = Table(title=f"{len(rows)} cloud regions", title_justify="left")
    for col in ("provider", "region", "location", "zone", "gCO2e/kWh", "CFE"):
        t.add_column(col)
    for r in rows:
        intensity = r.intensity_g_per_kwh if r.intensity_g_per_kwh is not None else fs.zones.get(r.zone).intensity_g_per_kwh
        t.add_row(
            r.provider,
            r.region,
            r.location,
            r.zone,
            f"{intensity:.0f}",
            f"{r.cfe_share:.0%}" if r.cfe_share is not None else "-",
        )
    out.print(t)


@app.command()
def sensors(as_json: JsonOpt = False) -> None:
    """Show the energy sensors found on this machine, the method each uses, and why."""
    from wattlens.sensors import probe_all

    det = probe_all()
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
    as_json: JsonOpt = False,
) -> None:
    """Run a command, measure its energy and print its receipt: wattlens run [--zone FR] -- CMD ARGS...

    The receipt goes to standard error so the command's own output stays clean; the command's
    exit code is passed through.
    """
    from wattlens.meter import Meter
    from wattlens.present import receipt_table
    from wattlens.run import run_command

    argv = list(ctx.args)
    res = run_command(argv, Meter(zone=zone, region=region, pue=pue, facility=facility))
    fp = res.measurement.footprint()
    if ledger:
        import datetime as dt
        import uuid

        from wattlens.ledger import open_ledger

        led = open_ledger(ledger)
        led.append(
            [
                {
                    "id": uuid.uuid4().hex,
                    "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                    "endpoint": "run",
                    "protocol": "process",
                    "model_requested": argv[0],
                    "model_served": argv[0],
                    "upstream": "this host",
                    "status": res.returncode,
                    "outcome": "ok" if res.returncode == 0 else "failed",
                    "stream": False,
                    "latency_s": round(res.whole.duration_s, 6),
                    "ttft_s": None,
                    "tokens": {},
                    "key_id": None,
                    "team": None,
                    "user": None,
                    "tags": {"command": " ".join(argv)[:500]},
                    "footprint": fp.as_dict(),
                    "footprint_error": None,
                    "factors_version": fp.factors_version,
                    "hosting": "own",
                }
            ]
        )
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
        err.print_json(json.dumps(d))
    else:
        err.print(receipt_table(fp))
        err.print(f"[dim]{res.whole.duration_s:.3f} s · {res.attribution}[/]")
    raise typer.Exit(res.returncode)


@app.command()
def serve(
    config: Annotated[str | None, typer.Option(help="Gateway config file (TOML): upstreams, keys, ledger.")] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="One OpenAI-compatible upstream for every model, e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, llama.cpp)."
        ),
    ] = None,
    upstream_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the upstream key.")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL ('none' to disable).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8787).")] = None,
    zone: Annotated[str | None, typer.Option(help="Grid zone of the --upstream.")] = None,
    region: Annotated[str | None, typer.Option(help="Cloud region of the --upstream.")] = None,
    hardware: Annotated[str | None, typer.Option(help="Accelerator of the --upstream, e.g. H100.")] = None,
    local_model: Annotated[
        str | None,
        typer.Option(help="Without --config/--upstream: a local causal LM (path or Hugging Face id) for chat."),
    ] = None,
    self_test: Annotated[
        bool,
        typer.Option("--self-test", help="Start, send one embeddings request through the gateway, print its receipt, stop."),
    ] = False,
) -> None:
    """Run the metering gateway: OpenAI- and Anthropic-compatible, a receipt on every response.

    With no --config and no --upstream it serves a built-in local model (the 'local' extra):
    embeddings by all-MiniLM-L6-v2, chat by --local-model, measured on this machine.
    """
    import dataclasses

    from wattlens.gateway import embedded_config
    from wattlens.gateway import serve as run_gateway
    from wattlens.gateway.config import GatewayConfig, Upstream, load_gateway_config

    local = None
    if config:
        cfg = load_gateway_config(config)
    elif upstream:
        cfg = GatewayConfig(
            upstreams=(
                Upstream(
                    name="default",
                    kind="openai",
                    base_url=upstream.rstrip("/"),
                    api_key_env=upstream_key_env,
                    zone=zone,
                    region=region,
                    hardware=hardware,
                ),
            )
        )
    else:
        from wattlens.local import LocalModels, embedding_model_path

        embedding_model_path()  # a clear message now if the 'local' extra is missing
        cfg = embedded_config(port or 8787, zone=zone, host=host or "127.0.0.1")
        local = LocalModels(local_model)
    cfg = dataclasses.replace(cfg, host=host or cfg.host, port=port or cfg.port, ledger=ledger or cfg.ledger)
    if self_test:
        from wattlens.footprint import Footprint
        from wattlens.gateway.selftest import self_test as run_self_test
        from wattlens.present import receipt_table

        fp = run_self_test(cfg, local)
        out.print(receipt_table(Footprint.from_dict(fp)))
        out.print("[green]self-test passed[/]: the gateway served a request and attached its receipt")
        return
    where = ", ".join(f"{u.name} ({u.base_url})" for u in cfg.upstreams)
    err.print(f"wattlens gateway on http://{cfg.host}:{cfg.port}/v1 · upstreams: {where}")
    if local is not None:
        err.print(
            "built-in models: sentence-transformers/all-MiniLM-L6-v2 (embeddings)"
            + (f", {local_model} (chat)" if local_model else "; chat needs --local-model")
        )
    run_gateway(cfg, local=local)


@app.command()
def verify(
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL (default: the data dir).")] = None,
) -> None:
    """Check the ledger's hash chain: any changed, removed, inserted or reordered record is named."""
    from wattlens.ledger import open_ledger
    from wattlens.ledger import verify as verify_rows

    led = open_ledger(ledger)
    rows = list(led.rows())
    problems = verify_rows(rows)
    led.close()
    if not problems:
        out.print(f"[green]ledger verifies[/]: {len(rows)} records, chain intact")
        return
    for p in problems[:50]:
        err.print(f"[red]record {p.seq}: {p.kind}[/] - {p.detail}")
    err.print(f"[bold red]ledger does not verify[/]: {len(problems)} problem(s) in {len(rows)} records")
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
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8787,
) -> None:
    """Replay one hour of production LLM traffic (Azure trace, CC BY 4.0) into a demo ledger, offline."""
    from rich.progress import Progress

    from wattlens.demo import CITATION, write_demo
    from wattlens.ledger import default_path

    models = model or ["gpt-4o-mini", "claude-haiku-4-5", "meta-llama/Meta-Llama-3.1-8B-Instruct"]
    zones = zone or ["FR", "US-VA", "PL"]
    path = ledger or str(default_path().with_name("demo-ledger.db"))
    if Path(path).exists():
        raise typer.BadParameter(f"{path} exists: give a new --ledger path (the demo never appends to a ledger)")
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying the trace", total=limit or 28185)
        n = write_demo(path, models, zones, limit=limit, progress=lambda k: bar.update(task, completed=k))
    err.print(f"wrote {n:,} receipts to {path} ({CITATION})")
    err.print(
        f"next: wattlens report --ledger {path} --format html -o report.html; "
        f"wattlens serve --upstream ... --ledger {path} shows them on /dashboard"
    )
    if report:
        fmt = Path(report).suffix.lstrip(".") or "md"
        _report(path, None, None, None, "model,team,zone,day", fmt, report)
    if serve_after:
        import dataclasses
        import threading
        import webbrowser

        from wattlens.gateway import embedded_config
        from wattlens.gateway import serve as run_gateway
        from wattlens.local import LocalModels

        url = f"http://127.0.0.1:{port}/dashboard"
        err.print(f"dashboard: {url}  (Ctrl-C to stop)")
        threading.Timer(3.0, lambda: webbrowser.open(url)).start()  # a no-op where there is no browser
        run_gateway(dataclasses.replace(embedded_config(port), ledger=path), local=LocalModels())


def _report(
    ledger: str | None,
    period: str | None,
    since: str | None,
    until: str | None,
    by: str,
    fmt: str,
    output: str | None,
    parquet: str | None = None,
) -> None:
    from wattlens.ledger import open_ledger
    from wattlens.report import build, period_bounds
    from wattlens.report.render import write

    lo, hi, label = period_bounds(period, since, until)
    keys = [b.strip() for b in by.split(",") if b.strip()]
    if parquet:
        from wattlens.report.columnar import build_from_parquet

        r = build_from_parquet(parquet, keys, label, lo, hi)
    else:
        led = open_ledger(ledger)
        try:
            r = build(led.records(lo, hi), keys, label)
        finally:
            led.close()
    text = write(r, fmt, output)
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
        str, typer.Option(help="Breakdowns: model, team, zone, day, month, upstream, user, method.")
    ] = "model,team,zone,day",
    format: Annotated[str, typer.Option("--format", help="md, html, pdf, csv or json.")] = "md",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL.")] = None,
    parquet: Annotated[str | None, typer.Option(help="A Parquet export instead (DuckDB: millions of records).")] = None,
) -> None:
    """Footprint report from the ledger: totals with intervals, intensities, breakdowns, sources, methodology."""
    _report(ledger, period, since, until, by, format, output, parquet)


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
    as_json: JsonOpt = False,
) -> None:
    """Project usage forward: MWh per year, average and peak MW, water, carbon; scenarios side by side."""
    import csv as csvmod

    from wattlens.plan import Scenario, as_rows, load_scenarios, project
    from wattlens.plan import figure as plan_figure

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
    results = [(s, project(s)) for s in todo]
    rows = [r for s, ys in results for r in as_rows(s, ys)]
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
    t = Table(title="wattlens plan (mid; low–high)", title_justify="left")
    for col in (
        "scenario",
        "year",
        "users",
        "queries",
        "MWh/year",
        "avg MW",
        "peak MW",
        "water m³",
        "t CO2e (loc.)",
        "t CO2e (market)",
    ):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    for s, ys in results:
        for y in ys:

            def cell(iv: Any) -> str:
                return f"{fmt(iv.mid)} ({fmt(iv.low)}–{fmt(iv.high)})"

            t.add_row(
                s.name,
                str(y.year),
                f"{y.users:,.0f}",
                f"{y.queries:,.0f}",
                cell(y.energy_mwh),
                cell(y.average_mw),
                cell(y.peak_mw),
                cell(y.water_m3),
                cell(y.carbon_t),
                cell(y.carbon_market_t),
            )
    out.print(t)


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

    from wattlens.score import label_png, label_svg
    from wattlens.score import model_card as card
    from wattlens.score import score as run_score

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


@app.command()
def disclose(
    model: Annotated[str, typer.Argument(help="The model documented.")],
    training_receipt: Annotated[
        list[str] | None, typer.Option(help="`wattlens run --json` receipt of a training run.")
    ] = None,
    training_kwh: Annotated[float | None, typer.Option(help="Training energy entered by hand (kWh).")] = None,
    training_method: Annotated[str, typer.Option(help="measured or estimated.")] = "estimated",
    ledger: Annotated[str | None, typer.Option(help="Ledger with this model's inference receipts.")] = None,
    score_json: Annotated[str | None, typer.Option("--score", help="A `wattlens score --json` result.")] = None,
    format: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
) -> None:
    """The energy section for EU AI Act technical documentation (training, inference, Energy Score)."""
    from wattlens import disclose as d

    if format not in ("md", "json"):
        raise typer.BadParameter("--format takes md or json")
    records = None
    if ledger:
        from wattlens.ledger import open_ledger

        led = open_ledger(ledger)
        records = list(led.records())
        led.close()
    score = json.loads(Path(score_json).read_text()) if score_json else None
    doc = d.document(
        model, d.training(training_receipt or [], training_kwh, training_method), d.inference(model, records), score
    )
    sys.stdout.write(json.dumps(doc, indent=2) + "\n" if format == "json" else d.markdown(doc))


route_app = typer.Typer(help="Energy-aware routing: train and evaluate the router.", no_args_is_help=True)
app.add_typer(route_app, name="route")


@route_app.command("train")
def route_train(
    data: Annotated[str, typer.Argument(help="CSV with prompt, weak_correct, strong_correct.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Artefact file to write.")] = "router.json",
    quality: Annotated[float, typer.Option(help="Quality floor relative to the large model.")] = 0.95,
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
    max_large_share: Annotated[
        float | None, typer.Option(help="Calibrate to at most this share of large-model calls instead of the quality floor.")
    ] = None,
) -> None:
    """Train the router (embeddings + logistic head) and calibrate its threshold by cross-validation."""
    from wattlens.route.train import evaluate, features, load, train

    d = load(data, limit)
    x = features(d.prompts, progress=lambda m: err.print(m))
    metrics = evaluate(d, x, quality)
    art = train(d, x, quality, metrics, max_large_share=max_large_share)
    art.save(out)
    r = metrics["router"]
    err.print(
        f"wrote {out}: at {quality:.0%} of the large model's accuracy, {r['share_large']:.1%} of requests go "
        f"to the large model (random routing: {metrics['random']['share_large']:.1%}), "
        f"saving {r['energy_saved_share']:.1%} of the energy"
    )


@route_app.command("eval")
def route_eval(
    data: Annotated[str, typer.Argument(help="CSV with prompt, weak_correct, strong_correct.")],
    artefact: Annotated[str | None, typer.Option(help="A trained artefact; without it, cross-validate on DATA.")] = None,
    quality: Annotated[float, typer.Option(help="Quality floor relative to the large model.")] = 0.95,
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Share of large-model calls, accuracy and energy saved at a quality floor."""
    from wattlens.route import Artefact
    from wattlens.route.train import evaluate, evaluate_artefact, features, load

    d = load(data, limit)
    x = features(d.prompts, progress=lambda m: err.print(m))
    res = evaluate_artefact(d, x, Artefact.load(artefact), quality) if artefact else evaluate(d, x, quality)
    res.pop("curves", None)
    if as_json:
        out.print_json(json.dumps(res))
        return
    r = res["router"]
    out.print(
        f"at {quality:.0%} of the large model's accuracy ({res['target_accuracy']:.3f}): "
        f"{r['share_large']:.1%} large-model calls, accuracy {r['accuracy']:.3f}, "
        f"energy saved {r['energy_saved_share']:.1%} ({fmt(r['energy_saved_wh'])} Wh over {res['n']} requests)"
    )


ledger_app = typer.Typer(help="Read the ledger of receipts.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("export")
def ledger_export(
    format: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "jsonl",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive.")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL.")] = None,
) -> None:
    """Export ledger records as CSV, JSON lines or Parquet."""
    from wattlens.ledger import open_ledger
    from wattlens.ledger.export import export

    led = open_ledger(ledger)
    n = export(led.records(since, until), format, output)
    led.close()
    if output:
        err.print(f"wrote {n} records to {output}")


keys_app = typer.Typer(help="Gateway API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    team: Annotated[str | None, typer.Option(help="Team the key bills to.")] = None,
    user: Annotated[str | None, typer.Option(help="User of the key.")] = None,
) -> None:
    """Create a gateway key: prints the key once, and the [[keys]] entry (hash only) for the keys file."""
    import hashlib
    import secrets

    key = "wl-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    err.print("[bold]key[/] (shown once, give it to the client):")
    print(key)
    entry = f'[[keys]]\nid = "{digest[:8]}"\nsha256 = "{digest}"'
    entry += f'\nteam = "{team}"' if team else ""
    entry += f'\nuser = "{user}"' if user else ""
    err.print("add to the keys file:\n" + entry, markup=False, highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: user errors become one clear line and exit code 2, never a traceback."""
    try:
        # Typer reports usage errors itself (exit 2); our own errors are caught below.
        app(args=list(argv) if argv is not None else None, prog_name="wattlens")
    except UnknownKeyError as e:
        err.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
    except WattlensError as e:
        err.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
