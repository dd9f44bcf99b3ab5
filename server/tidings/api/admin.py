"""GET /admin/stats: what the dashboard (/dashboard/) shows. Server tokens only.

A small sub-app mounted at /admin, apart from the API (no CORS: the dashboard is served by the
same node), with Stream's error shape for a refused token, as the API answers one.

Sockets and running fanout jobs per node (this node's, and the other live nodes' reports
through Redis), fanout jobs stored (in flight anywhere), firehose messages due / in flight /
dead per endpoint, the Redis link, and the insert→emit latency histogram (all nodes added up).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from aiohttp import web

from ..auth import decode_token
from ..bus.node_stats import merge_latency
from ..domain.errors import NotAllowedError
from ..store.mongo.deliveries import DeliveryStore
from .errors import stream_errors
from .keys import DATABASE, FIREHOSE, NODE_ID, PRESENCE, RUNNER, SETTINGS, STATS


def require_server_token(request: web.Request) -> None:
    """401 without a valid token (SignatureError), 403 for any token but a server token."""
    settings = request.config_dict[SETTINGS]
    token = request.headers.get("Authorization")
    grant = decode_token(token, str(settings.auth.api_secret), settings.feeds.keys())
    if not (grant.resource == "*" and grant.action == "*" and grant.feed_id == "*"):
        raise NotAllowedError("admin stats need a server token (resource, action, feed_id: *)")


async def _firehose(request: web.Request) -> dict[str, Any]:
    shared = request.config_dict
    store = shared[FIREHOSE].store
    if store is None:
        lease = timedelta(seconds=shared[SETTINGS].firehose.lease_seconds)
        store = DeliveryStore(shared[DATABASE], shared[NODE_ID], lease)
    endpoints = await store.status()
    totals = {"due": 0, "in_flight": 0, "dead": 0}
    for counts in endpoints.values():
        for key in totals:
            totals[key] += counts[key]
    return {"endpoints": endpoints, **totals}


async def stats(request: web.Request) -> web.Response:
    require_server_token(request)
    shared = request.config_dict
    board = shared[STATS]
    own = {**board.report(), "self": True}
    nodes = [own, *[{**r, "self": False} for r in await board.others()]]
    body = {
        "node": shared[NODE_ID],
        "time": time.time(),
        "api_key": shared[SETTINGS].auth.api_key,
        "redis": own["redis"],
        "presence": shared[PRESENCE].state,
        "sockets": sum(int(n["sockets"]) for n in nodes),
        "nodes": [{k: v for k, v in n.items() if k not in ("latency", "until")} for n in nodes],
        "fanout": {
            "jobs_running": sum(int(n["fanout_jobs_running"]) for n in nodes),
            "jobs_stored": await shared[RUNNER].jobs.pending(),
        },
        "firehose": await _firehose(request),
        "latency": merge_latency([n["latency"] for n in nodes]),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def create_admin() -> web.Application:
    """To mount at /admin."""
    admin = web.Application(middlewares=[stream_errors])
    admin.router.add_get("/stats", stats, allow_head=False)
    return admin
