"""The HTTP API as aiohttp sub-applications, each with its own middlewares: CORS (outermost,
so that error bodies are readable cross-origin), Stream's error shape for every failure and,
inside it, Stream's rate limits (limits.py: their refusal is one of those errors).

The body limit is not theirs to set: aiohttp reads a request's body within the
`client_max_size` of the application the request arrived at, the root (`app/factory.py`)."""

from __future__ import annotations

from aiohttp import web

from .cors import cors
from .errors import stream_errors
from .limits import limit_headers, rate_limited
from .routes import API_ROUTES, MEDIA_ROUTES

PREFIX = "/api/v1.0"  # where `create_api` is mounted
OTHER_VERSIONS = "/api"  # where `create_other_versions` is


def create_api() -> web.Application:
    """Stream's REST API (v1.0), to mount at `PREFIX`."""
    api = web.Application(middlewares=[cors, stream_errors, rate_limited])
    api.router.add_routes(API_ROUTES)
    api.on_response_prepare.append(limit_headers)
    return api


def create_other_versions() -> web.Application:
    """No routes, to mount at `OTHER_VERSIONS`: any other path under /api/ (another version,
    a typo) answers Stream's 404, so that an SDK configured wrongly reads why."""
    return web.Application(middlewares=[cors, stream_errors])


def create_media() -> web.Application:
    """Uploads served back (no token: the URLs are signed), to mount at MEDIA_PATH; its
    errors in Stream's shape too."""
    media = web.Application(middlewares=[stream_errors])
    media.router.add_routes(MEDIA_ROUTES)
    return media
