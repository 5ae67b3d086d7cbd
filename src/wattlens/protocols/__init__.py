"""Wire protocols, one file each; the built-ins and plugins' come through the `wattlens_protocols` hook."""

from __future__ import annotations

from wattlens.protocols.base import StreamTracker, WireProtocol


def protocols() -> dict[str, WireProtocol]:
    """Every registered protocol by name (the built-ins and those of installed plugins)."""
    from wattlens.plugins import registry

    return registry().protocols


def protocol(name: str) -> WireProtocol:
    from wattlens.errors import ConfigError

    found = protocols().get(name)
    if found is None:
        raise ConfigError(f"unknown protocol {name!r}; registered: {', '.join(sorted(protocols()))}")
    return found


__all__ = ["StreamTracker", "WireProtocol", "protocol", "protocols"]
