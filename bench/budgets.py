"""What tags and budgets add to a gateway request, in process: the code they put on the request path.

    python bench/budgets.py [--n 20000]

Runs, per request, what the gateway runs for tags and budgets (tags from headers and metadata,
the budget check before sending and again for the warning header, counting the settled call,
the tags' metric series) with two budgets that match and three tags, and prints the median of
seven runs beside the gateway's existing Prometheus observer on the same machine for scale.
An end-to-end run (bench/gateway.py) cannot resolve a few tens of microseconds on a shared
machine (its p50 moves by about ±0.1 ms between runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from wattlens.context import Context
from wattlens.footprint import Tokens
from wattlens.gateway.budget_rules import parse_budget
from wattlens.gateway.budgets import Budgets
from wattlens.gateway.metrics import Metrics
from wattlens.gateway.tags import from_request
from wattlens.metering import Call, settle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    n = ap.parse_args().n
    team = {"name": "t", "scope": "team", "match": "research", "unit": "energy_wh", "period": "day", "soft": 1e9}
    tag = {"name": "p", "scope": "tag:project", "match": "atlas", "unit": "carbon_g", "period": "month", "hard": 1e9}
    budgets = Budgets([parse_budget(team, "bench"), parse_budget(tag, "bench")], None)
    metrics = Metrics()
    headers = Headers({"x-wattlens-tag-project": "atlas", "x-wattlens-tag-env": "prod", "authorization": "Bearer x"})
    data = {"model": "gpt-4o-mini", "messages": [], "metadata": {"feature": "search"}}
    call = Call("gateway", "openai", "/chat/completions", "gpt-4o-mini", upstream="u", team="research")
    call.tokens = Tokens(input=100, output=50)
    s = settle(call, Context(), eager=True)  # the receipt exists before observers run (Gateway.finish)
    plain = Call("gateway", "openai", "/chat/completions", "gpt-4o-mini", upstream="u", team="research")
    plain.tokens = call.tokens
    s_plain = settle(plain, Context(), eager=True)
    resp = JSONResponse({})

    def added() -> None:
        call.tags.update(from_request(headers, data, "openai"))
        before = budgets.check(call)
        budgets.observe(s)
        if before.matched:
            warnings = budgets.check(call).warnings
            if warnings:
                resp.headers["x-wattlens-budget-warning"] = ", ".join(warnings)
        for name, value in call.tags.items():  # as Metrics.observe does for tags
            series = metrics._tag_series.get((name, value))
            if series is None:
                t, v = metrics.tag_values.label(name, value)
                series = metrics._tag_series[(name, value)] = (
                    metrics.tag_requests.labels(t, v),
                    metrics.tag_energy.labels(t, v),
                )
            series[0].inc()
            series[1].inc(1.0)

    def median_ms(fn: object) -> float:
        runs = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()  # type: ignore[operator]
            runs.append((time.perf_counter() - t0) / n * 1e3)
        return statistics.median(runs)

    print("| per request | median of 7 runs (ms) |\n|---|---|")
    print(f"| tags + budgets (2 budgets match, 3 tags) | {median_ms(added):.4f} |")
    print(f"| for scale: the existing Prometheus observer, no tags | {median_ms(lambda: metrics.observe(s_plain)):.4f} |")


if __name__ == "__main__":
    main()
