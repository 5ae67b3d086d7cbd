"""Time one inference-energy estimate: wattlens against EcoLogits in the same run.

python bench/estimate.py [--n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from common import table, write


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    fn()  # warm caches (factor tables, coefficient file, EcoLogits' model repository)
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    from wattlens.estimate import inference_energy
    from wattlens.receipt import LLMRequest, Place, estimate_footprint

    ours_energy = per_call_us(
        lambda: inference_energy(
            active_params_b=70,
            total_params_b=70,
            hardware="H100",
            gpus=4,
            batch_size=64,
            input_tokens=250,
            output_tokens=350,
        ),
        args.n,
    )
    req, place = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350), Place(zone="FR")
    ours_receipt = per_call_us(lambda: estimate_footprint(req, place), args.n // 4)
    # An API model with every serving input unknown: batch, replica, parameters and hardware each vary
    # the model for the interval; their spreads are cached per quarter-octave of tokens, so the cold
    # case (cache cleared on every call) is the worst a receipt costs.
    from wattlens.estimate.spread import input_spreads

    api = LLMRequest(model="gpt-4o", input_tokens=1155, output_tokens=211)
    ours_api = per_call_us(lambda: estimate_footprint(api, place), args.n // 4)

    def cold() -> object:
        input_spreads.cache_clear()
        return estimate_footprint(api, place)

    ours_api_cold = per_call_us(cold, args.n // 4)
    rows = [
        ["wattlens `inference_energy` (70B, H100x4, batch 64)", f"{ours_energy:.1f}", "1x", "-"],
        [
            "wattlens `estimate_footprint` (gpt-4o-mini, FR: energy+carbon+water+embodied)",
            f"{ours_receipt:.1f}",
            "-",
            "1x",
        ],
        [
            "wattlens `estimate_footprint` (gpt-4o, every serving input unknown; spreads cached)",
            f"{ours_api:.1f}",
            "-",
            f"{ours_api / ours_receipt:.1f}x",
        ],
        [
            "wattlens `estimate_footprint` (gpt-4o, spread cache cold: 9 model evaluations)",
            f"{ours_api_cold:.1f}",
            "-",
            f"{ours_api_cold / ours_receipt:.1f}x",
        ],
    ]
    try:
        from ecologits.impacts.llm import compute_llm_impacts
        from ecologits.tracers.utils import llm_impacts
    except ImportError:
        rows.append(["EcoLogits", "not installed (pip install -e '.[bench]')", "-"])
    else:
        eco_full = per_call_us(lambda: llm_impacts("openai", "gpt-4o-mini", 350, 5.0, "FRA"), max(args.n // 20, 200))
        eco_formula = per_call_us(
            lambda: compute_llm_impacts(
                model_active_parameter_count=70,
                model_total_parameter_count=70,
                output_token_count=350,
                if_electricity_mix_adpe=1e-8,
                if_electricity_mix_pe=10,
                if_electricity_mix_gwp=0.05,
                if_electricity_mix_wue=3.6,
                request_latency=5.0,
                datacenter_pue=1.2,
                datacenter_wue=0.5,
            ),
            max(args.n // 20, 200),
        )
        rows.append(
            [
                "EcoLogits `compute_llm_impacts` (its formula alone, 70B)",
                f"{eco_formula:.1f}",
                f"{eco_formula / ours_energy:.0f}x",
                f"{eco_formula / ours_receipt:.1f}x",
            ]
        )
        rows.append(
            [
                "EcoLogits `llm_impacts` (its per-request call, gpt-4o-mini, FRA)",
                f"{eco_full:.1f}",
                f"{eco_full / ours_energy:.0f}x",
                f"{eco_full / ours_receipt:.1f}x",
            ]
        )
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    body = table(["call", "µs per call (median of 5 runs)", "÷ our inference_energy", "÷ our full receipt"], rows)
    body += f"\nLoad average during the run (1, 5, 15 min): {load} on 2 cores; ratios are within one run.\n"
    write("estimate.md", "Estimate speed", body, f"python bench/estimate.py --n {args.n}")


if __name__ == "__main__":
    main()
