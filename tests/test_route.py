"""The router: features, training on real prompts, and `wattlens/auto` through the gateway."""

from __future__ import annotations

import csv
import itertools
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
from wattlens.route import EMBEDDERS, ROUTER_EMBEDDER, Artefact, Router, cheap_features, conversation_text
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


@pytest.fixture(scope="module")
def sample() -> tuple[Any, Any]:
    """The 400 sample prompts and their features, embedded once for the tests that train."""
    d = load(SAMPLE)
    return d, features(d.prompts)


def test_train_and_evaluate_on_real_prompts(tmp_path: Path, sample: tuple[Any, Any]) -> None:
    d, x = sample
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
    assert r.embedder == ROUTER_EMBEDDER
    f.write_text('[[upstreams]]\nbase_url = "http://x/v1"\n[[routes]]\nsmall = "a"\n')
    with pytest.raises(ConfigError, match="small and large"):
        load_gateway_config(f)
    f.write_text('[[upstreams]]\nbase_url = "http://x/v1"\n[[routes]]\nsmall = "a"\nlarge = "b"\nembedder = "fp16"\n')
    with pytest.raises(ConfigError, match="embedder must be"):
        load_gateway_config(f)
    f.write_text('[[upstreams]]\nbase_url = "http://x/v1"\n[[routes]]\nsmall = "a"\nlarge = "b"\nembedder = "fp32"\n')
    assert load_gateway_config(f).routes[0].embedder == "fp32" and set(EMBEDDERS) == {"int8", "fp32"}


def test_two_stage_router_decides_cheaply_when_confident() -> None:
    router = Router(Artefact.load())
    assert router.two_stage and router.a.cheap_lo < router.a.cheap_hi
    decisions = [router.p_cheap(p) for p in ("What is 2+2?", "Solve for x: 3x + 5 = 20. Show your work step by step.")]
    assert all(d is not None and 0 <= d <= 1 for d in decisions)
    full = Router(Artefact.load(), two_stage=False)
    assert full.p_cheap("x") is None and 0 <= full.decide("What is the capital of France?")[1] <= 1


def test_calibrate_to_a_share_of_large_model_calls(sample: tuple[Any, Any]) -> None:
    from wattlens.route.train import at_share

    d, x = sample
    m = evaluate(d, x, quality=0.95, folds=3)
    art = train(d, x, 0.95, m, max_large_share=0.3)
    row = at_share(m["curves"]["two_stage"], 0.3)
    assert row["share_large"] <= 0.3 and art.threshold == min(max(row["threshold"], 0.0), 1.0)


# -- everyday chat and the budget as the router's third target --------------------------------------

EVERYDAY = Path(__file__).parents[1] / "fit" / "router" / "everyday_chat.csv"


def test_threshold_for_preference_and_budget_worked_examples() -> None:
    from wattlens.errors import InputError
    from wattlens.route import threshold_for

    assert threshold_for(0.8) == 0.8
    assert threshold_for(0.8, "quality") == pytest.approx(0.9)  # halfway to 1
    assert threshold_for(0.8, "energy") == pytest.approx(0.4)  # halfway to 0
    assert threshold_for(0.8, budget_used_share=0.3) == 0.8  # below the start of the pressure: unchanged
    assert threshold_for(0.8, budget_used_share=0.5) == 0.8
    assert threshold_for(0.8, budget_used_share=0.75) == pytest.approx(0.4)  # half-way from 50 % to 100 %: half
    assert threshold_for(0.8, "quality", 0.9) == pytest.approx(0.9 * 0.2)  # (0.9 - 0.5) / 0.5 = 0.8 of the way to 0
    assert threshold_for(0.8, budget_used_share=1.0) == 0.0 and threshold_for(0.8, budget_used_share=3.0) == 0.0
    shares = [i / 20 for i in range(31)]
    ts = [threshold_for(0.9, "balanced", u) for u in shares]
    assert all(a >= b for a, b in itertools.pairwise(ts))  # more budget used: never a higher threshold
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="budget_used_share"):
            threshold_for(0.8, budget_used_share=bad)
    with pytest.raises(InputError, match="preference"):
        threshold_for(0.8, "cheapest")
    with pytest.raises(InputError, match="threshold"):
        threshold_for(1.2)


