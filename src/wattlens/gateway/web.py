"""The pages the gateway serves: the playground at /, the dashboard at /dashboard, sign-in, and their API.

Who sees what: on loopback without keys, everything, as before keys existed. With keys, a page
opened in a browser without a session goes to /signin (the key is entered once and kept in a
signed, HttpOnly, SameSite=Strict cookie); an admin key reads every record, a team's key only
its team's (dashboard, summary, export); the budgets' admin API needs an admin key.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from wattlens.errors import WattlensError
from wattlens.footprint import Footprint, Tokens

if TYPE_CHECKING:
    from wattlens.gateway.app import Gateway

TYPICAL = Tokens(input=500, output=300)  # a typical chat turn for the model picker
TYPICAL_EMBED = Tokens(input=500)
EMBEDDING_HINTS = ("embed", "minilm", "bge-", "e5-", "gte-")


def web_dir() -> Path:
    return Path(str(resources.files("wattlens").joinpath("web")))


def kind_of(model: str) -> str:
    return "embeddings" if any(h in model.lower() for h in EMBEDDING_HINTS) else "chat"


def wants_page(request: Request) -> bool:
    """A browser navigating to a page (it accepts HTML), rather than a script or an API client."""
    return "text/html" in request.headers.get("accept", "")


def sign_in_redirect(request: Request, why: str | None = None) -> Response:
    from urllib.parse import urlencode

    query = {"next": request.url.path, **({"why": why} if why else {})}
    return RedirectResponse("/signin?" + urlencode(query), status_code=303)


def web_routes(gw: Gateway) -> list[BaseRoute]:
    from wattlens.gateway.errors import ApiError, error_response
    from wattlens.metering import estimated_footprint

    def guarded(fn: Any, admin: bool = False) -> Any:
        """fn(request, team): team is None for every record, else the only team the caller may read."""

        async def handler(request: Request) -> Response:
            try:
                if admin:
                    gw.keys.require_admin(request.headers)
                    team = None
                else:
                    team = gw.keys.viewer(request.headers)
                return await fn(request, team)  # type: ignore[no-any-return]
            except ApiError as e:
                if wants_page(request) and e.status in (401, 403):
                    return sign_in_redirect(request, "team" if e.status == 403 else None)
                return error_response(gw.protocols["openai"], e)
            except WattlensError as e:
                return JSONResponse({"error": {"message": str(e), "type": "invalid_request_error"}}, status_code=400)

        return handler

    async def index(request: Request) -> Response:
        if gw.keys.required and wants_page(request):
            try:
                gw.keys.authenticate(request.headers)
            except ApiError:
                return sign_in_redirect(request)
        return HTMLResponse((web_dir() / "index.html").read_text(encoding="utf-8"))

    async def dashboard(request: Request, team: str | None) -> Response:
        return HTMLResponse((web_dir() / "dashboard.html").read_text(encoding="utf-8"))

    async def signin(request: Request) -> Response:
        return HTMLResponse((web_dir() / "signin.html").read_text(encoding="utf-8"))

    async def session(request: Request) -> Response:
        """GET: who is signed in; POST {"key": ...}: sign in (a signed cookie, never the key); DELETE: sign out."""
        from wattlens.gateway.auth import SESSION_COOKIE, SESSION_S

        if request.method == "DELETE":
            out = JSONResponse({"signed_in": False})
            out.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
            return out
        if request.method == "GET":
            try:
                key = gw.keys.authenticate(request.headers)
            except ApiError:
                return JSONResponse({"keys_required": True, "signed_in": False})
            if key is None:
                return JSONResponse({"keys_required": False, "signed_in": False})
            who = {"key_id": key.key_id, "team": key.team, "admin": key.admin}
            return JSONResponse({"keys_required": True, "signed_in": True, **who})
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = body.get("key") if isinstance(body, dict) else None
        if not gw.keys.required:
            return JSONResponse(
                {"error": {"message": "this gateway has no keys: no sign-in needed", "type": "invalid_request_error"}},
                status_code=400,
            )
        if not isinstance(token, str) or not token:
            return JSONResponse(
                {"error": {"message": 'send {"key": "wl-..."}', "type": "invalid_request_error"}}, status_code=400
            )
        try:
            key = gw.keys.authenticate({"authorization": "Bearer " + token})
        except ApiError as e:
            return error_response(gw.protocols["openai"], e)
        assert key is not None
        out = JSONResponse({"signed_in": True, "key_id": key.key_id, "team": key.team, "admin": key.admin})
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        out.set_cookie(
            SESSION_COOKIE,
            gw.keys.session_for(key),
            max_age=SESSION_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return out

    async def budgets(request: Request) -> Response:
        """GET: every budget and its use (an admin), or its team's (a team key); PUT/DELETE by name: an admin."""
        from starlette.concurrency import run_in_threadpool

        from wattlens.errors import ConfigError

        name = request.path_params.get("name")
        try:
            if request.method == "GET":
                team = gw.keys.viewer(request.headers)
                rows = gw.budgets.snapshot()
                if team is not None:
                    rows = [b for b in rows if b["scope"] == "team" and b.get("match") == team]
                return JSONResponse({"data": rows, "alerts": gw.budgets.fired if team is None else []})
            gw.keys.require_admin(request.headers)
            if request.method == "DELETE":
                if not await run_in_threadpool(gw.budgets.delete, str(name)):
                    raise ApiError(404, f"no budget named {name!r}", code="not_found")
                return JSONResponse({"deleted": name})
            try:
                body = await request.json()
            except ValueError as e:
                raise ApiError(400, "the budget must be a JSON object") from e
            if not isinstance(body, dict) or body.get("name", name) != name:
                raise ApiError(400, "the budget must be a JSON object whose name (if given) is the one in the URL")
            try:
                b = await run_in_threadpool(gw.budgets.set, {**body, "name": name})
            except ConfigError as e:
                raise ApiError(400, str(e), code="invalid_budget") from e
            return JSONResponse(b.as_dict())
        except ApiError as e:
            return error_response(gw.protocols["openai"], e)

    async def models(request: Request) -> Response:
        try:  # it calls the upstreams with their keys: a client key where keys are configured
            gw.keys.authenticate(request.headers)
        except ApiError as e:
            return error_response(gw.protocols["openai"], e)
        names = await gw.model_names(request)
        ups = {u.name: u for u in gw.config.upstreams}
        measured = {u.name: await measured_here(request, u) for u in gw.config.upstreams if u.local}
        data = []
        for name, up in sorted(names.items()):
            kind = kind_of(name)
            u = ups[up]
            energy: dict[str, float] | None = None
            basis: dict[str, Any] | None = None
            m = measured.get(up, {}).get(name)
            if isinstance(m, dict) and isinstance(m.get("energy_wh"), dict):
                # a local upstream answers on this machine: its own measurement, not the estimator's GPU figure
                energy = m["energy_wh"]
                basis = {
                    "basis": "measured",
                    "hardware": "this machine",
                    "sensors": m.get("sensors"),
                    "meter_method": m.get(
                        "meter_method"
                    ),  # 'estimated' where the Meter's power model stands in for counters
                    "note": m.get("note"),
                }
            elif u.local and not u.serving.hardware:
                basis = {"basis": None, "hardware": "this machine", "note": "a local upstream not measured here yet"}
            else:
                try:
                    tokens = TYPICAL_EMBED if kind == "embeddings" else TYPICAL
                    fp: Footprint | None = estimated_footprint(name, tokens, gw.contexts[u.name], u.serving)
                except WattlensError:
                    fp = None
                if fp is not None:
                    energy = fp.energy_wh.as_dict()
                    hw = u.serving.hardware
                    where = hw or "the catalogue's data-centre GPU for this model (H100 class by default)"
                    basis = {"basis": "estimated", "hardware": hw, "note": f"estimated for {where}"}
            data.append(
                {
                    "id": name,
                    "kind": kind,
                    "upstream": up,
                    "local": u.local,
                    "typical_energy_wh": energy,
                    "typical_energy_basis": basis,
                }
            )
        for r, _router in gw.routers.values():  # a virtual model: each request goes to the small or the large one
            data.append(
                {
                    "id": r.name,
                    "kind": "chat",
                    "upstream": None,
                    "local": False,
                    "route": {"small": r.small, "large": r.large},
                    "typical_energy_wh": None,
                    "typical_energy_basis": {
                        "basis": "routed",
                        "note": f"the router sends each request to {r.small} or {r.large}",
                    },
                }
            )
        return JSONResponse({"data": data, "typical": {"input_tokens": TYPICAL.input, "output_tokens": TYPICAL.output}})

    async def measured_here(request: Request, u: Any) -> dict[str, Any]:
        """A local upstream's own measurement of a typical answer per model (the built-in one's `wattlens_typical`)."""
        import aiohttp

        headers = gw.protocols[u.kind].upstream_headers(u.key(), request.headers)
        try:
            listed = await gw.transports[u.name].get_json(u.base_url + "/models", headers, 5.0)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return {}
        rows = listed.get("data", []) if isinstance(listed, dict) else []
        return {m["id"]: m["wattlens_typical"] for m in rows if isinstance(m, dict) and "wattlens_typical" in m}

    async def equivalents(request: Request) -> Response:
        from wattlens.equivalents import as_json

        return JSONResponse(as_json())

    def ledger_location() -> str:
        from wattlens.ledger import default_path

        if gw.config.ledger == "none":
            raise WattlensError("this gateway runs without a ledger (--ledger none)")
        if gw.ledger is not None:
            gw.ledger.flush()  # show what has just been served
        return str(gw.config.ledger or default_path())

    async def summary(request: Request, team: str | None) -> Response:
        from starlette.concurrency import run_in_threadpool

        from wattlens.gateway.offload import in_worker, summarise_ledger

        q = request.query_params
        where = await run_in_threadpool(ledger_location)
        # In a worker process: a large ledger must not stall every other client (gateway/offload.py).
        out = await in_worker(summarise_ledger, where, q.get("since"), q.get("until"), q.get("by") or None, team)
        return JSONResponse({**out, "team": team})

    async def export(request: Request, team: str | None) -> Response:
        from starlette.concurrency import run_in_threadpool

        from wattlens.gateway.offload import export_ledger, in_worker

        q = request.query_params
        fmt = q.get("format", "csv")
        tmp = Path(tempfile.mkdtemp()) / f"wattlens-ledger.{fmt}"
        try:
            where = await run_in_threadpool(ledger_location)
            await in_worker(export_ledger, where, q.get("since"), q.get("until"), team, fmt, str(tmp))
        except BaseException:
            shutil.rmtree(tmp.parent, ignore_errors=True)
            raise
        media = {"csv": "text/csv", "jsonl": "application/x-ndjson"}.get(fmt, "application/octet-stream")
        cleanup = BackgroundTask(shutil.rmtree, tmp.parent, ignore_errors=True)  # the file and its directory
        return FileResponse(tmp, media_type=media, filename=tmp.name, background=cleanup)

    return [
        Route("/", index, methods=["GET"]),
        Route("/dashboard", guarded(dashboard), methods=["GET"]),
        Route("/wattlens/api/models", models, methods=["GET"]),
        Route("/wattlens/api/equivalents", equivalents, methods=["GET"]),
        Route("/wattlens/api/summary", guarded(summary), methods=["GET"]),
        Route("/wattlens/api/export", guarded(export), methods=["GET"]),
        Route("/signin", signin, methods=["GET"]),
        Route("/wattlens/api/session", session, methods=["GET", "POST", "DELETE"]),
        Route("/wattlens/api/budgets", budgets, methods=["GET"]),
        Route("/wattlens/api/budgets/{name}", budgets, methods=["PUT", "DELETE"]),
        Mount("/static", app=StaticFiles(directory=str(web_dir())), name="static"),
    ]
