"""Read deadlines for slow clients: a request's headers, then its body, must arrive in time.

uvicorn times out idle keep-alive connections only: a client that opens a connection and sends
its headers one byte at a time (slowloris), or a body one byte every few seconds, holds the
connection and, past the connection limit, locks every other client out. This HTTP protocol
(uvicorn's httptools one, with a timer) gives each request `header_timeout_s` from its first
byte (or from the connection's opening) to the end of its headers, then `header_timeout_s` for
the body, extended by one second per BODY_MIN_RATE_BYTES_PER_S bytes received, so a slow but
real upload goes on while a trickle is cut. Past the deadline the client gets 408 and the
connection is closed; a request the gateway was already reading sees a client disconnect (and
is recorded as one).
"""

from __future__ import annotations

import asyncio
from typing import Any

# Apache's mod_reqtimeout default body rate: a client on a slow link sends far more than this.
BODY_MIN_RATE_BYTES_PER_S = 500.0


def _response_408() -> bytes:
    body = b"request not received in time\n"
    head = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return head + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body


def deadline_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools HTTP protocol with read deadlines (pass it as uvicorn's `http`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    if not header_timeout_s > 0:
        raise ValueError(f"header_timeout_s must be > 0, got {header_timeout_s}")

    class DeadlineProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: float | None = None  # loop time by which the request must have progressed
            self._timer: asyncio.TimerHandle | None = None
            self._in_body = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()  # a connection that never sends a byte is cut too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_body = False
            if self._deadline is None:  # a later request on a kept-alive connection: its clock starts now
                self._arm()

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._in_body = True
            self._arm()  # the body's own allowance

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            if self._deadline is not None:
                self._deadline += len(body) / BODY_MIN_RATE_BYTES_PER_S

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()  # read in full: answering it takes as long as it takes

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the WebSocket protocol takes the connection over
            super().handle_websocket_upgrade()

        def _arm(self) -> None:
            self._deadline = self.loop.time() + header_timeout_s
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._check)

        def _disarm(self) -> None:
            self._deadline = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _check(self) -> None:
            # One timer per connection, moved rather than re-created on every chunk of body.
            self._timer = None
            if self._deadline is None or self.transport.is_closing():
                return
            now = self.loop.time()
            if self.flow.read_paused:  # the gateway is not reading (busy or pipelined): not the client's fault
                self._deadline = max(self._deadline, now + header_timeout_s)
            if now < self._deadline:
                self._timer = self.loop.call_at(self._deadline, self._check)
                return
            self._deadline = None
            cycle = self.cycle if self._in_body else None
            if cycle is None or not cycle.response_started:
                self.transport.write(_response_408())
            self.transport.close()
            if cycle is not None and not cycle.response_complete:
                # The application waiting for the rest of the body learns now that it will not come.
                cycle.disconnected = True
                cycle.message_event.set()

    return DeadlineProtocol
