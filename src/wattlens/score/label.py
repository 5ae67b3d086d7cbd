"""Presenting an Energy Score: the label (SVG, PNG) and a model card's energy section."""

from __future__ import annotations

from wattlens.score import Result


def label_svg(r: Result) -> str:
    """An energy label: model, task, hardware, Wh per 1,000 queries, stars, scale, date and method."""
    stars = "".join("★" if i < r.stars else "☆" for i in range(5))
    colour = {5: "#0a7d4f", 4: "#5aa02c", 3: "#d9b600", 2: "#e67e22", 1: "#c0392b"}[r.stars]
    lines = [
        f"{r.task}{' · class ' + r.size_class if r.size_class else ''}",
        f"{r.wh_per_1000:.3g} Wh per 1,000 queries ({r.wh_per_1000_low:.3g}–{r.wh_per_1000_high:.3g})",
        f"{r.method}, {r.boundary}",
        f"measured on {r.hardware_class[:54]}",
        "stars comparable with the leaderboard (H100)"
        if r.comparable_with_leaderboard
        else "stars NOT comparable with the leaderboard's H100 bands",
        f"{r.samples} samples × {r.repetitions} repetitions, spread {r.spread:.1%}"
        + (" · random weights" if r.random_weights else ""),
        f"scale: {r.scale} · {r.date} · wattlens",
    ]
    body = "".join(
        f'<text x="20" y="{150 + 24 * i}" font-size="14" fill="#1c1e21">{_esc(t)}</text>' for i, t in enumerate(lines)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="520" height="334" viewBox="0 0 520 334" '
        f'font-family="DejaVu Sans, sans-serif">'
        f'<rect width="520" height="334" rx="14" fill="#fbfbf8" stroke="#1c1e21" stroke-width="2"/>'
        f'<text x="20" y="38" font-size="16" font-weight="bold" fill="#1c1e21">⚡ Energy Score</text>'
        f'<text x="20" y="66" font-size="15" fill="#1c1e21">{_esc(r.model[:58])}</text>'
        f'<rect x="20" y="80" width="480" height="44" rx="8" fill="{colour}"/>'
        f'<text x="260" y="112" font-size="30" text-anchor="middle" fill="#ffffff">{stars}</text>{body}</svg>'
    )


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def label_png(svg_result: Result, path: str) -> None:
    """The same label drawn with matplotlib (no SVG renderer needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    r = svg_result
    colour = {5: "#0a7d4f", 4: "#5aa02c", 3: "#d9b600", 2: "#e67e22", 1: "#c0392b"}[r.stars]
    fig = plt.figure(figsize=(5.2, 3.34), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 520)
    ax.set_ylim(334, 0)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((4, 4), 512, 326, boxstyle="round,pad=0,rounding_size=14", fc="#fbfbf8", ec="#1c1e21", lw=2))
    ax.text(20, 38, "Energy Score", fontsize=11, weight="bold")
    ax.text(20, 66, r.model[:58], fontsize=10)
    ax.add_patch(FancyBboxPatch((20, 80), 480, 44, boxstyle="round,pad=0,rounding_size=8", fc=colour, ec=colour))
    ax.text(260, 112, "★" * r.stars + "☆" * (5 - r.stars), fontsize=20, ha="center", color="white")
    for i, t in enumerate(
        [
            f"{r.task}{' · class ' + r.size_class if r.size_class else ''}",
            f"{r.wh_per_1000:.3g} Wh per 1,000 queries ({r.wh_per_1000_low:.3g}–{r.wh_per_1000_high:.3g})",
            f"{r.method}, {r.boundary}",
            f"measured on {r.hardware_class[:54]}",
            "stars comparable with the leaderboard (H100)"
            if r.comparable_with_leaderboard
            else "stars NOT comparable with the leaderboard's H100 bands",
            f"{r.samples} samples × {r.repetitions} repetitions, spread {r.spread:.1%}"
            + (" · random weights" if r.random_weights else ""),
            f"scale: {r.scale} · {r.date} · wattlens",
        ]
    ):
        ax.text(20, 150 + 24 * i, t, fontsize=8.5)
    fig.savefig(path)
    plt.close(fig)


def model_card(r: Result) -> str:
    return (
        f"## Energy\n\n| task | Wh per 1,000 queries | stars ({r.scale}) | method | hardware |\n|---|---|---|---|---|\n"
        f"| {r.task} | {r.wh_per_1000:.3g} ({r.wh_per_1000_low:.3g}–{r.wh_per_1000_high:.3g}) | {r.stars}/5 | "
        f"{r.method}, {r.boundary} | {r.hardware_class or r.hardware} |\n\nMeasured with wattlens {r.date}: batch size 1, "
        f"{r.samples} samples × {r.repetitions} repetitions (spread {r.spread:.1%})"
        + (", text generation of exactly 10 new tokens" if r.task == "text-generation" else "")
        + (", architecture only (random weights)" if r.random_weights else "")
        + (f"; charged: {r.attribution}" if r.attribution else "")
        + (f". Stars {r.comparability}" if r.comparability else "")
        + ".\n"
    )
