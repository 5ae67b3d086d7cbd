"""Energy Score: the leaderboard's stars reproduced, our scale, and a real run on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wattlens.context import Context
from wattlens.score import TASKS, hardware_class, passive_openmp, rate, reference
from wattlens.score.scales import stars_leaderboard, stars_log


def test_leaderboard_scale_reproduces_all_166_published_stars() -> None:
    n = 0
    for task in TASKS:
        refs = reference(task)
        for cls in sorted({r.size_class for r in refs}):
            group = [r for r in refs if r.size_class == cls]
            lo, hi = min(r.wh_per_1000 for r in group), max(r.wh_per_1000 for r in group)
            for r in group:
                assert stars_leaderboard(r.wh_per_1000, lo, hi) == r.stars, (task, r.model)
                assert rate(task, r.wh_per_1000, "leaderboard-2025-02", cls) == r.stars
                n += 1
    assert n == 166


def test_log_scale_is_monotone_and_resists_an_outlier() -> None:
    values = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 100.0]  # one outlier 30x above the rest
    lo, hi = min(values), max(values)
    lin = [stars_leaderboard(v, lo, hi) for v in values]
    log = [stars_log(v, lo, hi) for v in values]
    assert lin[:-1] == [5] * 6  # the linear rule gives everyone but the outlier 5 stars
    assert len(set(log[:-1])) >= 3 and log == sorted(log, reverse=True)


def test_score_runs_offline_with_a_real_model_and_writes_a_label(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
    from wattlens.score import score
    from wattlens.score.label import label_svg, model_card

    r = score("all-MiniLM-L6-v2", "sentence-similarity", n_samples=10, repetitions=2)
    assert r.samples == 10 and len(r.per_repetition) == 2 and r.wh_per_1000 > 0
    assert r.wh_per_1000_low <= r.wh_per_1000 <= r.wh_per_1000_high
    assert r.stars in range(1, 6) and 15 <= r.input_tokens_mean <= 40  # ~23 tokens per pair, like the leaderboard set
    svg = label_svg(r)
    assert svg.startswith("<svg") and "Wh per 1,000 queries" in svg and "sentence-similarity" in svg
    assert "| sentence-similarity |" in model_card(r)
    from wattlens.measure.sensors import detect
    from wattlens.measure.sensors.fallback import CpuModelSensor

    if any(isinstance(s, CpuModelSensor) for s in detect(Context().factors).sensors):  # no counter: the host model
        assert "own CPU time" in r.attribution and "cpu:process" in r.hardware
    if not any(s.kind == "accelerator" for s in detect(Context().factors).sensors):
        assert r.hardware_class.startswith("CPU host: ") and not r.comparable_with_leaderboard
        assert "NOT comparable" in svg and "not comparable" in r.comparability and "H100" in r.comparability


def test_text_generation_architecture_only(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
    from tiny_models import tiny_llama

    tiny_llama(tmp_path, max_positions=1024)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wattlens.cli",
            "score",
            str(tmp_path),
            "--task",
            "text-generation",
            "--samples",
            "5",
            "--repetitions",
            "2",
            "--random-weights",
            "--json",
            "--label",
            str(tmp_path / "label.svg"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert '"random_weights": true' in r.stdout and '"size_class": "A"' in r.stdout
    assert (tmp_path / "label.svg").read_text().startswith("<svg")


def test_unknown_or_unrunnable_task_is_a_clear_error() -> None:
    r = subprocess.run([sys.executable, "-m", "wattlens.cli", "score", "x", "--task", "asr"], capture_output=True, text=True)
    assert r.returncode == 2 and "no runner yet" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "score", "x", "--task", "poetry"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "unknown task" in r.stderr


@pytest.mark.parametrize("task", ["summarization", "extractive-qa", "text-classification"])
def test_other_text_tasks_architecture_only(task: str, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration, BertConfig, BertModel

    from wattlens.gateway.local import embedding_model_path
    from wattlens.score import score

    tok = AutoTokenizer.from_pretrained(embedding_model_path())
    if task == "summarization":
        cfg = BartConfig(
            vocab_size=tok.vocab_size,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=1024,
            pad_token_id=tok.pad_token_id,
            decoder_start_token_id=tok.cls_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            forced_eos_token_id=None,
        )
        BartForConditionalGeneration(cfg).save_pretrained(tmp_path)
    else:
        cfg = BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            num_labels=4,
        )
        BertModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    r = score(str(tmp_path), task, n_samples=5, repetitions=2, random_weights=True)
    assert r.wh_per_1000 > 0 and 1 <= r.stars <= 5 and r.random_weights


def test_dataset_option_without_the_datasets_package_says_what_to_do() -> None:
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed here")
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", "score", "all-MiniLM-L6-v2", "--dataset", "x/y"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "pip install datasets" in r.stderr


def test_hardware_class_says_whether_stars_compare_with_the_leaderboard() -> None:
    from fakes import FakeGpu, FakeNVML

    from wattlens.measure.sensors import fallback, nvml

    def gpus(name: str) -> tuple[object, ...]:
        return nvml.probe(FakeNVML([FakeGpu(name, "GPU-a", 1_000)]), env={}).sensors

    cpu = fallback.CpuModelSensor(fallback.W_PER_THREAD * 2, 2, "test")
    cpu.model = "Intel(R) Xeon(R) Processor"
    cls, comparable, why = hardware_class([cpu])
    assert cls.startswith("CPU host: Intel(R) Xeon(R) Processor") and not comparable and "not comparable" in why
    cls, comparable, why = hardware_class([*gpus("NVIDIA H100 80GB HBM3"), cpu])
    assert cls == "GPU: NVIDIA H100 80GB HBM3" and comparable and why.startswith("comparable")
    cls, comparable, why = hardware_class(gpus("NVIDIA A100-SXM4-40GB"))
    assert cls == "GPU: NVIDIA A100-SXM4-40GB" and not comparable and "A100" in why
    cpu.close()


def test_spinning_openmp_threads_are_asked_to_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert passive_openmp() == ""
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept, and its effect stated
    assert "spin" in passive_openmp()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_compare_offline_without_the_models_is_a_clear_error(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    args = ["score", "compare", "gpt2", "distilgpt2", "--random-weights", "--task", "text-generation", "--samples", "2"]
    r = subprocess.run(
        [sys.executable, "-m", "wattlens.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 2, r.stderr
    assert "cannot load the tokenizer of 'gpt2'" in r.stderr and "local model directory" in r.stderr
    assert "Traceback" not in r.stderr
