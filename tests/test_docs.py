"""Docs that cannot drift: every command, option and warning code is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from wattlens.cli import app
from wattlens.codes import WARNINGS

DOCS = Path(__file__).parents[1] / "docs"
README = Path(__file__).parents[1] / "README.md"


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    text = (DOCS / "cli.md").read_text()
    group = typer.main.get_command(app)

    def walk(prefix: str, cmd: object) -> None:
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, c in sub.items():
                walk(f"{prefix} {name}".strip(), c)
            return
        assert f"wattlens {prefix}" in text, prefix
        for param in cmd.params:  # type: ignore[attr-defined]
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in text, f"{prefix} {opt}"

    walk("", group)


def test_every_warning_code_is_documented() -> None:
    text = (DOCS / "warnings.md").read_text()
    for code in WARNINGS:
        assert f"`{code}`" in text


def test_every_warning_code_emitted_by_the_code_is_known() -> None:
    src = Path(__file__).parents[1] / "src" / "wattlens"
    emitted = set()
    for f in src.rglob("*.py"):
        emitted |= set(re.findall(r'(?:warnings|codes)\.append\("([a-z0-9-]+)"\)', f.read_text()))
    assert emitted and emitted <= set(WARNINGS), emitted - set(WARNINGS)


def test_readme_quick_start_is_two_commands_and_ci_runs_them() -> None:
    readme = README.read_text()
    block = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    install, main_job = commands[0].rsplit(" && ", 1)
    assert main_job == "wattlens serve"
    assert f"{install} && wattlens serve --self-test" in ci  # CI runs the main job end to end, then stops
    assert commands[1].strip() in ci


def test_generated_docs_match_the_code() -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "gen_docs.py"
    r = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_readme_receipt_sample_is_what_its_command_prints() -> None:
    """The README's JSON sample shows the first estimate command's figures, to three significant digits."""
    import json

    from wattlens.receipt import LLMRequest, Place, estimate_footprint

    readme = README.read_text()
    assert "wattlens estimate --model gpt-4o-mini --input-tokens 800 --output-tokens 400 --zone FR" in readme
    d = estimate_footprint(LLMRequest(model="gpt-4o-mini", input_tokens=800, output_tokens=400), Place(zone="FR")).as_dict()
    sample = re.search(r'\{"energy_wh": (\{[^}]*\})', readme)
    assert sample is not None
    shown = json.loads(sample.group(1))
    for b in ("low", "mid", "high"):
        assert shown[b] == float(f"{d['energy_wh'][b]:.3g}"), b
    assert f'"tokens_per_s_per_gpu": {d["assumptions"]["tokens_per_s_per_gpu"]}' in readme
    assert f'"active_params_b": {d["assumptions"]["active_params_b"]}' in readme
