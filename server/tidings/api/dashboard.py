"""The dashboard's files, served at /dashboard/ as they are (no CDN, no npm at run time).

They live once, in clients/dashboard/public of the repository (the page and the JS SDK's browser
bundle). A wheel carries them inside the package as `tidings/dashboard_static` (pyproject.toml's
force-include); a checkout, editable install included, serves them from the repository."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

PACKAGED = "dashboard_static"  # the folder inside the installed package
CHECKOUT = Path("clients", "dashboard", "public")  # the same files in the repository


def dashboard_files() -> Path:
    """The folder of the dashboard's files: inside the package when it was installed from a
    wheel, else in the repository that holds the package (server/tidings)."""
    package = Path(str(resources.files("tidings")))
    packaged = package / PACKAGED
    if packaged.is_dir():
        return packaged
    return package.parent.parent / CHECKOUT


def setup_dashboard(app: web.Application) -> None:
    files = dashboard_files()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(files / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")

    app.router.add_get("/dashboard", to_index)
    app.router.add_get("/dashboard/", index)
    app.router.add_static("/dashboard/", files)
