"""`wattlens serve` as a user runs it: a real process, SIGTERM with requests in flight, keys."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import upstream as up

from wattlens.gateway import check_exposure, is_loopback
from wattlens.gateway.config import GatewayConfig, Upstream, load_gateway_config
from wattlens.ledger import open_ledger, verify


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[up.ServerThread]:
    with up.ServerThread(up.app) as s:
        yield s


def start(cfg: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "wattlens.cli", "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("gateway did not start: " + (p.stderr.read() if p.stderr else ""))


def test_sigterm_with_requests_in_flight_loses_no_record(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[server]
ledger = "{db}"

[[upstreams]]
name = "local"
base_url = "{upstream_server.url}/v1"
api_key_env = "SECRET_UPSTREAM_KEY"
models = ["gpt-4o-mini", "slow"]
zone = "SE"
""")
    port = up.free_port()
    proc = start(cfg, port, {"SECRET_UPSTREAM_KEY": "sk-very-secret-upstream"})
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def ask(model: str) -> int:
        r = httpx.post(url, json={"model": model, "messages": [{"role": "user", "content": "x"}]}, timeout=30)
        return r.status_code

    with cf.ThreadPoolExecutor(8) as pool:
        fast = [pool.submit(ask, "gpt-4o-mini") for _ in range(5)]
        assert [f.result() for f in fast] == [200] * 5
        slow = [pool.submit(ask, "slow") for _ in range(4)]  # each takes 3 s upstream
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert [f.result() for f in slow] == [200] * 4  # in-flight requests finish
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    led = open_ledger(db)
    rows = list(led.rows())
    recs = list(led.records())
    led.close()
    assert len(rows) == 9 and verify(rows) == []
    assert sorted(r["model_requested"] for r in recs).count("slow") == 4
    assert "sk-very-secret-upstream" not in stderr and b"sk-very-secret-upstream" not in db.read_bytes()


def test_refuses_to_bind_beyond_loopback_without_keys() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    cfg = GatewayConfig(upstreams=(Upstream("u", "openai", "http://x/v1"),), host="0.0.0.0")
    from wattlens.errors import ConfigError

    with pytest.raises(ConfigError, match="keys"):
        check_exposure(cfg)
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "serve", "--upstream", "http://127.0.0.1:9/v1", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "keys" in r.stderr and "Traceback" not in r.stderr


def test_keys_new_and_config_with_keys(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "keys", "new", "--team", "research"],
        capture_output=True,
        text=True,
        check=True,
    )
    key = r.stdout.strip()
    assert key.startswith("wl-") and key not in r.stderr  # only the hash goes to the keys file
    entry = r.stderr.split("add to the keys file:", 1)[1]
    (tmp_path / "keys.toml").write_text(entry)
    (tmp_path / "gw.toml").write_text(
        '[server]\nkeys_file = "keys.toml"\nhost = "0.0.0.0"\n[[upstreams]]\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    cfg = load_gateway_config(tmp_path / "gw.toml")
    check_exposure(cfg)  # keys present: allowed
    import hashlib

    assert cfg.keys[0].sha256 == hashlib.sha256(key.encode()).hexdigest() and cfg.keys[0].team == "research"


def test_bad_gateway_configs_are_explained(tmp_path: Path) -> None:
    from wattlens.errors import ConfigError

    bad = {
        "no \\[\\[upstreams": "[server]\nport = 1\n",
        "api_key_env": '[[upstreams]]\nbase_url = "http://x"\napi_key = "sk-inline"\n',
        "kind": '[[upstreams]]\nbase_url = "http://x"\nkind = "grpc"\n',
        "not valid TOML": "[[upstreams]\n",
    }
    for needle, text in bad.items():
        p = tmp_path / "c.toml"
        p.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_gateway_config(p)


def test_a_crash_leaves_a_ledger_that_verifies(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'[server]\nledger = "{db}"\n[[upstreams]]\nbase_url = "{upstream_server.url}/v1"\nmodels = ["gpt-4o-mini"]\n'
    )
    port = up.free_port()
    proc = start(cfg, port)
    for _ in range(20):
        httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            timeout=10,
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
    time.sleep(1.0)  # the writer flushes every 0.2 s: a crash now loses nothing older than that
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    led = open_ledger(db)
    rows = list(led.rows())
    led.close()
    assert len(rows) == 20 and verify(rows) == []


def test_serve_config_file_signs_the_log_it_names(upstream_server: up.ServerThread, tmp_path: Path) -> None:
    """`serve --config FILE` reads [log] from FILE (not only from $WATTLENS_CONFIG or ./wattlens.toml)."""
    from wattlens.ledger.note import Signer

    key = tmp_path / "log.key"
    key.write_text(Signer.generate("wattlens.example/org-ledger").encode() + "\n")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'[server]\nledger = "{tmp_path / "l.db"}"\n[log]\nkey_file = "log.key"\ncheckpoint_interval_s = 0.5\n'
        f'[[upstreams]]\nbase_url = "{upstream_server.url}/v1"\nmodels = ["gpt-4o-mini"]\n'
    )
    port = up.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTLENS_")}
    proc = start(cfg, port, env={**env, "WATTLENS_CONFIG": ""})
    try:
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            timeout=10,
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 200
        deadline = time.time() + 10
        while time.time() < deadline:
            cp = httpx.get(f"http://127.0.0.1:{port}/wattlens/log/checkpoint", timeout=5)
            if cp.status_code == 200 and "\n1\n" in cp.text:
                break
            time.sleep(0.2)
        assert cp.status_code == 200 and cp.text.startswith("wattlens.example/org-ledger\n1\n"), cp.text
        assert "— wattlens.example/org-ledger " in cp.text  # signed with the key the file names
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
