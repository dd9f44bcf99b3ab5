"""HTTP side of the error hierarchy: every answer in Stream's shape, with `duration`.

`stream_errors` is the middleware of the sub-apps that speak Stream's dialect (the API at
/api/v1.0, the other paths under /api/, admin): inside them every failure, a path without a
route and a body over the limit included, answers Stream's error body."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError, WriteConcernError

from ..domain.errors import (
    DoesNotExistError,
    InputError,
    PayloadTooLargeError,
    TidingsError,
    UnavailableError,
)
from .encoding import encode

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STARTED = web.RequestKey("started", float)


def duration(request: web.Request) -> str:
    return f"{(time.perf_counter() - request[STARTED]) * 1000:.2f}ms"


def answer(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    encoded = encode({**body, "duration": duration(request)})
    return web.Response(
        body=encoded, status=status, content_type="application/json", charset="utf-8"
    )


def _as_error(exc: web.HTTPException) -> TidingsError:
    if exc.status == 413:
        return PayloadTooLargeError("request body too large", {"body": ["too large"]})
    if exc.status in (404, 405):
        return DoesNotExistError(f"{exc.reason}: no such resource or method")
    return InputError(exc.reason)


@web.middleware
async def stream_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time the request (for `duration`) and turn every failure into Stream's error body."""
    request[STARTED] = time.perf_counter()
    try:
        response = await handler(request)
    except TidingsError as exc:
        response = answer(request, exc.body(), exc.status)
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        error = _as_error(exc)
        response = answer(request, error.body(), error.status)
    except (ConnectionFailure, ServerSelectionTimeoutError, WriteConcernError) as exc:
        # Unreachable, or a write applied without the confirmation asked for (which a
        # failover may roll back): either way the request may be retried.
        log.warning("store unavailable: %s", exc)
        error = UnavailableError(
            "the store is unavailable; retry the request (adds are idempotent)"
        )
        response = answer(request, error.body(), error.status)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        error = TidingsError("internal server error")
        response = answer(request, error.body(), error.status)
    return response
