"""The Reactions API in Stream's dialect: `reaction/` (add), `reaction/{id}/` (get, update,
delete), `reaction/{id}/restore/`, and the filters `reaction/{activity_id|user_id|reaction_id}/
{value}/[{kind}/]`. Thin: the use cases are feeds/reactions.py's."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from ..domain.enrichment import Options
from ..domain.errors import DoesNotExistError, InputError
from ..domain.ids import lookup_id
from ..domain.reactions import DEFAULT_PAGE, MAX_PAGE, parse_add, parse_update
from ..store.mongo.reactions import Field, Query
from . import params
from .context import authenticate, json_body
from .errors import answer
from .keys import ENRICHER, REACTIONS

BOUNDS = ("id_lt", "id_lte", "id_gt", "id_gte")
FIELDS: dict[str, Field] = {
    "activity_id": "activity_id",
    "user_id": "user_id",
    "reaction_id": "parent",
}


async def add(request: web.Request) -> web.Response:
    grant = authenticate(request)
    reactions = request.config_dict[REACTIONS]
    new = parse_add(await json_body(request), reactions.bounds)
    return answer(request, await reactions.add(new, grant), status=201)


async def get(request: web.Request) -> web.Response:
    authenticate(request)
    reaction = await request.config_dict[REACTIONS].get(_id(request))
    return answer(request, reaction)


async def update(request: web.Request) -> web.Response:
    grant = authenticate(request)
    reactions = request.config_dict[REACTIONS]
    change = parse_update(await json_body(request), reactions.bounds)
    return answer(request, await reactions.update(_id(request), change, grant))


async def delete(request: web.Request) -> web.Response:
    grant = authenticate(request)
    soft = params.boolean(request.query, "soft")
    await request.config_dict[REACTIONS].delete(_id(request), soft, grant)
    return answer(request, {})


async def restore(request: web.Request) -> web.Response:
    grant = authenticate(request)
    await request.config_dict[REACTIONS].restore(_id(request), grant)
    return answer(request, {})


async def filter_reactions(request: web.Request) -> web.Response:
    grant = authenticate(request)
    lookup, value = request.match_info["lookup"], request.match_info["value"]
    kind = request.match_info.get("kind") or None
    query = request.query
    limit = min(params.integer(query, "limit", DEFAULT_PAGE, 1, 10**6), MAX_PAGE)
    bounds = _bounds(query)
    if lookup == "reaction_id":
        value = _uuid(value, "reaction_id")
    own_of = query.get("children_user_id") or query.get("filter_user_id") or None
    with_own = params.boolean(query, "with_own_children")
    page = await request.config_dict[REACTIONS].filter(
        Query(FIELDS[lookup], value, kind, bounds, limit),
        with_activity_data=params.boolean(query, "with_activity_data"),
        own_children_of=own_of if with_own else None,
    )
    body: dict[str, object] = {"results": page.results, "next": ""}
    if page.more:
        body["next"] = _next(request, page.results[-1]["id"], bounds, limit, kind)
    if page.activity is not None:  # enriched, with its reactions, as Stream answers it
        options = Options(own=True, recent=True, counts=True, user_id=grant.user_id)
        [body["activity"]] = await request.config_dict[ENRICHER].page([page.activity], options)
    return answer(request, body)


def _next(
    request: web.Request, last: str, bounds: Mapping[str, str], limit: int, kind: str | None
) -> str:
    """The next page, as Stream links it: the same filter past the last reaction answered."""
    ascending = Query("user_id", "", None, bounds, limit).ascending
    kept = {k: v for k, v in bounds.items() if k in (("id_lt", "id_lte") if ascending else ())}
    kept = {**kept, ("id_gt" if ascending else "id_lt"): last}
    if not ascending:
        kept.update({k: v for k, v in bounds.items() if k in ("id_gt", "id_gte")})
    carried = ("with_own_children", "children_user_id", "filter_user_id")
    extra = {k: request.query[k] for k in carried if k in request.query}
    path = f"/api/v1.0/reaction/{request.match_info['lookup']}/{request.match_info['value']}/"
    if kind:
        path += f"{kind}/"
    return path + "?" + urlencode({**kept, "limit": limit, **extra})


def _bounds(query: Mapping[str, str]) -> dict[str, str]:
    return {name: _uuid(query[name], name) for name in BOUNDS if query.get(name)}


def _id(request: web.Request) -> str:
    """The reaction of the path: one that is no UUID is one that does not exist."""
    found = lookup_id(request.match_info["reaction_id"])
    if found is None:
        raise DoesNotExistError("no such reaction", {"id": ["not a reaction id"]})
    return found


def _uuid(value: str, name: str) -> str:
    found = lookup_id(value)
    if found is None:
        raise InputError(f"{name} must be a UUID", {name: ["not a UUID"]})
    return found
