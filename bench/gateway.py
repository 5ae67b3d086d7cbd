"""Gateway overhead: the same requests direct to a fast upstream, through wattlens, and through LiteLLM.

    pip install -e ".[dev]"; apt-get install wrk
    python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install 'litellm[proxy]'
    python bench/gateway.py [--duration 8] [--requests 400]

Concurrency 1: a Python keep-alive client, sequential requests, latency percentiles.
Concurrency 64 and 256: wrk (C, two threads), throughput and latency percentiles.
Every process shares this machine's cores, so the absolute numbers are a floor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, table, wait, write

HERE = Path(__file__).resolve().parent
AUTH = "sk-bench-" + "5f0c" * 16  # LiteLLM refuses to start without a strong master key
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"How much energy does this use?"}]%s}'


def c1(url: str, stream: bool, n: int) -> tuple[float, float, float]:
    body = BODY % (',"stream":true' if stream else "")
    lat = []
    with httpx.Client(timeout=30) as c:
        for i in range(n + 50):
            t = time.perf_counter()
            r = c.post(url, content=body, headers={"content-type": "application/json", "authorization": f"Bearer {AUTH}"})
            r.read()
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
            if i >= 50:  # warm-up
                lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    return statistics.median(lat), p99, n / (sum(lat) / 1000)


def wrk(url: str, stream: bool, conns: int, duration: int) -> tuple[float, float, float, int]:
    """p50 and p99 latency (ms), throughput (req/s) and socket errors (connect, read, write, timeout).

    wrk's own timeout is 2 s: a slow proxy's requests would be cut short and left out of its
    latency, so the timeout is long (30 s) and every socket error is counted and shown."""
    body = BODY % (',"stream":true' if stream else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["Authorization"] = "Bearer ' + AUTH + '"\n' + f"wrk.body = [[{body}]]\n"
        )
        script = f.name
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--timeout", "30s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        rps = float("nan")  # a target that fails requests gets no throughput figure
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
    return ms("50"), ms("99"), rps, socket_errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--litellm", default=str(HERE / ".venv-litellm" / "bin" / "litellm"))
    ap.add_argument("--previous", help="A checkout of the previous commit: its gateway is measured in the same run.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    procs: list[subprocess.Popen[bytes]] = []
    up, gw, ll = free_port(), free_port(), free_port()
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "fast_upstream:app",
                    "--app-dir",
                    str(HERE),
                    "--port",
                    str(up),
                    "--log-level",
                    "error",
                    "--no-access-log",
                ]
            )
        )
        wait(f"http://127.0.0.1:{up}/v1/models")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wattlens.cli",
                    "serve",
                    "--upstream",
                    f"http://127.0.0.1:{up}/v1",
                    "--port",
                    str(gw),
                    "--zone",
                    "FR",
                    "--ledger",
                    str(tmp / "ledger.db"),
                ]
            )
        )
        wait(f"http://127.0.0.1:{gw}/healthz")
        targets = {
            "direct (no proxy)": f"http://127.0.0.1:{up}/v1/chat/completions",
            "wattlens gateway (receipt + ledger)": f"http://127.0.0.1:{gw}/v1/chat/completions",
        }
        if args.previous:
            prev = free_port()
            cmd = [sys.executable, "-m", "wattlens.cli", "serve", "--upstream", f"http://127.0.0.1:{up}/v1"]
            cmd += ["--port", str(prev), "--zone", "FR", "--ledger", str(tmp / "previous.db")]
            env = {**os.environ, "PYTHONPATH": str(Path(args.previous) / "src")}
            procs.append(subprocess.Popen(cmd, env=env, cwd=args.previous))
            wait(f"http://127.0.0.1:{prev}/healthz")
            targets["wattlens, previous commit"] = f"http://127.0.0.1:{prev}/v1/chat/completions"
        if Path(args.litellm).exists():
            (tmp / "litellm.yaml").write_text(
                "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{up}/v1\n      api_key: sk-bench\n"
                "litellm_settings:\n  telemetry: false\n  set_verbose: false\n"
            )
            env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "LITELLM_MASTER_KEY": AUTH}
            procs.append(
                subprocess.Popen(
                    [args.litellm, "--config", str(tmp / "litellm.yaml"), "--port", str(ll), "--num_workers", "1"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait(f"http://127.0.0.1:{ll}/health/liveliness", timeout=120)
            targets["LiteLLM proxy"] = f"http://127.0.0.1:{ll}/v1/chat/completions"
        rows = []
        base: dict[tuple[bool, int], float] = {}
        for stream in (False, True):
            for name, url in targets.items():
                p50, p99, rps = c1(url, stream, args.requests)
                if name.startswith("direct"):
                    base[(stream, 1)] = p50
                rows.append(
                    [
                        name,
                        "stream" if stream else "unary",
                        "1",
                        f"{p50:.2f}",
                        f"{p99:.2f}",
                        f"{rps:.0f} (sequential)",
                        "0",
                        f"{p50 - base[(stream, 1)]:+.2f}",
                    ]
                )
                if shutil.which("wrk"):
                    for conns in (64, 256):
                        w50, w99, wrps, sock = wrk(url, stream, conns, args.duration)
                        if name.startswith("direct"):
                            base[(stream, conns)] = w50
                        rows.append(
                            [
                                name,
                                "stream" if stream else "unary",
                                str(conns),
                                f"{w50:.2f}",
                                f"{w99:.2f}",
                                f"{wrps:.0f}",
                                str(sock),
                                f"{w50 - base[(stream, conns)]:+.2f}",
                            ]
                        )
        headers = ["target", "mode", "concurrency", "p50 ms", "p99 ms", "requests/s", "socket errors"]
        headers.append("added p50 ms vs direct")
        body = table(headers, rows)
        body += (
            "\n\nAll three servers and the load generator share this machine's cores. LiteLLM runs with one "
            "worker, like the wattlens gateway (one process). At concurrency 1 the requests/s column is one "
            "client's sequential rate (1 / mean latency), not the server's capacity; at 64 and 256 it is wrk's "
            "throughput, with wrk's timeout raised to 30 s and its socket errors (connect, read, write, timeout) "
            "counted, so a slow target's requests are not cut short and left out."
        )
        write(
            "gateway-vs-previous.md" if args.previous else "gateway.md",
            "Gateway overhead",
            body,
            f"python bench/gateway.py --duration {args.duration} --requests {args.requests}"
            + (" --previous CHECKOUT_OF_PREVIOUS_COMMIT" if args.previous else ""),
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
