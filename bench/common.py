"""Helpers shared by the benchmarks: machine description and table output."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {dt.date.today().isoformat()}"


def load() -> str:
    """The machine's load average now (1, 5, 15 min): it is shared, and other work moves the figures."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average not available"


def spread(xs: list[float], fmt: str = ".1f") -> str:
    """Median and range of repeated figures: "12.3 (11.0–14.2)"; NaN (no figure) is left out."""
    import statistics

    ok = [x for x in xs if x == x]
    if not ok:
        return "-"
    med = f"{statistics.median(ok):{fmt}}"
    return med if len(ok) == 1 else f"{med} ({min(ok):{fmt}}–{max(ok):{fmt}})"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write(name: str, title: str, body: str, command: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(f"# {title}\n\nMachine: {machine()}\n\nCommand: `{command}`\n\n{body}\n")
    print(path.read_text())
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, timeout: float = 60.0) -> None:
    """Until a server answers at url (any status)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")
