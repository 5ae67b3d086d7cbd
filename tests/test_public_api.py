from __future__ import annotations

import subprocess
import sys

import wattlens

EXPECTED = {
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
}


def test_public_surface_is_exactly_this() -> None:
    assert set(wattlens.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(wattlens, name) is not None


def test_import_does_no_io_and_loads_nothing_heavy() -> None:
    code = (
        "import sys, builtins\n"
        "opened = []\n"
        "orig = builtins.open\n"
        "builtins.open = lambda *a, **k: (opened.append(a[0]), orig(*a, **k))[1]\n"
        "import wattlens\n"
        "heavy = [m for m in ('wattlens.factors', 'csv', 'json', 'typer', 'rich', 'numpy') if m in sys.modules]\n"
        "print(opened, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"


def test_exported_members_say_where_they_live() -> None:
    # As httpx's test_exported_members: every public name is defined in a module of wattlens.
    for name in EXPECTED - {"__version__"}:
        obj = getattr(wattlens, name)
        module = getattr(obj, "__module__", None) or obj.__name__
        assert module.startswith("wattlens."), (name, module)
