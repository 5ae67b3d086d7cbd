"""The one seam to upstream servers: aiohttp in production, an in-memory double in tests.

aiohttp rather than httpx: on this project's 2-core machine httpx's pool served ~330 req/s at
concurrency 64 against ~6,400 for aiohttp (bench/gateway.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wattlens.gateway import jsonio


@dataclass(frozen=True, slots=True)
class Upstreamed:
    """A complete upstream answer: status and raw body."""

    status: int
    body: bytes

    def json_or_none(self) -> Any:
        try:
            return jsonio.loads(self.body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, an integer too long, nested too deep
            return None


class StreamReply(Protocol):
    status: int

    # The stream's lines, and None after the lines of each network read: the relay writes to the
    # client once per read, not once per event (one ASGI send per SSE chunk cost a quarter of the
    # main thread at concurrency 64).
    def lines(self) -> AsyncIterator[str | None]: ...
    async def read(self) -> bytes: ...
    def release(self) -> None: ...


class Transport(Protocol):
    """Raises TimeoutError, or ConnectionError / aiohttp.ClientError, when the upstream cannot be reached."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Upstreamed: ...
    async def stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> StreamReply: ...
    async def get_json(self, url: str, headers: Mapping[str, str], timeout_s: float) -> Any: ...
    async def close(self) -> None: ...


MAX_BODY_BYTES = 64 * 1024 * 1024  # an upstream answer, decompressed; beyond it the answer is refused
MAX_STREAM_BYTES = 1024 * 1024 * 1024  # a whole stream, decompressed


class UpstreamTooLarge(ValueError):
    """An upstream answer (after decompression) over the bound: a gzip bomb or a runaway stream."""


async def _read_bounded(r: Any, limit: int) -> bytes:
    out, size = [], 0
    async for chunk in r.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UpstreamTooLarge(f"the upstream's answer is over {limit // (1024 * 1024)} MB decompressed")
        out.append(chunk)
    return b"".join(out)


MAX_LINE_BYTES = 1024 * 1024  # one line of an event stream; longer is refused (ValueError) like aiohttp's readline


def cut_lines(data: bytes, cr: bool) -> tuple[list[bytes], bytes, bool]:
    """What was left plus one read, cut at LF, CRLF or a bare CR (the three line ends server-sent
    events allow): (complete lines, the rest, whether it ended in CR). cr says the last read ended
    in CR: a CRLF split across two reads is one line end. Called only for data holding a CR or
    after one (most upstreams end lines with LF alone: a plain split, inline, is their path)."""
    if cr and data[:1] == b"\n":
        data = data[1:]
    cr = data.endswith(b"\r")
    *complete, rest = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return complete, rest, cr


class _AiohttpStream:
    def __init__(self, r: Any) -> None:
        self._r, self.status = r, int(r.status)

    async def lines(self) -> AsyncIterator[str | None]:
        size, rest, cr = 0, b"", False
        async for chunk in self._r.content.iter_any():  # whatever one network read brought (never empty)
            size += len(chunk)
            if size > MAX_STREAM_BYTES:
                raise UpstreamTooLarge("the upstream's stream is over its bound")
            data = rest + chunk
            if cr or b"\r" in data:
                complete, rest, cr = cut_lines(data, cr)
            else:
                *complete, rest = data.split(b"\n")
            if len(rest) > MAX_LINE_BYTES or (len(chunk) > MAX_LINE_BYTES and max(map(len, complete)) > MAX_LINE_BYTES):
                raise ValueError("a line of the upstream's stream is over its bound")
            if complete:
                for raw in complete:
                    yield raw.decode("utf-8", "replace")
                yield None
        if rest:
            yield rest.decode("utf-8", "replace")

    async def read(self) -> bytes:
        return await _read_bounded(self._r, MAX_BODY_BYTES)

    def release(self) -> None:
        self._r.release()


class AiohttpTransport:
    """Timeouts: connect 10 s; `idle_s` between two reads (the first byte included), so a long
    stream that keeps talking is never cut and a silent upstream is let go. Redirects are not
    followed: the upstream's key must never reach another host."""

    def __init__(self, idle_s: float, connect_s: float = 10.0) -> None:
        self.idle_s, self.connect_s = idle_s, connect_s
        self._session: Any = None

    def session(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_s, sock_read=self.idle_s),
                connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=60),
                auto_decompress=True,
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Upstreamed:
        async with self.session().post(url, data=body, headers=dict(headers), allow_redirects=False) as r:
            return Upstreamed(r.status, await _read_bounded(r, MAX_BODY_BYTES))

    async def stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> StreamReply:
        return _AiohttpStream(await self.session().post(url, data=body, headers=dict(headers), allow_redirects=False))

    async def get_json(self, url: str, headers: Mapping[str, str], timeout_s: float) -> Any:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session().get(url, headers=dict(headers), timeout=timeout, allow_redirects=False) as r:
            return json.loads(await _read_bounded(r, MAX_BODY_BYTES)) if r.status == 200 else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass(frozen=True)
class MockRequest:
    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]


Handler = Callable[[MockRequest], Awaitable[tuple[int, bytes | list[bytes]]]]


class _MockStream:
    def __init__(self, status: int, body: bytes | list[bytes]) -> None:
        self.status = status
        self._chunks = body if isinstance(body, list) else [body]

    async def lines(self) -> AsyncIterator[str | None]:
        complete, rest, _ = cut_lines(b"".join(self._chunks), False)
        for line in [*complete, rest]:
            yield line.decode()
            yield None  # as if each line came in its own read: every event is written on its own

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    def release(self) -> None:
        pass


class MockTransport:
    """An upstream in memory: `handler(request)` answers (status, body or list of body chunks)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[MockRequest] = []

    async def _call(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        req = MockRequest(method, url, body, dict(headers))
        self.requests.append(req)
        status, out = await self.handler(req)
        return status, out if isinstance(out, bytes) else b"".join(out)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Upstreamed:
        return Upstreamed(*await self._call("POST", url, body, headers))

    async def stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> StreamReply:
        return _MockStream(*await self._call("POST", url, body, headers))

    async def get_json(self, url: str, headers: Mapping[str, str], timeout_s: float) -> Any:
        status, body = await self._call("GET", url, b"", headers)
        return json.loads(body) if status == 200 else None

    async def close(self) -> None:
        pass
