"""Typesetting a report: its Markdown to one HTML document, shown on screen or set as a PDF by WeasyPrint.

The HTML and the PDF are the same document: print CSS gives the PDF A4 pages, running headers
with the period and the ledger's checkpoint, page numbers, a table of contents with page
numbers, tables that repeat their header row across pages, and figures sized to the page.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from wattlens.errors import InputError

_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
CHECKPOINT = "Ledger checkpoint: "
_INTERVAL = re.compile(r"^[\d.,]+ \S+ \([\d.,]+–[\d.,]+ \S+\)$")  # "2.2 L (0.45–18 L)"
_NUMERIC = re.compile(r"^[–\-+]?[\d.,]+(\s?(%|[a-zA-Z³0-9]+))?$")

STYLE = """
body{font:14px/1.45 system-ui,'DejaVu Sans',sans-serif;max-width:1000px;margin:2rem auto;padding:0 1rem;color:#1c1e21}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d9dde3;padding:.25rem .5rem;font-size:12px;
vertical-align:top}th{background:#f1f3f5;text-align:left}td.num{text-align:right;white-space:nowrap}td.iv{white-space:nowrap;text-align:right}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d9dde3}code{font-size:.9em;background:#f1f3f5;padding:0 .2em}
figure{margin:1rem 0}figure img{max-width:100%}figcaption{font-size:12px;color:#555}
nav.toc ol{columns:2;font-size:13px}nav.toc a{text-decoration:none}
.note{background:#fff6e0;border-left:4px solid #e8a33d;padding:.4rem .8rem}
@page{size:A4;margin:22mm 16mm 18mm 16mm;
  @top-left{content:string(doctitle);width:45%;font:8pt 'DejaVu Sans',sans-serif;color:#555}
  @top-right{content:string(checkpoint);width:55%;font:7pt 'DejaVu Sans',sans-serif;color:#555}
  @bottom-right{content:"page " counter(page) " of " counter(pages);font:8pt 'DejaVu Sans',sans-serif;color:#555}
  @bottom-left{content:"wattlens";font:8pt 'DejaVu Sans',sans-serif;color:#888}}
@media print{
  body{font:9.5pt/1.35 'DejaVu Sans',sans-serif;max-width:none;margin:0;padding:0}
  h1{font-size:17pt;string-set:doctitle content()}
  .checkpoint{string-set:checkpoint content();font-size:8pt;color:#555}
  h2{font-size:12.5pt;margin-top:14pt;break-after:avoid}h3{font-size:10.5pt;break-after:avoid}
  table{width:100%;margin:4pt 0 8pt}td,th{font-size:7.5pt;padding:2pt 4pt}thead{display:table-header-group}
  tr,figure{break-inside:avoid}
  figure img{max-width:100%;max-height:80mm;display:block;margin:0 auto}
  nav.toc ol{columns:1;font-size:9.5pt}
  nav.toc a::after{content:leader('.') target-counter(attr(href),page)}
  a{color:inherit;text-decoration:none}
}
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug


def _table(rows: list[list[str]], aligns: list[str]) -> str:
    head, *body = rows
    cells = "".join(f"<th scope='col'>{_inline(c)}</th>" for c in head)
    out = [f"<table><thead><tr>{cells}</tr></thead><tbody>"]
    for row in body:
        tds = []
        for i, c in enumerate(row):
            num = (i < len(aligns) and aligns[i] == "right") or (i > 0 and bool(_NUMERIC.match(c)))
            kind = " class='num'" if num else " class='iv'" if _INTERVAL.match(c) else ""
            tds.append(f"<td{kind}>{_inline(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    return "".join(out) + "</tbody></table>"


def md_to_html(md: str, base: Path | None = None) -> str:
    """The report's Markdown (headings, tables, lists, images, paragraphs, inline code/bold/links) as standalone HTML.

    A table of contents of the second-level headings follows the first paragraph; images found
    under `base` are embedded, so the file stands alone.
    """
    blocks: list[str] = []
    toc: list[tuple[str, str]] = []
    used: set[str] = set()
    rows: list[list[str]] = []
    aligns: list[str] = []
    items: list[str] = []
    title = "wattlens report"

    def flush() -> None:
        nonlocal rows, aligns, items
        if rows:
            blocks.append(_table(rows, aligns))
            rows, aligns = [], []
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items = []

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(c and set(c) <= set("-:") for c in cells):
                aligns = ["right" if c.endswith(":") else "left" for c in cells]
                continue
            if items:
                flush()
            rows.append(cells)
            continue
        if line.startswith("- "):
            if rows:
                flush()
            items.append(line[2:])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            text = line.lstrip("#").strip()
            slug = _slug(text, used)
            if level == 1:
                title = text
            if level == 2:
                toc.append((slug, text))
            blocks.append(f"<h{level} id='{slug}'>{_inline(text)}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            src = src.rstrip(")")
            if base is not None and (base / src).exists():
                data = base64.b64encode((base / src).read_bytes()).decode()
                src = f"data:image/png;base64,{data}"
            blocks.append(
                f"<figure><img alt='{html.escape(alt)}' src='{html.escape(src)}'>"
                f"<figcaption>{html.escape(alt)}</figcaption></figure>"
            )
        elif line.startswith(CHECKPOINT):  # repeated in the PDF's page headers
            blocks.append(f"<p class='checkpoint'>{_inline(line)}</p>")
        elif line.strip():
            blocks.append(f"<p>{_inline(line)}</p>")
    flush()
    if toc:
        nav = (
            "<nav class='toc' aria-label='Contents'><h2 id='contents'>Contents</h2><ol>"
            + "".join(f"<li><a href='#{slug}'>{html.escape(text)}</a></li>" for slug, text in toc)
            + "</ol></nav>"
        )
        first_p = next((i for i, b in enumerate(blocks) if b.startswith("<p>")), 0)
        blocks.insert(first_p + 1, nav)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(blocks)}</body></html>"
    )


def pdf(document_html: str, path: Path) -> None:
    """Set the HTML document as a PDF with WeasyPrint (its print CSS: pages, headers, contents)."""
    try:
        import weasyprint  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as e:
        raise InputError("PDF reports need WeasyPrint: pip install 'wattlens[report]'") from e
    except OSError as e:  # WeasyPrint is installed but the system's Pango libraries are not
        raise InputError(
            f"WeasyPrint cannot load the Pango libraries it needs ({e}); on Debian or Ubuntu: "
            "apt-get install libpango-1.0-0 libpangoft2-1.0-0"
        ) from e
    weasyprint.HTML(string=document_html).write_pdf(str(path))
