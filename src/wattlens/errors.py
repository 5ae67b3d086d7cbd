"""One exception hierarchy for wattlens; vendor errors are translated into it at the boundary."""

from __future__ import annotations


class WattlensError(Exception):
    """Base of every error wattlens raises on purpose."""


class InputError(WattlensError, ValueError):
    """A value given by the user is out of range or malformed."""


class FactorError(WattlensError):
    """Reference data is missing, malformed, or has no row for a key."""


class UnknownKeyError(FactorError, LookupError):
    """A model, zone, region or hardware name is not in the data; carries the nearest matches."""

    def __init__(self, kind: str, key: str, suggestions: list[str]) -> None:
        self.kind = kind
        self.key = key
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        listing = _LISTED_BY.get(kind)
        if listing:
            hint += f" `{listing}` lists them (`{listing} TEXT` searches)."
        super().__init__(f"unknown {kind} {key!r}.{hint}")


_LISTED_BY = {
    "zone": "wattlens zones",
    "cloud region": "wattlens regions",
    "hardware": "wattlens hardware",
    "model": "wattlens models",
}


class ConfigError(WattlensError):
    """A configuration file or environment variable is invalid."""


class SensorError(WattlensError):
    """A hardware energy sensor could not be read."""
