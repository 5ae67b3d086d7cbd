"""The ledger: chaining, every kind of tampering detected, exports, PostgreSQL for real."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from upstream import free_port

from wattlens.ledger import LedgerWriter, open_ledger, verify
from wattlens.ledger.export import export
from wattlens.receipt import LLMRequest, Place, estimate_footprint


def rec(i: int) -> dict[str, Any]:
    fp = estimate_footprint(LLMRequest(model="gpt-4o-mini", input_tokens=100 + i, output_tokens=50), Place(zone="FR"))
    return {
        "id": f"r{i}",
        "ts": f"2026-11-{1 + i % 28:02d}T10:00:00+00:00",
        "model_served": "gpt-4o-mini",
        "status": 200,
        "tokens": fp.as_dict()["tokens"],  # as the gateway writes it: the receipt's own counts
        "footprint": fp.as_dict(),
        "team": "t",
    }


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    p = tmp_path / "l.db"
    led = open_ledger(p)
    led.append([rec(i) for i in range(10)])
    led.close()
    return p


def problems(p: Path) -> list[tuple[int, str]]:
    led = open_ledger(p)
    try:
        return [(x.seq, x.kind) for x in verify(list(led.rows()))]
    finally:
        led.close()


def sql(p: Path, q: str, *args: object) -> None:
    con = sqlite3.connect(p)
    con.execute(q, args)
    con.commit()
    con.close()


def test_intact_chain_verifies_and_survives_reopen(db: Path) -> None:
    assert problems(db) == []
    led = open_ledger(db)
    led.append([rec(99)])
    assert led.count() == 11
    led.close()
    assert problems(db) == []


def test_changed_record_is_named(db: Path) -> None:
    con = sqlite3.connect(db)
    body = json.loads(con.execute("SELECT body FROM records WHERE seq = 4").fetchone()[0])
    con.close()
    body["footprint"]["energy_wh"]["mid"] /= 10  # someone shrinks a receipt
    sql(db, "UPDATE records SET body = ? WHERE seq = 4", json.dumps(body, sort_keys=True, separators=(",", ":")))
    assert problems(db) == [(4, "changed")]


def test_changed_and_rehashed_record_breaks_the_next_link(db: Path) -> None:
    from wattlens.ledger.chain import link

    con = sqlite3.connect(db)
    prev, body = con.execute("SELECT prev_hash, body FROM records WHERE seq = 4").fetchone()
    con.close()
    forged = body.replace('"team":"t"', '"team":"x"')
    sql(db, "UPDATE records SET body = ?, hash = ? WHERE seq = 4", forged, link(prev, 4, forged))
    assert problems(db) == [(5, "inserted")]  # record 5 no longer links to what precedes it


def test_removed_record_is_named(db: Path) -> None:
    sql(db, "DELETE FROM records WHERE seq = 6")
    assert problems(db) == [(7, "removed")]


def test_inserted_record_is_named(db: Path) -> None:
    con = sqlite3.connect(db)
    row = con.execute("SELECT ts, body, prev_hash, hash FROM records WHERE seq = 3").fetchone()
    con.close()
    sql(db, "INSERT INTO records (seq, ts, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?)", 11, *row)
    assert (11, "inserted") in problems(db) or (11, "changed") in problems(db)


def test_reordered_records_are_named(db: Path) -> None:
    con = sqlite3.connect(db)
    r3 = con.execute("SELECT ts, body, prev_hash, hash FROM records WHERE seq = 3").fetchone()
    r4 = con.execute("SELECT ts, body, prev_hash, hash FROM records WHERE seq = 4").fetchone()
    con.execute("UPDATE records SET ts = ?, body = ?, prev_hash = ?, hash = ? WHERE seq = 3", r4)
    con.execute("UPDATE records SET ts = ?, body = ?, prev_hash = ?, hash = ? WHERE seq = 4", r3)
    con.commit()
    con.close()
    found = problems(db)
    assert (3, "reordered") in found and (4, "reordered") in found


def test_verify_command_exit_codes(db: Path) -> None:
    cmd = [sys.executable, "-m", "wattlens.cli", "verify", "--ledger", str(db)]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "10 records" in ok.stdout
    sql(db, "DELETE FROM records WHERE seq = 2")
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1 and "record 3: removed" in bad.stderr


def test_exports(db: Path, tmp_path: Path) -> None:
    led = open_ledger(db)
    out = tmp_path / "x.csv"
    assert export(led.records(), "csv", str(out)) == 10
    rows = list(csv.DictReader(out.open()))
    assert float(rows[0]["energy_wh_mid"]) == pytest.approx(rec(0)["footprint"]["energy_wh"]["mid"])
    assert rows[0]["zone"] == "FR"
    jl = tmp_path / "x.jsonl"
    assert export(led.records(since="2026-11-03", until="2026-11-05"), "jsonl", str(jl)) == 2
    pq = tmp_path / "x.parquet"
    assert export(led.records(), "parquet", str(pq)) == 10
    import pyarrow.parquet as papq

    t = papq.read_table(pq)
    assert t.num_rows == 10 and "carbon_location_g_mid" in t.column_names
    led.close()


def test_writer_batches_off_thread_and_flushes_on_close(tmp_path: Path) -> None:
    w = LedgerWriter(open_ledger(tmp_path / "w.db"))
    for i in range(1000):
        w.submit({**rec(i % 5), "id": f"w{i}"})
    w.close()
    assert problems(tmp_path / "w.db") == []
    led = open_ledger(tmp_path / "w.db")
    assert led.count() == 1000
    led.close()


def test_a_script_that_exits_without_closing_still_writes_its_records(tmp_path: Path) -> None:
    """The writer is a daemon thread: without its exit hook, a short script's records were lost."""
    code = (
        "import sys\n"
        "from wattlens.ledger import LedgerWriter, open_ledger\n"
        "w = LedgerWriter(open_ledger(sys.argv[1]), flush_s=30.0, linger_s=30.0)\n"  # nothing written before exit
        "for i in range(3):\n"
        "    w.submit({'id': f'x{i}', 'ts': '2026-12-01T00:00:00+00:00', 'footprint': None})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.db")], check=True, timeout=60)
    led = open_ledger(tmp_path / "x.db")
    assert led.count() == 3
    led.close()
    assert problems(tmp_path / "x.db") == []


