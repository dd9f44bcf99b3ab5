"""Reaction counters stay exact under many concurrent writers, and what the enrichment of a page
of activities reads (counts, latest per kind, a user's own) costs one query per page."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pymongo import MongoClient

from harness.common import SERVER_TOKEN
from harness.monitoring import monitored_database
from tests.support import API_KEY, ServerProcess, Store
from tidings.domain.reactions import Reaction, new_reaction_id
from tidings.store.mongo.reactions import ReactionStore

HEADERS = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}


async def call(
    http: aiohttp.ClientSession, server: ServerProcess, method: str, path: str, **kw: Any
) -> dict[str, Any]:
    url = f"{server.url}/api/v1.0/{path}"
    async with http.request(method, url, params={"api_key": API_KEY}, headers=HEADERS, **kw) as r:
        assert r.status in (200, 201), await r.text()
        return dict(await r.json())


async def test_counts_are_exact_under_100_concurrent_writers(
    http: aiohttp.ClientSession, server: ServerProcess, mongo: MongoClient[Any], uid: str
) -> None:
    activity_id = str(uuid.uuid4())
    db = mongo[server.database]

    async def react(kind: str, user: str, parent: str = "") -> dict[str, Any]:
        body = {"kind": kind, "user_id": user}
        body.update({"parent": parent} if parent else {"activity_id": activity_id})
        return await call(http, server, "POST", "reaction/", json=body)

    async def delete(reaction_id: str, soft: bool = False) -> None:
        url = f"{server.url}/api/v1.0/reaction/{reaction_id}/"
        params = {"api_key": API_KEY, "soft": "true" if soft else "false"}
        async with http.delete(url, params=params, headers=HEADERS) as answer:
            assert answer.status in (200, 404), await answer.text()  # a racing delete: 404

    likes = await asyncio.gather(*(react("like", f"{uid}-{i}") for i in range(100)))
    comment = await react("comment", uid)
    # Adds, deletes (each raced by a second delete, hard or soft), children, all at once.
    doomed = [r["id"] for r in likes[:40]]
    work = [react("like", f"{uid}-late-{i}") for i in range(30)]
    work += [delete(i, soft=n % 2 == 0) for n, i in enumerate(doomed)]
    work += [delete(i) for i in doomed]
    work += [react("like", f"{uid}-c{i}", parent=comment["id"]) for i in range(50)]
    await asyncio.gather(*work)
    children = [r["_id"] for r in db.reactions.find({"parent": comment["id"]})]
    await asyncio.gather(*(delete(c) for c in children[:20]), *(delete(c) for c in children[:20]))

    live = Counter(
        r["kind"]
        for r in db.reactions.find({"activity_id": activity_id, "parent": "", "deleted_at": None})
    )
    counters = db.reaction_counts.find_one({"_id": activity_id})
    assert counters is not None and counters["counts"] == dict(live) == {"like": 90, "comment": 1}
    got = await call(http, server, "GET", f"reaction/{comment['id']}/")
    assert got["children_counts"] == {"like": 30}
    assert db.reactions.count_documents({"parent": comment["id"]}) == 30


def _reaction(kind: str, activity_id: str, user: str, parent: Reaction | None = None) -> Reaction:
    now = datetime.now(UTC).replace(microsecond=0)
    return Reaction(
        id=new_reaction_id(), kind=kind, activity_id=activity_id, user_id=user, data={},
        created_at=now, updated_at=now, parent=parent.id if parent else "",
        ancestors=(parent.id,) if parent else (),
    )  # fmt: skip


async def test_a_page_of_activities_is_enriched_in_one_query_per_part(store: Store) -> None:
    """counts_of, latest_of (latest and own reactions, latest and own children): each one query
    for 30 activities, each group cut to its newest `per_kind`."""
    async with monitored_database(store.url) as (db, commands):
        reactions = ReactionStore(db)
        activities = [str(uuid.uuid4()) for _ in range(30)]
        added: dict[str, list[Reaction]] = {}
        for n, activity_id in enumerate(activities):
            for i in range(n % 8):
                kind = "like" if i % 3 else "comment"
                reaction = _reaction(kind, activity_id, "me" if i % 2 else f"u{i}")
                await reactions.insert(reaction)
                added.setdefault(activity_id, []).append(reaction)
        first = added[activities[7]][0]
        kids = [_reaction("like", first.activity_id, f"k{i}", first) for i in range(7)]
        for kid in kids:
            await reactions.insert(kid)

        commands.sent.clear()
        counts = await reactions.counts_of(activities)
        latest = await reactions.latest_of("activity_id", activities, 2)
        own = await reactions.latest_of("activity_id", activities, 5, user_id="me")
        children = await reactions.latest_of("parent", [first.id, kids[0].id], 3)
        assert commands.names == ["find", "aggregate", "aggregate", "aggregate"]

        for activity_id in activities:
            mine = added.get(activity_id, [])
            assert counts.get(activity_id, {}) == dict(Counter(r.kind for r in mine))
            for kind in ("like", "comment"):
                of_kind = [r.id for r in reversed(mine) if r.kind == kind]
                got = latest.get(activity_id, {}).get(kind, [])
                assert [r.id for r in got] == of_kind[:2]
                own_of_kind = [r.id for r in reversed(mine) if r.kind == kind and r.user_id == "me"]
                assert [r.id for r in own.get(activity_id, {}).get(kind, [])] == own_of_kind
            assert await reactions.recount(activity_id) == counts.get(activity_id, {})
        assert [r.id for r in children[first.id]["like"]] == [k.id for k in reversed(kids)][:3]
        assert kids[0].id not in children  # no children: left out
        assert (await reactions.get(first.id)).children_counts == {"like": 7}  # type: ignore[union-attr]
