"""The transparency log at scale: appends, verify, proofs, migration, at 1 million entries.

    python bench/log.py [--entries 1000000] [--proofs 1000]            # SQLite -> results/log.md
    python bench/log.py --postgres [--entries 1000000]                 # PostgreSQL -> results/log-postgres.md

With --postgres a throw-away PostgreSQL server is started (initdb, loopback only) and the same
receipts are appended by one gateway-like writer process, then, on a fresh database, by two
processes at once (two gateway replicas on one log: each batch takes the advisory lock); then
verify, proofs and consistency proofs run on that log.

Entries are real receipts: the demo ledger's records (the Azure trace priced by the estimator)
tiled with fresh ids and times up to the requested size, appended in batches of 512 as the
gateway's writer does. Then, on that ledger:

- `wattlens verify --ledger L --checkpoint CP --key PUB` as a program (wall time, peak memory);
- inclusion proofs from the stored nodes (what `log proof` and `/wattlens/log/proof` do), their
  size and verification time, beside the previous way (read every leaf, then prove) in the same run;
- consistency proofs between random sizes;
- `wattlens log migrate` on the same ledger with its stored nodes removed (an older ledger).

The machine's load (`uptime`) is recorded beside the figures: other work on the machine slows them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import table, write

BATCH = 512  # the gateway writer's batch


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu_s() -> float:
    """CPU seconds used by finished child processes: less sensitive than wall time to other work on the machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def templates(tmp: Path, n: int) -> list[dict[str, Any]]:
    from wattlens.ledger import open_ledger
    from wattlens.report.demo import write_demo

    db = tmp / "demo.db"
    write_demo(
        str(db), ["gpt-4o-mini", "claude-haiku-4-5", "meta-llama/Meta-Llama-3.1-8B-Instruct"], ["FR", "US-VA", "PL"], limit=n
    )
    led = open_ledger(db)
    try:
        return list(led.records())
    finally:
        led.close()


