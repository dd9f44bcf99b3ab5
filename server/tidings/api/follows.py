"""Follows: `POST feed/{slug}/{user_id}/follows/`, `DELETE …/follows/{target}/`, the
`followers/` and `follows/` listings, and the batch calls `follow_many/` and `unfollow_many/`
(server token only, as Stream: at most `fanout.max_follow_many` entries, the whole batch
validated before anything is stored). A follow's target in a group whose feeds are private
(`follow = "readers"`) needs the right to read it, in both."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ..auth import authorize_follow_target
from ..config import FOLLOW_READERS
from ..domain.errors import FeedConfigError, InputError, NotAllowedError
from ..domain.feeds import FeedId, parse_feed_id
from ..domain.validation import input_error
from ..store.mongo.follows import Follow
from . import params
from .context import GRANT, authenticate, authorize, json_body
from .errors import answer
from .keys import SERVICE, SETTINGS


class FollowSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    target = fields.String(required=True)
    target_token = fields.String(load_default=None)  # the SDKs send it: a token for the target
    activity_copy_limit = fields.Integer(load_default=None, validate=validate.Range(min=0))


async def follow(request: web.Request) -> web.Response:
    source = authorize(request, "follower", "write")
    settings = request.config_dict[SETTINGS]
    try:
        body: dict[str, Any] = FollowSchema().load(await json_body(request) or {})
    except ValidationError as exc:
        raise input_error(exc) from exc
    target = parse_feed_id(body["target"], settings.feeds.keys(), "target")
    _may_follow(request, target, body["target_token"], "target")
    limit = _copy_limit(request, body["activity_copy_limit"])
    await request.config_dict[SERVICE].follow(source, target, limit)
    return answer(request, {}, status=201)


async def unfollow(request: web.Request) -> web.Response:
    source = authorize(request, "follower", "delete")
    target = parse_feed_id(
        request.match_info["target"], request.config_dict[SETTINGS].feeds.keys(), "target"
    )
    keep_history = params.boolean(request.query, "keep_history")
    await request.config_dict[SERVICE].unfollow(source, target, keep_history)
    return answer(request, {})


async def followers(request: web.Request) -> web.Response:
    feed = authorize(request, "follower", "read")
    limit, offset, only = _listing(request)
    rows = await request.config_dict[SERVICE].followers(feed, limit, offset, only)
    return answer(request, {"results": _rows(rows)})


async def following(request: web.Request) -> web.Response:
    feed = authorize(request, "follower", "read")
    limit, offset, only = _listing(request)
    rows = await request.config_dict[SERVICE].following(feed, limit, offset, only)
    return answer(request, {"results": _rows(rows)})


def _may_follow(request: web.Request, target: FeedId, token: str | None, field: str) -> None:
    """A target in a group whose feeds are private (`follow = "readers"`) needs the right to
    read it; any other may be followed by whoever may write the follower, as in Stream."""
    settings = request.config_dict[SETTINGS]
    if settings.feeds[target.group].follow == FOLLOW_READERS:
        secret = str(settings.auth.api_secret)
        authorize_follow_target(request[GRANT], target, token, secret, settings.feeds, field)


def _listing(request: web.Request) -> tuple[int, int, list[str]]:
    groups = request.config_dict[SETTINGS].feeds.keys()
    limit = params.integer(request.query, "limit", 25, 1, params.MAX_LIMIT)
    offset = params.integer(request.query, "offset", 0, 0, params.MAX_OFFSET)
    only = [
        str(parse_feed_id(f, groups, "filter")) for f in params.id_list(request.query, "filter")
    ]
    return limit, offset, only


def _rows(follows: list[Follow]) -> list[dict[str, str]]:
    return [f.public() for f in follows]


def _copy_limit(request: web.Request, limit: int | None) -> int:
    fanout = request.config_dict[SETTINGS].fanout
    if limit is None:
        return fanout.default_copy_limit
    if limit > fanout.max_copy_limit:
        raise InputError(
            f"activity_copy_limit must be at most {fanout.max_copy_limit}",
            {"activity_copy_limit": [f"at most {fanout.max_copy_limit}"]},
        )
    return limit


class FollowManySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    source = fields.String(required=True)
    target = fields.String(required=True)


class UnfollowManySchema(FollowManySchema):
    keep_history = fields.Boolean(load_default=False)


def _server_only(request: web.Request) -> None:
    """Stream answers the batch follow calls to server tokens only (the SDK signs them
    `follower`/`*`/`*`)."""
    grant = authenticate(request)
    if not (
        grant.resource in ("*", "follower")
        and grant.action in ("*", "write", "delete")
        and grant.feed_id == "*"
    ):
        raise NotAllowedError("follow_many/ and unfollow_many/ need a server token")


async def _entries(request: web.Request, schema: Schema) -> list[tuple[FeedId, FeedId, Any]]:
    """The batch's entries, every one validated before any is used."""
    settings = request.config_dict[SETTINGS]
    body = await json_body(request)
    limit = settings.fanout.max_follow_many
    if not isinstance(body, list):
        raise InputError("the body must be a list of follows", {"body": ["must be a list"]})
    if len(body) > limit:
        raise InputError(
            f"at most {limit} follows per call", {"body": [f"{len(body)} entries; at most {limit}"]}
        )
    groups = settings.feeds.keys()
    entries = []
    for i, raw in enumerate(body):
        if not isinstance(raw, dict):
            raise InputError(f"entry {i} is not an object", {f"[{i}]": ["must be an object"]})
        try:
            loaded: dict[str, Any] = schema.load(raw)
        except ValidationError as exc:
            raise input_error(exc, f"[{i}].") from exc
        source = parse_feed_id(loaded["source"], groups, f"[{i}].source")
        target = parse_feed_id(loaded["target"], groups, f"[{i}].target")
        if source == target:
            raise InputError(
                "a feed cannot follow itself", {f"[{i}].target": ["cannot follow itself"]}
            )
        entries.append((source, target, loaded.get("keep_history", False)))
    return entries


async def follow_many(request: web.Request) -> web.Response:
    """`POST follow_many/?activity_copy_limit=n [{source, target}, ...]`."""
    _server_only(request)
    raw = request.query.get("activity_copy_limit")
    limit = None
    if raw is not None:
        limit = params.integer(request.query, "activity_copy_limit", 0, 0, 1 << 31)
    limit = _copy_limit(request, limit)
    entries = await _entries(request, FollowManySchema())
    feeds = request.config_dict[SETTINGS].feeds
    for i, (_, target, _) in enumerate(entries):
        if not feeds[target.group].followable:
            raise FeedConfigError(
                f"feeds of group {target.group} cannot be followed",
                {f"[{i}].target": [f"feed group {target.group} is not followable"]},
            )
        _may_follow(request, target, None, f"[{i}].target")
    pairs = [(str(s), str(t)) for s, t, _ in entries]
    await request.config_dict[SERVICE].follow_many(pairs, limit)
    return answer(request, {}, status=201)


async def unfollow_many(request: web.Request) -> web.Response:
    """`POST unfollow_many/ [{source, target, keep_history}, ...]`: every entry validated, then
    all of them unfollowed in bulk writes."""
    _server_only(request)
    entries = await _entries(request, UnfollowManySchema())
    triples = [(str(s), str(t), bool(keep)) for s, t, keep in entries]
    await request.config_dict[SERVICE].unfollow_many(triples)
    return answer(request, {})
