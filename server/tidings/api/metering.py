"""Every request the node answers, counted and timed for Prometheus (`/metrics`): the root
app's one middleware, so the API, ops, admin, Socket.IO and the fast path are all counted."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..metrics import HTTP_LATENCY, HTTP_REQUESTS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metered(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Labelled by the route's canonical path (`/api/v1.0/feed/{slug}/{user_id}{_slash}`),
    so that the label set stays bounded, and `unmatched` for a path without a route."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # outside the API: a 404, a redirect, a refused upgrade
        _record(request, exc.status, started)
        raise
    except Exception:
        _record(request, 500, started)
        raise
    _record(request, response.status, started)
    return response


def _record(request: web.Request, status: int, started: float) -> None:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    HTTP_REQUESTS.labels(request.method, name, status).inc()
    HTTP_LATENCY.labels(request.method, name).observe(time.perf_counter() - started)
