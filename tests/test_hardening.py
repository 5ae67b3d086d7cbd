"""Nothing lost: poison records, failing databases and two processes on one file (issue #14)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from wattlens.ledger import LedgerWriter, open_ledger, verify
from wattlens.ledger.chain import canonical
from wattlens.ledger.sqlite import SQLiteLedger


def body(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "ts": f"2026-11-25T10:00:{i % 60:02d}+00:00", "model_requested": "m", **extra}


def ids(path: Path) -> list[str]:
    led = open_ledger(path)
    try:
        return [r["id"] for r in led.records()]
    finally:
        led.close()


def test_a_poison_record_is_set_aside_and_the_rest_are_written(tmp_path: Path) -> None:
    w = LedgerWriter(open_ledger(tmp_path / "l.db"), flush_s=0.02)
    poison = body(1, model_requested="gpt-4o-mini\ud800")  # a lone surrogate: valid JSON, not valid Unicode
    with pytest.raises(ValueError):
        canonical(poison)
    w.submit(body(0))
    w.submit(poison)
    w.submit(body(2, latency_s=float("nan")))  # NaN has no JSON form
    w.submit(lambda: 1 / 0)  # type: ignore[arg-type, return-value]  # a record builder that fails
    w.submit(body(3))
    w.close()
    got = ids(tmp_path / "l.db")
    assert len(got) == 3 and (got[0], got[2]) == ("r0", "r3")
    assert w.dead == 2 and w.degraded is False
    dead = [json.loads(x) for x in (tmp_path / "l.db.dead.jsonl").read_text().splitlines()]
    assert [d["record"]["id"] for d in dead] == ["r1", "r2"] and "Unicode" in dead[0]["why"]
    # The builder that failed still leaves a record of the request (with its error), not nothing.
    led = open_ledger(tmp_path / "l.db")
    errors = [r for r in led.records() if r.get("footprint_error")]
    led.close()
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0]["footprint_error"]


class Flaky:
    """A ledger whose database is down until `up` is set; counts the attempts."""

    def __init__(self, inner: SQLiteLedger) -> None:
        self.inner, self.up, self.attempts = inner, False, 0
        self.spill_path, self.dead_path = inner.spill_path, inner.dead_path

    def append(self, bodies: Sequence[Mapping[str, Any]]) -> int:
        self.attempts += 1
        if not self.up:
            raise sqlite3.OperationalError("database or disk is full")
        return self.inner.append(bodies)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_unwritable_database_spills_backs_off_and_recovers(tmp_path: Path) -> None:
    flaky = Flaky(SQLiteLedger(tmp_path / "l.db"))
    w = LedgerWriter(flaky, flush_s=0.01)  # type: ignore[arg-type]
    for i in range(300):
        w.submit(body(i))
    time.sleep(1.0)
    assert w.degraded and flaky.attempts < 15  # exponential back-off, not a hot loop
    assert len(w.errors) <= 20 and w.spilled == 300  # in the journal on disk, not lost and not in RAM
    flaky.up = True
    deadline = time.time() + 40
    while w.degraded and time.time() < deadline:
        time.sleep(0.05)
    assert not w.degraded  # /healthz returns to ok
    for i in range(300, 310):
        w.submit(body(i))
    w.close()
    got = ids(tmp_path / "l.db")
    assert got == [f"r{i}" for i in range(310)]  # in order, each once
    assert not flaky.spill_path.exists()


def test_a_journal_left_by_a_dead_process_is_replayed_at_the_next_start(tmp_path: Path) -> None:
    led = SQLiteLedger(tmp_path / "l.db")
    led.spill_path.write_text("".join(json.dumps(body(i)) + "\n" for i in range(5)))
    w = LedgerWriter(led, flush_s=0.01)
    w.submit(body(5))
    w.close()
    assert ids(tmp_path / "l.db") == [f"r{i}" for i in range(6)]


def test_two_processes_on_one_sqlite_ledger_lose_nothing(tmp_path: Path) -> None:
    a, b = SQLiteLedger(tmp_path / "l.db"), SQLiteLedger(tmp_path / "l.db")  # an overlapping restart

    def write(led: SQLiteLedger, start: int) -> None:
        for i in range(start, start + 200, 2):
            led.append([body(i)])

    threads = [threading.Thread(target=write, args=(a, 0)), threading.Thread(target=write, args=(b, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(a.rows())
    a.close()
    b.close()
    assert len(rows) == 200 and verify(rows) == []


def test_a_record_id_is_written_once(tmp_path: Path) -> None:
    led = SQLiteLedger(tmp_path / "l.db")
    assert led.append([body(0), body(1), body(0)]) == 2
    assert led.append([body(1), body(2)]) == 1
    rows = list(led.rows())
    led.close()
    assert [json.loads(r.body)["id"] for r in rows] == ["r0", "r1", "r2"] and verify(rows) == []


def test_verify_of_a_ledger_whose_every_record_changed_is_quick(tmp_path: Path) -> None:
    led = SQLiteLedger(tmp_path / "l.db")
    for k in range(0, 3000, 500):
        led.append([body(i) for i in range(k, k + 500)])
    led.close()
    con = sqlite3.connect(tmp_path / "l.db")
    con.execute("UPDATE records SET body = replace(body, '\"m\"', '\"x\"')")
    con.commit()
    con.close()
    led = open_ledger(tmp_path / "l.db")
    rows = list(led.rows())
    led.close()
    t0 = time.perf_counter()
    found = verify(rows)
    elapsed = time.perf_counter() - t0
    assert len([p for p in found if p.kind == "changed"]) == 3000
    assert elapsed < 5.0  # was ~47 s for 10k records: 2,001 positions searched per record


def test_readers_refuse_a_missing_ledger_and_serve_a_taken_port(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    def wl(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "wattlens.cli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    r = wl("verify", "--ledger", str(tmp_path / "typo.db"))
    assert r.returncode == 2 and "no ledger at" in r.stderr and not (tmp_path / "typo.db").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = wl("serve", "--upstream", "http://127.0.0.1:9/v1", "--port", str(port), "--ledger", "none")
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "gateway on" not in r.stderr


def test_a_full_disk_keeps_records_in_memory_until_the_database_is_back(tmp_path: Path) -> None:
    flaky = Flaky(SQLiteLedger(tmp_path / "l.db"))
    flaky.spill_path = tmp_path  # a directory: opening it for appending fails, as on a full disk
    w = LedgerWriter(flaky, flush_s=0.01)  # type: ignore[arg-type]
    for i in range(50):
        w.submit(body(i))
    time.sleep(0.5)
    assert w.degraded and w.stats()["held_in_memory"] == 50 and w.lost == 0
    flaky.up = True
    deadline = time.time() + 40
    while w.degraded and time.time() < deadline:
        time.sleep(0.05)
    w.close()
    assert ids(tmp_path / "l.db") == [f"r{i}" for i in range(50)] and w.lost == 0


def test_a_journal_line_cut_by_a_crash_is_set_aside_and_the_rest_replayed(tmp_path: Path) -> None:
    led = SQLiteLedger(tmp_path / "l.db")
    good = "".join(json.dumps(body(i)) + "\n" for i in range(3))
    led.spill_path.write_text(good + json.dumps(body(3))[:25])  # the process died in the middle of a line
    w = LedgerWriter(led, flush_s=0.01)
    w.submit(body(4))
    w.close()
    assert ids(tmp_path / "l.db") == ["r0", "r1", "r2", "r4"] and w.dead == 1 and not w.degraded


# -- slow clients: read deadlines and the connection limit (gateway/timeouts.py) ------------------------


class SlowGateway:
    """The gateway app under uvicorn with serve()'s own settings, on loopback, in a thread."""

    def __init__(self, tmp: Path, header_timeout_s: float, max_connections: int = 768) -> None:
        import uvicorn
        from upstream import free_port

        from wattlens.context import Context, Place
        from wattlens.gateway import server_options
        from wattlens.gateway.app import create_app
        from wattlens.gateway.config import GatewayConfig, Upstream
        from wattlens.gateway.transport import MockRequest, MockTransport

        async def answer(req: MockRequest) -> tuple[int, bytes]:
            usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            return 200, json.dumps({"model": "gpt-4o-mini", "choices": [], "usage": usage}).encode()

        self.port = free_port()
        up = Upstream("u", "openai", "http://up.invalid/v1")
        cfg = GatewayConfig((up,), port=self.port, header_timeout_s=header_timeout_s, context=Context(Place(zone="FR")))
        self.writer = LedgerWriter(open_ledger(tmp / "l.db"), flush_s=0.01)
        app = create_app(cfg, self.writer, transports={"u": MockTransport(answer)})
        options = server_options(cfg, max_connections=max_connections)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on", **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.db, self.url = tmp / "l.db", f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowGateway:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def trickle(self, head: bytes, tail: bytes, every_s: float = 0.05) -> tuple[bytes, float]:
        """Send `head`, then `tail` a byte at a time; what the server answered and when it closed."""
        import socket

        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(head)
            s.settimeout(every_s)
            got = b""
            for i in range(len(tail)):
                try:
                    s.sendall(tail[i : i + 1])
                    chunk = s.recv(4096)
                except TimeoutError:
                    continue
                except OSError:  # reset by the server while we were still sending
                    break
                got += chunk
                if not chunk:
                    break
            return got, time.monotonic() - t0


