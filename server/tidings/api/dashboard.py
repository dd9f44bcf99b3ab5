"""The dashboard's files, served at /dashboard/: built from clients/dashboard (with the JS SDK's
browser bundle) into tidings/dashboard_static, shipped inside the package (no CDN, no npm)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent.parent / "dashboard_static"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/dashboard", to_index)
    app.router.add_get("/dashboard/", index)
    app.router.add_static("/dashboard/", STATIC)
