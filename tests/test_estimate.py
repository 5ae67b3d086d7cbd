"""The estimator's invariants, its calibration, and its error handling."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from wattlens.errors import InputError
from wattlens.estimate import HOST_RATIO, IDLE_RATIO, calibration, estimate_request, inference_energy
from wattlens.factors import builtin

BASE = dict(
    active_params_b=8.0, total_params_b=8.0, hardware="H100", gpus=1, batch_size=32, input_tokens=500, output_tokens=300
)


def mid(**kw: object) -> float:
    return inference_energy(**{**BASE, **kw}).mid  # type: ignore[arg-type]


def test_more_output_more_energy() -> None:
    assert mid(output_tokens=301) > mid(output_tokens=300) > mid(output_tokens=10)


def test_more_input_more_energy_and_cache_discounts() -> None:
    assert mid(input_tokens=4000) > mid(input_tokens=500)
    assert mid(input_tokens=4000, cached_input_tokens=3500) < mid(input_tokens=4000)


@pytest.mark.parametrize("params", [(8.0, 8.0), (70.0, 70.0), (22.0, 235.0), (5.0, 117.0)])
def test_larger_batch_less_energy_per_request(params: tuple[float, float]) -> None:
    a, t = params
    values = [mid(active_params_b=a, total_params_b=t, batch_size=b, gpus=8) for b in (1, 8, 64, 256, 1024)]
    assert values == sorted(values, reverse=True)


def test_fp8_not_above_bf16_and_bigger_model_costs_more() -> None:
    assert mid(precision="fp8") <= mid(precision="bf16")
    assert mid(active_params_b=70, total_params_b=70, gpus=4) > mid()


def test_b200_differs_from_h100() -> None:
    assert mid(hardware="B200") != mid(hardware="H100")


def test_boundaries_nest() -> None:
    acc = inference_energy(**BASE, boundary="accelerator")  # type: ignore[arg-type]
    srv = inference_energy(**BASE, boundary="server")  # type: ignore[arg-type]
    dc = inference_energy(**BASE, boundary="datacenter", pue=1.1)  # type: ignore[arg-type]
    assert acc.low <= srv.low <= dc.low and acc.mid <= srv.mid <= dc.mid and acc.high <= srv.high <= dc.high
    assert srv.mid == pytest.approx(acc.mid * (1 + HOST_RATIO.mid))
    assert dc.mid == pytest.approx(acc.mid * (1 + HOST_RATIO.mid) * (1 + IDLE_RATIO.mid) * 1.1)


def test_unknown_batch_spans_a_wider_range() -> None:
    known = inference_energy(**BASE)  # type: ignore[arg-type]
    unknown = estimate_request(**{**BASE, "batch_size": None}, factors=builtin())  # type: ignore[arg-type]
    assert "batch-unknown" in unknown.warnings
    assert unknown.accelerator_wh.width_ratio > known.width_ratio
    assert unknown.accelerator_wh.contains(unknown.accelerator_wh.mid)


def test_uncalibrated_hardware_is_widened_and_said() -> None:
    est = estimate_request(**{**BASE, "hardware": "MI300X"}, factors=builtin())  # type: ignore[arg-type]
    assert "hardware-uncalibrated" in est.warnings
    assert est.accelerator_wh.width_ratio > inference_energy(**BASE).width_ratio  # type: ignore[arg-type]


def test_gpu_count_is_derived_when_not_given() -> None:
    est = estimate_request(**{**BASE, "active_params_b": 405, "total_params_b": 405, "gpus": None}, factors=builtin())  # type: ignore[arg-type]
    assert est.gpus == 16  # 810 GB of bf16 weights in 80 GB cards with 25% left: 13.5 cards -> 16


def test_reproduces_measured_llama_8b_within_interval() -> None:
    """ML.ENERGY v3: Llama-3.1-8B on one H100 at batch 8 used 0.049 Wh per chat response."""
    data = Path(__file__).parents[1] / "fit" / "estimator" / "mlenergy_v3_llm_calibration.csv"
    cal = calibration()
    inside = total = 0
    with data.open() as f:
        for r in csv.DictReader(f):
            if r["model_id"] != "meta-llama/Llama-3.1-8B-Instruct":
                continue
            iv = inference_energy(
                active_params_b=8.0,
                total_params_b=8.0,
                hardware=r["gpu_model"],
                gpus=int(r["num_gpus"]),
                batch_size=float(r["avg_batch_size"]),
                input_tokens=round(cal.task_input_tokens[r["task"]]),
                output_tokens=round(float(r["avg_output_len"])),
            )
            measured_wh = float(r["energy_per_request_joules"]) / 3600
            total += 1
            inside += iv.contains(measured_wh)
    assert total == 20 and inside / total >= 0.85


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"active_params_b": 0}, "positive"),
        ({"active_params_b": 70, "total_params_b": 8}, "fewer than active"),
        ({"input_tokens": -1}, "non-negative"),
        ({"cached_input_tokens": 900}, "exceed"),
        ({"precision": "fp3"}, "precision"),
        ({"batch_size": 0}, "batch"),
        ({"boundary": "planet"}, "boundary"),
    ],
)
def test_bad_input_is_refused_clearly(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        inference_energy(**{**BASE, **kw})  # type: ignore[arg-type]


def test_fast_path_equals_the_term_by_term_model() -> None:
    from wattlens.estimate import accelerator_for
    from wattlens.estimate.model import Workload, request_gpu_s, request_j, request_j_and_gpu_s

    acc, _ = accelerator_for(builtin().hardware.get("B200"))
    c = calibration().coefficients
    for w in (Workload(8, 8, "bf16", 1, 16, 700, 300, 200), Workload(22, 235, "fp8", 8, 128, 2000, 900, 0)):
        j, s = request_j_and_gpu_s(w, acc, c)
        assert j == pytest.approx(request_j(w, acc, c), rel=1e-12)
        assert s == pytest.approx(request_gpu_s(w, acc, c), rel=1e-12)
