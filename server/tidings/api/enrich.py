"""Enriched reads: `GET enrich/feed/{slug}/{user_id}/` and `GET enrich/activities/`.

The same page as `feed/` and `activities/` answer (same parameters, same paging), with the
references replaced by their objects and, when asked, the reactions attached
(feeds/enrich.py): `withOwnReactions`, `withRecentReactions`, `recentReactionsLimit`,
`withReactionCounts`, `withOwnChildren`, `reactionKindsFilter`, and `user_id` (whose reactions
are "own"). A user token's own reactions are its user's: it may not name another user. The
npm SDK reads through these whenever it holds a user token, so `enrich/activities/` takes a
user token too (`activities/` does not), besides a server-side one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from ..auth import Grant
from ..domain.enrichment import MAX_KINDS, RECENT_DEFAULT, RECENT_MAX, Options, parse_kinds
from ..domain.errors import InputError, NotAllowedError
from ..domain.objects import check_id
from . import params
from .activities import requested_activities
from .context import GRANT, authenticate, authorize
from .errors import answer
from .feeds import feed_page
from .keys import ENRICHER


async def read_feed(request: web.Request) -> web.Response:
    feed = authorize(request, "feed", "read")
    options = enrich_options(request, request[GRANT])
    body, grouped = await feed_page(request, feed)
    if body["next"]:  # the next page of the same, enriched read
        body["next"] = body["next"].replace("/api/v1.0/feed/", "/api/v1.0/enrich/feed/", 1)
    enricher = request.config_dict[ENRICHER]
    if grouped:
        body["results"] = await enricher.groups(body["results"], options)
    else:
        body["results"] = await enricher.page(body["results"], options)
    return answer(request, body)


async def get_activities(request: web.Request) -> web.Response:
    grant = authenticate(request)
    if not (grant.app_wide("activities", "read") or _user_token(grant)):
        grant.require_app_wide("activities", "read")
    options = enrich_options(request, grant)
    found = await requested_activities(request)
    results = await request.config_dict[ENRICHER].page(found, options)
    return answer(request, {"results": results})


def enrich_options(request: web.Request, grant: Grant) -> Options:
    query = request.query
    _check_ranking_vars(query)
    # one string (stream-python), or a list as axios writes it (`reactionKindsFilter[]=…`)
    raw = [query.get("reactionKindsFilter", ""), *query.getall("reactionKindsFilter[]", [])]
    kinds = parse_kinds(",".join(raw))
    if kinds is not None and len(kinds) > MAX_KINDS:
        raise InputError(
            f"at most {MAX_KINDS} kinds in reactionKindsFilter",
            {"reactionKindsFilter": [f"at most {MAX_KINDS} kinds"]},
        )
    return Options(
        own=params.boolean(query, "withOwnReactions") or params.boolean(query, "ownReactions"),
        recent=params.boolean(query, "withRecentReactions"),
        counts=params.boolean(query, "withReactionCounts"),
        own_children=params.boolean(query, "withOwnChildren"),
        recent_limit=params.integer(query, "recentReactionsLimit", RECENT_DEFAULT, 1, RECENT_MAX),
        kinds=kinds,
        user_id=_own_user(query.get("user_id") or query.get("withUserId"), grant),
        link_base=f"{request.scheme}://{request.host}/api/v1.0",
    )


def _check_ranking_vars(query: Mapping[str, str]) -> None:
    """`rankingVars` (of ranked feeds, which Tidings has none of) is taken only as Stream takes
    it, a JSON object (the SDKs write one); a list is bad input, as in Stream."""
    if "rankingVars[]" in query:
        raise InputError("rankingVars must be a JSON object", {"rankingVars": ["not an object"]})
    raw = query.get("rankingVars")
    if raw is None:
        return
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InputError("rankingVars must be a JSON object", {"rankingVars": ["not an object"]})


def _own_user(requested: str | None, grant: Grant) -> str | None:
    """Whose reactions are "own": a server-side token names anyone (or no one); a user token
    is its own user, and may not ask for another's."""
    if requested is not None:
        requested = check_id(requested, "user_id")
    if grant.user_id is None or grant.app_wide("reactions", "read"):
        return requested if requested is not None else grant.user_id
    if requested is not None and requested != grant.user_id:
        raise NotAllowedError(
            f"user {grant.user_id} may not read the own reactions of user {requested}"
        )
    return grant.user_id


def _user_token(grant: Grant) -> bool:
    return grant.resource is None and grant.user_id is not None