def test_budget_pressure_moves_a_hard_request_to_the_small_model() -> None:
    router = Router(Artefact.load())
    hard = [{"role": "user", "content": "Prove that there are infinitely many primes, then generalise the proof."}]
    calm = router.choose(hard, "balanced", budget_used_share=None)
    spent = router.choose(hard, "balanced", budget_used_share=1.0)
    assert spent.threshold == 0.0 and spent.small and spent.stage == "embedded"  # the cheap "large" is not final
    assert calm.threshold == router.default_threshold
    half = router.choose(hard, "balanced", budget_used_share=0.75)
    assert half.threshold == pytest.approx(router.default_threshold / 2)
    assert half.small == (half.p_small_ok >= half.threshold)


def test_a_single_user_message_is_embedded_as_trained() -> None:
    assert conversation_text([{"role": "user", "content": "hi"}]) == ("hi", 1)
    assert (
        conversation_text([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}])[0]
        == "system: x\nuser: hi"
    )


def test_weights_count_rows_as_copies() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] + rng.normal(size=60) > 0).astype(float)
    weight = np.ones(60)
    weight[:10] = 2.0
    dup = fit_logistic(np.vstack([x, x[:10]]), np.concatenate([y, y[:10]]), l2=1.0)
    weighted = fit_logistic(x, y, l2=1.0, weight=weight)
    for a, b in zip(dup, weighted, strict=True):
        assert np.allclose(a, b)


def test_everyday_set_follows_its_rule_and_keeps_evaluation_out_of_training() -> None:
    rows = list(csv.DictReader(EVERYDAY.open(encoding="utf-8")))
    train_p = {r["prompt"].strip().lower() for r in rows if r["split"] == "train"}
    eval_p = [r["prompt"].strip().lower() for r in rows if r["split"] == "eval"]
    assert eval_p and not train_p & set(eval_p)
    for r in rows:
        easy = r["difficulty"] == "easy"
        assert (r["weak_correct"], r["strong_correct"]) == (("True", "True") if easy else ("False", "True"))
        assert (r["category"] == "hard") == (not easy)
    cats = {r["category"] for r in rows}
    assert cats == {"greeting", "fact", "arithmetic", "rewrite", "translation", "summary", "code", "hard"}
    assert all({r["split"] for r in rows if r["category"] == c} == {"train", "eval"} for c in cats)
    assert {"hi", "what is the capital of france?", "what is 2+2?"} <= set(eval_p)  # the issue's prompts


def test_balanced_mode_keeps_everyday_chat_on_the_small_model() -> None:
    """The shipped router on the held-out everyday prompts, routed as the gateway routes them."""
    from wattlens.route.train import evaluate_requests

    chat = load(EVERYDAY).where("split", "eval")
    two = evaluate_requests(Router(Artefact.load()), chat)
    full = evaluate_requests(Router(Artefact.load(), two_stage=False), chat)
    assert two["easy"]["n"] + two["hard"]["n"] == len(chat.prompts)
    assert two["easy"]["share_large"] <= 0.2 and full["easy"]["share_large"] <= 0.2
    assert two["hard"]["share_large"] > two["easy"]["share_large"]  # not one-sided: hard requests still go large


def test_extra_rows_train_but_are_not_scored(sample: tuple[Any, Any]) -> None:
    d, x = sample
    chat = load(EVERYDAY).where("split", "train")
    xc = features(chat.prompts)
    m = evaluate(d, x, quality=0.95, folds=3, extra=chat, x_extra=xc, extra_weight=3.0)
    assert m["n"] == len(d.prompts) and m["extra_cv"]["n"] == len(chat.prompts)
    for k in ("two_stage", "router"):
        assert 0.0 <= m["extra_cv"][k]["easy_share_large"] <= 1.0
    art = train(d, x, 0.95, m, extra=chat, x_extra=xc, extra_weight=3.0)
    assert "weight 3" in art.trained_on and len(art.weights) == x.shape[1]


