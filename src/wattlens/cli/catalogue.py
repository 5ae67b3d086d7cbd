"""Receipts and reference data: estimate, zones, models, hardware, regions."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from wattlens.cli.common import ConfigOpt, FactorsOpt, GridOpt, JsonOpt, app, err, out, settings_for
from wattlens.cli.common import as_json as as_json_rows
from wattlens.cli.present import fmt

EXAMPLE_MODEL, EXAMPLE_INPUT, EXAMPLE_OUTPUT, EXAMPLE_ZONE = "gpt-4o-mini", 800, 400, "FR"
EXAMPLE = f"{EXAMPLE_MODEL}, {EXAMPLE_INPUT} input and {EXAMPLE_OUTPUT} output tokens, zone {EXAMPLE_ZONE}"


@app.command()
def estimate(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL",
            help="Model name: catalogue id or alias, Hugging Face id, Ollama tag (llama3.1:8b), GGUF file name.",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model name, as an option.")] = None,
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
    batch: Annotated[
        float | None,
        typer.Option(min=1, help="Sequences the replica (all --gpus together) serves at once; omit when unknown."),
    ] = None,
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
    at: Annotated[
        str | None, typer.Option(help="When the request ran (ISO 8601, e.g. 2026-01-15T03:00:00Z), for --grid csv:FILE.")
    ] = None,
    grid: GridOpt = None,
    example: Annotated[bool, typer.Option("--example", help=f"Run the built-in example: {EXAMPLE}.")] = False,
    config: ConfigOpt = None,
    factors: FactorsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Estimate the receipt of one LLM request (nothing is fetched from the network).

    MODEL: a catalogue id, Hugging Face id, Ollama tag (llama3.1:8b) or GGUF file name.
    A name that matches nothing and states no size (such as 8b) is refused unless --active-params is given.
    """
    from wattlens.receipt import LLMRequest, estimate_footprint

    if name is not None and model is not None and name != model:
        raise typer.BadParameter(f"two model names given ({name!r} and --model {model!r}); give one")
    model = model or name

    flags: dict[str, Any] = {
        "zone": zone,
        "region": region,
        "provider": provider,
        "facility": facility,
        "pue": pue,
        "wue_l_per_kwh": wue,
        "market_g_per_kwh": market_factor,
        "renewable_share": renewable_share,
        "boundary": boundary,
        "grid_feed": grid,
    }
    st = settings_for(config, factors, **flags)
    if example:
        model = model or EXAMPLE_MODEL
        input_tokens = input_tokens or EXAMPLE_INPUT
        output_tokens = output_tokens or EXAMPLE_OUTPUT
        if st.place.zone is None and st.place.region is None:  # the example's zone, unless one is configured
            st = settings_for(config, factors, **{**flags, "zone": EXAMPLE_ZONE})
    if model is None and active_params is None:
        raise typer.BadParameter("give --model NAME, or --active-params for a model not in the catalogue (or --example)")
    note = _resolve_or_refuse(model, st.context().factors) if model and active_params is None else None
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
        st.context(),
        at=_when(at),
    )
    if not (input_tokens or output_tokens or reasoning_tokens):  # a valid receipt, but rarely what was meant
        err.print(
            "note: no tokens given, so this is the receipt of an empty request; give --input-tokens and --output-tokens"
        )
    if as_json:
        out.print_json(json.dumps(fp.as_dict()))
        return
    from wattlens.cli.present import receipt_table

    if note:
        out.print(f"[dim]model {model}: {note}[/dim]", highlight=False)
    out.print(receipt_table(fp))


def _resolve_or_refuse(model: str, fs: Any) -> str | None:
    """How the name resolves (a note for the table), or an error with suggestions: a person typing
    a model name wants to hear about a typo, not get a generic receipt."""
    from wattlens.errors import InputError
    from wattlens.estimate.names import canonical, resolve

    res = resolve(model, fs)
    if res.known:
        return None if res.how == "catalogue" and res.precision is None else res.note
    suggestions = fs.models.suggest(model)
    if not suggestions:  # rows sharing a word of the name: "llama-fancy" -> the Llama rows
        words = [w for w in canonical(model).split("-") if len(w) >= 4 and not w.isdigit()]
        suggestions = list(dict.fromkeys(r.model_id for w in words for r in fs.models.search(w)))[:5]
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise InputError(
        f"unknown model {model!r}: not in the catalogue and no size in its name (such as 8b or 135m).{hint} "
        "For a model outside the catalogue give --active-params (billions); `wattlens models QUERY` searches the catalogue."
    )


def _when(at: str | None) -> dt.datetime | None:
    if at is None:
        return None
    try:
        t = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as e:
        raise typer.BadParameter(f"--at takes an ISO 8601 time such as 2026-01-15T03:00:00Z, got {at!r}") from e
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@app.command()
def zones(
    query: Annotated[str | None, typer.Argument(help="Part of a zone code or name.")] = None,
    kind: Annotated[str | None, typer.Option(help="country, us-state, ca-province or world.")] = None,
    factors: FactorsOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List and search grid zones with their intensity, mix and water factor."""
    fs = settings_for(config, factors).context().factors
    rows = fs.zones.search(query) if query else fs.zones.list()
    if kind is not None and kind not in (kinds := sorted({z.kind for z in fs.zones.list()})):
        raise typer.BadParameter(f"unknown kind {kind!r}; choose one of {', '.join(kinds)}", param_hint="--kind")
    rows = [z for z in rows if kind is None or z.kind == kind]
    if as_json:
        out.print_json(as_json_rows(rows))
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
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List and search the model catalogue (parameters, serving assumptions, sources)."""
    fs = settings_for(config, factors).context().factors
    rows = fs.models.search(query) if query else fs.models.list()
    if query and not rows:  # an Ollama tag, a GGUF file, a dated name: the row it resolves to
        from wattlens.estimate.names import resolve

        res = resolve(query, fs)
        if res.spec is not None:
            err.print(f"{query}: {escape(res.note)}", highlight=False)
            rows = [res.spec]
    rows = [m for m in rows if provider is None or m.provider == provider]
    if as_json:
        out.print_json(as_json_rows(rows))
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
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List accelerators and host servers: power, memory, embodied emissions, lifetime."""
    fs = settings_for(config, factors).context().factors
    rows = fs.hardware.search(query) if query else fs.hardware.list()
    if as_json:
        out.print_json(as_json_rows(rows))
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
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List cloud regions and the grid zone each one draws from."""
    fs = settings_for(config, factors).context().factors
    rows = fs.cloud_regions.search(query) if query else fs.cloud_regions.list()
    if provider is not None and provider not in (known := sorted({r.provider for r in fs.cloud_regions.list()})):
        raise typer.BadParameter(f"unknown provider {provider!r}; choose one of {', '.join(known)}", param_hint="--provider")
    rows = [r for r in rows if provider is None or r.provider == provider]
    if as_json:
        out.print_json(as_json_rows(rows))
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
