"""Writes that fail after the store applied them (a lost answer), and writes the store applied
without the confirmation asked for (a write-concern error).

Three real nodes share one store and one Redis. A's fault points lose the answer of a write
the store applied (AutoReconnect, 503): the feed heads and the activity cache must still show
the write, on A and on B, whose reads are compared with the store's. C's fault points raise a
BulkWriteError carrying a write-concern error: C must answer 503 and announce nothing (no
socket event, no firehose message), and the retry the 503 invites must then announce the add
once. Each fault point acts on its first passes only (`name:action:times`), so each test below
spends its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient
from pymongo.errors import BulkWriteError

from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, webhooks
from tests.integration.nodes import SERVER_TOKEN, Sub, has_new, poll, start_all, subscriber
from tests.support import API_KEY, RedisServer, ServerProcess, Store
from tidings.domain.errors import UnavailableError
from tidings.store.mongo import bulk

WAIT = 10.0
Doc = dict[str, Any]
LOST = "entries.inserted:lose_answer:1,activities.changed:lose_answer:3"
UNCONFIRMED = "activities.inserted:write_concern:1,entries.inserted:write_concern:1"


@pytest.fixture(scope="module")
def nodes(
    store: Store, redis_server: RedisServer, receiver: Receiver, workdir: Path
) -> Iterator[dict[str, ServerProcess]]:
    database = f"t_faults_{uuid.uuid4().hex[:8]}"
    shared = {"TIDINGS_REDIS_CHANNEL": f"faults-{uuid.uuid4().hex[:8]}"}
    unconfirmed = {"TIDINGS_TEST_FAULT": UNCONFIRMED, **FAST, **webhooks((receiver, []))}
    faults = {"A": {"TIDINGS_TEST_FAULT": LOST}, "B": {}, "C": unconfirmed}
    started = {
        name: ServerProcess(store.url, database, redis_server.url, env={**shared, **env},
                            log_path=workdir / f"faults-{name}.log")
        for name, env in faults.items()
    }  # fmt: skip
    start_all(list(started.values()))
    yield started
    for node in started.values():
        node.kill()


class Node:
    """Stream's REST dialect against one node, with the server token; answers (status, body)."""

    def __init__(self, session: aiohttp.ClientSession, node: ServerProcess) -> None:
        self.session, self.node = session, node

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.session.request(
            method, f"{self.node.url}/api/v1.0/{path}", params={"api_key": API_KEY, **params},
            json=body, headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
            timeout=aiohttp.ClientTimeout(total=WAIT),
        ) as response:  # fmt: skip
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        status, answer = await self.call(method, path, body, **params)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    async def read(self, feed: str) -> list[Doc]:
        answer = await self.ok("GET", f"feed/{feed.replace(':', '/')}/", limit="25")
        results: list[Doc] = answer["results"]
        return results


@pytest.fixture
def rest(nodes: dict[str, ServerProcess], http: aiohttp.ClientSession) -> dict[str, Node]:
    return {name: Node(http, node) for name, node in nodes.items()}


def post(feed: str, **fields: Any) -> tuple[str, Doc]:
    return f"feed/{feed.replace(':', '/')}/", {"actor": "a", "verb": "post", "object": "o:1",
                                               **fields}  # fmt: skip


async def same_as_store(rest: dict[str, Node], mongo_db: Any, feed: str, want: int) -> None:
    """A's and B's reads of `feed` hold what the store holds (`want` entries), within WAIT."""

    async def agree() -> bool:
        stored = sorted(
            (d["activity_id"] for d in mongo_db["feed_entries"].find({"feed": feed})),
            reverse=True,
        )
        reads = [[a["id"] for a in await rest[n].read(feed)] for n in "AB"]
        return len(stored) == want and all(r == stored for r in reads)

    await poll(agree, f"A's and B's reads of {feed} to show the store's {want} entries", WAIT)


@pytest.fixture
def db(nodes: dict[str, ServerProcess], store: Store) -> Iterator[Any]:
    with MongoClient(store.url, tz_aware=True) as client:
        yield client[nodes["A"].database]


async def test_an_add_whose_entries_answer_was_lost_shows_in_every_nodes_reads(
    rest: dict[str, Node], db: Any, uid: str
) -> None:
    """The entries were written, their answer lost (503): this node's head and the
    others' must not keep answering the feed without them."""
    feed = f"user:{uid}"
    await rest["B"].ok("POST", *post(feed))
    for name in "AB":  # both nodes now answer the feed from their heads
        assert len(await rest[name].read(feed)) == 1
    status, answer = await rest["A"].call("POST", *post(feed, object="o:2"))
    assert status == 503, answer
    await same_as_store(rest, db, feed, 2)


