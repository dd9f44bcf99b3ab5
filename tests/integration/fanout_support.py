"""What the fanout tests share: followers written straight into the store, REST calls with the
server token, and checks of the entries a fanout wrote."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import jwt
import requests
from pymongo import AsyncMongoClient
from pymongo.database import Database

from harness.follows import add_followers_bulk
from tests.support import API_KEY, API_SECRET, ServerProcess, Store, wait_until

# The pool's server of small fanout bounds (a feed follows at most four feeds; three followers
# make a feed pull, two make it push again), shared by the tests of these bounds.
SMALL = {
    "TIDINGS_FANOUT_MAX_FOLLOWING": "4",
    "TIDINGS_FANOUT_PULL_THRESHOLD": "3",
    "TIDINGS_FANOUT_PUSH_THRESHOLD": "2",
}
FOLLOWERS = 3_000  # 30 batches of 100: a fanout long enough to interrupt partway
SERVER_TOKEN = jwt.encode({"resource": "*", "action": "*", "feed_id": "*"}, API_SECRET, "HS256")
HEADERS = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}

Doc = dict[str, Any]


def follower_feeds(prefix: str, count: int) -> list[str]:
    return [f"timeline:{prefix}f{n}" for n in range(count)]


def add_followers(store: Store, db: Database[Doc], target: str, feeds: list[str]) -> None:
    """`feeds` follow `target`, in order (the order a fanout job pages them in), written by the
    store's bulk set-up helper (follows, follower chunks, follower count)."""

    async def add() -> None:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(store.url, tz_aware=True)
        try:
            assert await add_followers_bulk(client[db.name], target, feeds) == len(feeds)
        finally:
            await client.close()

    asyncio.run(add())


def api(node: ServerProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    params = {"api_key": API_KEY, **kwargs.pop("params", {})}
    return requests.request(
        method, f"{node.url}/api/v1.0/{path}", params=params, headers=HEADERS, timeout=30, **kwargs
    )


def post_activity(node: ServerProcess, feed: str, activity: Doc) -> Doc:
    group, user = feed.split(":", 1)
    answer = api(node, "POST", f"feed/{group}/{user}/", json=activity)
    assert answer.status_code == 201, answer.text
    body: Doc = answer.json()
    return body


def read_ids(node: ServerProcess, feed: str) -> list[str]:
    group, user = feed.split(":", 1)
    answer = api(node, "GET", f"feed/{group}/{user}/", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return [a["id"] for a in answer.json()["results"]]


def entry_count(db: Database[Doc], activity_id: str) -> int:
    return db["feed_entries"].count_documents({"activity_id": activity_id})


def jobs_of(db: Database[Doc], activity_id: str) -> list[Doc]:
    return list(db["fanout_jobs"].find({"activity_id": activity_id}))


def wait_jobs_gone(db: Database[Doc], activity_id: str, timeout: float = 60) -> None:
    wait_until(
        lambda: not jobs_of(db, activity_id),
        timeout,
        0.1,
        what=f"the fanout jobs of {activity_id} to finish",
    )


def follower_entries(db: Database[Doc], activity_id: str, prefix: str) -> dict[str, Doc]:
    """Per follower feed (timeline:<prefix>f*): how many entries hold the activity, and their
    origins."""
    pipeline: list[Doc] = [
        {
            "$match": {
                "activity_id": activity_id,
                "feed": {"$regex": "^" + re.escape(f"timeline:{prefix}f")},
            }
        },
        {"$group": {"_id": "$feed", "n": {"$sum": 1}, "origins": {"$addToSet": "$origin"}}},
    ]
    return {row["_id"]: row for row in db["feed_entries"].aggregate(pipeline)}


def assert_fanned_out_once(
    db: Database[Doc], activity_id: str, prefix: str, feeds: list[str], origin: str
) -> None:
    """Every follower feed holds the activity exactly once, as got through `origin`."""
    rows = follower_entries(db, activity_id, prefix)
    missing = set(feeds) - set(rows)
    assert not missing, f"{len(missing)} follower feeds lack the activity, e.g. {min(missing)}"
    assert set(rows) == set(feeds)
    doubled = {feed: row["n"] for feed, row in rows.items() if row["n"] != 1}
    assert not doubled, f"feeds holding the activity more than once: {list(doubled.items())[:5]}"
    assert sum(row["n"] for row in rows.values()) == len(feeds)
    origins = {o for row in rows.values() for o in row["origins"]}
    assert origins == {origin}


def wait_partway(db: Database[Doc], activity_id: str, low: int, high: int) -> int:
    """Poll until some but not all entries of the activity exist; answer how many."""
    seen = 0

    def partway() -> bool:
        nonlocal seen
        seen = entry_count(db, activity_id)
        assert seen < high, f"the fanout went too far ({seen}) before it could be interrupted"
        return seen > low

    wait_until(partway, 60, 0.01, what=f"more than {low} entries of {activity_id}")
    return seen
