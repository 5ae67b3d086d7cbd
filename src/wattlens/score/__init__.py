"""Energy Score: measure a model's inference energy on a standard task, rate it 1-5 stars, label it.

Protocol (as the AI Energy Score leaderboard): batch size 1, a warm-up, a fixed number of
samples, greedy generation of exactly 10 new tokens for text generation, several repetitions;
the result is Wh per 1,000 queries. Energy comes from this machine's sensors through the Meter.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from wattlens.errors import InputError, WattlensError
from wattlens.score.tasks import BUILTIN, Reference
from wattlens.score.tasks import task as task_of

if TYPE_CHECKING:
    from wattlens.measure.meter import Meter
    from wattlens.measure.sensors.base import Sensor

TASKS = tuple(BUILTIN)  # the built-in task names; plugins may register more (wattlens_score_tasks)
RUNNABLE = tuple(name for name, (_, runnable) in BUILTIN.items() if runnable)
NEW_TOKENS = 10
# The hardware of the AI Energy Score's published measurements (Feb 2025): GPU energy on an NVIDIA H100 80GB.
LEADERBOARD_HARDWARE = "NVIDIA H100 80GB"


def reference(name: str) -> list[Reference]:
    """The published rows a task is rated against (the AI Energy Score, Feb 2025, for the built-ins)."""
    return list(task_of(name).reference())


def size_class(params_b: float) -> str:
    """Leaderboard text-generation classes: A up to 20B, B up to 66B, C larger."""
    return "A" if params_b <= 20 else "B" if params_b <= 66 else "C"


def rate(task: str, wh_per_1000: float, scale: str = "log", cls: str = "") -> int:
    """Stars on a registered rating scale (built-in: log, leaderboard-2025-02; plugins may add more)."""
    from wattlens.plugins import registry

    scales = registry().rating_scales
    if scale not in scales:
        raise InputError(f"unknown scale {scale!r}; choose one of {', '.join(scales)}")
    refs = [r for r in reference(task) if not cls or r.size_class == cls]
    values = [r.wh_per_1000 for r in refs]
    return int(scales[scale].stars(wh_per_1000, min(values), max(values)))


@dataclass(frozen=True)
class Result:
    model: str
    task: str
    samples: int
    repetitions: int
    wh_per_1000: float  # mean over repetitions, at the measured boundary
    wh_per_1000_low: float
    wh_per_1000_high: float
    spread: float  # relative standard deviation across repetitions
    per_repetition: list[float]
    method: str
    boundary: str
    hardware: str
    stars: int
    scale: str
    size_class: str
    random_weights: bool
    input_tokens_mean: float
    date: str
    hardware_class: str = ""  # what was measured: "GPU: NVIDIA H100 80GB HBM3" or "CPU host: <model>, N threads"
    comparable_with_leaderboard: bool = False  # True only for GPU energy on an H100, the leaderboard's own hardware
    comparability: str = ""  # one sentence: why the stars can (not) be read against the leaderboard's bands
    attribution: str = ""  # whose energy was counted: whole devices, or this process's own CPU time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware_class(sensors: Sequence[Sensor]) -> tuple[str, bool, str]:
    """(class, comparable with the leaderboard's H100 bands, the sentence that says so) of the measured sensors."""
    import os

    accel = sorted({s.model or s.device for s in sensors if s.kind == "accelerator"})
    if accel:
        cls = "GPU: " + ", ".join(accel)
        if all("H100" in name for name in accel):
            return cls, True, f"comparable: GPU energy on an H100, as the leaderboard's ({LEADERBOARD_HARDWARE})"
        return (
            cls,
            False,
            (
                f"not comparable with the leaderboard's bands: they rate GPU energy on an {LEADERBOARD_HARDWARE}, "
                f"this is {', '.join(accel)}"
            ),
        )
    cpus = sorted({s.model for s in sensors if s.kind == "cpu" and s.model})
    cls = f"CPU host: {', '.join(cpus) or 'unknown CPU'}, {os.cpu_count() or 1} threads"
    return (
        cls,
        False,
        (
            f"not comparable with the leaderboard's bands: they rate GPU energy on an {LEADERBOARD_HARDWARE}; "
            "this is CPU and memory energy, so the stars say only where the figure would sit among them"
        ),
    )


def passive_openmp() -> str:
    """Ask OpenMP worker threads to sleep, not spin, while they wait for each other; "" or a caveat.

    Spinning burns CPU time that is no work: beside a busy neighbour, a 2-thread MiniLM query used
    279 ms of CPU spinning and 26 ms passive (bench/results/score_stability.md),
    and a score charged by CPU time would move with the load. libgomp reads the variable once, when
    torch loads it, so it is set only when torch is not loaded yet and the user has not chosen a policy.
    """
    import os
    import sys

    policy = os.environ.get("OMP_WAIT_POLICY", "")
    if policy.upper() == "PASSIVE":
        return ""
    if policy or "torch" in sys.modules:
        return (
            "; OpenMP threads may spin while they wait (torch was loaded first, or OMP_WAIT_POLICY is set): "
            "under load their spinning is charged too"
        )
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return ""


def _load(what: str, model: str, fn: Callable[[], Any]) -> Any:
    """Call a Hugging Face loader; a missing or unreachable model becomes one clear InputError."""
    try:
        return fn()
    except WattlensError:
        raise
    except (OSError, ValueError) as e:  # the hub client raises OSError offline, ValueError for unknown models
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"cannot load the {what} of {model!r}: {first} Offline, give a local model directory "
            "(config.json and tokenizer files), or all-MiniLM-L6-v2, which ships with the 'local' extra"
        ) from e