def test_everyday_prompts_from_the_issue_go_to_the_small_model_through_the_gateway(routed: dict[str, Any]) -> None:
    c = openai.OpenAI(base_url=routed["url"] + "/v1", api_key="x", max_retries=0)
    for prompt in ("hi", "What is the capital of France?", "What is 2+2?"):
        r = c.chat.completions.create(model="wattlens/auto", messages=[{"role": "user", "content": prompt}])
        routing = r.usage.footprint["routing"]  # type: ignore[union-attr]
        assert r.model == "gpt-4o-mini" and routing["preference"] == "balanced", (prompt, routing)


def test_vectorised_scores_match_the_router() -> None:
    """route eval (vectorised) and the gateway's Router score a prompt the same way, chat heads included."""
    from wattlens.route.train import artefact_scores

    art = Artefact.load()
    assert art.gate is not None and art.chat is not None
    prompts = ["hi", "Translate 'thank you' into Italian.", "Prove that there are infinitely many primes."]
    batch = artefact_scores(art, features(prompts))
    router = Router(art, two_stage=False, embedder="fp32")  # train's features are fp32 embeddings
    for p, s in zip(prompts, batch, strict=True):
        assert router.p_small_ok(p) == pytest.approx(float(s), abs=1e-4)


def test_warm_loads_the_embedder_before_the_first_embedded_decision() -> None:
    from wattlens.route import embedder

    embedder.cache_clear()
    router = Router(Artefact.load())
    router.warm()
    assert embedder.cache_info().currsize == 1  # the router's own embedder only (int8 by default)
    before = router.p_small_ok("Prove that there are infinitely many primes.")
    router.warm()  # idempotent: the same model, the same embedding
    assert router.p_small_ok("Prove that there are infinitely many primes.") == before


def test_int8_embedder_decides_as_the_fp32_one_on_the_sample() -> None:
    """The default int8 embedding stage makes the fp32 decisions (the heads were fitted on fp32)."""
    import numpy as np

    from wattlens.route.train import artefact_scores

    art = Artefact.load()
    prompts = load(SAMPLE).prompts[::2]  # 200 of the 400 GSM8K/MMLU prompts
    fp32 = artefact_scores(art, features(prompts))
    router = Router(art, two_stage=False, threads=None)
    assert router.embedder == "int8"
    int8 = np.array([router.p_small_ok(p) for p in prompts])
    full_t = router.full_threshold
    # measured on all 400: 95 % of embed_all decisions identical, |dp| at most 0.11 (docs/router.md)
    assert float(np.mean((int8 >= full_t) == (fp32 >= full_t))) >= 0.9
    assert float(np.abs(int8 - fp32).max()) < 0.15
    # the default router (two stages): the cheap stage is unchanged, the embedded rest agrees
    two, ref = Router(art, threads=None), Router(art, embedder="fp32", threads=None)
    assert np.mean([two.decision(p).small == ref.decision(p).small for p in prompts[:100]]) >= 0.95  # measured 99 %


def test_embedder_and_threads_are_checked_and_threads_set_once() -> None:
    import torch

    from wattlens.errors import InputError

    with pytest.raises(InputError, match="embedder"):
        Router(Artefact.load(), embedder="fp16")
    with pytest.raises(InputError, match="threads"):
        Router(Artefact.load(), threads=0)
    before = torch.get_num_threads()
    try:
        Router(Artefact.load(), two_stage=False, threads=None).p_small_ok("hi")
        assert torch.get_num_threads() == before  # None leaves torch alone
        Router(Artefact.load(), two_stage=False, threads=1).p_small_ok("hi")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