def get(url: str) -> int:
    import httpx

    return httpx.get(url, timeout=30).status_code


def test_headers_sent_a_byte_at_a_time_are_cut_and_others_are_served_meanwhile(tmp_path: Path) -> None:
    with SlowGateway(tmp_path, header_timeout_s=0.5) as gw:
        statuses: list[int] = []
        t = threading.Thread(target=lambda: statuses.extend(get(gw.url + "/healthz") for _ in range(5)))
        t.start()
        got, took_s = gw.trickle(b"GET /healthz HTTP/1.1\r\n", b"X-Slow: " + b"a" * 2000)  # would take 100 s
        t.join()
    assert got.startswith(b"HTTP/1.1 408 ") and b"connection: close" in got
    assert 0.5 <= took_s < 0.5 + 5  # cut at the deadline (slack for a loaded machine), not after 100 s
    assert statuses == [200] * 5


def test_a_body_trickle_is_cut_and_recorded_while_a_slow_steady_upload_goes_through(tmp_path: Path) -> None:
    import socket

    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 8000}]}).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    head += b"content-length: %d\r\n\r\n" % len(body)
    with SlowGateway(tmp_path, header_timeout_s=0.5) as gw:
        got, took_s = gw.trickle(head, body[:2000])  # 20 bytes/s: under the 500 bytes/s floor
        # 8 KB in 1 KB pieces every 0.15 s: longer than the 0.5 s allowance, but each piece extends it by 2 s.
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(head)
            for i in range(0, len(body), 1000):
                time.sleep(0.15)
                s.sendall(body[i : i + 1000])
            answer = s.recv(4096)
    gw.writer.close()
    assert got.startswith(b"HTTP/1.1 408 ") and 0.5 <= took_s < 0.5 + 5
    assert answer.startswith(b"HTTP/1.1 200 ")
    led = open_ledger(gw.db)
    outcomes = sorted(str(r["outcome"]) for r in led.records())
    led.close()
    assert outcomes == ["client_disconnected", "ok"]  # the cut request is recorded too


