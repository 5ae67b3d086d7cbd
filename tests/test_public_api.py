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


def test_every_metered_entry_takes_the_same_options_as_metering() -> None:
    """instrument() and the adapters take MeterOptions and pass them on: the TypedDict names exactly
    metering()'s keyword arguments, and a misspelt one is refused, not ignored."""
    import inspect
    import typing

    import openai
    import pytest

    from wattlens.integrations import MeterOptions, metering

    params = inspect.signature(metering).parameters
    assert set(typing.get_type_hints(MeterOptions)) == {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    with pytest.raises(TypeError, match="zonee"):
        wattlens.instrument(openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1"), zonee="FR")  # type: ignore[call-arg]


def test_each_lazy_name_is_what_it_says_whatever_is_read_first() -> None:
    """A submodule named like a function would replace it on import (`wattlens.instrument` the module):
    every order of first use gives the functions."""
    code = (
        "import wattlens\n"
        "from wattlens import uninstrument\n"
        "import wattlens.estimate, wattlens.measure.meter, wattlens.receipt\n"
        "print(callable(wattlens.instrument), callable(wattlens.uninstrument), callable(wattlens.estimate_footprint))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"]
