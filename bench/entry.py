"""The ledger entry of one gateway request, as the request path makes it: this checkout, a previous one, the rfc8785 package.

    python bench/entry.py [--n 20000] [--runs 5] [--previous CHECKOUT]

The gateway answers every request with its entry hash (`x-wattlens-entry`), so each request
pays for its record, the record's RFC 8785 text and the RFC 9162 leaf hash before it is answered.
Timed here on a gateway-shaped record (gpt-4o-mini, an estimated receipt, FR): the whole entry on
a fresh settlement each call (`Settlement.entry_hash`), and the canonical text alone of the same
record by wattlens and by the `rfc8785` package (the reference implementation: like for like,
the same bytes). With --previous, the same figures of another commit in the same run, its
processes interleaved with this one's. Each figure: median over runs (a fresh process each) of
the best of 5 repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import load, spread, table, write

CHILD = r"""
import json, sys, timeit
import rfc8785
from wattlens.context import Context, Place
from wattlens.footprint import Tokens
from wattlens.ledger import jcs
from wattlens.metering import Call, settle

n = int(sys.argv[1])
ctx = Context(Place(zone="FR"))

def settled():
    call = Call(source="gateway", protocol="openai", endpoint="/v1/chat/completions", model="gpt-4o-mini",
                served_model="gpt-4o-mini", upstream="http://127.0.0.1:9/v1", tokens=Tokens(250, 0, 350, 0),
                key_id="k1", team="research", latency_s=0.0123, ttft_s=0.0042)
    return settle(call, ctx, eager=True)

pool = iter([settled() for _ in range(6 * n)])
body = settled().record().as_dict()
assert jcs.canonical_text(body).encode() == rfc8785.dumps(body)
best = lambda f, k=n: min(timeit.repeat(f, number=k, repeat=5)) / k * 1e6
print(json.dumps({
    "entry": best(lambda: next(pool).entry_hash()),
    "canonical": best(lambda: jcs.canonical_text(body)),
    "rfc8785": best(lambda: rfc8785.dumps(body), max(n // 10, 100)),
}))
"""

ROWS = (
    ("whole entry on the request path: record, RFC 8785 text, leaf hash (Settlement.entry_hash)", "entry"),
    ("RFC 8785 text of the record (wattlens.ledger.jcs)", "canonical"),
    ("RFC 8785 text of the same record by the rfc8785 package (peer)", "rfc8785"),
)


def run(src: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="calls per repeat")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per checkout, interleaved")
    ap.add_argument("--previous", help="a checkout of an earlier commit: the same figures in the same run")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    sources = {"this checkout": here}
    if args.previous:
        sources["previous checkout"] = Path(args.previous) / "src"
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sources}
    for _ in range(args.runs):
        for name, src in sources.items():
            runs[name].append(run(src, args.n))
    headers = ["µs per call (median over runs, min–max)", *sources]
    rows = [[label, *(spread([r[key] for r in runs[name]]) for name in sources)] for label, key in ROWS]
    ours = statistics.median(r["canonical"] for r in runs["this checkout"])
    peer = statistics.median(r["rfc8785"] for r in runs["this checkout"])
    body = table(headers, rows)
    body += (
        f"\n\nEach cell: median over {args.runs} runs (a fresh process each, the checkouts interleaved) of the "
        f"best of 5 repeats of {args.n} calls. The rfc8785 package writes the same bytes (checked in each run) "
        f"in {peer / ours:.0f}× the time of wattlens' encoder here. The whole entry is made on a fresh "
        "settlement each call, as in the gateway, where its code and data are colder than in this loop "
        f"(about twice the time: docs/gateway.md). Load average (1, 5, 15 min) at the end: {load()}."
    )
    command = f"python bench/entry.py --n {args.n} --runs {args.runs}" + (" --previous CHECKOUT" if args.previous else "")
    write("entry.md", "A gateway request's ledger entry", body, command)


if __name__ == "__main__":
    main()