def test_past_the_connection_limit_clients_get_503_until_the_slow_ones_are_cut(tmp_path: Path) -> None:
    import socket

    with SlowGateway(tmp_path, header_timeout_s=1.0, max_connections=3) as gw:
        slow = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(3)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.")  # and nothing more
        refused = get(gw.url + "/healthz")
        for s in slow:
            s.settimeout(30)
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")
            s.close()
        served = get(gw.url + "/healthz")
    assert (refused, served) == (503, 200)


def test_header_timeout_is_read_from_the_config_file_and_checked(tmp_path: Path) -> None:
    from wattlens.errors import ConfigError
    from wattlens.gateway import load_gateway_config, server_options

    f = tmp_path / "w.toml"
    f.write_text('[server]\nheader_timeout_s = 2.5\n[[upstreams]]\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert load_gateway_config(f).header_timeout_s == 2.5
    for bad in ("10", 0, -1, True):
        f.write_text(f'[server]\nheader_timeout_s = {json.dumps(bad)}\n[[upstreams]]\nbase_url = "http://127.0.0.1:9/v1"\n')
        with pytest.raises(ConfigError, match="header_timeout_s"):
            server_options(load_gateway_config(f))


# -- summary and export in a worker process (gateway/offload.py) ----------------------------------------


def test_summary_and_export_run_in_a_worker_process_and_say_what_is_wrong(tmp_path: Path) -> None:
    import httpx
    from upstream import ServerThread

    from wattlens.gateway.app import create_app
    from wattlens.gateway.config import GatewayConfig, Upstream
    from wattlens.ledger.summary import summarise

    db = tmp_path / "l.db"
    writer = LedgerWriter(open_ledger(db), flush_s=0.01)
    for i in range(30):
        writer.submit(body(i, model_served="a" if i % 3 else "b", tokens={"input": i, "output": 2 * i}))
    writer.flush()
    expected = summarise(open_ledger(db).records(), "model")
    cfg = GatewayConfig((Upstream("u", "openai", "http://127.0.0.1:9/v1"),), ledger=str(db))
    with ServerThread(create_app(cfg, writer)) as gw:
        got = httpx.get(gw.url + "/wattlens/api/summary?by=model", timeout=60).json()
        rows = httpx.get(gw.url + "/wattlens/api/export?format=jsonl", timeout=60).text.splitlines()
        bad_key = httpx.get(gw.url + "/wattlens/api/summary?by=colour", timeout=60)
        bad_format = httpx.get(gw.url + "/wattlens/api/export?format=xls", timeout=60)
    writer.close()
    assert got["groups"] == expected["groups"] and got["groups"]["b"]["tokens"]["input"] == sum(range(0, 30, 3))
    assert [json.loads(r)["id"] for r in rows] == [f"r{i}" for i in range(30)]
    assert 400 <= bad_key.status_code < 500 and "colour" in bad_key.text
    assert 400 <= bad_format.status_code < 500 and "xls" in bad_format.text


def test_the_worker_process_leaves_with_a_killed_gateway(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = (
        "import asyncio, os\n"
        "from wattlens.gateway.offload import in_worker\n"
        "print(asyncio.run(in_worker(os.getpid)), flush=True)\n"
        "os._exit(0)\n"  # no exit handlers run, as when the gateway is killed
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    worker = int(done.stdout.strip())
    assert worker not in (os.getpid(), 0)

    def alive() -> bool:  # a zombie left for a container's init to reap counts as gone
        try:
            return Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and alive():
        time.sleep(0.1)
    assert not alive()
