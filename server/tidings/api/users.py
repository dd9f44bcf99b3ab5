"""Users: `POST user/`, `GET|PUT|DELETE user/{user_id}/`; the batch calls `POST users/`,
`GET users/?ids=` and `DELETE users/?ids=` (ids comma-separated or repeated)."""

from __future__ import annotations

from aiohttp import web

from . import params
from .context import authenticate, json_body
from .errors import answer
from .keys import OBJECTS


async def add_user(request: web.Request) -> web.Response:
    grant = authenticate(request)
    get_or_create = params.boolean(request.query, "get_or_create")
    body = await json_body(request)
    user = await request.config_dict[OBJECTS].users.add(body, get_or_create, grant)
    return answer(request, user, status=201)


async def get_user(request: web.Request) -> web.Response:
    grant = authenticate(request)
    counts = params.boolean(request.query, "with_follow_counts")
    users = request.config_dict[OBJECTS].users
    return answer(request, await users.get(request.match_info["user_id"], counts, grant))


async def update_user(request: web.Request) -> web.Response:
    grant = authenticate(request)
    body = await json_body(request)
    users = request.config_dict[OBJECTS].users
    return answer(request, await users.update(request.match_info["user_id"], body, grant))


async def delete_user(request: web.Request) -> web.Response:
    grant = authenticate(request)
    await request.config_dict[OBJECTS].users.delete(request.match_info["user_id"], grant)
    return answer(request, {})


async def add_users(request: web.Request) -> web.Response:
    grant = authenticate(request)
    body = await json_body(request)
    created = await request.config_dict[OBJECTS].users.add_many(body, grant)
    return answer(request, {"created_users": created}, status=201)


async def get_users(request: web.Request) -> web.Response:
    grant = authenticate(request)
    found = await request.config_dict[OBJECTS].users.get_many(_ids(request), grant)
    return answer(request, {"users": found})


async def delete_users(request: web.Request) -> web.Response:
    grant = authenticate(request)
    deleted = await request.config_dict[OBJECTS].users.delete_many(_ids(request), grant)
    return answer(request, {"deleted_user_ids": deleted})


def _ids(request: web.Request) -> list[str]:
    """`ids` comma-separated (the npm SDK, stream-net) or repeated."""
    raw = request.query.getall("ids", [])
    return [i.strip() for value in raw for i in value.split(",") if i.strip()]
