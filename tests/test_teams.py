"""Team-scoped views and the pages' sign-in: a team's key reads only its team, through every page and API."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import openai
import pytest
import upstream as up

from wattlens.gateway.app import create_app
from wattlens.gateway.auth import SESSION_COOKIE
from wattlens.gateway.config import ApiKey, GatewayConfig, Route, Upstream
from wattlens.ledger import LedgerWriter, open_ledger
from wattlens.receipt import Place

KEYS = {"admin": "wl-admin-0", "a": "wl-team-a-0", "b": "wl-team-b-0", "c": "wl-team-c-0", "none": "wl-no-team-0"}
CALLS = {"a": 3, "b": 2}  # requests made with each team's key


def bearer(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[who]}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("teams")
    with up.ServerThread(up.app) as fake:
        cfg = GatewayConfig(
            upstreams=(
                Upstream("oai", "openai", fake.url + "/v1", models=("gpt-4o-mini", "gpt-4o"), place=Place(zone="FR")),
            ),
            keys=(
                ApiKey("ops", hashlib.sha256(KEYS["admin"].encode()).hexdigest(), admin=True),
                ApiKey("ka", hashlib.sha256(KEYS["a"].encode()).hexdigest(), team="a"),
                ApiKey("kb", hashlib.sha256(KEYS["b"].encode()).hexdigest(), team="b"),
                ApiKey("kc", hashlib.sha256(KEYS["c"].encode()).hexdigest(), team="c"),  # the browser's
                ApiKey("kn", hashlib.sha256(KEYS["none"].encode()).hexdigest()),
            ),
            routes=(Route("wattlens/auto", "gpt-4o-mini", "gpt-4o"),),
            ledger=str(tmp / "ledger.db"),
        )
        writer = LedgerWriter(open_ledger(cfg.ledger), flush_s=0.05)
        with up.ServerThread(create_app(cfg, writer)) as gw:
            for team, n in CALLS.items():
                c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEYS[team], max_retries=0)
                for _ in range(n):
                    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            writer.flush()
            yield {"url": gw.url}


def test_summary_is_scoped_to_the_callers_team(site: dict[str, Any]) -> None:
    for team, n in CALLS.items():
        s = httpx.get(site["url"] + "/wattlens/api/summary?by=team", headers=bearer(team)).json()
        assert s["team"] == team and s["total"]["requests"] == n and list(s["groups"]) == [team]
        by_model = httpx.get(site["url"] + "/wattlens/api/summary?by=model", headers=bearer(team)).json()
        assert by_model["groups"]["gpt-4o-mini"]["requests"] == n
    s = httpx.get(site["url"] + "/wattlens/api/summary?by=team", headers=bearer("admin")).json()
    assert s["team"] is None and {k: s["groups"][k]["requests"] for k in CALLS} == CALLS
    r = httpx.get(site["url"] + "/wattlens/api/summary", headers=bearer("none"))
    assert r.status_code == 403 and "no team" in r.json()["error"]["message"]
    assert httpx.get(site["url"] + "/wattlens/api/summary").status_code == 401


def test_exports_are_scoped_to_the_callers_team(site: dict[str, Any]) -> None:
    for team, n in CALLS.items():
        rows = list(csv.DictReader(io.StringIO(httpx.get(site["url"] + "/wattlens/api/export", headers=bearer(team)).text)))
        assert len(rows) == n and {r["team"] for r in rows} == {team}
        lines = httpx.get(site["url"] + "/wattlens/api/export?format=jsonl", headers=bearer(team)).text.splitlines()
        assert len(lines) == n and {json.loads(x)["team"] for x in lines} == {team}
    lines = httpx.get(site["url"] + "/wattlens/api/export?format=jsonl", headers=bearer("admin")).text.splitlines()
    assert len([x for x in lines if json.loads(x)["team"] in CALLS]) == sum(CALLS.values())
    assert httpx.get(site["url"] + "/wattlens/api/export", headers=bearer("none")).status_code == 403


def test_records_of_another_team_are_not_reachable_elsewhere(site: dict[str, Any]) -> None:
    """Every other page or API that could show records or their totals refuses a team key."""
    u = site["url"]
    assert httpx.get(u + "/metrics", headers=bearer("a")).status_code == 403  # team names and totals of all
    assert "ledger" not in httpx.get(u + "/healthz", headers=bearer("a")).json()
    budgets = httpx.get(u + "/wattlens/api/budgets", headers=bearer("a")).json()
    assert budgets == {"data": [], "alerts": []}


def test_session_cookie_is_signed_httponly_strict_and_never_the_key(site: dict[str, Any]) -> None:
    u = site["url"]
    bad = httpx.post(u + "/wattlens/api/session", json={"key": "wl-wrong"})
    assert bad.status_code == 401 and SESSION_COOKIE not in bad.headers.get("set-cookie", "")
    r = httpx.post(u + "/wattlens/api/session", json={"key": KEYS["b"]})
    assert r.status_code == 200 and r.json() == {"signed_in": True, "key_id": "kb", "team": "b", "admin": False}
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    value = r.cookies[SESSION_COOKIE]
    assert KEYS["b"] not in value and hashlib.sha256(KEYS["b"].encode()).hexdigest() not in value
    jar = {SESSION_COOKIE: value}
    s = httpx.get(u + "/wattlens/api/summary", cookies=jar).json()
    assert s["team"] == "b" and s["total"]["requests"] == CALLS["b"]
    # another key's reference under this signature, or a changed expiry: refused
    ref, expiry, sig = value.split(".")
    other = hashlib.sha256(KEYS["admin"].encode()).hexdigest()[:32]
    for forged in (f"{other}.{expiry}.{sig}", f"{ref}.{int(expiry) + 99999}.{sig}", f"{ref}.{expiry}.{'0' * 64}"):
        assert httpx.get(u + "/wattlens/api/summary", cookies={SESSION_COOKIE: forged}).status_code == 401
    assert httpx.get(u + "/wattlens/api/session", cookies=jar).json()["team"] == "b"


def test_pages_send_a_browser_to_sign_in_and_api_clients_get_401(site: dict[str, Any]) -> None:
    u, html = site["url"], {"accept": "text/html,application/xhtml+xml"}
    for path in ("/", "/dashboard"):
        r = httpx.get(u + path, headers=html)
        assert r.status_code == 303 and r.headers["location"] == "/signin?" + urlencode({"next": path})
    assert httpx.get(u + "/dashboard").status_code == 401  # a script is told, not redirected
    assert httpx.get(u + "/dashboard", headers={**html, **bearer("a")}).status_code == 200  # a team key may
    r = httpx.get(u + "/dashboard", headers={**html, **bearer("none")})
    assert r.status_code == 303 and "why=team" in r.headers["location"]
    page = httpx.get(u + "/signin")
    assert page.status_code == 200 and 'type="password"' in page.text


def test_the_route_is_listed_for_clients_and_the_playground(site: dict[str, Any]) -> None:
    c = openai.OpenAI(base_url=site["url"] + "/v1", api_key=KEYS["a"], max_retries=0)
    ids = {m.id: m.owned_by for m in c.models.list()}
    assert ids["wattlens/auto"] == "wattlens-router" and "gpt-4o-mini" in ids
    picker = httpx.get(site["url"] + "/wattlens/api/models", headers=bearer("a")).json()["data"]
    auto = next(m for m in picker if m["id"] == "wattlens/auto")
    assert auto["route"] == {"small": "gpt-4o-mini", "large": "gpt-4o"} and auto["kind"] == "chat"


# -- in a real browser -------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_sign_in_in_chromium(site: dict[str, Any]) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(site["url"] + "/dashboard")
            assert page.url.startswith(site["url"] + "/signin")
            page.fill("#key", KEYS["c"])
            page.click("#go")
            page.wait_for_url(site["url"] + "/dashboard")
            page.wait_for_function("document.getElementById('t-requests').textContent === '0'")  # team c: none yet
            cookie = next(c for c in ctx.cookies() if c["name"] == SESSION_COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert SESSION_COOKIE not in page.evaluate("document.cookie")  # scripts cannot read it
            # The playground, signed in: the picker lists the route, and a chat goes through with the session.
            page.goto(site["url"] + "/")
            page.wait_for_function("[...document.querySelectorAll('#model option')].some(o => o.value === 'gpt-4o-mini')")
            page.wait_for_function("document.getElementById('signin-link').textContent === 'Signed in (c)'")
            options = page.locator("#model option").all_text_contents()
            assert any(o.startswith("wattlens/auto · routed: gpt-4o-mini or gpt-4o") for o in options)
            page.select_option("#model", "gpt-4o-mini")
            page.fill("#prompt", "What powers the grid?")
            page.click("#send")
            page.locator(".turn .receipt").first.wait_for(state="visible")
            assert page.locator(".turn .answer").first.text_content() == "".join(up.WORDS)
            page.goto(site["url"] + "/dashboard")
            page.wait_for_function("document.getElementById('t-requests').textContent === '1'")  # its own request
            page.goto(site["url"] + "/signin")
            page.wait_for_selector("#who:not([hidden])")
            assert "team c" in (page.text_content("#who-text") or "")
            page.click("#signout")
            page.wait_for_selector("#who", state="hidden")
            page.goto(site["url"] + "/dashboard")
            assert page.url.startswith(site["url"] + "/signin")
        finally:
            browser.close()


def test_loopback_without_keys_is_open_as_before(tmp_path: Path) -> None:
    with up.ServerThread(up.app) as fake:
        cfg = GatewayConfig(upstreams=(Upstream("oai", "openai", fake.url + "/v1"),), ledger=str(tmp_path / "l.db"))
        with up.ServerThread(create_app(cfg, LedgerWriter(open_ledger(cfg.ledger)))) as gw:
            html = {"accept": "text/html"}
            assert httpx.get(gw.url + "/", headers=html).status_code == 200
            assert httpx.get(gw.url + "/dashboard", headers=html).status_code == 200
            s = httpx.get(gw.url + "/wattlens/api/summary").json()
            assert s["team"] is None and s["total"]["requests"] == 0
            assert httpx.get(gw.url + "/wattlens/api/session").json() == {"keys_required": False, "signed_in": False}
