"""Outside the API: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from pymongo.errors import PyMongoError

from .. import metrics
from ..keys import DATABASE
from ..store.mongo import ping


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await ping(request.app[DATABASE])
    except PyMongoError as exc:
        return web.json_response({"status": "unavailable", "store": str(exc)}, status=503)
    return web.json_response({"status": "ok", "store": "ok"})


async def prometheus(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})
