"""Dashboard summaries and exports read the ledger in a worker process, not a thread of the gateway.

Decoding 50,000 JSON records and writing them out is pure Python: run in a thread, it holds the
GIL ~90 % of the time (py-spy --gil), and the event loop waits up to a switch interval (5 ms) each
time it needs the GIL back, several times per request, so every other client stalls while an
export runs. A process of its own shares no GIL; the kernel shares the cores. One worker process
per gateway, started at the first use (spawn: nothing of the server is inherited), reads the
ledger with its own connection. Where no process can be started, the work runs in a thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("wattlens.gateway")


@functools.cache
def _pool() -> ProcessPoolExecutor | None:
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_watch_parent, initargs=(os.getpid(),))
    except (OSError, ImportError, NotImplementedError) as e:  # no semaphores or no processes here
        log.warning("ledger reads run in a thread (no worker process: %s)", e)
        return None


def _watch_parent(parent_pid: int) -> None:
    """In the worker: leave when the gateway is gone. A gateway killed, or stopped by a signal that uvicorn
    raises again after its graceful shutdown, runs no exit handler to stop the worker, and the worker
    holds its own end of the task pipe, so it would wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="wattlens-parent-watch", daemon=True).start()


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in the worker process (fn and args picklable: module-level, plain values)."""
    from starlette.concurrency import run_in_threadpool

    pool = _pool()
    if pool is not None:
        try:
            # Submitted from a thread: the first submit starts the worker process, not on the event loop.
            return await asyncio.wrap_future(await run_in_threadpool(pool.submit, fn, *args))
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one next time
            _pool.cache_clear()
            log.warning("the ledger worker process died; this read runs in a thread")
    return await run_in_threadpool(fn, *args)


def summarise_ledger(location: str | None, since: str | None, until: str | None, by: str | None, team: str | None) -> Any:
    """The summary (ledger.summary.summarise) of the records a viewer may read."""
    from wattlens.ledger import open_ledger
    from wattlens.ledger.summary import for_team, summarise

    led = open_ledger(location)
    try:
        return summarise(for_team(led.records(since, until), team), by)
    finally:
        led.close()


def export_ledger(location: str | None, since: str | None, until: str | None, team: str | None, fmt: str, path: str) -> int:
    """Write the records a viewer may read to `path` (ledger.export.export); the number written."""
    from wattlens.ledger import open_ledger
    from wattlens.ledger.export import export
    from wattlens.ledger.summary import for_team

    led = open_ledger(location)
    try:
        return export(for_team(led.records(since, until), team), fmt, path)
    finally:
        led.close()
