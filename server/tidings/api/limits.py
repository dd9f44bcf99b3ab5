"""Stream's rate limits on the REST API: the middleware that counts each call (ratelimit/) and
refuses one over its limit with RateLimitReached (code 9, HTTP 429), and the hook that writes
`X-Ratelimit-Limit`, `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` on every answer of a
counted call, errors included.

The middleware runs inside `stream_errors`, so that the refusal is answered in Stream's shape
where every error is; the headers are written when the answer is prepared, whichever way it
was made. Calls by a token that names no user (the server token, and the scoped tokens Stream's
server-side SDKs sign per call) are not counted while `limits.exempt_server_tokens` is on.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..auth import Grant
from ..domain.errors import RateLimitError, TidingsError
from ..ratelimit import Caller, Verdict, client_address
from . import activities, collections, follows, media, privacy, reactions, users
from .context import authenticate
from .keys import LIMITER, SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VERDICT = web.RequestKey("rate_verdict", Verdict)
ANY_USER = "*"  # Stream's server-side SDKs sign `user_id: "*"` for some app-wide calls

# The endpoint classes of the calls that are not plain reads (GET) or writes (the rest).
_CLASSES: dict[Any, str] = {
    follows.follow: "follows",
    follows.unfollow: "follows",
    **dict.fromkeys((
        follows.follow_many, follows.unfollow_many, activities.add_to_many,
        users.add_users, users.get_users, users.delete_users,
        collections.upsert, collections.select, collections.delete_many,
        privacy.delete_activities, privacy.delete_reactions, privacy.export_ids,
    ), "batch"),
    **dict.fromkeys((reactions.add, reactions.get, reactions.update, reactions.delete,
                     reactions.restore, reactions.filter_reactions), "reactions"),
    **dict.fromkeys((media.upload_file, media.delete_file, media.upload_image,
                     media.delete_image, media.process_image, media.open_graph), "files"),
}  # fmt: skip


def endpoint_class(request: web.Request) -> str | None:
    """The class a call is counted in; None for a path or method with no route (answered 404
    or 405 without being counted)."""
    match = request.match_info
    if match.http_exception is not None:
        return None
    kind = _CLASSES.get(match.handler)
    if kind is not None:
        return kind
    return "reads" if request.method in ("GET", "HEAD") else "writes"


def _grant(request: web.Request) -> Grant | None:
    """The call's grant, when its key and token are good (the handler answers why not)."""
    try:
        return authenticate(request)
    except TidingsError:
        return None


def caller(request: web.Request, grant: Grant | None) -> Caller:
    settings = request.config_dict[SETTINGS]
    api_key = request.query.get("api_key", "")
    good_key = hmac.compare_digest(api_key.encode(), settings.auth.api_key.encode())
    user = grant.user_id if grant is not None and grant.user_id != ANY_USER else None
    forwarded = request.headers.get("X-Forwarded-For")
    address = client_address(request.remote, forwarded, settings.limits.trust_forwarded_for)
    return Caller(api_key if good_key else None, user, address)


def refusal(verdict: Verdict, kind: str, now: float | None = None) -> RateLimitError:
    now = time.time() if now is None else now
    wait = max(1, math.ceil(verdict.reset - now))
    return RateLimitError(
        f"rate limit reached: at most {verdict.limit} {kind} calls per window for this "
        f"{verdict.scope}; retry in {wait} s",
        headers={**verdict.headers(), "Retry-After": str(wait)},
    )


@web.middleware
async def rate_limited(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.config_dict[LIMITER]
    kind = endpoint_class(request) if limiter.enabled else None
    if kind is None:
        return await handler(request)
    grant = _grant(request)
    exempt = grant is not None and grant.user_id in (None, ANY_USER)
    if exempt and limiter.settings.exempt_server_tokens:
        return await handler(request)
    verdict = await limiter.hit(kind, caller(request, grant))
    if verdict is None:
        return await handler(request)
    request[VERDICT] = verdict
    if not verdict.allowed:
        raise refusal(verdict, kind)
    return await handler(request)


async def limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the headers of the call's limit, on whatever answers it."""
    verdict = request.get(VERDICT)
    if verdict is not None:
        response.headers.update(verdict.headers())