def dataset_samples(task: str, dataset: str, columns: Sequence[str], n: int, split: str = "test") -> list[Any]:
    """Samples from a standard dataset (a Hugging Face id or a local path) when the network allows.

    One column gives the text; extractive QA takes two (question, context); sentence similarity two.
    """
    try:
        import datasets
    except ImportError as e:
        raise InputError(
            "--dataset needs the 'datasets' package (pip install datasets); offline, omit --dataset "
            "to use the built-in samples"
        ) from e
    try:
        ds = datasets.load_dataset(dataset, split=split)
    except Exception as e:  # the hub client raises many types; the user needs one message
        raise InputError(f"cannot load dataset {dataset!r} (split {split!r}): {type(e).__name__}: {e}") from e
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise InputError(f"dataset {dataset!r} has no column {missing[0]!r}; it has {', '.join(ds.column_names)}")
    rows = ds.select(range(min(n, len(ds))))
    if task == "extractive-qa":
        return [{"question": r[columns[0]], "context": r[columns[1]]} for r in rows]
    if task == "sentence-similarity":
        return [[r[columns[0]], r[columns[1]]] for r in rows]
    return [r[columns[0]] for r in rows]


def samples(task: str, n: int) -> list[Any]:
    data = json.loads(resources.files("wattlens.score").joinpath("data", "samples.json").read_text())
    if task not in data:
        raise InputError(f"no built-in samples for {task!r} yet; runnable tasks: {', '.join(RUNNABLE)}")
    items = data[task]
    if n > len(items):
        raise InputError(f"{task} has {len(items)} built-in samples; ask for at most that many")
    return list(items[:n])


def load_runner(task: str, model: str, random_weights: bool) -> tuple[Callable[[Any], int], int]:
    """(run one query -> input tokens, parameter count) for a local model."""
    import torch

    if task == "sentence-similarity":
        from sentence_transformers import SentenceTransformer

        from wattlens.gateway.local import embedding_model_path

        path = embedding_model_path() if model in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") else model
        st = _load("weights", model, lambda: SentenceTransformer(path, device="cpu"))
        if random_weights:
            for p in st.parameters():
                torch.nn.init.normal_(p, std=0.02)

        def run_pair(pair: Any) -> int:
            with torch.no_grad():
                a, b = st.encode([pair[0]]), st.encode([pair[1]])  # batch size 1: one sentence at a time
            float((a * b).sum())
            return sum(len(st.tokenizer(s)["input_ids"]) for s in pair)

        return run_pair, sum(p.numel() for p in st.parameters())
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = _load("tokenizer", model, lambda: AutoTokenizer.from_pretrained(model))
    if task in ("summarization", "extractive-qa", "text-classification"):
        return _encoder_runner(task, model, tok, random_weights)
    if random_weights:  # architecture only: the work of a fixed-length workload does not depend on weights
        cfg = _load("configuration", model, lambda: AutoConfig.from_pretrained(model))
        lm = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
    else:
        lm = _load("weights", model, lambda: AutoModelForCausalLM.from_pretrained(model))
    lm.eval()
    max_len = int(getattr(lm.config, "max_position_embeddings", 512) or 512) - NEW_TOKENS - 1
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def run_gen(text: Any) -> int:
        ids = tok(str(text), return_tensors="pt", truncation=True, max_length=max_len)["input_ids"]
        with torch.no_grad():
            lm.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=pad)
        return int(ids.shape[1])

    return run_gen, sum(p.numel() for p in lm.parameters())


