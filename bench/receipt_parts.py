"""Where one receipt's time goes: each step of `estimate_footprint` timed on its own, HEAD and a previous checkout.

    python bench/receipt_parts.py [--n 20000] [--previous CHECKOUT]

The steps are the ones `estimate_footprint` runs for an API model (gpt-4o-mini, FR) once its plan
(name resolution, validation, chips, site) is cached; the whole receipt and its JSON form are timed
too, and with --previous the same whole receipt of another commit in the same run (a subprocess).
Best of 5 repeats per figure (the floor: other load only ever adds time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import timeit
from pathlib import Path

from common import table, write

WHOLE = r"""
import json, sys, timeit
from wattlens.context import Context, Place
from wattlens.receipt import LLMRequest, estimate_footprint
n = int(sys.argv[1])
ctx = Context(Place(zone="FR"))
req = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
estimate_footprint(req, ctx)
best = lambda f: min(timeit.repeat(f, number=n, repeat=5)) / n * 1e6
print(json.dumps({"receipt": best(lambda: estimate_footprint(req, ctx)),
                  "receipt + as_dict": best(lambda: estimate_footprint(req, ctx).as_dict())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="calls per repeat")
    ap.add_argument("--previous", help="a checkout of an earlier commit: its whole receipt in the same run")
    args = ap.parse_args()
    from wattlens.context import Context, Place
    from wattlens.estimate import scale_to_boundary
    from wattlens.footprint import Tokens
    from wattlens.impacts import EmbodiedShare, footprint
    from wattlens.receipt import LLMRequest, Receipt, _plan, estimate_footprint, estimate_receipt

    ctx = Context(Place(zone="FR"))
    req = LLMRequest(model="gpt-4o-mini", input_tokens=250, output_tokens=350)
    fp = estimate_footprint(req, ctx)
    plan = _plan(req, ctx, "datacenter", True, False)
    est = plan.prepared.evaluate(250, 350, 0)
    case, prepared = plan.prepared.case, plan.prepared
    site = plan.site.at(ctx, None)
    assert plan.hosts is not None
    acc_hw, host_hw = plan.hosts
    shares = (EmbodiedShare(acc_hw, 1.0, est.accelerator_s), EmbodiedShare(host_hw, 1.0 / 8, est.accelerator_s))
    it_wh = scale_to_boundary(est.accelerator_wh, "datacenter")

    def best(f: object) -> float:
        return min(timeit.repeat(f, number=args.n, repeat=5)) / args.n * 1e6  # type: ignore[arg-type]

    a_mid, t_mid, b_mid = case.active[1], case.total[1], prepared.b_mid

    def run() -> object:
        return case.run(a_mid, t_mid, b_mid, case.acc, prepared.n_gpus, 250.0, 350.0, 0.0)

    assert plan.fast is not None
    figs = plan.fast.figures(plan, req, ctx, None)
    assert figs is not None

    steps = [
        ("plan lookup (cached per model and context)", lambda: _plan(req, ctx, "datacenter", True, False)),
        ("estimate: one model evaluation, reference (case.run)", run),
        ("estimate: one model evaluation, float path (MidModel)", lambda: prepared.mid.parts(250.0, 350.0, 0.0)),
        ("estimate: evaluation + cached spreads, floats (PreparedRequest.figures)", lambda: prepared.figures(250, 350, 0)),
        ("estimate: the same as a RequestEstimate (evaluate)", lambda: prepared.evaluate(250, 350, 0)),
        ("receipt's 21 figures on floats (receipt._Fast.figures)", lambda: plan.fast.figures(plan, req, ctx, None)),
        ("Footprint from the figures (7 Intervals, Tokens, Footprint)", lambda: Receipt(plan, figs, None)._build()),
        ("JSON form from the figures (Receipt.as_dict)", lambda: Receipt(plan, figs, None).as_dict()),
        ("assumptions shown in the receipt", lambda: est.assumptions),
        ("site: grid reading (annual, memoised)", lambda: plan.site.at(ctx, None)),
        ("boundary scaling (server, idle, facility)", lambda: scale_to_boundary(est.accelerator_wh, "datacenter")),
        ("impacts: carbon, water, embodied -> Footprint", lambda: footprint(
            it_wh, site, method="estimated", boundary=plan.boundary_parts, factors_version="x", embodied=shares,
            model="m", tokens=Tokens(250, 0, 350, 0), warnings=plan.warnings, assumptions=None)),
        ("receipt's JSON form (Footprint.as_dict)", lambda: fp.as_dict()),
        ("whole receipt (estimate_footprint)", lambda: estimate_footprint(req, ctx)),
        ("whole receipt + as_dict", lambda: estimate_footprint(req, ctx).as_dict()),
        ("whole receipt as JSON form, no Footprint (estimate_receipt().as_dict(): metering's path)",
         lambda: estimate_receipt(req, ctx).as_dict()),
    ]  # fmt: skip
    rows = [[label, f"{best(f):.1f}"] for label, f in steps]
    if args.previous:
        env = {**os.environ, "PYTHONPATH": str(Path(args.previous) / "src")}
        out = subprocess.run([sys.executable, "-c", WHOLE, str(args.n)], env=env, capture_output=True, text=True, check=True)
        prev = json.loads(out.stdout)
        rows += [[f"{k}, previous checkout", f"{v:.1f}"] for k, v in prev.items()]
    load = os.getloadavg()
    body = table(["step", "µs (best of 5)"], rows)
    body += (
        f"\n\nLoad average (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on 2 cores. The steps overlap "
        "(the evaluation includes the model evaluation); the interval-arithmetic steps (site, boundary scaling, "
        "impacts) are the reference path, which the receipt takes only where a factor is negative. The whole "
        "receipt is plan lookup + the figures + the Footprint, plus Python's call overhead."
    )
    command = f"python bench/receipt_parts.py --n {args.n}" + (f" --previous {args.previous}" if args.previous else "")
    write("receipt_parts.md", "Where a receipt's time goes", body, command)


if __name__ == "__main__":
    main()
