"""Who is asking, and about which feed: api_key, JWT and the feed named in the path."""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from ..auth import Action, Grant, Resource, decode_token, shared_groups
from ..domain.errors import ApiKeyError, InputError, SignatureError
from ..domain.feeds import FeedId, parse_feed
from .keys import SETTINGS

GRANT = web.RequestKey("grant", Grant)


def authenticate(request: web.Request) -> Grant:
    """Check `?api_key=` and the JWT of the `Authorization` header (once a request: the rate
    limits may have asked before the handler)."""
    if GRANT in request:
        return request[GRANT]
    settings = request.config_dict[SETTINGS]
    api_key = request.query.get("api_key", "")
    if not hmac.compare_digest(api_key.encode(), settings.auth.api_key.encode()):
        raise ApiKeyError(
            "api_key not found" if api_key else "missing api_key query parameter",
            {"api_key": ["unknown api key"]},
        )
    auth_type = request.headers.get("stream-auth-type", "jwt").lower()
    if auth_type != "jwt":
        raise SignatureError(f"stream-auth-type {auth_type!r} is not supported; use jwt")
    token = request.headers.get("Authorization")
    shared = shared_groups(settings.feeds)
    grant = decode_token(token, str(settings.auth.api_secret), settings.feeds.keys(), shared)
    request[GRANT] = grant
    return grant


def path_feed(request: web.Request, slug: str = "slug", user_id: str = "user_id") -> FeedId:
    groups = request.config_dict[SETTINGS].feeds.keys()
    return parse_feed(request.match_info[slug], request.match_info[user_id], groups)


def authorize(request: web.Request, resource: Resource, action: Action) -> FeedId:
    """Authenticate, then check the token may do `action` on `resource` of the path's feed."""
    grant = authenticate(request)
    feed = path_feed(request)
    grant.require(resource, action, feed)
    return feed


async def json_body(request: web.Request) -> Any:
    try:
        text = await request.text()
    except (UnicodeDecodeError, LookupError) as exc:  # not UTF-8, or an unknown charset
        raise InputError("request body is not text in its charset", {"body": [str(exc)]}) from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InputError("request body is not valid JSON", {"body": [str(exc)]}) from exc


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, and strict clients could not read them back."""
    raise ValueError(f"{name} is not valid JSON")