def _encoder_runner(task: str, model: str, tok: Any, random_weights: bool) -> tuple[Callable[[Any], int], int]:
    """Summarization (seq2seq, 10 new tokens), extractive QA (span logits), classification (logits)."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForQuestionAnswering,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )

    auto: Any = {
        "summarization": AutoModelForSeq2SeqLM,
        "extractive-qa": AutoModelForQuestionAnswering,
        "text-classification": AutoModelForSequenceClassification,
    }[task]
    if random_weights:
        cfg = _load("configuration", model, lambda: AutoConfig.from_pretrained(model))
        if task == "extractive-qa":
            cfg.num_labels = 2  # a span head: start and end
        m = auto.from_config(cfg)
    else:
        m = _load("weights", model, lambda: auto.from_pretrained(model))
    m.eval()
    limit = int(getattr(m.config, "max_position_embeddings", 512) or 512)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    start = getattr(m.config, "decoder_start_token_id", None) or pad

    def run(x: Any) -> int:
        with torch.no_grad():
            if task == "extractive-qa":
                enc = tok(x["question"], x["context"], return_tensors="pt", truncation="only_second", max_length=limit)
                out = m(**enc)
                int(out.start_logits.argmax()), int(out.end_logits.argmax())
            elif task == "text-classification":
                enc = tok(str(x), return_tensors="pt", truncation=True, max_length=limit)
                int(m(**enc).logits.argmax())
            else:
                enc = tok(str(x), return_tensors="pt", truncation=True, max_length=limit)
                m.generate(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                    do_sample=False,
                    pad_token_id=pad,
                    decoder_start_token_id=start,
                )
        return int(enc["input_ids"].shape[1])

    return run, sum(p.numel() for p in m.parameters())


def score(
    model: str,
    task: str,
    n_samples: int = 100,
    repetitions: int = 3,
    scale: str = "log",
    random_weights: bool = False,
    progress: Callable[[int, int], None] | None = None,
    dataset: str | None = None,
    columns: Sequence[str] = ("text",),
    meter: Meter | None = None,
) -> Result:
    """Measure Wh per 1,000 queries with a Meter: warm-up, then `repetitions` passes over the samples.

    Default meter: this machine's sensors, with the host power models (no energy counter) scoped to
    this process's own CPU time, so unrelated load on the machine does not move the score.
    """

    t = task_of(task)
    if repetitions < 1 or n_samples < 1:
        raise InputError("samples and repetitions must be at least 1")
    spin_note = passive_openmp()  # before the runner loads torch
    run, n_params = t.runner(model, random_weights)  # first: a task without a runner says so before anything loads
    items = dataset_samples(task, dataset, columns, n_samples) if dataset else t.samples(n_samples)
    for x in items[: min(5, len(items))]:  # warm-up
        run(x)
    if meter is None:
        from wattlens.measure.meter import Meter
        from wattlens.measure.sensors.process import for_process

        host = Meter()
        meter = Meter(context=host.context, sensors=for_process(host.sensors))
    per_rep, lows, highs, tokens = [], [], [], []
    for rep in range(repetitions):
        with meter.window(f"rep{rep}") as w:
            for i, x in enumerate(items):
                tokens.append(run(x))
                if progress:
                    progress(rep * len(items) + i + 1, repetitions * len(items))
        assert w.measurement is not None
        total = w.measurement.energy_wh
        per_rep.append(total.mid / len(items) * 1000)
        lows.append(total.low / len(items) * 1000)
        highs.append(total.high / len(items) * 1000)
    last = w.measurement
    assert last is not None
    mean = statistics.fmean(per_rep)
    spread = statistics.stdev(per_rep) / mean if len(per_rep) > 1 and mean > 0 else 0.0
    kinds = set(last.kinds.values())
    boundary = "accelerator" if "accelerator" in kinds else "host (CPU and memory: no accelerator here)"
    cls = size_class(n_params / 1e9) if task == "text-generation" else ""
    hardware = ", ".join(f"{s.device} ({s.method})" for s in meter.sensors)
    hw_class, comparable, comparability = hardware_class(meter.sensors)
    scoped = any(s.device.startswith(("cpu:process", "dram:process")) for s in meter.sensors)
    attribution = (
        "this process's own CPU time (all its threads): unrelated load on the machine is not charged"
        if scoped
        else "whole devices while the repetitions ran"
    ) + spin_note
    return Result(
        model,
        task,
        len(items),
        repetitions,
        mean,
        statistics.fmean(lows),
        statistics.fmean(highs),
        spread,
        per_rep,
        last.method,
        boundary,
        hardware,
        rate(task, mean, scale, cls),
        scale,
        cls,
        random_weights,
        statistics.fmean(tokens),
        dt.date.today().isoformat(),
        hw_class,
        comparable,
        comparability,
        attribution,
    )
