"""The shipped calibration of the inference model, and the model's view of a hardware row.

fit/estimator/fit.py writes coefficients.json; it is read once and never refitted at run time.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from wattlens.errors import InputError
from wattlens.estimate.model import Accelerator, Coefficients

if TYPE_CHECKING:
    from wattlens.factors.records import Hardware


@dataclass(frozen=True, slots=True)
class Calibration:
    coefficients: Coefficients
    hardware_efficiency: dict[str, float]
    q_low: float
    q_high: float
    version: str
    task_input_tokens: dict[str, float]


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The shipped coefficients (fit/estimator/fit.py writes them; never refitted at run time)."""
    text = resources.files("wattlens.estimate").joinpath("coefficients.json").read_text(encoding="utf-8")
    d: dict[str, Any] = json.loads(text)
    return Calibration(
        coefficients=Coefficients(**d["coefficients"]),
        hardware_efficiency=dict(d["hardware_efficiency"]),
        q_low=float(d["log_residual_quantiles"]["low"]),
        q_high=float(d["log_residual_quantiles"]["high"]),
        version=str(d["version"]),
        task_input_tokens={k: float(v) for k, v in d["task_input_tokens"].items()},
    )


def accelerator_for(hw: Hardware) -> tuple[Accelerator, bool]:
    """The model's view of a hardware row, and whether the chip is in the calibration data.

    Cached by the row's identity: hashing a whole row on every request costs microseconds.
    """
    hit = _ACCELERATORS.get(id(hw))
    if hit is not None and hit[0] is hw:
        return hit[1]
    result = _accelerator(hw)
    if len(_ACCELERATORS) > 256:
        _ACCELERATORS.clear()
    _ACCELERATORS[id(hw)] = (hw, result)
    return result


_ACCELERATORS: dict[int, tuple[Hardware, tuple[Accelerator, bool]]] = {}


def _accelerator(hw: Hardware) -> tuple[Accelerator, bool]:
    if hw.kind != "accelerator" or not hw.memory_bandwidth_tb_per_s or not hw.bf16_tflops:
        raise InputError(f"{hw.hardware_id} is not an accelerator with bandwidth and FLOP/s in the hardware table")
    cal = calibration()
    eff = cal.hardware_efficiency.get(hw.hardware_id)
    acc = Accelerator(
        name=hw.hardware_id,
        tdp_w=hw.max_power_w,
        memory_bandwidth_tb_per_s=hw.memory_bandwidth_tb_per_s,
        bf16_tflops=hw.bf16_tflops,
        fp8_tflops=hw.fp8_tflops or hw.bf16_tflops,
        fp4_tflops=hw.fp4_tflops or hw.fp8_tflops or hw.bf16_tflops,
        memory_gb=hw.memory_gb,
        # Uncalibrated chips take the mean software efficiency of the calibrated ones.
        efficiency=eff if eff is not None else sum(cal.hardware_efficiency.values()) / len(cal.hardware_efficiency),
    )
    return acc, eff is not None
