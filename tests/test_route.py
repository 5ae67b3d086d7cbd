"""The router: features, training on real prompts, and `wattlens/auto` through the gateway."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")

import upstream as up

from wattlens.context import Place
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Route, Upstream
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.ledger.summary import summarise
from wattlens.route import Artefact, Router, cheap_features, conversation_text
from wattlens.route.train import evaluate, features, fit_logistic, load, predict, train

SAMPLE = Path(__file__).parent / "data" / "router_sample.csv"


def test_conversation_and_features() -> None:
    text, turns = conversation_text(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "2+2=?"},
        ]
    )
    assert turns == 2 and "be brief" in text and "2+2" in text  # the whole conversation, not only the last turn
    f = cheap_features("def f(x):\n    return x*2\nWhat is 12 * 7?", 1)
    assert f[3] == 1.0 and f[4] == 1.0 and f[5] == 1.0


def test_logistic_head_learns_a_separable_rule() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] > 0).astype(float)
    w, b, m, s = fit_logistic(x, y, l2=0.1)
    p = predict(x, w, b, m, s)
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.97


def test_train_and_evaluate_on_real_prompts(tmp_path: Path) -> None:
    d = load(SAMPLE)
    x = features(d.prompts)
    m = evaluate(d, x, quality=0.95, folds=3)
    assert m["n"] == len(d.prompts) and 0 <= m["router"]["share_large"] <= 1
    assert m["always_small"]["accuracy"] == pytest.approx(d.weak.mean())
    assert m["oracle"]["accuracy"] >= m["accuracy"]["large"]
    art = train(d, x, 0.95, m)
    art.save(tmp_path / "r.json")
    back = Artefact.load(tmp_path / "r.json")
    assert back.weights == art.weights and back.threshold == min(max(m["two_stage"]["threshold"], 0.0), 1.0)
    assert back.cheap_lo <= back.cheap_hi and 0 < m["two_stage"]["decided_early"] < 1
    router = Router(back)
    small, p = router.decide("What is the capital of France?\nA) Paris B) Rome C) Oslo D) Bern")
    assert 0.0 <= p <= 1.0 and isinstance(small, bool)


def test_bad_training_file(tmp_path: Path) -> None:
    from wattlens.errors import InputError

    f = tmp_path / "x.csv"
    f.write_text("prompt,weak_correct\nhi,True\n")
    with pytest.raises(InputError, match="strong_correct"):
        load(f)
    f.write_text("prompt,weak_correct,strong_correct\nhi,maybe,True\n")
    with pytest.raises(InputError, match="True or False"):
        load(f)


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("route")
    with up.ServerThread(up.app) as fake:
        cfg = GatewayConfig(
            upstreams=(
                Upstream("cloud", "openai", fake.url + "/v1", models=("gpt-4o-mini", "gpt-4o"), place=Place(zone="FR")),
            ),
            routes=(
                Route("wattlens/auto", "gpt-4o-mini", "gpt-4o"),
                Route("always-small", "gpt-4o-mini", "gpt-4o", threshold=0.0),
                Route("always-large", "gpt-4o-mini", "gpt-4o", threshold=1.0),
            ),
            ledger=str(tmp / "l.db"),
        )
        writer = LedgerWriter(open_ledger(cfg.ledger))
        with up.ServerThread(create_app(cfg, writer)) as gw:
            yield {"url": gw.url, "writer": writer, "db": cfg.ledger}


def test_auto_route_through_the_gateway(routed: dict[str, Any]) -> None:
    c = openai.OpenAI(base_url=routed["url"] + "/v1", api_key="x", max_retries=0)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    r = c.chat.completions.create(model="always-small", messages=msgs)
    fp = r.usage.footprint  # type: ignore[union-attr]
    assert r.model == "gpt-4o-mini" and fp["routing"]["chosen"] == "gpt-4o-mini"
    assert fp["routing"]["instead_of"] == "gpt-4o" and fp["routing"]["energy_saved_wh"]["mid"] > 0
    r2 = c.chat.completions.create(model="always-large", messages=msgs)
    assert r2.model == "gpt-4o" and r2.usage.footprint["routing"]["energy_saved_wh"]["mid"] == 0  # type: ignore[union-attr]
    r3 = c.chat.completions.create(model="wattlens/auto", messages=msgs, extra_headers={"x-wattlens-preference": "energy"})
    assert r3.model in ("gpt-4o-mini", "gpt-4o") and 0 <= r3.usage.footprint["routing"]["p_small_ok"] <= 1  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="wattlens/auto", messages=msgs, extra_headers={"x-wattlens-preference": "x"})
    routed["writer"].flush()
    s = summarise(open_ledger(routed["db"]).records())["total"]
    assert s["routed"] >= 3 and s["routed_to_small"] >= 1 and s["energy_saved_wh"]["mid"] > 0
    recs = list(open_ledger(routed["db"]).records())
    assert {x["model_requested"] for x in recs} >= {"always-small", "always-large", "wattlens/auto"}


def test_sample_file_is_real_data() -> None:
    rows = list(csv.DictReader(SAMPLE.open()))
    assert len(rows) == 400 and {r["dataset"] for r in rows} == {"gsm8k", "mmlu"}


def test_routes_from_the_config_file(tmp_path: Path) -> None:
    from wattlens.errors import ConfigError
    from wattlens.gateway.config import load_gateway_config

    f = tmp_path / "gw.toml"
    f.write_text(
        '[[upstreams]]\nbase_url = "http://127.0.0.1:9/v1"\n[[routes]]\nname = "wattlens/auto"\n'
        'small = "gpt-4o-mini"\nlarge = "gpt-4o"\nembed_all = true\n'
    )
    (r,) = load_gateway_config(f).routes
    assert (r.name, r.small, r.large, r.embed_all, r.threshold) == ("wattlens/auto", "gpt-4o-mini", "gpt-4o", True, None)
    f.write_text('[[upstreams]]\nbase_url = "http://x/v1"\n[[routes]]\nsmall = "a"\n')
    with pytest.raises(ConfigError, match="small and large"):
        load_gateway_config(f)


def test_two_stage_router_decides_cheaply_when_confident() -> None:
    router = Router(Artefact.load())
    assert router.two_stage and router.a.cheap_lo < router.a.cheap_hi
    decisions = [router.p_cheap(p) for p in ("What is 2+2?", "Solve for x: 3x + 5 = 20. Show your work step by step.")]
    assert all(d is not None and 0 <= d <= 1 for d in decisions)
    full = Router(Artefact.load(), two_stage=False)
    assert full.p_cheap("x") is None and 0 <= full.decide("What is the capital of France?")[1] <= 1


def test_calibrate_to_a_share_of_large_model_calls() -> None:
    from wattlens.route.train import at_share

    d = load(SAMPLE)
    x = features(d.prompts)
    m = evaluate(d, x, quality=0.95, folds=3)
    art = train(d, x, 0.95, m, max_large_share=0.3)
    row = at_share(m["curves"]["two_stage"], 0.3)
    assert row["share_large"] <= 0.3 and art.threshold == min(max(row["threshold"], 0.0), 1.0)
