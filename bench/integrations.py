"""Added time of the framework adapters: each framework's call with and without the wattlens callback.

    pip install -e ".[dev]"; python bench/integrations.py [--calls 2000] [--streams 100] [--rounds 5] [--runs 3]
        [--previous CHECKOUT]

Every framework talks to an in-memory transport (httpx.MockTransport) that answers at once, so
the difference from the plain call is the callback alone. Each framework runs in its own
process (their callbacks are global state); inside it the variants are timed in interleaved
rounds, and the added time is the median over rounds of (variant - plain) medians, with the
range over rounds. "no-op callback" is the framework's own cost of calling one callback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import table, write

CHUNKS = 100

CHILD = r"""
import json, os, statistics, sys, time
import httpx
framework = sys.argv[1]
calls, streams, rounds, chunks = (int(x) for x in sys.argv[2:6])
BODY = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}}).encode()
def chunk(content, finish):
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}], "usage": None})
final = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
    "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": chunks, "total_tokens": 50 + chunks}})
SSE = ("".join(f"data: {chunk('ok', None)}\n\n" for _ in range(chunks - 1)) + f"data: {chunk('ok', 'stop')}\n\n"
       + f"data: {final}\n\ndata: [DONE]\n\n").encode()
def handler(request):
    if b'"stream":true' in request.content.replace(b" ", b""):
        return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=BODY, headers={"content-type": "application/json"})
def http():
    return httpx.Client(transport=httpx.MockTransport(handler))
BASE = "http://bench.invalid/v1"

if framework == "litellm":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm, openai
    from litellm.integrations.custom_logger import CustomLogger
    from wattlens.integrations.litellm import WattlensLogger
    client = openai.OpenAI(api_key="sk-x", base_url=BASE, max_retries=0, http_client=http())
    msgs = [{"role": "user", "content": "hi"}]
    class Noop(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            pass
    meter = WattlensLogger(zone="FR")
    variants = {"plain": [], "no-op callback": [Noop()], "wattlens (receipt in hidden params)": [meter]}
    def use(v):
        litellm.callbacks = variants[v]
        return None
    def call(cfg):
        return litellm.completion(model="openai/gpt-4o-mini", messages=msgs, client=client)
    def stream(cfg):
        s = litellm.completion(model="openai/gpt-4o-mini", messages=msgs, client=client, stream=True,
                               stream_options={"include_usage": True})
        for _ in s:
            pass
    def receipt(r):
        return meter.receipt(r)
    def hooks(v):
        return []  # LiteLLM logs in its own thread after the call: nothing of ours runs inside it
elif framework == "langchain":
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_openai import ChatOpenAI
    from wattlens.integrations.langchain import WattlensCallbackHandler
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=BASE, api_key="sk-x", max_retries=0, stream_usage=True,
                     http_client=http())
    class Noop(BaseCallbackHandler):
        run_inline = True
        def on_chat_model_start(self, serialized, messages, **kwargs):
            pass
        def on_llm_end(self, response, **kwargs):
            pass
    variants = {"plain": None, "no-op callback": {"callbacks": [Noop()]},
                "wattlens (receipt on the message)": {"callbacks": [WattlensCallbackHandler(zone="FR")]},
                "wattlens attach=False (receipt on read)": {"callbacks": [WattlensCallbackHandler(zone="FR", attach=False)]}}
    def use(v):
        return variants[v]
    def call(cfg):
        return llm.invoke("hi", config=cfg)
    def stream(cfg):
        for _ in llm.stream("hi", config=cfg):
            pass
    def receipt(r):
        return r.response_metadata.get("wattlens")
    def hooks(v):
        h = variants[v]["callbacks"][0]
        return [(h, "on_chat_model_start"), (h, "on_llm_end")]
else:
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI
    from wattlens.integrations.llamaindex import WattlensEventHandler
    llm = OpenAI(model="gpt-4o-mini", api_base=BASE, api_key="sk-x", max_retries=0, http_client=http(),
                 additional_kwargs={"stream_options": {"include_usage": True}})
    msgs = [ChatMessage(role="user", content="hi")]
    class Noop(BaseEventHandler):
        def handle(self, event, **kwargs):
            pass
    root = get_dispatcher()
    variants = {"plain": [], "no-op callback": [Noop()],
                "wattlens (receipt on the response)": [WattlensEventHandler(zone="FR")],
                "wattlens attach=False (receipt on read)": [WattlensEventHandler(zone="FR", attach=False)]}
    def use(v):
        root.event_handlers = list(variants[v])
        return None
    def call(cfg):
        return llm.chat(msgs)
    def stream(cfg):
        for _ in llm.stream_chat(msgs):
            pass
    def receipt(r):
        return r.additional_kwargs.get("wattlens")
    def hooks(v):
        return [(variants[v][0]._meter, "handle")]

