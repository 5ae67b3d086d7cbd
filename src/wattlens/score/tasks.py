"""Energy Score tasks: what a task measures and the published figures it is rated against.

Registered on the `wattlens_score_tasks` hook (wattlens.plugins); a plugin adds a task with an
object that has a `name` and the three methods of `LeaderboardTask`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Reference:
    model: str
    wh_per_1000: float  # the leaderboard's GPU kWh per 1,000 queries x 1,000
    stars: int
    size_class: str


@dataclass(frozen=True)
class LeaderboardTask:
    """A task of the AI Energy Score leaderboard (Feb 2025): its rows, and a runner where wattlens has one."""

    name: str
    leaderboard_file: str
    runnable: bool

    def reference(self) -> list[Reference]:
        """The published rows the task's ratings are made against."""
        path = resources.files("wattlens.score").joinpath("data", f"leaderboard_2025_02_{self.leaderboard_file}.csv")
        return [
            Reference(r["model"], float(r["total_gpu_energy"]) * 1000.0, int(r["energy_score"]), r.get("class") or "")
            for r in csv.DictReader(path.read_text().splitlines())
        ]

    def samples(self, n: int) -> list[Any]:
        from wattlens.score import samples

        return samples(self.name, n)

    def runner(self, model: str, random_weights: bool) -> tuple[Callable[[Any], int], int]:
        """(run one query -> input tokens, parameter count) for a local model."""
        from wattlens.errors import InputError
        from wattlens.score import load_runner

        if not self.runnable:
            raise InputError(f"{self.name} is registered but has no runner yet")
        return load_runner(self.name, model, random_weights)


BUILTIN: dict[str, tuple[str, bool]] = {  # our task name -> (leaderboard file, runnable here)
    "text-generation": ("text_generation", True),
    "summarization": ("summarization", True),
    "extractive-qa": ("question_answering", True),
    "text-classification": ("text_classification", True),
    "sentence-similarity": ("sentence_similarity", True),
    "image-classification": ("image_classification", False),
    "object-detection": ("object_detection", False),
    "asr": ("asr", False),
    "image-generation": ("image_generation", False),
    "image-captioning": ("image_captioning", False),
}
TASKS = tuple(LeaderboardTask(name, f, runnable) for name, (f, runnable) in BUILTIN.items())


def task(name: str) -> Any:
    """A registered task (built in or a plugin's)."""
    from wattlens.errors import InputError
    from wattlens.plugins import registry

    found = registry().score_tasks
    if name not in found:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(found)}")
    return found[name]