def bodies_for(base: list[dict[str, Any]], start: int, stop: int, tag: str = "bench") -> list[dict[str, Any]]:
    out = []
    for i in range(start, stop):
        r = dict(base[i % len(base)])
        r["id"] = f"{tag}-{i:07d}"
        day = f"2026-{1 + (i // 100_000) % 12:02d}-{1 + (i // 4000) % 28:02d}"
        r["ts"] = f"{day}T{(i // 60) % 24:02d}:{i % 60:02d}:00+00:00"
        out.append(r)
    return out


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.3f} ms (p99 {sorted(xs)[int(len(xs) * 0.99) - 1] * 1e3:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=1000)
    ap.add_argument("--templates", type=int, default=2000)
    ap.add_argument("--keep", help="Keep the ledger in this directory.")
    ap.add_argument("--postgres", action="store_true", help="The log in PostgreSQL (one and two writers).")
    ap.add_argument("--previous", help="With --postgres: a checkout of an earlier commit, whose verify runs on the same log")
    ap.add_argument("--verify-runs", type=int, default=1, help="With --postgres: verify runs per commit (interleaved)")
    ap.add_argument("--append-worker", nargs=4, metavar=("URL", "TEMPLATES", "START", "STOP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.append_worker:
        append_worker(*args.append_worker)
        return
    if args.postgres:
        postgres_main(args)
        return

    from wattlens.ledger import merkle, open_ledger
    from wattlens.ledger.note import Checkpoint, Proof, Signer, read_checkpoint, sign_checkpoint

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="wattlens-log-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    before = uptime()
    try:
        base = templates(tmp, args.templates)
        n = args.entries
        db = tmp / "log.db"
        led = open_ledger(db)
        batch_s: list[float] = []
        t0, own0 = time.perf_counter(), time.process_time()
        for start in range(0, n, BATCH):
            bodies = bodies_for(base, start, min(start + BATCH, n))
            b0 = time.perf_counter()
            led.append(bodies)
            batch_s.append(time.perf_counter() - b0)
        append_s, append_cpu_s = time.perf_counter() - t0, time.process_time() - own0
        size_mb = db.stat().st_size / 1e6
        body_bytes = len(json.dumps(base[0]))
        rows.append(
            [
                f"append {n:,} receipts (batches of {BATCH})",
                f"{append_s:.1f} s wall ({append_cpu_s:.1f} s CPU) = {n / append_s:,.0f} appends/s; "
                f"batch p50 {statistics.median(batch_s) * 1e3:.1f} ms",
                f"file {size_mb:,.0f} MB; a receipt is ~{body_bytes:,} bytes of JSON",
            ]
        )

        key = Signer.generate("bench.wattlens.example/log")
        state = led.tree_state()
        note = sign_checkpoint(Checkpoint(key.name, state.size, state.root), key)
        cp, pub = tmp / "cp.txt", key.verifier.encode()
        cp.write_text(note)
        led.close()

        # verify, as a program: what an auditor runs
        cmd = [sys.executable, "-m", "wattlens.cli", "verify", "--ledger", str(db), "--checkpoint", str(cp), "--key", pub]
        t0, cpu0 = time.perf_counter(), cpu_s()
        res = subprocess.run(cmd, capture_output=True, text=True)
        verify_s, verify_cpu_s = time.perf_counter() - t0, cpu_s() - cpu0
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ok = res.returncode == 0 and "consistent with the checkpoint" in res.stdout
        rows.append(
            [
                f"`wattlens verify --checkpoint --key` over {n:,}",
                f"{verify_s:.1f} s wall, {verify_cpu_s:.1f} s CPU ({'verifies' if ok else 'FAILED: ' + res.stderr[-300:]})",
                f"peak memory {rss_mb:,.0f} MB; chain + every leaf + tree head + consistency proof",
            ]
        )

        # proofs from the stored nodes
        led = open_ledger(db)
        rng = random.Random(42)
        picks = [rng.randrange(n) for _ in range(args.proofs)]
        gen_s, check_s, sizes, hashes = [], [], [], []
        for i in picks:
            g0 = time.perf_counter()
            index, _body = led.locate(f"bench-{i:07d}")  # type: ignore[misc]
            path = merkle.inclusion_path(index, state.size, led.node)
            text = Proof(index, tuple(path), note).encode()
            gen_s.append(time.perf_counter() - g0)
            sizes.append(len(text.encode()))
            hashes.append(len(path))
            leaf = led.node(0, index)
            c0 = time.perf_counter()
            p = Proof.parse(text)
            cpx = read_checkpoint(p.checkpoint, key.verifier)
            assert merkle.verify_inclusion(p.index, cpx.size, leaf, p.path, cpx.root)
            check_s.append(time.perf_counter() - c0)
        rows.append(
            [
                f"inclusion proof at {n:,} (stored nodes, {args.proofs} records)",
                f"make {ms(gen_s)}; verify {ms(check_s)} (signature included)",
                f"{statistics.median(hashes):.0f} hashes, {statistics.median(sizes):,.0f} bytes as a tlog-proof",
            ]
        )
        o0 = time.perf_counter()
        leaves = led.leaves()
        old_path = merkle.inclusion_proof(picks[0], leaves)
        old_s = time.perf_counter() - o0
        same = old_path == merkle.inclusion_path(picks[0], state.size, led.node)
        del leaves
        rows.append(
            [
                "same proof, the previous way (read every leaf, then prove)",
                f"{old_s * 1e3:,.0f} ms",
                f"identical proof: {same}",
            ]
        )
        cons_s, cons_h = [], []
        for _ in range(min(args.proofs, 200)):
            m = rng.randrange(1, n)
            c0 = time.perf_counter()
            proof = merkle.consistency_path(m, n, led.node)
            cons_s.append(time.perf_counter() - c0)
            cons_h.append(len(proof))
        rows.append(
            [
                f"consistency proof, random old size to {n:,}",
                f"make {ms(cons_s)}",
                f"{statistics.median(cons_h):.0f} hashes",
            ]
        )
        led.close()

        # an older ledger: no stored nodes; `log migrate` brings them
        import sqlite3

        con = sqlite3.connect(db)
        con.execute("DELETE FROM log_nodes")
        con.execute("UPDATE log_state SET nodes = 0")
        con.commit()
        con.close()
        cmd = [sys.executable, "-m", "wattlens.cli", "log", "migrate", "--ledger", str(db)]
        t0, cpu0 = time.perf_counter(), cpu_s()
        res = subprocess.run(cmd, capture_output=True, text=True)
        migrate_s, migrate_cpu_s = time.perf_counter() - t0, cpu_s() - cpu0
        rows.append(
            [
                f"`wattlens log migrate` of {n:,} (nodes removed first)",
                f"{migrate_s:.1f} s wall, {migrate_cpu_s:.1f} s CPU",
                "ok" if res.returncode == 0 and f"tree size {n}" in res.stdout else "FAILED: " + res.stderr[-300:],
            ]
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    after = uptime()
    body = table(["what", "time", "notes"], rows)
    body += (
        f"\n\nLoad before: `{before}`\n\nLoad after: `{after}`\n\n"
        "The machine is shared (2 cores); a load average above 2 means other work ran beside the benchmark and "
        "the wall times above are longer than on a quiet machine; the CPU times are closer to what a quiet "
        "machine would show (a process alone on a core takes about its CPU time, plus its waits on the disk).\n"
    )
    cmd = "python bench/log.py" + (f" --entries {args.entries}" if args.entries != 1_000_000 else "")
    write("log.md", "Transparency log at scale (SQLite)", body, cmd)


def append_worker(url: str, templates_file: str, start: str, stop: str) -> None:
    """One gateway replica's writer: appends its share in batches; prints its appends/s."""
    from wattlens.ledger import open_ledger

    base = json.loads(Path(templates_file).read_text())
    led = open_ledger(url)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for b in range(int(start), int(stop), BATCH):
        led.append(bodies_for(base, b, min(b + BATCH, int(stop))))
    print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}))
    led.close()


def pg_server(root: Path) -> tuple[str, Any]:
    """A throw-away PostgreSQL on loopback (as the tests start one); returns its URL and a stop function."""
    import os
    import socket

    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if not initdb:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = Path(initdb).parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    init = [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "wl"]
    subprocess.run(init, check=True, capture_output=True)
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*ctl, "-o", opts, "start"], check=True, capture_output=True)
    url = f"postgresql://wl@127.0.0.1:{port}/postgres"
    return url, lambda: subprocess.run([*ctl, "-m", "fast", "stop"], capture_output=True)


