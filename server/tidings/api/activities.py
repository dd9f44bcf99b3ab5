"""The calls on activities that name no feed of their own: `GET|POST
activities/`, `POST activity/`, `POST feed/add_to_many/`, `POST feed_targets/…/
activity_to_targets/`, `GET stats/follow/`.

Authorisation, as Stream (its SDKs sign these server-side, `feed_id: "*"`): reading,
updating and add_to_many need a token for every feed (a server token, or an app-wide
`activities` / `feed` token); a token scoped to one feed, or a user token, is refused
(NotAllowedException), since these calls reach activities of any feed. activity_to_targets
takes a token that may write the path's feed (or its `feed_targets` scope) and authorises each
target; stats/follow/ takes any token that may read the follows of each feed it names.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..domain.activities import (
    Limits,
    parse_activity,
    parse_changes,
    parse_full_updates,
    public_activity,
)
from ..domain.errors import InputError, NotAllowedError
from ..domain.feeds import FeedId, parse_feed_id
from ..domain.ids import activity_id, lookup_id, parse_time
from . import params
from .context import GRANT, authenticate, json_body, path_feed
from .errors import answer
from .keys import FIREHOSE, SERVICE, SETTINGS


def _limits(request: web.Request) -> Limits:
    settings = request.config_dict[SETTINGS]
    bounds = settings.activities
    return Limits(  # an activity too big for a firehose endpoint is refused too
        settings.feeds.keys(), request.config_dict[FIREHOSE].activity_bytes(bounds.max_bytes),
        bounds.max_to, bounds.max_batch,
        bounds.max_batch_bytes, bounds.max_future_seconds,
    )  # fmt: skip


async def get_activities(request: web.Request) -> web.Response:
    """`?ids=a,b` or `?foreign_ids=x,y&timestamps=t1,t2` → `{results}` (unknown ones left
    out, as Stream does), at most `[activities] max_ids`."""
    authenticate(request).require_app_wide("activities", "read")
    return answer(request, {"results": await requested_activities(request)})


async def requested_activities(request: web.Request) -> list[dict[str, Any]]:
    """The activities `ids` (or `foreign_ids`+`timestamps`) name, of those that exist."""
    most = request.config_dict[SETTINGS].activities.max_ids
    query = request.query
    ids = params.id_list(query, "ids")
    foreign_ids = params.id_list(query, "foreign_ids")
    if ids and foreign_ids:
        raise InputError("give ids or foreign_ids, not both", {"ids": ["ids or foreign_ids"]})
    if foreign_ids:
        timestamps = params.id_list(query, "timestamps")
        if len(timestamps) != len(foreign_ids):
            raise InputError(
                "foreign_ids and timestamps must pair up",
                {"timestamps": ["one timestamp per foreign id"]},
            )
        ids = []
        for index, (foreign_id, stamp) in enumerate(zip(foreign_ids, timestamps, strict=True)):
            try:
                ids.append(activity_id(parse_time(stamp), foreign_id, {}))
            except (ValueError, OverflowError):
                raise InputError(
                    "timestamps must be ISO-8601 times", {f"timestamps[{index}]": ["not a time"]}
                ) from None
    if not ids:
        raise InputError("ids or foreign_ids+timestamps required", {"ids": ["required"]})
    if len(ids) > most:
        raise InputError(f"at most {most} activities per call", {"ids": [f"at most {most}"]})
    ids = [_lookup_id(value, index) for index, value in enumerate(ids)]
    found = await request.config_dict[SERVICE].activities.documents(list(dict.fromkeys(ids)))
    return [
        public_activity(i, json.loads(found[i]["data"]), None)
        for i in dict.fromkeys(ids)
        if i in found
    ]


def _lookup_id(value: str, index: int) -> str:
    """Any UUID names an activity to look up (Stream's own ids are UUIDv1): one that no
    activity has is simply not found."""
    found = lookup_id(value)
    if found is None:
        raise InputError("ids must be activity ids", {f"ids[{index}]": ["not an activity id"]})
    return found


async def update_activities(request: web.Request) -> web.Response:
    authenticate(request).require_app_wide("activities", "write")
    most = request.config_dict[SETTINGS].activities.max_changes
    activities = parse_full_updates(await json_body(request), _limits(request), most)
    updated = await request.config_dict[SERVICE].replace(activities)
    return answer(request, {"activities": updated}, status=201)


async def partial_update(request: web.Request) -> web.Response:
    authenticate(request).require_app_wide("activities", "write")
    most = request.config_dict[SETTINGS].activities.max_changes
    changes = parse_changes(await json_body(request), most)
    updated = await request.config_dict[SERVICE].change(changes, _limits(request))
    return answer(request, {"activities": updated}, status=201)


async def activity_to_targets(request: web.Request) -> web.Response:
    grant = authenticate(request)
    feed = path_feed(request)
    if not (grant.allows("feed_targets", "write", feed) or grant.allows("feed", "write", feed)):
        raise NotAllowedError(f"you don't have permission to change the targets of {feed}")
    body = await json_body(request)
    done = await request.config_dict[SERVICE].retarget(feed, body, grant, _limits(request))
    return answer(request, done, status=201)


async def add_to_many(request: web.Request) -> web.Response:
    """`{activity, feeds}`: server-side only, as Stream (the SDK signs `feed_id: "*"`)."""
    grant = authenticate(request)
    grant.require_app_wide("feed", "write")
    body = await json_body(request)
    limits = _limits(request)
    most = request.config_dict[SETTINGS].activities.max_add_to_many_feeds
    if not isinstance(body, dict):
        raise InputError("the body must be an object", {"body": ["not an object"]})
    raw_feeds = body.get("feeds")
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise InputError("feeds must be a non-empty list", {"feeds": ["non-empty list"]})
    if len(raw_feeds) > most:
        raise InputError(f"at most {most} feeds per call", {"feeds": [f"at most {most}"]})
    feeds = [parse_feed_id(f, limits.groups, f"feeds[{i}]") for i, f in enumerate(raw_feeds)]
    activity = parse_activity(body.get("activity"), limits, "activity.")
    await request.config_dict[SERVICE].add_to_many(feeds, activity, request[GRANT])
    return answer(request, {}, status=201)


async def follow_stats(request: web.Request) -> web.Response:
    grant = authenticate(request)
    settings = request.config_dict[SETTINGS]
    groups = settings.feeds.keys()
    most = settings.activities.max_stats_slugs
    results: dict[str, Any] = {}
    for side in ("followers", "following"):
        raw = request.query.get(side)
        if raw is None:
            continue
        feed = parse_feed_id(raw, groups, side)
        _may_read_follows(grant, feed)
        slugs = params.id_list(request.query, f"{side}_slugs")
        if len(slugs) > most:
            raise InputError(f"at most {most} slugs", {f"{side}_slugs": [f"at most {most} slugs"]})
        count = await request.config_dict[SERVICE].follow_count(feed, side == "followers", slugs)
        results[side] = {"feed": str(feed), "count": count}
    if not results:
        raise InputError("followers or following required", {"followers": ["a feed id"]})
    return answer(request, {"results": results})


def _may_read_follows(grant: Any, feed: FeedId) -> None:
    if not (grant.allows("follower", "read", feed) or grant.allows("feed", "read", feed)):
        raise NotAllowedError(f"you don't have permission to read the follows of {feed}")