def timed(fn, v, n):
    cfg = use(v)
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(cfg); out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e6
for v in variants:  # warm every path
    cfg = use(v)
    for _ in range(50): call(cfg)
    for _ in range(3): stream(cfg)
res = {v: {"call": [], "stream": []} for v in variants}
for _ in range(rounds):
    for v in variants:
        res[v]["call"].append(timed(call, v, calls // rounds))
    for v in variants:
        res[v]["stream"].append(timed(stream, v, max(1, streams // rounds)))
# Time spent inside wattlens's own callback methods during real calls (a separate pass: the
# wrapper adds its own cost): the adapter's share, apart from the framework's dispatch and the noise.
def inside(v, fn, n):
    spent = []
    def wrap(f):
        def w(*a, **k):
            t0 = time.perf_counter(); out = f(*a, **k); spent.append(time.perf_counter() - t0); return out
        return w
    hs = hooks(v)
    for obj, name in hs:
        setattr(obj, name, wrap(getattr(obj, name)))
    cfg = use(v)
    per = []
    for _ in range(n):
        spent.clear(); fn(cfg); per.append(sum(spent))
    for obj, name in hs:
        delattr(obj, name) if name in vars(obj) else None
    return statistics.median(per) * 1e6 if hs else None
cfg = use(list(variants)[2])
r = call(cfg)
out = {"has_receipt": receipt(r) is not None, "variants": {}}
for v in variants:
    d = {}
    for kind in ("call", "stream"):
        added = [a - b for a, b in zip(res[v][kind], res["plain"][kind])]
        own = [a - b for a, b in zip(res[v][kind], res["no-op callback"][kind])]
        d[kind] = {"us": statistics.median(res[v][kind]), "added_us": statistics.median(added),
                   "lo_us": min(added), "hi_us": max(added), "own_us": statistics.median(own),
                   "inside_us": inside(v, call if kind == "call" else stream, calls // rounds if kind == "call"
                                       else max(1, streams // rounds)) if v.startswith("wattlens") else None}
    out["variants"][v] = d
print(json.dumps(out))
"""

NAMES = {
    "litellm": "LiteLLM `completion`",
    "langchain": "LangChain `ChatOpenAI.invoke`",
    "llamaindex": "LlamaIndex `OpenAI.chat`",
}


def run(framework: str, calls: int, streams: int, rounds: int, src: str | None = None) -> dict[str, Any]:
    """One child process timing every variant of one framework; src: another checkout's src/ to import."""
    env = {**os.environ, "LITELLM_LOG": "ERROR"}
    if src:
        env["PYTHONPATH"] = src  # ahead of the editable install: that checkout's wattlens
    out = subprocess.run(
        [sys.executable, "-c", CHILD, framework, str(calls), str(streams), str(rounds), str(CHUNKS)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def load() -> str:
    """The machine's load while the bench ran (it is shared: other work moves the figures)."""
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout
        return out.strip().split("load average:")[-1].strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime not available"


def summary(runs: list[dict[str, Any]], variant: str, kind: str) -> dict[str, float | None]:
    """Median over runs of each run's figures, and the range of the runs' medians of added time."""
    ds = [r["variants"][variant][kind] for r in runs]
    inside = [d["inside_us"] for d in ds if d.get("inside_us") is not None]
    return {
        "us": statistics.median(d["us"] for d in ds),
        "added_us": statistics.median(d["added_us"] for d in ds),
        "lo_us": min(d["added_us"] for d in ds),
        "hi_us": max(d["added_us"] for d in ds),
        "own_us": statistics.median(d["own_us"] for d in ds),
        "inside_us": statistics.median(inside) if inside else None,
    }


def row(name: str, v: str, c: dict[str, float | None], s: dict[str, float | None]) -> list[str]:
    def f(x: float | None, fmt: str) -> str:
        return format(x, fmt) if x is not None else ""

    if v == "plain":
        return [name, v, f(c["us"], ".0f"), "", "", "", "", f((s["us"] or 0) / 1000, ".2f"), "", "", ""]
    return [
        name,
        v,
        f(c["us"], ".0f"),
        f(c["added_us"], "+.1f"),
        f"{c['lo_us']:+.1f} .. {c['hi_us']:+.1f}",
        f(c["own_us"], "+.1f") if v != "no-op callback" else "",
        f(c["inside_us"], ".1f"),
        f((s["us"] or 0) / 1000, ".2f"),
        f(s["added_us"], "+.1f"),
        f"{s['lo_us']:+.1f} .. {s['hi_us']:+.1f}",
        f(s["inside_us"], ".1f"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Time LiteLLM, LangChain and LlamaIndex calls with and without the wattlens callback "
        "(in-memory upstream, same run) and write bench/results/integrations.md."
    )
    ap.add_argument("--calls", type=int, default=2000, help="non-streamed calls per variant and run, over its rounds")
    ap.add_argument("--streams", type=int, default=100, help="100-chunk streams per variant and run")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds in each run (a run takes their medians)")
    ap.add_argument("--runs", type=int, default=3, help="runs (processes) per framework; the table gives their median")
    ap.add_argument("--frameworks", default="litellm,langchain,llamaindex", help="comma-separated subset")
    ap.add_argument(
        "--previous",
        metavar="CHECKOUT",
        help="another checkout (e.g. `git worktree add /tmp/base HEAD~1`): its adapters are timed in the same "
        "run, alternating with this one's",
    )
    args = ap.parse_args()
    prev_src = str(Path(args.previous).resolve() / "src") if args.previous else None
    prev_rev = ""
    if args.previous:
        prev_rev = subprocess.run(
            ["git", "-C", args.previous, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    rows, verdicts, loads = [], [], [load()]
    for fw in args.frameworks.split(","):
        runs, prev = [], []
        for _ in range(args.runs):
            runs.append(run(fw, args.calls, args.streams, args.rounds))
            if prev_src:
                prev.append(run(fw, args.calls, args.streams, args.rounds, prev_src))
            loads.append(load())
        for v in runs[0]["variants"]:
            c, s = summary(runs, v, "call"), summary(runs, v, "stream")
            rows.append(row(NAMES[fw], v, c, s))
            if v.startswith("wattlens"):
                ok = "within" if (c["added_us"] or 0) <= 50 else "over"
                verdicts.append(f"{NAMES[fw]}, {v}: {c['added_us']:+.0f} µs ({ok} the 50 µs target)")
                if prev:
                    rows.append(
                        row(NAMES[fw], f"{v}, previous ({prev_rev})", summary(prev, v, "call"), summary(prev, v, "stream"))
                    )
    body = table(
        [
            "framework",
            "callback",
            "µs/call",
            "added µs/call (median)",
            "added µs/call (range over runs)",
            "added µs/call beyond a no-op callback",
            "µs/call inside wattlens's callback",
            f"ms/{CHUNKS}-chunk stream",
            "added µs/stream (median)",
            "added µs/stream (range over runs)",
            "µs/stream inside wattlens's callback",
        ],
        rows,
    )
    body += (
        f"\n\nLoad average (`uptime`: 1, 5, 15 min) at the start and after each run: {'; '.join(loads)} "
        "(2 cores, shared with other engineers' tests)."
        f"\n\nEach framework runs {args.runs} times in its own process"
        + (f", alternating with the previous checkout ({prev_rev})" if prev_src else "")
        + f". Inside a run, the variants are timed in {args.rounds} interleaved rounds "
        f"({args.calls // args.rounds} calls and {max(1, args.streams // args.rounds)} streams per variant and "
        "round); a run's added time is the median over rounds of (variant - plain call of the same round). The table "
        "gives the median over runs and the range of the runs' figures. \"no-op callback\" is the framework's own "
        'cost of calling one callback that does nothing. "inside wattlens\'s callback" is the median time spent in '
        "the adapter's own callback methods during a real call, timed in a separate pass (LiteLLM's logger runs in "
        "its own thread after the call has returned, so nothing of it runs inside the call).\n\nAdded per call: "
        + "; ".join(verdicts)
        + ".\n\nWith attach=False the callbacks only describe and settle the call (what a run is — protocol, "
        "endpoint, model, upstream — is worked out once per kind of run; timestamps are formatted in the ledger's "
        "thread) and the receipt is computed when first read or in the ledger's thread. With the receipt attached "
        "to the returned message (the default) it has to be computed inside the callback: it must be a plain dict "
        "by the time the framework returns, since serializers (pydantic's model_dump, json) read dicts without "
        "calling Python code, so a dict filled on first read would be saved empty. That computation is the "
        "estimator's and is what attach=True adds. LiteLLM runs its loggers after the call has returned, so its "
        "receipt is computed there and the call is not slower."
    )
    cmd = "python bench/integrations.py " + " ".join(
        f"--{k} {getattr(args, k)}" for k in ("calls", "streams", "rounds", "runs")
    )
    if args.previous:
        cmd += f" --previous {args.previous}"
    write("integrations.md", "Framework adapter overhead", body, cmd)


if __name__ == "__main__":
    main()
