"""Activities of a feed: `POST|GET feed/{slug}/{user_id}/`, `DELETE …/{activity_id}/`."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from ..domain.activities import Limits, parse_activities
from ..keys import SERVICE, SETTINGS
from ..store.activities import Page
from . import params
from .context import GRANT, authorize, json_body
from .errors import answer


async def add_activities(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "write")
    settings = request.app[SETTINGS]
    bounds = settings.activities
    limits = Limits(
        settings.feeds.keys(), bounds.max_bytes, bounds.max_to, bounds.max_batch,
        bounds.max_batch_bytes, bounds.max_future_seconds,
    )  # fmt: skip
    body = await json_body(request)
    batch = isinstance(body, dict) and "activities" in body and "actor" not in body
    activities = parse_activities(body, limits)
    added = await request.app[SERVICE].add(feed, activities, request[GRANT], batch)
    return answer(request, {"activities": added} if batch else added[0], status=201)


async def read_feed(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "read")
    query = request.query
    limit = params.integer(query, "limit", 25, 1, params.MAX_LIMIT)
    max_offset = request.app[SETTINGS].activities.max_offset
    offset = params.integer(query, "offset", 0, 0, max_offset)
    bounds = params.activity_ids(query, "id_lt", "id_lte", "id_gt", "id_gte")
    page = Page(limit=limit + 1, offset=offset, **bounds)
    found = await request.app[SERVICE].read(feed, page)
    results, more = found[:limit], len(found) > limit
    next_page = ""
    if more:
        lower = {k: v for k, v in bounds.items() if k in ("id_gt", "id_gte")}
        next_query = {"id_lt": results[-1]["id"], **lower, "limit": limit}
        next_page = f"/api/v1.0/feed/{feed.group}/{feed.user_id}/?{urlencode(next_query)}"
    return answer(request, {"results": results, "next": next_page})


async def remove_activity(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "delete")
    identifier = request.match_info["activity_id"]
    by_foreign_id = params.boolean(request.query, "foreign_id")
    if by_foreign_id:
        await request.app[SERVICE].remove(feed, None, identifier)
    else:
        params.activity_ids({"activity_id": identifier}, "activity_id")
        await request.app[SERVICE].remove(feed, identifier, None)
    return answer(request, {"removed": identifier})
