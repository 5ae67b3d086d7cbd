"""The attack campaign, replayed on loopback and bounded in time: does any record get lost?

    pip install -e ".[dev]" hypothesis
    python bench/chaos.py [--requests 1500] [--fuzz 300] [--only summary,postgres] [--baseline CHECKOUT]

Each scenario starts a fresh gateway (a subprocess, `wattlens serve`) in front of a fast
upstream, with its own SQLite ledger, and prints one row: requests answered, records written,
records lost (answered but not in the ledger), 5xx answers, and the longest wait of an
unrelated request made while the scenario ran.

- sigterm: mixed unary/streaming load, SIGTERM in the middle (records lost must be 0)
- sigkill: the same with SIGKILL (records lost are bounded by one flush interval, 0.2 s of traffic)
- fuzz: Hypothesis-made JSON bodies on every endpoint (no 5xx from client input)
- database locked: another connection holds SQLite's write lock for 8 s under load (spill and replay)
- disk full: a file-size limit on the gateway process (prlimit) under load, then lifted
- slow clients: 300 sockets that send half a request and wait
- summary: the dashboard summary and CSV export of a 50,000-record ledger (stall measured while they run),
  then requests; --baseline CHECKOUT runs it again with the gateway of another checkout, in the same run
- postgres: a PostgreSQL ledger whose server is stopped under load for 6 s and started again (spill and
  replay: records lost must be 0); needs PostgreSQL's server binaries (initdb, pg_ctl)

The machine's load average (`uptime`) is recorded beside the figures: stalls depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import free_port, table, wait, write

HERE = Path(__file__).resolve().parent
MSG = [{"role": "user", "content": "How much energy does this use?"}]


class Gateway:
    def __init__(self, upstream: str, db: Path | str, src: Path | None = None) -> None:
        """src: the checkout whose gateway runs (default: the installed wattlens)."""
        self.port, self.db = free_port(), db
        cmd = [sys.executable, "-m", "wattlens.cli", "serve", "--upstream", upstream, "--port", str(self.port)]
        cmd += ["--zone", "FR", "--ledger", str(db)]
        env = {**os.environ, "PYTHONPATH": str(src / "src")} if src else None
        self.proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        wait(self.url + "/healthz")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def records(self) -> list[dict[str, Any]]:
        from wattlens.ledger import open_ledger

        led = open_ledger(self.db)
        try:
            return list(led.records())
        finally:
            led.close()


async def load(url: str, n: int, stop_after_s: float | None = None) -> tuple[set[str], int]:
    """n requests (every third streamed) at concurrency 32; the ids of those answered, and the 5xx count."""
    answered: set[str] = set()
    errors = 0
    sem = asyncio.Semaphore(32)
    t0 = time.perf_counter()

    async def one(c: httpx.AsyncClient, i: int) -> None:
        nonlocal errors
        if stop_after_s is not None and time.perf_counter() - t0 > stop_after_s + 5:
            return
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG, "stream": i % 3 == 0}
        async with sem:
            try:
                r = await c.post(url + "/v1/chat/completions", json=body, headers={"x-wattlens-user": f"u{i}"})
            except httpx.HTTPError:
                return  # the server is gone: not answered
        if r.status_code >= 500:
            errors += 1
        elif r.status_code == 200 and (not body["stream"] or "[DONE]" in r.text):
            answered.add(f"u{i}")

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as c:
        await asyncio.gather(*(one(c, i) for i in range(n)))
    return answered, errors


def recorded_users(gw: Gateway) -> set[str]:
    return {str(r.get("user")) for r in gw.records() if r.get("outcome") == "ok"}


class Prober:
    """An unrelated request every 20 ms; the longest wait is the stall others cause."""

    def __init__(self, url: str) -> None:
        self.url, self.worst_ms, self._stop = url, 0.0, False
        self.degraded = 0  # answers 503: the ledger is degraded (database down), the gateway still serves
        self.samples_ms: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self._stop:
                t = time.perf_counter()
                try:
                    r = c.get(self.url + "/healthz")
                except httpx.HTTPError:
                    return
                self.degraded += r.status_code == 503
                self.samples_ms.append((time.perf_counter() - t) * 1000)
                self.worst_ms = max(self.worst_ms, self.samples_ms[-1])
                time.sleep(0.02)

    def stop(self) -> float:
        self._stop = True
        self.thread.join(timeout=5)
        return self.worst_ms


def row(name: str, answered: int, recorded: int, lost: int, five: int, stall: float | None) -> list[str]:
    return [name, str(answered), str(recorded), str(lost), str(five), "-" if stall is None else f"{stall:.0f}"]


def kill_scenario(up: str, tmp: Path, n: int, sig: int) -> list[str]:
    gw = Gateway(up, tmp / f"{sig}.db")

    async def go() -> tuple[set[str], int]:
        task = asyncio.create_task(load(gw.url, n))
        await asyncio.sleep(1.0)
        gw.proc.send_signal(sig)
        return await task

    answered, five = asyncio.run(go())
    gw.stop(sig)
    recorded = recorded_users(gw)
    name = "SIGTERM under load" if sig == signal.SIGTERM else "SIGKILL under load"
    return row(name, len(answered), len(answered & recorded), len(answered - recorded), five, None)


def fuzz_scenario(up: str, tmp: Path, n: int) -> list[str]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    gw = Gateway(up, tmp / "fuzz.db")
    prober = Prober(gw.url)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
    bodies = st.one_of(
        st.fixed_dictionaries({"model": st.text(max_size=30)}, optional={"messages": json_values, "stream": json_values}),
        st.dictionaries(st.sampled_from(["model", "messages", "stream", "input", "stream_options"]), json_values),
        json_values,
    )
    counts = {"sent": 0, "5xx": 0}
    with httpx.Client(timeout=30) as c:
        endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"]

        @settings(max_examples=n * len(endpoints), deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies, path=st.sampled_from(endpoints))
        def one(body: Any, path: str) -> None:
            r = c.post(gw.url + path, content=json.dumps(body), headers={"content-type": "application/json"})
            counts["sent"] += 1
            counts["5xx"] += r.status_code >= 500 and r.status_code != 502  # 502: the fake upstream refused it

        one()
    stall = prober.stop()
    gw.stop()
    written = len(gw.records())  # every request gets a record, refused ones included
    return row("fuzz (Hypothesis, 5 endpoints)", counts["sent"], written, counts["sent"] - written, counts["5xx"], stall)


def locked_scenario(up: str, tmp: Path, n: int) -> list[str]:
    gw = Gateway(up, tmp / "locked.db")
    prober = Prober(gw.url)
    holder = sqlite3.connect(gw.db, isolation_level=None, timeout=30)

    async def go() -> tuple[set[str], int]:
        holder.execute("BEGIN EXCLUSIVE")  # the database cannot be written for 8 s
        task = asyncio.create_task(load(gw.url, n))
        await asyncio.sleep(8.0)
        holder.execute("COMMIT")
        return await task

    answered, five = asyncio.run(go())
    deadline = time.time() + 60
    while time.time() < deadline and len(recorded_users(gw)) < len(answered):
        time.sleep(0.5)
    stall = prober.stop()
    gw.stop()
    recorded = recorded_users(gw)
    return row("database locked 8 s", len(answered), len(answered & recorded), len(answered - recorded), five, stall)


def disk_full_scenario(up: str, tmp: Path, n: int) -> list[str]:
    """A file-size limit on the gateway process stands in for a full disk, then is lifted (prlimit)."""
    gw = Gateway(up, tmp / "full.db")
    asyncio.run(load(gw.url, 50))  # the ledger has a few pages
    size = sum(p.stat().st_size for p in tmp.glob("full.db*"))
    limit = ["prlimit", f"--pid={gw.proc.pid}"]
    subprocess.run([*limit, f"--fsize={size + 4096}:unlimited"], check=True)
    prober = Prober(gw.url)
    answered, five = asyncio.run(load(gw.url, n))
    time.sleep(2.0)
    subprocess.run([*limit, "--fsize=unlimited:unlimited"], check=True)  # space is back
    deadline = time.time() + 60
    while time.time() < deadline and len(recorded_users(gw) & answered) < len(answered):
        time.sleep(0.5)
    stall = prober.stop()
    gw.stop()
    recorded = recorded_users(gw)
    return row(
        "disk full (file-size limit), then freed",
        len(answered),
        len(answered & recorded),
        len(answered - recorded),
        five,
        stall,
    )


def slow_clients_scenario(up: str, tmp: Path, n: int) -> list[str]:
    gw = Gateway(up, tmp / "slow.db")
    socks = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        socks.append(s)
    opened = time.monotonic()
    prober = Prober(gw.url)
    answered, five = asyncio.run(load(gw.url, n))
    stall = prober.stop()
    # The body never comes: each must be answered 408 and closed by the 10 s read deadline (+ 5 s slack).
    time.sleep(max(0.0, opened + 15 - time.monotonic()))
    cut = 0
    for s in socks:
        s.settimeout(0.5)
        try:
            got = s.recv(4096)
            cut += got == b"" or got.startswith(b"HTTP/1.1 408 ")
        except TimeoutError:
            pass
        except OSError:  # reset: closed too
            cut += 1
        s.close()
    gw.stop()
    recorded = recorded_users(gw)
    name = f"300 slow clients ({cut} cut by the read deadline within 15 s)"
    return row(name, len(answered), len(answered & recorded), len(answered - recorded), five, stall)


def big_ledger(tmp: Path) -> Path:
    from wattlens.report.demo import write_demo

    db = tmp / "big.db"
    if not db.exists():
        write_demo(str(db), ["gpt-4o-mini", "claude-haiku-4-5"], ["FR", "US-VA"], limit=50_000)
    return db


def summary_scenario(up: str, tmp: Path, n: int, src: Path | None = None) -> list[str]:
    """The stall is measured while 3 summaries and 3 CSV exports run (the first one starts the worker process)."""
    import shutil

    db = tmp / f"big-{len(list(tmp.glob('big-*.db')))}.db"
    shutil.copy(big_ledger(tmp), db)
    gw = Gateway(up, db, src)
    prober = Prober(gw.url)
    with httpx.Client(timeout=120) as c:
        for _ in range(3):
            c.get(gw.url + "/wattlens/api/summary").raise_for_status()
            c.get(gw.url + "/wattlens/api/export?format=csv").raise_for_status()
    stall = prober.stop()
    waits = sorted(prober.samples_ms)
    spread = f" (p50 {waits[len(waits) // 2]:.0f}, p99 {waits[int(len(waits) * 0.99)]:.0f})"
    answered, five = asyncio.run(load(gw.url, n // 3))
    gw.stop()
    recorded = recorded_users(gw)
    n_rec, n_lost = len(answered & recorded), len(answered - recorded)
    name = "summary + export of 50,000 records"
    if src is not None:
        rev = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        name += f" (baseline: {rev.stdout.strip() or src})"
    return [*row(name, len(answered), n_rec, n_lost, five, stall)[:-1], f"{stall:.0f}{spread}"]


class PgCluster:
    """A throwaway PostgreSQL server on loopback (as tests/test_ledger.py starts one), stopped and started at will."""

    def __init__(self, tmp: Path) -> None:
        import shutil

        initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
        if initdb is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bin, self.root, self.port = Path(initdb).parent, Path(tempfile.mkdtemp(prefix="wattlens-pg-")), free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(self.root, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.root / "data"
        subprocess.run(
            [*self.prefix, str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "wl"],
            check=True,
            capture_output=True,
        )
        self.ctl = [*self.prefix, str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w"]
        self.opts = ["-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"]
        self.start()
        self.url = f"postgresql://wl@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run([*self.ctl, *self.opts, "start"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.ctl, "-m", "fast", "stop"], check=True, capture_output=True)

    def remove(self) -> None:
        import shutil

        subprocess.run([*self.ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_scenario(up: str, tmp: Path, n: int) -> list[str]:
    """PostgreSQL stopped under load for 6 s, then started: the writer spills to its journal and replays."""
    pg = PgCluster(tmp)
    try:
        gw = Gateway(up, pg.url)
        prober = Prober(gw.url)

        async def go() -> tuple[set[str], int]:
            task = asyncio.create_task(load(gw.url, n))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(6.0)
            await asyncio.to_thread(pg.start)
            return await task

        answered, five = asyncio.run(go())
        deadline = time.time() + 60
        while time.time() < deadline and len(recorded_users(gw) & answered) < len(answered):
            time.sleep(0.5)
        stall = prober.stop()
        healthy = httpx.get(gw.url + "/healthz", timeout=30).status_code == 200
        gw.stop()
        recorded = recorded_users(gw)
    finally:
        pg.remove()
    seen = f"/healthz 503 degraded {prober.degraded} times, then {'ok' if healthy else 'STILL DEGRADED'}"
    name = f"PostgreSQL stopped 6 s under load, then started ({seen})"
    return row(name, len(answered), len(answered & recorded), len(answered - recorded), five, stall)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them (the machine is shared)."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


SCENARIOS = ("sigterm", "sigkill", "fuzz", "locked", "disk", "slow", "summary", "postgres")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1500, help="requests per load phase")
    ap.add_argument("--fuzz", type=int, default=300, help="Hypothesis examples per endpoint")
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated scenarios out of {','.join(SCENARIOS)}")
    ap.add_argument("--baseline", type=Path, help="a checkout (git worktree) whose gateway also runs the summary scenario")
    ap.add_argument("--rounds", type=int, default=1, help="summary scenario runs (alternating with the baseline's)")
    ap.add_argument("--output", default="chaos.md", help="file name under bench/results/")
    args = ap.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if unknown := set(only) - set(SCENARIOS):
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if args.baseline is not None and not (args.baseline / "src" / "wattlens").is_dir():
        ap.error(f"--baseline {args.baseline}: not a wattlens checkout (no src/wattlens)")
    tmp = Path(tempfile.mkdtemp())
    upstream_port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "fast_upstream:app", "--app-dir", str(HERE), "--port", str(upstream_port)]
    up = subprocess.Popen([*cmd, "--log-level", "error", "--no-access-log"])
    os.environ["XDG_DATA_HOME"] = str(tmp)  # spill journals of this run stay in it
    load_before = load_average()
    try:
        url = f"http://127.0.0.1:{upstream_port}/v1"
        wait(url + "/models")
        n = args.requests
        runs = {
            "sigterm": lambda: [kill_scenario(url, tmp, n, signal.SIGTERM)],
            "sigkill": lambda: [kill_scenario(url, tmp, n, signal.SIGKILL)],
            "fuzz": lambda: [fuzz_scenario(url, tmp, args.fuzz)],
            "locked": lambda: [locked_scenario(url, tmp, n)],
            "disk": lambda: [disk_full_scenario(url, tmp, n)],
            "slow": lambda: [slow_clients_scenario(url, tmp, n // 3)],
            # The baseline's summary runs just before this checkout's, so both see the same machine load.
            "summary": lambda: [
                r
                for _ in range(args.rounds)
                for r in [
                    *([summary_scenario(url, tmp, n, args.baseline)] if args.baseline else []),
                    summary_scenario(url, tmp, n),
                ]
            ],
            "postgres": lambda: [postgres_scenario(url, tmp, n)],
        }
        rows = [r for name in SCENARIOS if name in only for r in runs[name]()]
        headers = ["scenario", "requests answered", "records written", "records lost", "5xx", "max stall ms"]
        body = f"Load average (`uptime`, 1/5/15 min): {load_before} at the start, {load_average()} at the end.\n\n"
        body += table(headers, rows)
        body += (
            "\n\n`records lost` counts requests answered 200 whose record is not in the ledger. `max stall ms` is "
            "the longest wait of an unrelated request (GET /healthz every 20 ms) during the scenario (for the "
            "summary: while the 3 summaries and 3 exports run, with the median and 99th percentile wait); gateway, "
            "upstream, load and prober share this machine's cores with whatever else runs on it. Targets: 0 lost "
            "on SIGTERM and on outages "
            "within the spill capacity; SIGKILL loses at most one flush interval (0.2 s) of records; no 5xx from "
            "client input; no unrelated request stalled over 100 ms by a summary, export or /metrics."
        )
        command = f"python bench/chaos.py --requests {args.requests} --fuzz {args.fuzz}"
        command += f" --only {','.join(only)}" if set(only) != set(SCENARIOS) else ""
        command += f" --baseline {args.baseline}" if args.baseline else ""
        command += f" --rounds {args.rounds}" if args.rounds != 1 else ""
        write(args.output, "Chaos: records lost under faults", body, command)
    finally:
        up.terminate()
        up.wait(timeout=10)


if __name__ == "__main__":
    main()
