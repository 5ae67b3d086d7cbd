"""The pages the gateway serves: the playground at /, the dashboard at /dashboard, and their API."""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
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


def web_routes(gw: Gateway) -> list[BaseRoute]:
    from wattlens.gateway.errors import ApiError, error_response
    from wattlens.metering import estimated_footprint

    def guarded(fn: Any) -> Any:
        async def handler(request: Request) -> Response:
            try:
                gw.keys.require_admin(request.headers)
                return await fn(request)  # type: ignore[no-any-return]
            except ApiError as e:
                return error_response(gw.protocols["openai"], e)
            except WattlensError as e:
                return JSONResponse({"error": {"message": str(e), "type": "invalid_request_error"}}, status_code=400)

        return handler

    async def index(request: Request) -> Response:
        return HTMLResponse((web_dir() / "index.html").read_text(encoding="utf-8"))

    async def dashboard(request: Request) -> Response:
        return HTMLResponse((web_dir() / "dashboard.html").read_text(encoding="utf-8"))

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

    def reader() -> Any:
        from wattlens.ledger import open_ledger

        if gw.config.ledger == "none":
            raise WattlensError("this gateway runs without a ledger (--ledger none)")
        if gw.ledger is not None:
            gw.ledger.flush()  # show what has just been served
        return open_ledger(gw.config.ledger)

    async def summary(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from wattlens.ledger.summary import summarise

        q = request.query_params

        def work() -> Any:  # in a worker thread: a large ledger must not stall every other client
            led = reader()
            try:
                return summarise(led.records(q.get("since"), q.get("until")), q.get("by") or None)
            finally:
                led.close()

        return JSONResponse(await run_in_threadpool(work))

    async def export(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from wattlens.ledger.export import export as write_export

        q = request.query_params
        fmt = q.get("format", "csv")
        tmp = Path(tempfile.mkdtemp()) / f"wattlens-ledger.{fmt}"

        def work() -> None:  # in a worker thread: writing a large export must not stall the other clients
            led = reader()
            try:
                write_export(led.records(q.get("since"), q.get("until")), fmt, str(tmp))
            finally:
                led.close()

        try:
            await run_in_threadpool(work)
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
        Mount("/static", app=StaticFiles(directory=str(web_dir())), name="static"),
    ]
