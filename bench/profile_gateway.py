"""Where the gateway's time goes at concurrency 64: py-spy samples of the running gateway, by layer.

    pip install py-spy; apt-get install wrk
    python bench/profile_gateway.py [--seconds 10]

Starts the fast upstream and a gateway (receipts and the SQLite ledger on), loads it with wrk
(64 connections, unary then streaming) and samples every thread with py-spy. Each busy sample of
the main thread is given to the innermost frame of a known layer (wattlens's receipt, wattlens's
request handling, aiohttp, Starlette, uvicorn, JSON, asyncio); the ledger thread's busy samples
are shown beside them, since they take the same interpreter lock.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from common import free_port, table, wait, write

HERE = Path(__file__).resolve().parent
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"How much energy does this use?"}]%s}'
LAYERS = [
    (
        "wattlens: the receipt (estimate, impacts, JSON form)",
        r"wattlens/(receipt|impacts|footprint|units)\.py|wattlens/estimate/",
    ),
    ("wattlens: settlement, metrics, record", r"wattlens/(metering|otel)\.py|wattlens/gateway/metrics\.py"),
    ("wattlens: request handling (parse, route, auth, relay)", r"wattlens/(gateway|protocols)/"),
    ("aiohttp: the upstream call", r"aiohttp/"),
    ("JSON", r"/json/|orjson"),
    ("Starlette: routing, middleware, responses", r"starlette/"),
    ("uvicorn: HTTP parsing, the ASGI cycle", r"uvicorn/"),
    ("asyncio: the event loop, tasks", r"asyncio/"),
]
LEDGER = [
    ("ledger thread: RFC 8785 canonical form of the entry", r"_encode|canonical_text|es_number|canonical \("),
    ("ledger thread: Merkle nodes (hashing and their rows)", r"_save_nodes|TreeState|tree\.py|node_hash|leaf_hash"),
    ("ledger thread: building the record", r"Settlement\.record|_materialise|as_dict"),
    ("ledger thread: SQLite statements and the chain", r"SQLiteLedger|chain\.py"),
]
WAITING = r"Condition\.wait|Queue\.get|Event\.wait|\(threading\.py"


def layer(frames: list[str]) -> str:
    for f in reversed(frames):
        for label, pattern in LAYERS:
            if re.search(pattern, f):
                return label
    return "other"


def breakdown(raw: Path) -> tuple[collections.Counter[str], int, int]:
    """(busy samples by layer, main-thread busy, ledger-thread busy); the ledger's layers are apart."""
    by: collections.Counter[str] = collections.Counter()
    main = ledger = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, n = stack.split(";"), int(count)
        if "wattlens-ledger" in frames[0]:
            if not re.search(WAITING, frames[-1]):
                ledger += n
                inner = next((lab for f in reversed(frames) for lab, pat in LEDGER if re.search(pat, f)), None)
                by[inner or "ledger thread: other"] += n
        elif "MainThread" in frames[0] and len(frames) > 1:
            if re.search(r"runners\.py:\d+\)$", frames[-1]):  # idle in the event loop's select
                continue
            main += n
            by[layer(frames[1:])] += n
    return by, main, ledger


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10, help="sampling time per mode")
    ap.add_argument("--keep-raw", help="copy py-spy's raw stacks (unary.txt, stream.txt) into this directory")
    args = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("py-spy"):
        sys.exit("needs wrk and py-spy on PATH")
    tmp = Path(tempfile.mkdtemp())
    up, gw = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "uvicorn", "fast_upstream:app", "--app-dir", str(HERE), "--port", str(up),
                          "--log-level", "error", "--no-access-log"]),
    ]  # fmt: skip
    try:
        wait(f"http://127.0.0.1:{up}/v1/models")
        cmd = [sys.executable, "-m", "wattlens.cli", "serve", "--upstream", f"http://127.0.0.1:{up}/v1", "--port", str(gw)]
        procs.append(subprocess.Popen([*cmd, "--zone", "FR", "--ledger", str(tmp / "ledger.db")]))
        wait(f"http://127.0.0.1:{gw}/healthz")
        rows, notes = [], []
        for stream in (False, True):
            script = tmp / "post.lua"
            body = BODY % (',"stream":true' if stream else "")
            script.write_text(
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[{body}]]\n'
            )
            load = subprocess.Popen(
                ["wrk", "-t2", "-c64", f"-d{args.seconds + 3}s", "--timeout", "30s", "-s", str(script),
                 f"http://127.0.0.1:{gw}/v1/chat/completions"], stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            raw = tmp / f"{'stream' if stream else 'unary'}.txt"
            subprocess.run(
                ["py-spy", "record", "-p", str(procs[1].pid), "-d", str(args.seconds), "-r", "200", "-f", "raw",
                 "-o", str(raw), "--nonblocking", "-t"], capture_output=True, check=True,
            )  # fmt: skip
            out, _ = load.communicate()
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            by, busy, ledger = breakdown(raw)
            if args.keep_raw:
                Path(args.keep_raw).mkdir(parents=True, exist_ok=True)
                shutil.copy(raw, Path(args.keep_raw) / raw.name)
            mode = "stream" if stream else "unary"
            for label, n in by.most_common():
                if not label.startswith("ledger"):
                    rows.append([mode, label, f"{n / busy:.0%}"])
            rows.append([mode, "**ledger thread, beside the main thread (same interpreter lock)**", f"{ledger / busy:.0%}"])
            for label, n in by.most_common():
                if label.startswith("ledger"):
                    rows.append([mode, label, f"{n / busy:.0%}"])
            notes.append(
                f"{mode}: {rps.group(1) if rps else '?'} requests/s under the profiler, {busy} busy main-thread samples"
            )
        load_avg = os.getloadavg()
        text = table(["mode", "where the busy time goes", "share of the main thread's busy time"], rows)
        text += "\n\n" + "; ".join(notes) + f". Load average {load_avg[0]:.2f} on 2 cores."
        text += (
            "\n\nA sample goes to the innermost frame of a known layer, so time in C code (SQLite, orjson, "
            "hashing, socket writes) counts for the layer that called it. py-spy samples without stopping the "
            "process (--nonblocking), which lowers throughput a little. With py-spy 0.4, a sample taken while "
            "uvloop's C code runs (socket reads and writes, the loop itself) has a suspended coroutine's frame as "
            "its innermost Python frame, most often Starlette's request_response (routing.py:59): the Starlette "
            "share then holds that network time (tables taken with an earlier py-spy put it elsewhere; compare shares "
            "only between runs of one py-spy version)."
        )
        write("profile_gateway.md", "Where the gateway's time goes (concurrency 64)", text,
              f"python bench/profile_gateway.py --seconds {args.seconds}")  # fmt: skip
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
