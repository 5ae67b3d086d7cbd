"""Added time of in-process metering: wattlens.instrument vs EcoLogits on the same openai client, like for like.

    pip install -e ".[dev,bench]"; python bench/instrument.py [--calls 2000] [--streams 40] [--runs 5] [--previous CHECKOUT]

The client talks to an in-memory transport (httpx.MockTransport) that answers at once, so the
difference from the plain client is the metering alone. Like for like: EcoLogits computes its
impacts inside every call and materialises them on the response, so the headline wattlens row
reads `.footprint` (the receipt, already the dict a user logs) after every call, and the EcoLogits
row reads `.impacts` and turns it into a dict (`model_dump()`) after every call. The lazy wattlens
variant (receipt never read, so never computed) is a separate, labelled row.

Each run is a fresh process per peer (EcoLogits patches the openai module globally), the peers'
runs alternate, and inside a run the variants are timed in interleaved rounds against the plain
call of the same round: EcoLogits' plain call is the unpatched SDK method (`__wrapped__`), so its
baseline is interleaved too. A second plain client timed the same way (plain vs plain, "A/A")
gives each run's noise floor.
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

CHUNKS = 500

CHILD = r"""
import json, sys, time, statistics
import httpx, openai
peer, calls, streams, chunks, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
BODY = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}}).encode()
chunk = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}], "usage": None})
final = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
    "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": chunks, "total_tokens": 50 + chunks}})
SSE = ("".join(f"data: {chunk}\n\n" for _ in range(chunks)) + f"data: {final}\n\ndata: [DONE]\n\n").encode()
def handler(request):
    if b'"stream":true' in request.content.replace(b" ", b""):
        return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=BODY, headers={"content-type": "application/json"})
