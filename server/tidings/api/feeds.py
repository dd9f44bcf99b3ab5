"""Activities of a feed: `POST|GET feed/{slug}/{user_id}/`, `DELETE …/{activity_id}/`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..domain.errors import FeedConfigError, InputError
from ..domain.feeds import FeedId
from ..domain.ids import lookup_id
from ..store.mongo.entry_reads import Page
from . import params
from .context import GRANT, authorize, json_body
from .errors import answer
from .keys import SERVICE, SETTINGS


async def add_activities(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "write")
    body = await json_body(request)
    added, batch = await request.config_dict[SERVICE].add_body(feed, body, request[GRANT])
    return answer(request, {"activities": added} if batch else added[0], status=201)


async def read_feed(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "read")
    body, _ = await feed_page(request, feed)
    return answer(request, body)


async def feed_page(request: web.Request, feed: FeedId) -> tuple[dict[str, Any], bool]:
    """A page of the path's feed as `feed/` answers it (the enriched read enriches it), and
    whether it is a page of groups."""
    query = request.query
    if query.get("ranking"):
        raise FeedConfigError(
            f"ranking method {query['ranking']!r} is not configured for feed group {feed.group}",
            {"ranking": ["no ranked feeds: activities are read newest first"]},
        )
    # 0: no activities, only what comes with them (a notification feed's counts, which
    # react-activity-feed's dropdown reads so)
    limit = params.integer(query, "limit", 25, 0, params.MAX_LIMIT)
    max_offset = request.config_dict[SETTINGS].activities.max_offset
    offset = params.integer(query, "offset", 0, 0, max_offset)
    bounds = params.activity_ids(query, "id_lt", "id_lte", "id_gt", "id_gte")
    page = Page(limit=limit + 1, offset=offset, **bounds)
    if request.config_dict[SETTINGS].feeds[feed.group].grouped:
        return await _read_groups(request, feed, page), True
    found = await request.config_dict[SERVICE].read(feed, page)
    results, more = found[:limit], 0 < limit < len(found)
    next_page = ""
    if more:
        lower = {k: v for k, v in bounds.items() if k in ("id_gt", "id_gte")}
        next_query = {"id_lt": results[-1]["id"], **lower, "limit": limit}
        next_page = f"/api/v1.0/feed/{feed.group}/{feed.user_id}/?{urlencode(next_query)}"
    return {"results": results, "next": next_page}, False


async def _read_groups(request: web.Request, feed: FeedId, page: Page) -> dict[str, Any]:
    """An aggregated or notification feed: groups, paged on group ids, and the marks."""
    query, limit = request.query, page.limit - 1
    marks = {name: _mark(query, name) for name in ("mark_seen", "mark_read")}
    found = await request.config_dict[SERVICE].reads.read_groups(
        str(feed), page, marks["mark_seen"], marks["mark_read"]
    )
    results, more = found.groups[:limit], 0 < limit < len(found.groups)
    body: dict[str, Any] = {"results": results, "next": _next(feed, query, results, more)}
    if found.unseen is not None:
        body["unseen"], body["unread"] = found.unseen, found.unread
    if found.marked:
        await _announce_counts(request, str(feed), marks["mark_seen"], marks["mark_read"])
    return body


async def _announce_counts(
    request: web.Request, feed: str, mark_seen: bool | list[str], mark_read: bool | list[str]
) -> None:
    """After a mark, every socket of the feed gets the new counts (other devices' badges) and
    the marks: the broadcaster adds the counts to a notification feed's events."""
    await request.config_dict[SERVICE].announcer.counts(feed, mark_seen, mark_read)


def _mark(query: Mapping[str, str], name: str) -> bool | list[str]:
    """`mark_seen=true` (every group), or a comma-separated list of group ids."""
    raw = query.get(name, "")
    if raw.lower() in ("true", "1", "yes", "on"):
        return True
    if raw.lower() in ("", "false", "0", "no", "off"):
        return False
    ids = params.id_list(query, name)
    for value in ids:
        params.activity_ids({name: value}, name)
    return ids


def _next(feed: FeedId, query: Mapping[str, str], results: list[dict[str, Any]], more: bool) -> str:
    if not more:
        return ""
    lower = {k: v for k in ("id_gt", "id_gte") if (v := query.get(k))}
    next_query = {"id_lt": results[-1]["id"], **lower, "limit": len(results)}
    return f"/api/v1.0/feed/{feed.group}/{feed.user_id}/?{urlencode(next_query)}"


async def remove_activity(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "delete")
    identifier = request.match_info["activity_id"]
    by_foreign_id = params.boolean(request.query, "foreign_id")
    if by_foreign_id:
        await request.config_dict[SERVICE].remove(feed, None, identifier)
    else:
        # Any UUID: one that `feed` does not hold (Stream's ids are UUIDv1) changes nothing.
        activity_id = lookup_id(identifier)
        if activity_id is None:
            raise InputError(
                "activity_id must be an activity id", {"activity_id": ["not an activity id"]}
            )
        await request.config_dict[SERVICE].remove(feed, activity_id, None)
    return answer(request, {"removed": identifier})
