"""Follows: `POST feed/{slug}/{user_id}/follows/`, `DELETE …/follows/{target}/`, and the
`followers/` and `follows/` listings."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ..domain.errors import InputError
from ..domain.feeds import parse_feed_id
from ..domain.validation import input_error
from ..keys import SERVICE, SETTINGS
from ..store.follows import Follow
from . import params
from .context import authorize, json_body
from .errors import answer


class FollowSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # target_token: the SDKs send it; the request's token authorises

    target = fields.String(required=True)
    activity_copy_limit = fields.Integer(load_default=None, validate=validate.Range(min=0))


async def follow(request: web.Request) -> web.Response:
    source = authorize(request, "follower", "write")
    settings = request.app[SETTINGS]
    try:
        body: dict[str, Any] = FollowSchema().load(await json_body(request) or {})
    except ValidationError as exc:
        raise input_error(exc) from exc
    target = parse_feed_id(body["target"], settings.feeds.keys(), "target")
    limit = body["activity_copy_limit"]
    if limit is None:
        limit = settings.fanout.default_copy_limit
    if limit > settings.fanout.max_copy_limit:
        raise InputError(
            f"activity_copy_limit must be at most {settings.fanout.max_copy_limit}",
            {"activity_copy_limit": [f"at most {settings.fanout.max_copy_limit}"]},
        )
    await request.app[SERVICE].follow(source, target, limit)
    return answer(request, {}, status=201)


async def unfollow(request: web.Request) -> web.Response:
    source = authorize(request, "follower", "delete")
    target = parse_feed_id(
        request.match_info["target"], request.app[SETTINGS].feeds.keys(), "target"
    )
    keep_history = params.boolean(request.query, "keep_history")
    await request.app[SERVICE].unfollow(source, target, keep_history)
    return answer(request, {})


async def followers(request: web.Request) -> web.Response:
    feed = authorize(request, "follower", "read")
    limit, offset, only = _listing(request)
    rows = await request.app[SERVICE].followers(feed, limit, offset, only)
    return answer(request, {"results": _rows(rows)})


async def following(request: web.Request) -> web.Response:
    feed = authorize(request, "follower", "read")
    limit, offset, only = _listing(request)
    rows = await request.app[SERVICE].following(feed, limit, offset, only)
    return answer(request, {"results": _rows(rows)})


def _listing(request: web.Request) -> tuple[int, int, list[str]]:
    groups = request.app[SETTINGS].feeds.keys()
    limit = params.integer(request.query, "limit", 25, 1, params.MAX_LIMIT)
    offset = params.integer(request.query, "offset", 0, 0, params.MAX_OFFSET)
    only = [
        str(parse_feed_id(f, groups, "filter")) for f in params.id_list(request.query, "filter")
    ]
    return limit, offset, only


def _rows(follows: list[Follow]) -> list[dict[str, str]]:
    return [f.public() for f in follows]
