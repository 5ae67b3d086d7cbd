"""Gateway overhead: the same requests direct to a fast upstream, through wattlens, and through LiteLLM.

    pip install -e ".[dev]"; apt-get install wrk
    python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install 'litellm[proxy]'
    python bench/gateway.py [--duration 8] [--requests 400]
    python bench/gateway.py --config budgets.toml --tag project=atlas --tag env=prod --only-wattlens   # a feature's cost

With --config, a second wattlens gateway runs from that file (budgets, a live grid feed, …) beside the
plain one, in the same run, so the difference is the configured feature's cost; --tag adds an
x-wattlens-tag-NAME header to every request (other servers ignore it).

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
from common import free_port, load, spread, table, wait, write

HERE = Path(__file__).resolve().parent
AUTH = "sk-bench-" + "5f0c" * 16  # LiteLLM refuses to start without a strong master key
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"How much energy does this use?"}]%s}'


EXTRA_HEADERS: dict[str, str] = {}  # --tag NAME=VALUE: x-wattlens-tag-NAME on every request


def c1(url: str, stream: bool, n: int) -> tuple[float, float, float]:
    body = BODY % (',"stream":true' if stream else "")
    lat = []
    headers = {"content-type": "application/json", "authorization": f"Bearer {AUTH}", **EXTRA_HEADERS}
    with httpx.Client(timeout=30) as c:
        for i in range(n + 50):
            t = time.perf_counter()
            r = c.post(url, content=body, headers=headers)
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
            'wrk.headers["Authorization"] = "Bearer '
            + AUTH
            + '"\n'
            + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in EXTRA_HEADERS.items())
            + f"wrk.body = [[{body}]]\n"
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


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process and its threads so far (Linux /proc)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(
        description="The same requests direct to a fast upstream, through the wattlens gateway and through LiteLLM: "
        "latency at concurrency 1 (sequential), wrk throughput at 64 and 256; writes bench/results/gateway*.md."
    )
    ap.add_argument("--duration", type=int, default=8, help="seconds of each wrk run (concurrency 64 and 256)")
    ap.add_argument("--requests", type=int, default=400, help="sequential requests at concurrency 1 (after 50 warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each interleaves every target, cells are medians")
    ap.add_argument(
        "--litellm", default=str(HERE / ".venv-litellm" / "bin" / "litellm"), help="LiteLLM's CLI (left out if absent)"
    )
    ap.add_argument("--previous", help="A checkout of the previous commit: its gateway is measured in the same run.")
    ap.add_argument("--config", help="A gateway config file: a second wattlens gateway runs from it in the same run.")
    ap.add_argument("--tag", action="append", default=[], help="NAME=VALUE: an x-wattlens-tag-NAME header on every request.")
    ap.add_argument(
        "--without-log",
        action="store_true",
        help="Add a gateway with the Merkle log patched out (bench/serve_without_log.py): the log's own cost.",
    )
    ap.add_argument("--only-wattlens", action="store_true", help="Leave LiteLLM out (a feature's cost only).")
    ap.add_argument("--output", help="Results file name in bench/results/ (default from the options).")
    args = ap.parse_args()
    for t in args.tag:
        name, _, value = t.partition("=")
        EXTRA_HEADERS[f"x-wattlens-tag-{name}"] = value
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
        proc_of = {"direct (no proxy)": procs[0], "wattlens gateway (receipt + ledger)": procs[1]}
        if args.previous:
            prev = free_port()
            cmd = [sys.executable, "-m", "wattlens.cli", "serve", "--upstream", f"http://127.0.0.1:{up}/v1"]
            cmd += ["--port", str(prev), "--zone", "FR", "--ledger", str(tmp / "previous.db")]
            env = {**os.environ, "PYTHONPATH": str(Path(args.previous) / "src")}
            procs.append(subprocess.Popen(cmd, env=env, cwd=args.previous))
            wait(f"http://127.0.0.1:{prev}/healthz")
            targets["wattlens, previous commit"] = f"http://127.0.0.1:{prev}/v1/chat/completions"
            proc_of["wattlens, previous commit"] = procs[-1]
        if args.without_log:
            nolog = free_port()
            cmd = [sys.executable, str(HERE / "serve_without_log.py"), "serve", "--upstream", f"http://127.0.0.1:{up}/v1"]
            cmd += ["--port", str(nolog), "--zone", "FR", "--ledger", str(tmp / "nolog.db")]
            procs.append(subprocess.Popen(cmd))
            wait(f"http://127.0.0.1:{nolog}/healthz")
            targets["wattlens gateway, Merkle log off (bench patch)"] = f"http://127.0.0.1:{nolog}/v1/chat/completions"
            proc_of["wattlens gateway, Merkle log off (bench patch)"] = procs[-1]
        if args.config:
            conf = free_port()
            # The file's sections plus the benchmark's upstream (serve --upstream would ignore [[budgets]] and [server]).
            configured = tmp / "configured.toml"
            configured.write_text(
                Path(args.config).read_text()
                + f'\n[[upstreams]]\nname = "bench"\nbase_url = "http://127.0.0.1:{up}/v1"\nmodels = ["*"]\n'
            )
            cmd = [sys.executable, "-m", "wattlens.cli", "serve", "--config", str(configured)]
            cmd += ["--port", str(conf), "--ledger", str(tmp / "configured.db")]
            procs.append(subprocess.Popen(cmd))
            wait(f"http://127.0.0.1:{conf}/healthz")
            targets[f"wattlens gateway with {Path(args.config).name}"] = f"http://127.0.0.1:{conf}/v1/chat/completions"
            proc_of[f"wattlens gateway with {Path(args.config).name}"] = procs[-1]
        if Path(args.litellm).exists() and not args.only_wattlens:
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
            proc_of["LiteLLM proxy"] = procs[-1]
        # Rounds interleave the targets (a burst of load from elsewhere hits them alike); each cell is
        # the median over rounds with the range, and the server's CPU per request (its /proc counters,
        # all threads) is beside the throughput: it moves far less with the machine's load.
        pids = {name: proc_of[name].pid for name in targets if name in proc_of}
        cells: dict[tuple[str, bool, int], list[tuple[float, float, float, int, float]]] = {}
        loads = [load()]
        for _ in range(args.rounds):
            for stream in (False, True):
                for conns in (1, 64, 256) if shutil.which("wrk") else (1,):
                    for name, url in targets.items():
                        cpu0 = cpu_s(pids.get(name))
                        if conns == 1:
                            p50, p99, rps = c1(url, stream, args.requests)
                            n, sock = args.requests + 50, 0
                        else:
                            p50, p99, rps, sock = wrk(url, stream, conns, args.duration)
                            n = int(rps * args.duration) if rps == rps else 0
                        cpu = (cpu_s(pids.get(name)) - cpu0) / n * 1e6 if n and name in pids else float("nan")
                        cells.setdefault((name, stream, conns), []).append((p50, p99, rps, sock, cpu))
            loads.append(load())
        rows = []
        for stream in (False, True):
            for name in targets:
                for conns in (1, 64, 256) if shutil.which("wrk") else (1,):
                    runs = cells[(name, stream, conns)]
                    base = statistics.median(r[0] for r in cells[(next(iter(targets)), stream, conns)])
                    p50 = statistics.median(r[0] for r in runs)
                    rates = [r[2] for r in runs]
                    rate = f"{spread(rates, '.0f')}" + (" (sequential)" if conns == 1 else "")
                    rows.append(
                        [
                            name,
                            "stream" if stream else "unary",
                            str(conns),
                            spread([r[0] for r in runs], ".2f"),
                            f"{statistics.median(r[1] for r in runs):.2f}",
                            rate,
                            spread([r[4] for r in runs], ".0f"),
                            str(sum(r[3] for r in runs)),
                            f"{p50 - base:+.2f}",
                        ]
                    )
        headers = ["target", "mode", "concurrency", "p50 ms (range)", "p99 ms", "requests/s (range)"]
        headers += ["server CPU µs/request (range)", "socket errors", "added p50 ms vs direct"]
        body = table(headers, rows)
        body += f"\n\nMedians over {args.rounds} rounds, the targets interleaved in each; ranges in parentheses."
        body += f" Load average (1, 5, 15 min) at the start and after each round: {'; '.join(loads)}."
        body += (
            "\n\nAll three servers and the load generator share this machine's cores. LiteLLM runs with one "
            "worker, like the wattlens gateway (one process). At concurrency 1 the requests/s column is one "
            "client's sequential rate (1 / mean latency), not the server's capacity; at 64 and 256 it is wrk's "
            "throughput, with wrk's timeout raised to 30 s and its socket errors (connect, read, write, timeout) "
            "counted, so a slow target's requests are not cut short and left out."
        )
        if args.config:
            body += f"\n\nConfiguration of the second gateway ({Path(args.config).name}):\n\n```toml\n"
            body += Path(args.config).read_text().strip() + "\n```\n"
        if EXTRA_HEADERS:
            body += "\nHeaders on every request: " + ", ".join(f"`{k}: {v}`" for k, v in EXTRA_HEADERS.items()) + "\n"
        command = f"python bench/gateway.py --duration {args.duration} --requests {args.requests} --rounds {args.rounds}"
        command += " --previous CHECKOUT_OF_PREVIOUS_COMMIT" if args.previous else ""
        command += " --without-log" if args.without_log else ""
        command += f" --config {args.config}" if args.config else ""
        command += "".join(f" --tag {t}" for t in args.tag) + (" --only-wattlens" if args.only_wattlens else "")
        default = (
            "gateway-vs-previous.md" if args.previous else "gateway-without-log.md" if args.without_log else "gateway.md"
        )
        write(args.output or default, "Gateway overhead", body, command)
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
