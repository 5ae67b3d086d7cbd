"""Server-sent events: split an upstream byte stream into events and write them back out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Event:
    event: str | None
    data: str

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return (head + "".join(f"data: {line}\n" for line in self.data.split("\n")) + "\n").encode()

    def json(self) -> Any:
        return json.loads(self.data)


class SSEError(ValueError):
    """The upstream sent something that is not server-sent events."""


async def events(lines: AsyncIterator[str | None]) -> AsyncIterator[Event | None]:
    """Parse `event:`/`data:` lines; comments and unknown fields are skipped as the spec says.

    A None among the lines marks the end of what one network read brought; it is passed on, so
    the relay can write everything ready to the client at once and not hold an event back."""
    event: str | None = None
    data: list[str] = []
    async for raw in lines:
        if raw is None:
            yield None
            continue
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield Event(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name in ("id", "retry"):
            continue
        else:
            raise SSEError(f"unexpected line in event stream: {line[:80]!r}")
    if data:
        yield Event(event, "\n".join(data))


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()
