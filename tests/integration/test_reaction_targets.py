"""A reaction's `target_feeds`: the activity Stream puts there, added through the feeds' own
add, so it is read from the feed, arrives on a subscribed socket and at a firehose webhook, and
leaves them all when the reaction is deleted."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stream
from stream.client import StreamClient

from harness.common import SERVER_TOKEN
from harness.pool import ServerPool
from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, webhooks
from tests.integration.realtime_clients import PySubscriber
from tests.support import API_KEY, API_SECRET, ServerProcess, wait_until


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def hooked(pool: ServerPool, hook: Receiver) -> ServerProcess:
    """A server whose firehose sends every feed's updates to `hook`."""
    return pool.get({**FAST, **webhooks((hook, []))})


@pytest.fixture
def sdk(hooked: ServerProcess) -> StreamClient:
    return stream.connect(API_KEY, API_SECRET, base_url=hooked.base_url)


@pytest.fixture
async def sub() -> AsyncIterator[PySubscriber]:
    subscriber = PySubscriber()
    yield subscriber
    await subscriber.close()


def test_the_python_sdks_target_feeds_scenario(client: StreamClient, uid: str) -> None:
    """stream-python's own test_reaction_add_to_target_feeds, on fresh ids."""
    michelle = client.feed("user", f"michelle{uid}")
    r = client.reactions.add(
        "superlike", "54a60c1e-4ee3-494b-a1e3-50c06acb5ed4", "mike", data={"popularity": 50},
        target_feeds=[michelle.id], target_feeds_extra_data={"popularity": 100},
    )  # fmt: skip
    assert r["data"]["popularity"] == 50 and r["target_feeds"] == [michelle.id]
    a = michelle.get(limit=1)["results"][0]
    assert r["id"] in a["reaction"] and a["verb"] == "superlike" and a["popularity"] == 100
    child = client.reactions.add_child(
        "superlike", r["id"], "rob", data={"popularity": 60},
        target_feeds=[michelle.id], target_feeds_extra_data={"popularity": 200},
    )  # fmt: skip
    a = michelle.get(limit=1)["results"][0]
    assert child["id"] in a["reaction"] and a["popularity"] == 200


async def test_target_activity_is_read_sent_live_and_to_the_firehose_then_removed(
    sdk: StreamClient, hooked: ServerProcess, hook: Receiver, sub: PySubscriber, uid: str
) -> None:
    post = sdk.feed("user", f"alice{uid}").add_activity(
        {"actor": "a", "verb": "eat", "object": "o"}
    )
    targets = [f"user:bob{uid}", f"timeline:alice{uid}"]
    follower = f"timeline:carl{uid}"
    sdk.feed("timeline", f"carl{uid}").follow("user", f"bob{uid}")
    await sub.connect(hooked.url, SERVER_TOKEN)
    for feed in (*targets, follower):
        assert (await sub.subscribe(feed))["ok"]

    comment = sdk.reactions.add(
        "comment", post["id"], f"bob{uid}", data={"text": "yum"}, target_feeds=targets,
        target_feeds_extra_data={"custom": "yay"},
    )  # fmt: skip
    expected = {
        "actor": f"SU:bob{uid}", "verb": "comment", "object": f"SA:{post['id']}",
        "foreign_id": f"reaction:{comment['id']}",
        "time": dt.datetime.fromisoformat(comment["created_at"][:-1]).replace(tzinfo=dt.UTC),
        "reaction": f"SR:{comment['id']}", "custom": "yay",
    }  # fmt: skip
    read: dict[str, Any] = {}
    for feed in targets:
        group, user = feed.split(":")
        [read[feed]] = sdk.feed(group, user).get()["results"]
        assert {k: read[feed][k] for k in expected} == expected
    activity_id = read[targets[0]]["id"]
    assert read[targets[1]]["id"] == activity_id  # one activity in every target feed
    for feed in (*targets, follower):  # live, fanned out to followers like any add
        event = await sub.wait_for(
            lambda e, feed=feed: e["feed"] == feed and [a["id"] for a in e["new"]] == [activity_id],
            f"the reaction's activity in {feed}",
        )
        assert event["new"][0]["reaction"] == f"SR:{comment['id']}"
    wait_until(
        lambda: hook.pairs() >= {(f, activity_id) for f in (*targets, follower)},
        20, what="the reaction's activity at the webhook",
    )  # fmt: skip

    sdk.reactions.delete(comment["id"])
    for feed in (*targets, follower):
        await sub.wait_for(
            lambda e, feed=feed: e["feed"] == feed and activity_id in e["deleted"],
            f"the removal from {feed}",
        )
        group, user = feed.split(":")
        assert sdk.feed(group, user).get()["results"] == []
    wait_until(
        lambda: hook.pairs(with_new=False) >= {(f, activity_id) for f in targets},
        20, what="the removal at the webhook",
    )  # fmt: skip


def test_update_moves_the_activity_between_target_feeds(client: StreamClient, uid: str) -> None:
    post = client.feed("user", uid).add_activity({"actor": "a", "verb": "eat", "object": "o"})
    first, second, third = (f"user:t{i}{uid}" for i in range(3))
    comment = client.reactions.add(
        "comment", post["id"], uid, target_feeds=[first, second], target_feeds_extra_data={"v": 1}
    )

    def held(feed: str) -> list[dict[str, Any]]:
        group, user = feed.split(":")
        return list(client.feed(group, user).get()["results"])

    updated = client.reactions.update(comment["id"], {"text": "new"}, target_feeds=[second, third])
    assert updated["target_feeds"] == [second, third]
    assert held(first) == []
    [kept], [added] = held(second), held(third)
    assert kept["id"] == added["id"] and added["v"] == 1
    client.reactions.delete(comment["id"], soft=True)  # a soft delete leaves them
    assert len(held(second)) == 1
    client.reactions.restore(comment["id"])
    client.reactions.delete(comment["id"])
    assert held(second) == held(third) == []


def test_extra_data_is_echoed_by_writes_and_left_out_of_reads(
    client: StreamClient, uid: str
) -> None:
    """As Stream answers (its JS suite reads a reaction by id expecting exactly its fields,
    `target_feeds` but no `target_feeds_extra_data`): the add and the update echo the extra
    data, get and filter answer without it, and its activities still carry it."""
    post = client.feed("user", uid).add_activity({"actor": "a", "verb": "eat", "object": "o"})
    target = f"user:x{uid}"
    added = client.reactions.add(
        "comment", post["id"], uid, target_feeds=[target], target_feeds_extra_data={"v": 1}
    )
    assert added["target_feeds_extra_data"] == {"v": 1}
    got = client.reactions.get(added["id"])
    assert got["target_feeds"] == [target] and "target_feeds_extra_data" not in got
    [found] = client.reactions.filter(activity_id=post["id"])["results"]
    assert "target_feeds_extra_data" not in found
    updated = client.reactions.update(added["id"], {"t": 2})
    assert updated["target_feeds_extra_data"] == {"v": 1}
    [activity] = client.feed("user", f"x{uid}").get()["results"]
    assert (activity["v"], activity["target"]) == (1, "")
