"""CORS for the REST API, so that a web page on another origin can call it through `fetch`
(the JS SDK in a browser), as Stream's API allows. The origins are `server.cors_allowed_origins`,
the setting Socket.IO's CORS uses too. A middleware of the API's sub-apps (every path under
/api/), outermost, so that Stream's error bodies are readable cross-origin too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..config import allowed_origins
from .keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METHODS = "GET, POST, DELETE, OPTIONS"
HEADERS = "Authorization, Content-Type, stream-auth-type, X-Stream-Client"
MAX_AGE = "600"


def _allowed(request: web.Request, origin: str) -> bool:
    origins = allowed_origins(request.config_dict[SETTINGS])
    return origins is None or origin in origins


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None or not _allowed(request, origin):
        return await handler(request)
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        headers.update({
            "Access-Control-Allow-Methods": METHODS,
            "Access-Control-Allow-Headers": HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
        })  # fmt: skip
        return web.Response(status=204, headers=headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(headers)
        raise
    response.headers.update(headers)
    return response
