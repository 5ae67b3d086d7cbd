"""Typesetting a report's Markdown: HTML and PDF (matplotlib pages; figures embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from wattlens.errors import InputError


def md_to_html(md: str, base: Path | None = None) -> str:
    """A small Markdown subset (headings, tables, lists, images, paragraphs) to standalone HTML."""
    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            src = src.rstrip(")")
            if base is not None and (base / src).exists():
                data = base64.b64encode((base / src).read_bytes()).decode()
                src = f"data:image/png;base64,{data}"
            out.append(f'<p><img alt="{html.escape(alt)}" src="{src}" style="max-width:100%"></p>')
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    style = (
        "body{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2rem auto;padding:0 1rem;color:#1c1e21}"
        "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d9dde3;padding:.25rem .5rem;"
        "font-size:12px}th{background:#f1f3f5}h1{font-size:1.6rem}h2{margin-top:2rem}"
    )
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>wattlens report</title><style>{style}</style>"
        f"<body>{''.join(out)}</body></html>"
    )


def pdf(md: str, figs: dict[str, str], base: Path, path: Path) -> None:
    """Pages of the report's text (monospace, wrapped) followed by its figures."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_pdf import PdfPages
    except ImportError as e:
        raise InputError("PDF reports need matplotlib: pip install 'wattlens[report]'") from e
    import textwrap

    lines: list[str] = []
    for line in md.splitlines():
        if line.startswith("!["):
            continue
        if line.startswith("|") and set(line.replace("|", "").strip()) <= set("-: "):
            continue
        text = line.replace("**", "")
        lines += textwrap.wrap(text, 118, subsequent_indent="    ") or [""]
    per_page = 70
    with PdfPages(path) as doc:
        for start in range(0, len(lines), per_page):
            fig = plt.figure(figsize=(8.27, 11.69))  # A4
            for i, text in enumerate(lines[start : start + per_page]):
                weight = "bold" if text.startswith("#") else "normal"
                fig.text(
                    0.04,
                    0.97 - i * 0.0135,
                    text.lstrip("#").strip() if weight == "bold" else text,
                    family="monospace",
                    fontsize=6.4 if weight == "normal" else 8,
                    weight=weight,
                    va="top",
                )
            doc.savefig(fig)
            plt.close(fig)
        for title, name in figs.items():
            fig = plt.figure(figsize=(8.27, 11.69))
            ax = fig.add_axes((0.05, 0.45, 0.9, 0.5))
            ax.imshow(mpimg.imread(base / name))
            ax.axis("off")
            fig.text(0.05, 0.97, title, fontsize=12, weight="bold", va="top")
            doc.savefig(fig)
            plt.close(fig)
