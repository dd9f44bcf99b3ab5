"""Data migrations at start (server/tidings/store/migrations.py), against a database written
the way an older Tidings wrote it.

Follows stored before follower chunks existed have no `chunk`: without the migration no fanout
reaches them. Two nodes starting at once on such a database must adopt each follow once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stream
from pymongo import MongoClient

from tests.support import API_KEY, API_SECRET, ServerProcess, Store, wait_until
from tidings.store.mongo.follows import CHUNK_SIZE

Doc = dict[str, Any]
FOLLOWERS = 1203  # more than two follower chunks (CHUNK_SIZE 500)


@pytest.fixture
def old_database(store: Store) -> Iterator[tuple[str, MongoClient[Doc]]]:
    """A database holding follows as Tidings stored them before follower chunks."""
    mongo: MongoClient[Doc] = MongoClient(store.url, tz_aware=True)
    name = f"t_old_{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    old = [(f"timeline:f{i}", "user:celeb") for i in range(FOLLOWERS)]
    old.append(("timeline:f0", "user:other"))
    mongo[name]["follows"].insert_many(
        [{"source": s, "target": t, "created_at": now, "updated_at": now} for s, t in old]
    )
    yield name, mongo
    mongo.drop_database(name)
    mongo.close()


def _start_together(servers: list[ServerProcess]) -> None:
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_old_follows_are_adopted_once_by_nodes_starting_together(
    old_database: tuple[str, MongoClient[Doc]], store: Store, workdir: Path
) -> None:
    name, mongo = old_database
    db = mongo[name]
    servers = [
        ServerProcess(store.url, database=name, log_path=workdir / f"migrate-{k}.log")
        for k in range(2)
    ]
    try:
        _start_together(servers)
        feeds = {d["_id"]: d for d in db["feeds"].find()}
        assert feeds["user:celeb"]["followers"] == FOLLOWERS
        assert feeds["user:other"]["followers"] == 1
        members = [
            m["s"] for c in db["follower_chunks"].find({"target": "user:celeb"}) for m in c["m"]
        ]
        assert sorted(members) == sorted(f"timeline:f{i}" for i in range(FOLLOWERS))
        assert db["follows"].count_documents({"chunk": {"$exists": False}}) == 0
        assert db["migrations"].find_one({"_id": "follower_chunks"}) is not None

        client = stream.connect(API_KEY, API_SECRET, base_url=servers[1].base_url)
        added = client.feed("user", "celeb").add_activity(
            {"actor": "celeb", "verb": "post", "object": "news:1"}
        )
        for follower in ("f0", "f600", f"f{FOLLOWERS - 1}"):
            feed = client.feed("timeline", follower)
            wait_until(
                lambda feed=feed: [a["id"] for a in feed.get(limit=5)["results"]] == [added["id"]],
                30,
                what=f"timeline:{follower} to hold the activity",
            )
        # A new follow takes a slot past every adopted one (two nodes raced: the loser's slots
        # stay unused), and no chunk holds more than its size.
        client.feed("timeline", "late").follow("user", "celeb")
        assert db["feeds"].find_one({"_id": "user:celeb"})["followers"] == FOLLOWERS + 1
        chunks = {c["n"]: c["m"] for c in db["follower_chunks"].find({"target": "user:celeb"})}
        late = db["follows"].find_one({"source": "timeline:late", "target": "user:celeb"})
        assert late["chunk"] == max(chunks)
        assert all(len(members) <= CHUNK_SIZE for members in chunks.values())
    finally:
        for server in servers:
            server.stop()

    # A restart does not run it again (nothing would change, but it would scan every follow).
    again = ServerProcess(store.url, database=name, log_path=workdir / "migrate-again.log")
    try:
        again.start()
        assert db["feeds"].find_one({"_id": "user:celeb"})["followers"] == FOLLOWERS + 1
    finally:
        again.kill()
