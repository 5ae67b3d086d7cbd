"""Energy-aware routing: route train, route eval."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from wattlens.cli.common import JsonOpt, app, err, group, out
from wattlens.cli.present import fmt

route_app = group("Energy-aware routing: train and evaluate the router.")
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
    extra: Annotated[
        str | None,
        typer.Option(
            help="A second CSV (same columns), e.g. fit/router/everyday_chat.csv: trains the first stage and the "
            "chat heads, never scored; rows with a 'split' column other than 'train' are left out."
        ),
    ] = None,
    extra_weight: Annotated[float, typer.Option(help="How many GSM8K/MMLU rows one --extra row counts for.")] = 10.0,
) -> None:
    """Train the router (embeddings + logistic heads) and calibrate its threshold by cross-validation."""
    from wattlens.route.train import evaluate, features, load, train

    d = load(data, limit)
    x = features(d.prompts, progress=lambda m: err.print(m))
    more = load(extra) if extra else None
    if more is not None and "split" in (more.columns or {}):
        more = more.where("split", "train")
    xe = features(more.prompts, progress=lambda m: err.print(m)) if more is not None else None
    metrics = evaluate(d, x, quality, extra=more, x_extra=xe, extra_weight=extra_weight)
    art = train(d, x, quality, metrics, max_large_share=max_large_share, extra=more, x_extra=xe, extra_weight=extra_weight)
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