def make():
    return openai.OpenAI(api_key="sk-x", base_url="http://bench.invalid/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))
msgs = [{"role": "user", "content": "hi"}]
KW = {"model": "gpt-4o-mini", "messages": msgs}
SKW = {**KW, "stream": True, "stream_options": {"include_usage": True}}
def drain(s):
    last = None
    for last in s:
        pass
    return last
plain, plain2 = make(), make()
if peer == "wattlens":
    import wattlens
    metered = wattlens.instrument(make(), zone="FR")
    C = {"plain": lambda: plain.chat.completions.create(**KW),
         "A/A": lambda: plain2.chat.completions.create(**KW),
         "lazy": lambda: metered.chat.completions.create(**KW),
         "read": lambda: metered.chat.completions.create(**KW).footprint}
    def sread():
        s = metered.chat.completions.create(**SKW); drain(s); return s.footprint
    S = {"plain": lambda: drain(plain.chat.completions.create(**SKW)),
         "A/A": lambda: drain(plain2.chat.completions.create(**SKW)),
         "lazy": lambda: drain(metered.chat.completions.create(**SKW)),
         "read": sread}
    receipt = C["read"]()
    ok = isinstance(receipt, dict) and receipt.get("energy_wh") is not None and isinstance(sread(), dict)
else:
    from ecologits import EcoLogits
    EcoLogits.init(providers=["openai"], electricity_mix_zone="FRA")
    from openai.resources.chat.completions import Completions
    orig = Completions.__dict__["create"].__wrapped__  # the SDK method EcoLogits wrapped
    c = make()
    C = {"plain": lambda: orig(plain.chat.completions, **KW),
         "A/A": lambda: orig(plain2.chat.completions, **KW),
         "lazy": lambda: c.chat.completions.create(**KW).impacts,
         "read": lambda: c.chat.completions.create(**KW).impacts.model_dump()}
    S = {"plain": lambda: drain(orig(plain.chat.completions, **SKW)),
         "A/A": lambda: drain(orig(plain2.chat.completions, **SKW)),
         "read": lambda: drain(c.chat.completions.create(**SKW)).impacts.model_dump()}
    ok = isinstance(C["read"](), dict) and isinstance(S["read"](), dict) and not hasattr(C["plain"](), "impacts")
def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e6
for fn in C.values():
    for _ in range(100): fn()
for fn in S.values():
    for _ in range(3): fn()
res = {}
for kind, fns, n in (("call", C, calls), ("stream", S, streams)):
    per = {v: [] for v in fns}
    for _ in range(rounds):
        for v, fn in fns.items():
            per[v].append(timed(fn, max(1, n // rounds)))
    res[kind] = {v: {"us": statistics.median(per[v]),
                     "added_us": statistics.median(x - p for x, p in zip(per[v], per["plain"]))}
                 for v in fns if v != "plain"}
    res[kind]["plain"] = {"us": statistics.median(per["plain"])}
print(json.dumps({"res": res, "ok": ok}))
"""


def run(peer: str, calls: int, streams: int, rounds: int, src: str | None = None) -> dict:
    """One child process; src: another checkout's src/ to import wattlens from (the previous commit)."""
    env = {**os.environ, "PYTHONPATH": src} if src else None
    out = subprocess.run(
        [sys.executable, "-c", CHILD, peer, str(calls), str(streams), str(CHUNKS), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    if not got["ok"]:
        raise SystemExit(f"{peer}: the metered response carries no receipt/impacts dict")
    return got["res"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Time wattlens.instrument and EcoLogits on the same openai client (in-memory transport), "
        "the receipt/impacts read as a dict on every call, and write bench/results/instrument.md."
    )
    ap.add_argument("--calls", type=int, default=2000, help="non-streamed calls per variant and run, over its rounds")
    ap.add_argument("--streams", type=int, default=40, help=f"{CHUNKS}-chunk streams per variant and run")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds in each run (a run takes their medians)")
    ap.add_argument("--runs", type=int, default=5, help="runs (processes) per peer, alternating; median and range")
    ap.add_argument(
        "--previous",
        metavar="CHECKOUT",
        help="another checkout (git worktree add /tmp/base HEAD~1): its wattlens is timed in the same runs, alternating",
    )
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"wattlens": [], "ecologits": []}
    prev_src, prev_rev = None, ""
    if args.previous:
        prev_src = str(Path(args.previous).resolve() / "src")
        prev_rev = subprocess.run(
            ["git", "-C", args.previous, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        runs["previous"] = []
    loads = [load()]
    for _ in range(args.runs):
        for peer in runs:
            if peer == "previous":
                runs[peer].append(run("wattlens", args.calls, args.streams, args.rounds, prev_src))
            else:
                runs[peer].append(run(peer, args.calls, args.streams, args.rounds))
        loads.append(load())

    def added(peer: str, kind: str, v: str) -> list[float]:
        return [r[kind][v]["added_us"] for r in runs[peer]]

    def absolute(peer: str, kind: str, v: str) -> list[float]:
        return [r[kind][v]["us"] for r in runs[peer]]

    # The noise floor: |plain - second plain client| timed the same way in every run (A/A); a figure is
    # within noise when its range reaches zero or its median is at most twice the median A/A difference.
    # (The largest A/A difference would let one burst of other load on the shared machine hide everything.)
    noise = {k: 2 * statistics.median(abs(x) for p in runs for x in added(p, k, "A/A")) for k in ("call", "stream")}

    def clear(xs: list[float], kind: str) -> bool:
        return min(xs) > 0 and statistics.median(xs) > noise[kind]

    def cell(xs: list[float], kind: str, scale: float = 1.0, fmt: str = "+.1f") -> str:
        s = spread([x / scale for x in xs], fmt)
        return s if clear(xs, kind) else s + " (within noise)"

    names = {
        ("wattlens", "read"): "wattlens.instrument, `.footprint` read on every call (like for like)",
        ("ecologits", "read"): "EcoLogits.init(providers=['openai']), `.impacts.model_dump()` on every call (like for like)",
        ("wattlens", "lazy"): "wattlens.instrument, receipt never read (lazy: not computed)",
        ("ecologits", "lazy"): "EcoLogits, `.impacts` read, no dict",
        **(
            {
                ("previous", "read"): f"previous commit ({prev_rev}): wattlens.instrument, `.footprint` read on every call",
                ("previous", "lazy"): f"previous commit ({prev_rev}): wattlens.instrument, receipt never read",
            }
            if prev_src
            else {}
        ),
        ("wattlens", "A/A"): "wattlens run: second plain client (noise floor)",
        ("ecologits", "A/A"): "EcoLogits run: second plain call (noise floor)",
    }
    rows = []
    for peer, v in names:
        s_cells = ["-", "-"]
        if v in runs[peer][0]["stream"]:
            s_cells = [
                spread([x / 1000 for x in absolute(peer, "stream", v)], ".2f"),
                cell(added(peer, "stream", v), "stream", 1000, "+.3f"),
            ]
        rows.append(
            [
                names[peer, v],
                spread(absolute(peer, "call", "plain"), ".0f"),
                spread(absolute(peer, "call", v), ".0f"),
                cell(added(peer, "call", v), "call"),
                *s_cells,
            ]
        )

    def ratio(kind: str, scale: float, unit: str, fmt: str) -> str:
        w, e = added("wattlens", kind, "read"), added("ecologits", kind, "read")
        fig = (
            f"wattlens {statistics.median(w) / scale:{fmt}} {unit} ({min(w) / scale:{fmt}}–{max(w) / scale:{fmt}}), "
            f"EcoLogits {statistics.median(e) / scale:{fmt}} {unit} ({min(e) / scale:{fmt}}–{max(e) / scale:{fmt}})"
        )
        if not (clear(w, kind) and clear(e, kind)):
            return fig + ": wattlens's figure is within noise, so no ratio is given"
        per_run = sorted(b / a for a, b in zip(w, e, strict=True))
        return (
            f"{fig}: EcoLogits adds **{statistics.median(e) / statistics.median(w):.1f}×** as much "
            f"(per-run ratios {per_run[0]:.1f}–{per_run[-1]:.1f}×)"
        )

    body = table(
        [
            "metering",
            "plain µs/call",
            "metered µs/call",
            "added µs/call",
            f"metered ms per {CHUNKS}-chunk stream",
            "added ms/stream",
        ],
        rows,
    )
    body += (
        f"\n\nEach cell: median over {args.runs} runs (min–max). Load average (1, 5, 15 min) at the start and "
        f"after each pair of runs: {'; '.join(loads)} (2 cores, shared with other engineers' work)."
        f"\n\nLike for like, added per call: {ratio('call', 1, 'µs', '.1f')}. "
        f"Added per {CHUNKS}-chunk stream: {ratio('stream', 1000, 'ms', '.3f')}."
        f"\n\nInside a run, each variant is timed in {args.rounds} interleaved rounds ({args.calls // args.rounds} "
        f"calls and {max(1, args.streams // args.rounds)} streams per variant and round); a run's added time is the "
        "median over rounds of (variant − plain call of the same round). A figure is marked within noise when its "
        "range reaches zero or its median is at most twice the median |A/A| difference over all runs "
        f"({noise['call']:.1f} µs per call, {noise['stream'] / 1000:.3f} ms per stream here). "
        "The openai SDK itself costs about 1 ms per call on an in-memory transport. The lazy wattlens row is the "
        "cost of metering a call whose receipt nobody reads (it is then computed in the ledger's thread, if a "
        "ledger is configured, or never); EcoLogits has no such mode: it computes impacts inside every call, and "
        "for a stream on every chunk."
    )
    write(
        "instrument.md",
        "In-process metering overhead (like for like)",
        body,
        f"python bench/instrument.py --calls {args.calls} --streams {args.streams} --rounds {args.rounds} "
        f"--runs {args.runs}" + (f" --previous {args.previous}" if args.previous else ""),
    )


if __name__ == "__main__":
    main()
