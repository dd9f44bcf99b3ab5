"""Outside the API: liveness, readiness and Prometheus metrics, routes of the root app (plain
JSON and text, no middleware but the root's metering)."""

from __future__ import annotations

import os

from aiohttp import web
from pymongo.errors import PyMongoError

from .. import metrics
from ..store.mongo.activities import ActivityStore
from ..store.mongo.client import ping
from .keys import BUS, DATABASE, LIMITER, PRESENCE, SERVICE


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"X-Tidings-Pid": str(os.getpid())})


async def readyz(request: web.Request) -> web.Response:
    """503 without the store; 200 `degraded` without Redis: this node's sockets still get
    their events, other nodes' sockets recover through `since` once Redis is back. `presence`
    and `limits` (the rate limits' counters): "cluster" while they span the nodes, "local"
    without Redis (or while it is down: each node counts alone); `limits` is "off" when
    rate limits are."""
    redis = request.config_dict[BUS].state
    presence = request.config_dict[PRESENCE].state
    limits = request.config_dict[LIMITER].state
    try:
        await ping(request.config_dict[DATABASE])
    except PyMongoError as exc:
        body = {"status": "unavailable", "store": str(exc), "redis": redis,
                "presence": presence, "limits": limits}  # fmt: skip
        return web.json_response(body, status=503)
    status = "degraded" if redis == "down" else "ok"
    body = {"status": status, "store": "ok", "redis": redis, "presence": presence,
            "limits": limits}  # fmt: skip
    return web.json_response(body)


async def prometheus(request: web.Request) -> web.Response:
    _cache_metrics(request.config_dict[SERVICE].activities)
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def _cache_metrics(activities: ActivityStore) -> None:
    """The caches' sizes and hits, as they are now (read at each scrape)."""
    for name, cache in (("activities", activities.cache), ("heads", activities.heads)):
        metrics.CACHE_BYTES.labels(name).set(cache.bytes)
        metrics.CACHE_ITEMS.labels(name).set(len(cache))
        metrics.CACHE_LOOKUPS.labels(name, "hit").set(cache.hits)
        metrics.CACHE_LOOKUPS.labels(name, "miss").set(cache.misses)


def setup_ops(app: web.Application) -> None:
    app.router.add_routes([
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", prometheus),
    ])  # fmt: skip