def postgres_main(args: argparse.Namespace) -> None:
    import psycopg

    from wattlens.ledger import merkle, open_ledger
    from wattlens.ledger.note import Checkpoint, Proof, Signer, read_checkpoint, sign_checkpoint

    n = args.entries
    tmp = Path(tempfile.mkdtemp(prefix="wattlens-log-pg-"))
    pg_root = Path(tempfile.mkdtemp(prefix="wattlens-pg-"))  # its own: postgres must reach it (not under a 0700 dir)
    url, stop = pg_server(pg_root)
    rows: list[list[str]] = []
    before = uptime()
    try:
        tpl = tmp / "templates.json"
        tpl.write_text(json.dumps(templates(tmp, args.templates)))

        def fresh() -> None:
            with psycopg.connect(url, autocommit=True) as db:
                for t in ("wattlens_records", "wattlens_log_state", "wattlens_log_nodes", "wattlens_log_checkpoints"):
                    db.execute(f"DROP TABLE IF EXISTS {t}")

        def appenders(k: int) -> tuple[float, float]:
            fresh()
            open_ledger(url).close()  # the schema, before the writers race to create it
            share = -(-n // k)
            cmd = [sys.executable, __file__, "--append-worker", url, str(tpl)]
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen([*cmd, str(i * share), str(min((i + 1) * share, n))], stdout=subprocess.PIPE, text=True)
                for i in range(k)
            ]
            outs = [json.loads(p.communicate()[0]) for p in procs]
            wall = time.perf_counter() - t0
            return wall, sum(o["cpu_s"] for o in outs)

        for k in (1, 2):
            wall, cpu = appenders(k)
            what = "one writer" if k == 1 else "two writers at once (two gateway replicas, one log)"
            rows.append(
                [
                    f"append {n:,} receipts, {what}, batches of {BATCH}",
                    f"{wall:.1f} s wall = {n / wall:,.0f} appends/s; writers' CPU {cpu:.1f} s",
                    "PostgreSQL on loopback, default settings; each batch one transaction under the advisory lock",
                ]
            )
        led = open_ledger(url)
        assert led.count() == n, led.count()
        key = Signer.generate("bench.wattlens.example/log")
        state = led.tree_state()
        note = sign_checkpoint(Checkpoint(key.name, state.size, state.root), key)
        cp = tmp / "cp.txt"
        cp.write_text(note)
        led.close()
        cmd = [sys.executable, "-m", "wattlens.cli", "verify", "--ledger", url, "--checkpoint", str(cp)]
        cmd += ["--key", key.verifier.encode()]

        def verify_once(checkout: str | None) -> tuple[float, float, bool, str]:
            env = dict(os.environ)
            if checkout:  # another commit's code on the same log, in the same run
                env["PYTHONPATH"] = str(Path(checkout) / "src")
            t0, cpu0 = time.perf_counter(), cpu_s()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            ok = res.returncode == 0 and "consistent with the checkpoint" in res.stdout
            return time.perf_counter() - t0, cpu_s() - cpu0, ok, res.stderr[-300:]

        runs: dict[str | None, list[tuple[float, float, bool, str]]] = {None: [], args.previous: []}
        for _ in range(args.verify_runs):
            for checkout in (None, args.previous) if args.previous else (None,):
                runs[checkout].append(verify_once(checkout))
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        for checkout, label in ((None, ""), (args.previous, ", previous commit")):
            got = runs.get(checkout) or []
            if not got:
                continue
            walls = sorted(r[0] for r in got)
            wall, cpu = statistics.median(walls), statistics.median(r[1] for r in got)
            ok = all(r[2] for r in got)
            spread = f" ({walls[0]:.1f}–{walls[-1]:.1f})" if len(walls) > 1 else ""
            rows.append(
                [
                    f"`wattlens verify --checkpoint --key` over {n:,} (PostgreSQL{label})",
                    f"{wall:.1f} s wall{spread}, {cpu:.1f} s CPU ({'verifies' if ok else 'FAILED: ' + got[0][3]})",
                    f"median of {len(got)}; peak memory {rss_mb:,.0f} MB (largest child); rows by a server-side cursor",
                ]
            )
        led = open_ledger(url)
        rng = random.Random(42)
        picks = [rng.randrange(n) for _ in range(args.proofs)]
        gen_s, check_s = [], []
        for i in picks:
            g0 = time.perf_counter()
            found = led.locate(f"bench-{i:07d}")
            assert found is not None
            path = merkle.inclusion_path(found[0], state.size, led.node)
            text = Proof(found[0], tuple(path), note).encode()
            gen_s.append(time.perf_counter() - g0)
            leaf = led.node(0, found[0])
            c0 = time.perf_counter()
            p = Proof.parse(text)
            cpx = read_checkpoint(p.checkpoint, key.verifier)
            assert merkle.verify_inclusion(p.index, cpx.size, leaf, p.path, cpx.root)
            check_s.append(time.perf_counter() - c0)
        rows.append(
            [
                f"inclusion proof at {n:,} (PostgreSQL, {args.proofs} records)",
                f"make {ms(gen_s)}; verify {ms(check_s)}",
                f"{len(path)} hashes: the id looked up, then the stored nodes read in one query per table",
            ]
        )
        cons_s = []
        for _ in range(min(args.proofs, 200)):
            m = rng.randrange(1, n)
            c0 = time.perf_counter()
            merkle.consistency_path(m, n, led.node)
            cons_s.append(time.perf_counter() - c0)
        rows.append([f"consistency proof, random old size to {n:,} (PostgreSQL)", f"make {ms(cons_s)}", ""])
        led.close()
    finally:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    after = uptime()
    body = table(["what", "time", "notes"], rows)
    body += f"\n\nLoad before: `{before}`\n\nLoad after: `{after}`\n\n"
    body += "The machine is shared (2 cores): two writers and the server compete for them.\n"
    command = f"python bench/log.py --postgres --entries {n}"
    if args.previous:
        command += f" --previous {args.previous}"
    if args.verify_runs != 1:
        command += f" --verify-runs {args.verify_runs}"
    write("log-postgres.md", "Transparency log at scale (PostgreSQL)", body, command)


if __name__ == "__main__":
    main()