CHANGES = {
    "partial update": ("activity/", lambda f, i, a: {"id": i, "set": {"score": 2}},
                       lambda a: a.get("score") == 2),
    "activity_to_targets": (
        "feed_targets/{feed}/activity_to_targets/",
        lambda f, i, a: {"foreign_id": a["foreign_id"], "time": a["time"],
                         "added_targets": [f"timeline:{f.partition(':')[2]}t"]},
        lambda a: a.get("to") == [f"timeline:{a['actor']}t"],
    ),
    "add_to_many": ("feed/add_to_many/", lambda f, i, a: {"activity": {**a, "object": "o:9"},
                                                          "feeds": [f]},
                    lambda a: a.get("object") == "o:9"),
}  # fmt: skip


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_whose_answer_was_lost_shows_in_every_nodes_reads(
    rest: dict[str, Node], change: str, uid: str
) -> None:
    """change_data, set_targets or save_to_many wrote the activity and its answer was lost
    (503): the activity caches of this node and of the others must not keep the old fields."""
    feed = f"user:{uid}"
    activity = {"actor": uid, "verb": "post", "object": "o:1", "foreign_id": f"f:{uid}",
                "time": "2026-01-01T00:00:00"}  # fmt: skip
    added = await rest["B"].ok("POST", *post(feed, **activity))
    for name in "AB":  # both nodes now hold its fields in their activity caches
        assert [a["id"] for a in await rest[name].read(feed)] == [added["id"]]
    path, body, changed = CHANGES[change]
    status, answer = await rest["A"].call(
        "POST", path.format(feed=feed.replace(":", "/")), body(feed, added["id"], activity)
    )
    assert status == 503, answer

    async def shown() -> bool:
        return all([changed((await rest[n].read(feed))[0]) for n in "AB"])

    await poll(shown, f"the {change} in A's and B's reads", WAIT)


async def test_a_write_concern_error_answers_503_announces_nothing_and_the_retry_once(
    rest: dict[str, Node], nodes: dict[str, ServerProcess], receiver: Receiver,
    subs: list[Sub], uid: str,
) -> None:  # fmt: skip
    """The store applied the activity (then its entries) without confirming them: each
    attempt answers 503 and sends nothing; the third is confirmed, and sends the add once."""
    feed, follower = f"user:{uid}", f"timeline:{uid}"
    c = rest["C"]
    await c.ok("POST", f"feed/timeline/{uid}/follows/", {"target": feed})
    watcher = await subscriber(subs, nodes["C"], [feed, follower])
    activity = {"foreign_id": f"f:{uid}", "time": "2026-01-01T00:00:00"}
    for site in ("the activity", "its entries"):
        status, answer = await c.call("POST", *post(feed, **activity))
        assert status == 503, (site, answer)
        assert answer["exception"] == "StreamApiException", answer
    added = await c.ok("POST", *post(feed, **activity))
    marker = await c.ok("POST", *post(feed, object="o:marker"))
    everywhere = {(f, a["id"]) for f in (feed, follower) for a in (added, marker)}

    async def arrived() -> bool:
        live = {(e["feed"], a["id"]) for e in watcher.named("feed.update") for a in e["new"]}
        return everywhere <= live and everywhere <= receiver.pairs()

    await poll(arrived, "the add and the marker on the socket and the firehose", WAIT)
    for where in (feed, follower):
        events = watcher.named("feed.update", lambda e, w=where: e["feed"] == w)
        assert len([e for e in events if has_new(added["id"])(e)]) == 1, events
        sent = [
            e for d in receiver.deliveries for e in d.body
            if e["feed"] == where and any(a["id"] == added["id"] for a in e["new"])
        ]  # fmt: skip
        assert len(sent) == 1, sent


def test_a_bulk_write_error_is_duplicates_only_or_a_failure(db: Any) -> None:
    """The one decision, on a real BulkWriteError of the store: duplicates are success,
    the same error with a write-concern error beside them is a failure (UnavailableError)."""
    collection = db[f"bulk_{uuid.uuid4().hex[:8]}"]
    collection.insert_one({"_id": 1})
    with pytest.raises(BulkWriteError) as caught:
        collection.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 1}], ordered=False)
    real = caught.value
    assert bulk.failure(real) is None and bulk.duplicates(real) == [0, 2]
    assert sorted(d["_id"] for d in collection.find()) == [1, 2]
    unconfirmed = BulkWriteError({**real.details, "writeConcernErrors": [
        {"code": 64, "errmsg": "waiting for replication timed out"}]})  # fmt: skip
    other = BulkWriteError({**real.details, "writeErrors": [
        {**real.details["writeErrors"][0], "code": 2}]})  # fmt: skip
    for failed in (unconfirmed, other):
        assert isinstance(bulk.failure(failed), UnavailableError)
        with pytest.raises(UnavailableError):
            bulk.duplicates(failed)
    collection.drop()
