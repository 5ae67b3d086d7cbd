"""Time one request's impacts: wattlens's full receipt against EcoLogits' impacts, same run.

python bench/estimate.py [--n 2000] [--repeats 7]

The fair pair is the whole receipt on both sides: wattlens `estimate_footprint` (energy, facility
energy, location/market/embodied carbon, onsite/offsite water, each an interval) against EcoLogits
`llm_impacts` (its per-request entry point: energy, GWP, ADPe, PE, water, usage and embodied) for
the same named API model, and the same two turned into the dict a user logs (`as_dict()` /
`model_dump()`). EcoLogits' `compute_llm_impacts` (its formula with every input given, no name
or zone look-up) is set beside wattlens's receipt for an open model with every input given.
`inference_energy` (energy only) is shown for reference and not compared with anything.
The variants are timed in interleaved repeats; each cell is the median over repeats (min–max)
and each ratio is the ratio of medians with the range of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from common import load, spread, table, write


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Time wattlens estimate_footprint against EcoLogits llm_impacts/compute_llm_impacts "
        "(same run, interleaved repeats) and write bench/results/estimate.md."
    )
    ap.add_argument("--n", type=int, default=2000, help="calls per wattlens variant and repeat (EcoLogits: n/4)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    loads = [load()]
    from ecologits.impacts.llm import compute_llm_impacts
    from ecologits.tracers.utils import llm_impacts

    from wattlens.estimate import inference_energy
    from wattlens.estimate.spread import input_spreads
    from wattlens.receipt import LLMRequest, Place, estimate_footprint

    place = Place(zone="FR")
    mini = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
    api = LLMRequest(model="gpt-4o", input_tokens=1155, output_tokens=211)
    given = LLMRequest(
        input_tokens=250, output_tokens=350, active_params_b=70, total_params_b=70, hardware="H100", gpus=4, batch_size=64
    )

    from wattlens import receipt

    def cold() -> object:
        input_spreads.cache_clear()  # both spread caches: the shared one and the prepared request's own
        for plan in receipt._PLANS.values():
            plan.prepared._spreads.clear()
        return estimate_footprint(api, place)

    def formula() -> object:
        return compute_llm_impacts(
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
        )

    ours, eco = args.n, max(args.n // 4, 200)
    variants: dict[str, tuple[Callable[[], object], int]] = {
        "w_receipt": (lambda: estimate_footprint(mini, place), ours),
        "e_impacts": (lambda: llm_impacts("openai", "gpt-4o-mini", 350, 5.0, "FRA"), eco),
        "w_dict": (lambda: estimate_footprint(mini, place).as_dict(), ours),
        "e_dict": (lambda: llm_impacts("openai", "gpt-4o-mini", 350, 5.0, "FRA").model_dump(), eco),
        "w_given": (lambda: estimate_footprint(given, place), ours),
        "e_formula": (formula, eco),
        "w_api": (lambda: estimate_footprint(api, place), ours),
        "w_cold": (cold, ours // 2),
        "w_energy": (
            lambda: inference_energy(
                active_params_b=70,
                total_params_b=70,
                hardware="H100",
                gpus=4,
                batch_size=64,
                input_tokens=250,
                output_tokens=350,
            ),
            ours,
        ),
    }
    for fn, _ in variants.values():  # warm caches (factor tables, coefficients, EcoLogits' model repository)
        for _ in range(20):
            fn()
    us: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for k, (fn, n) in variants.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            us[k].append((time.perf_counter() - t0) / n * 1e6)
    loads.append(load())

    def ratio(peer: str, ours: str) -> str:
        per = sorted(e / w for e, w in zip(us[peer], us[ours], strict=True))
        return f"**{statistics.median(us[peer]) / statistics.median(us[ours]):.1f}×** ({per[0]:.1f}–{per[-1]:.1f}×)"

    rows = [
        ["wattlens `estimate_footprint` (gpt-4o-mini, FR: the full receipt)", spread(us["w_receipt"]), "1×"],
        [
            "EcoLogits `llm_impacts` (gpt-4o-mini, FRA: its per-request impacts, five categories)",
            spread(us["e_impacts"]),
            ratio("e_impacts", "w_receipt"),
        ],
        ["wattlens `estimate_footprint(...).as_dict()` (the receipt as logged)", spread(us["w_dict"]), "1×"],
        [
            "EcoLogits `llm_impacts(...).model_dump()` (its impacts as logged)",
            spread(us["e_dict"]),
            ratio("e_dict", "w_dict"),
        ],
        [
            "wattlens `estimate_footprint` (open 70B model, H100×4, batch 64 given: no catalogue look-up)",
            spread(us["w_given"]),
            "1×",
        ],
        [
            "EcoLogits `compute_llm_impacts` (its formula alone, 70B, mix factors given)",
            spread(us["e_formula"]),
            ratio("e_formula", "w_given"),
        ],
        ["wattlens `estimate_footprint` (gpt-4o, every serving input unknown; spreads cached)", spread(us["w_api"]), "-"],
        ["wattlens `estimate_footprint` (gpt-4o, spread cache cold: 9 model evaluations)", spread(us["w_cold"]), "-"],
        ["wattlens `inference_energy` (energy only, 70B, H100×4; reference, not compared)", spread(us["w_energy"]), "-"],
    ]
    body = table(["call", "µs per call", "÷ the wattlens row above it (same work)"], rows)
    body += (
        f"\n\nEach cell: median over {args.repeats} interleaved repeats (min–max); {ours} calls per wattlens variant "
        f"and repeat, {eco} per EcoLogits variant. Ratios: EcoLogits' median ÷ wattlens's median for the same "
        "work, with the range of the per-repeat ratios."
        f"\n\nLoad average (1, 5, 15 min) at the start and the end: {'; '.join(loads)} (2 cores, shared with other "
        "engineers' work); ratios are within one run."
    )
    write("estimate.md", "Estimate speed", body, f"python bench/estimate.py --n {args.n} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
