"""wattlens: the energy meter for AI.

The public surface is listed in ``__all__`` and guarded by tests/test_public_api.py.
Attributes load on first use, so ``import wattlens`` does no I/O and stays fast.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not importing typing keeps `import wattlens` at a few milliseconds

__version__ = "0.1.0"

_LAZY = {
    "Context": ("wattlens.context", "Context"),
    "Footprint": ("wattlens.footprint", "Footprint"),
    "Interval": ("wattlens.units", "Interval"),
    "WattlensError": ("wattlens.errors", "WattlensError"),
    "LLMRequest": ("wattlens.receipt", "LLMRequest"),
    "Place": ("wattlens.context", "Place"),
    "estimate_footprint": ("wattlens.receipt", "estimate_footprint"),
    "estimate": ("wattlens.estimate", None),
    "instrument": ("wattlens.sdk", "instrument"),
    "uninstrument": ("wattlens.sdk", "uninstrument"),
    "Meter": ("wattlens.measure.meter", "Meter"),
}

__all__ = [
    "Context",
    "Footprint",
    "Interval",
    "LLMRequest",
    "Meter",
    "Place",
    "WattlensError",
    "__version__",
    "estimate",
    "estimate_footprint",
    "instrument",
    "uninstrument",
]

if TYPE_CHECKING:
    from typing import Any

    from wattlens import estimate
    from wattlens.context import Context, Place
    from wattlens.errors import WattlensError
    from wattlens.footprint import Footprint
    from wattlens.measure.meter import Meter
    from wattlens.receipt import LLMRequest, estimate_footprint
    from wattlens.sdk import instrument, uninstrument
    from wattlens.units import Interval


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'wattlens' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
