"""A third-party wattlens plugin: a grid feed and a wire protocol (used by tests/test_plugins.py).

It is installed for the test as a real distribution (a .dist-info with an entry point in the
`wattlens` group), exactly as `pip install` would leave it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from wattlens.factors.records import CloudRegion, Zone
from wattlens.footprint import Tokens
from wattlens.grid import GridReading
from wattlens.plugins import hookimpl
from wattlens.protocols.base import StreamTracker, WireProtocol, count


class FlatFeed:
    """Every zone at 100 gCO2e/kWh, all of it wind: easy to check by hand."""

    name = "flat-100"

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        return GridReading(zone.zone, 2026, 100.0, {"wind": 1.0})


class EchoTracker(StreamTracker):
    """The toy protocol has no streams of its own: every event is content."""

    def see(self, event: str | None, data: Any) -> Any:
        self.content += 1
        return "content"

    def read_tokens(self, usage: Any) -> Tokens:
        return Tokens(input=count(usage, "tokens_in"), output=count(usage, "tokens_out"))

    def attach(self, event: str | None, data: dict[str, Any], receipt: dict[str, Any], wants_usage: bool) -> bool:
        data["footprint"] = receipt
        return True


class Echo(WireProtocol):
    """A toy JSON API: POST /v1/echo {model, text} -> {model, text, meta: {tokens_in, tokens_out}}."""

    name = "echo"
    endpoints = ("/echo",)

    def tokens(self, usage: Any) -> Tokens:
        return Tokens(input=count(usage, "tokens_in"), output=count(usage, "tokens_out"))

    def usage_of(self, body: Any) -> Any:
        return body.get("meta") if isinstance(body, dict) else None

    def attach(self, body: dict[str, Any], receipt: dict[str, Any] | None) -> None:
        body["meta"]["footprint"] = receipt

    def tracker(self, endpoint: str) -> StreamTracker:
        return EchoTracker()

    def error_body(self, message: str, kind: str, code: str | None) -> dict[str, Any]:
        return {"echo_error": message}


@hookimpl
def wattlens_grid_feeds() -> list[Any]:
    return [FlatFeed()]


@hookimpl
def wattlens_protocols() -> list[Any]:
    return [Echo()]
