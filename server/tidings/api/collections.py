"""Collections: `POST collections/{collection}/`, `GET|PUT|DELETE collections/{collection}/{id}/`
and the batch calls on `collections/` (`POST` upsert, `GET ?foreign_ids=` select,
`DELETE ?collection_name=&ids=` delete many)."""

from __future__ import annotations

from aiohttp import web

from . import params
from .context import authenticate, json_body
from .errors import answer
from .keys import OBJECTS


async def add_entry(request: web.Request) -> web.Response:
    grant = authenticate(request)
    body = await json_body(request)
    collections = request.config_dict[OBJECTS].collections
    entry = await collections.add(request.match_info["collection"], body, grant)
    return answer(request, entry, status=201)


async def get_entry(request: web.Request) -> web.Response:
    grant = authenticate(request)
    collection, entry_id = request.match_info["collection"], request.match_info["entry_id"]
    collections = request.config_dict[OBJECTS].collections
    return answer(request, await collections.get(collection, entry_id, grant))


async def update_entry(request: web.Request) -> web.Response:
    grant = authenticate(request)
    body = await json_body(request)
    collection, entry_id = request.match_info["collection"], request.match_info["entry_id"]
    collections = request.config_dict[OBJECTS].collections
    return answer(request, await collections.update(collection, entry_id, body, grant))


async def delete_entry(request: web.Request) -> web.Response:
    grant = authenticate(request)
    collection, entry_id = request.match_info["collection"], request.match_info["entry_id"]
    await request.config_dict[OBJECTS].collections.delete(collection, entry_id, grant)
    return answer(request, {})


async def upsert(request: web.Request) -> web.Response:
    grant = authenticate(request)
    body = await json_body(request)
    return answer(request, await request.config_dict[OBJECTS].collections.upsert(body, grant))


async def select(request: web.Request) -> web.Response:
    grant = authenticate(request)
    foreign_ids = params.id_list(request.query, "foreign_ids")
    found = await request.config_dict[OBJECTS].collections.select(foreign_ids, grant)
    return answer(request, {"response": {"data": found}})


async def delete_many(request: web.Request) -> web.Response:
    """`ids` comma-separated (the npm SDK) or repeated (stream-python sends a list)."""
    grant = authenticate(request)
    query = request.query
    ids = [i.strip() for raw in query.getall("ids", []) for i in raw.split(",") if i.strip()]
    collections = request.config_dict[OBJECTS].collections
    await collections.delete_many(query.get("collection_name", ""), ids, grant)
    return answer(request, {})