# -- PostgreSQL, for real ------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    for cand in [shutil.which("initdb"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)]:
        if cand:
            return Path(cand).parent
    return None


RESTART: dict[str, Any] = {}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="wattlens-pg-"))  # outside pytest's 0700 tree: postgres must reach it
    data = root / "data"
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "wl"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
    RESTART["pg"] = lambda: subprocess.run([*ctl, "-m", "fast", "restart"], check=True, capture_output=True)
    try:
        yield f"postgresql://wl@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_ledger_with_two_writers(postgres: str) -> None:
    a, b = LedgerWriter(open_ledger(postgres)), LedgerWriter(open_ledger(postgres))  # two gateway replicas
    for i in range(200):
        (a if i % 2 else b).submit(rec(i))
    a.close()
    b.close()
    led = open_ledger(postgres)
    rows = list(led.rows())
    assert len(rows) == 200 and verify(rows) == []
    assert sum(1 for _ in led.records(since="2026-11-01", until="2026-11-02")) == 8
    led._db.execute('UPDATE wattlens_records SET body = replace(body, \'"team":"t"\', \'"team":"z"\') WHERE seq = 7')
    assert next((p.seq, p.kind) for p in verify(list(led.rows()))) == (7, "changed")
    led._db.execute("DROP TABLE wattlens_records")
    led.close()


def test_postgres_streams_read_ahead_and_stop_cleanly(postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream's reader thread fetches ahead in chunks; a caller that stops early leaves no thread and no
    open connection behind; a failing query raises in the caller."""
    import threading

    import psycopg

    from wattlens.ledger import postgres as pg

    monkeypatch.setattr(pg, "STREAM_ROWS", 7)  # many chunks for 60 rows
    w = LedgerWriter(open_ledger(postgres))
    for i in range(60):
        w.submit(rec(1000 + i))
    w.close()
    led = open_ledger(postgres)
    try:
        assert [r.seq for r in led.rows()] == list(range(1, 61))  # every chunk, in order
        it = led.rows()
        assert next(it).seq == 1
        it.close()  # stopped after one row: the reader is told to stop and is joined
        assert not [t for t in threading.enumerate() if t.name == "wattlens-ledger-read"]
        with psycopg.connect(postgres, autocommit=True) as db:
            (others,) = db.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'").fetchone()
        assert others == 0
        with pytest.raises(psycopg.errors.UndefinedTable):
            list(led._stream("SELECT * FROM no_such_table"))
    finally:
        led._db.execute("DROP TABLE wattlens_records")
        led.close()


def test_postgres_restart_loses_nothing(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # the spill journal of a PostgreSQL ledger
    w = LedgerWriter(open_ledger(postgres), flush_s=0.05)
    for i in range(50):
        w.submit({**rec(i), "id": f"before{i}"})
    w.flush()
    RESTART["pg"]()  # the server goes away and comes back: the writer's connection is dead
    for i in range(200):
        w.submit({**rec(i), "id": f"after{i}"})
    deadline = time.time() + 20
    while time.time() < deadline and (w.degraded or w.written < 250):
        time.sleep(0.1)
    w.close()
    led = open_ledger(postgres)
    ids = {r["id"] for r in led.records()}
    rows = list(led.rows())
    led._db.execute("DROP TABLE wattlens_records")
    led.close()
    assert {f"before{i}" for i in range(50)} | {f"after{i}" for i in range(200)} <= ids
    assert verify(rows) == []


def test_postgres_url_error_hides_password() -> None:
    from wattlens.errors import WattlensError

    t0 = time.time()
    with pytest.raises(WattlensError) as e:
        open_ledger("postgresql://u:hunter2@127.0.0.1:9/db?connect_timeout=2")
    assert "hunter2" not in str(e.value) and time.time() - t0 < 10


def test_postgres_replica_starting_while_another_appends(postgres: str) -> None:
    """A replica that opens the log (its schema statements) while another appends: neither fails."""
    import threading

    led = open_ledger(postgres)
    led._db.execute("DROP TABLE IF EXISTS wattlens_records, wattlens_log_state, wattlens_log_nodes")
    led.close()
    writer = open_ledger(postgres)
    errors: list[BaseException] = []
    stop = threading.Event()

    def append() -> None:
        i = 10_000
        try:
            while not stop.is_set():
                writer.append([{**rec(j), "id": f"w{j}"} for j in range(i, i + 50)])
                i += 50
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=append)
    t.start()
    try:
        for _ in range(40):
            open_ledger(postgres).close()
    finally:
        stop.set()
        t.join()
        writer.close()
    assert errors == []
