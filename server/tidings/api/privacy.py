"""Stream's data privacy calls (feeds/privacy.py), for a server-side token only:
`POST data_privacy/delete_activities/`, `POST data_privacy/delete_reactions/` (each answers
`{}`), `GET data_privacy/export_ids/{user_id}` (`{export: {user_id, activity_count,
activity_ids, reaction_count, reaction_ids}}`)."""

from __future__ import annotations

from aiohttp import web

from ..auth import Grant
from ..domain.errors import NotAllowedError
from .context import authenticate, json_body
from .errors import answer
from .keys import PRIVACY


def _server_side(request: web.Request) -> Grant:
    grant = authenticate(request)
    if not (grant.resource == "*" and grant.action == "*" and grant.feed_id == "*"):
        raise NotAllowedError("the data privacy calls need a server-side token")
    return grant


async def delete_activities(request: web.Request) -> web.Response:
    _server_side(request)
    privacy = request.config_dict[PRIVACY]
    deletions = privacy.parse_activities(await json_body(request))
    await privacy.delete_activities(deletions)
    return answer(request, {})


async def delete_reactions(request: web.Request) -> web.Response:
    _server_side(request)
    await request.config_dict[PRIVACY].delete_reactions(await json_body(request))
    return answer(request, {})


async def export_ids(request: web.Request) -> web.Response:
    _server_side(request)
    found = await request.config_dict[PRIVACY].export_ids(request.match_info["user_id"])
    return answer(request, {"export": found})
