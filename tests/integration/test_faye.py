"""Stream's own realtime against Tidings: the getstream SDK's `feed.subscribe()` and the npm
`faye` client (tests/js/faye_subscriber.mjs) on `/faye`, over WebSocket and long-polling, on one
node and across nodes sharing Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from harness.cluster import Cluster
from harness.common import API_KEY, token
from harness.pool import ServerPool
from harness.server import Spawn
from tests.faye_client import APP_ID, FayeSubscriber, channel_of
from tests.integration.realtime_clients import Rest
from tests.support import ServerProcess

HYBRID = {"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"}
Doc = dict[str, Any]


@pytest.fixture
def fayes() -> Iterator[list[FayeSubscriber]]:
    made: list[FayeSubscriber] = []
    yield made
    for sub in made:
        sub.close()


async def test_sdk_subscribe_gets_adds_and_removals_in_streams_shape(
    server: ServerProcess, uid: str, fayes: list[FayeSubscriber], http: aiohttp.ClientSession
) -> None:
    feed = f"user:{uid}"
    sub = FayeSubscriber(server.url, uid, [["user", uid]])
    fayes.append(sub)
    assert (await sub.subscribed(feed))["type"] == "subscribed"
    rest = Rest(http, server.url)
    added = await rest.add(feed, foreign_id=f"post:{uid}")
    data = await sub.added(added["id"])
    assert data["feed"] == feed and data["app_id"] == APP_ID
    assert (data["deleted"], data["deleted_foreign_ids"]) == ([], [])
    assert data["published_at"] and data["new"][0]["foreign_id"] == f"post:{uid}"
    await rest.remove(feed, added["id"])
    removed = await sub.message("the removal", lambda d: d["deleted"] == [added["id"]])
    assert removed["new"] == [] and removed["feed"] == feed


async def test_notification_feed_gets_its_counts_and_the_marks(
    server: ServerProcess, uid: str, fayes: list[FayeSubscriber], http: aiohttp.ClientSession
) -> None:
    feed = f"notification:{uid}"
    sub = FayeSubscriber(server.url, uid, [["notification", uid]])
    fayes.append(sub)
    assert (await sub.subscribed(feed))["type"] == "subscribed"
    rest = Rest(http, server.url)
    added = await rest.add(feed)
    data = await sub.added(added["id"])
    assert (data["unseen"], data["unread"]) == (1, 1)
    await rest.call("GET", rest._path(feed), params={"mark_seen": "true"})
    marked = await sub.message("the mark", lambda d: d["new"] == [] and d["unseen"] == 0)
    assert (marked["unread"], marked["feed"], marked["mark_seen"]) == (1, feed, "all")
    assert "mark_read" not in marked


async def test_long_polling_with_the_faye_client(
    server: ServerProcess, uid: str, fayes: list[FayeSubscriber], http: aiohttp.ClientSession
) -> None:
    feeds = [f"user:{uid}", f"timeline:{uid}"]
    sub = FayeSubscriber(server.url, uid, [["user", uid], ["timeline", uid]], client="faye",
                         disable=["websocket"])  # fmt: skip
    fayes.append(sub)
    for feed in feeds:
        assert (await sub.subscribed(feed))["type"] == "subscribed"
    rest = Rest(http, server.url)
    await rest.follow(feeds[1], feeds[0])
    added = await rest.add(feeds[0])
    for feed in feeds:  # its own feed, and the timeline it was fanned out to
        data = await sub.message(f"{feed}'s update", lambda d, f=feed: d["feed"] == f)
        assert [a["id"] for a in data["new"]] == [added["id"]]
    second = await rest.add(feeds[0])  # the next connect, after the first answered
    await sub.added(second["id"])


async def test_a_pull_feeds_updates_reach_the_subscribers_of_its_followers(
    pool: ServerPool, mongo: MongoClient[Doc], uid: str, fayes: list[FayeSubscriber],
    http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    server = pool.get(HYBRID)
    celeb, followers = f"user:{uid}c", [f"timeline:{uid}f{n}" for n in range(4)]
    rest = Rest(http, server.url)
    for feed in followers:  # more than pull_threshold (3): `celeb` becomes a pull feed
        await rest.follow(feed, celeb)
    feeds = mongo[server.database]["feeds"]
    for _ in range(500):
        if (feeds.find_one({"_id": celeb}) or {}).get("mode") == "pull":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"{celeb} did not switch to pull")
    sub = FayeSubscriber(server.url, f"{uid}f0", [["timeline", f"{uid}f0"]])
    fayes.append(sub)
    assert (await sub.subscribed(followers[0]))["type"] == "subscribed"
    added = await rest.add(celeb)
    data = await sub.added(added["id"])
    assert data["feed"] == followers[0] and data["new"][0]["origin"] == celeb


async def test_a_bad_signature_and_another_users_feed_are_refused(
    server: ServerProcess, uid: str, fayes: list[FayeSubscriber], http: aiohttp.ClientSession
) -> None:
    forged = token({"user_id": uid}, secret="not-the-secret-0123456789abcdef-012345")
    sub = FayeSubscriber(server.url, uid, [["user", uid, forged], ["user", f"{uid}-other"],
                                           ["timeline", uid]], client="faye")  # fmt: skip
    fayes.append(sub)
    bad, other = await sub.subscribed(f"user:{uid}"), await sub.subscribed(f"user:{uid}-other")
    assert bad["type"] == other["type"] == "refused"
    assert bad["code"] == other["code"] == 403, (bad, other)
    assert "signature" in bad["error"] and "permission" in other["error"], (bad, other)
    assert (await sub.subscribed(f"timeline:{uid}"))["type"] == "subscribed"
    rest = Rest(http, server.url)
    refused = [await rest.add(f"user:{uid}"), await rest.add(f"user:{uid}-other")]
    marker = await rest.add(f"timeline:{uid}")
    await sub.added(marker["id"])  # sent after the others: they would have come by now
    seen = {a["id"] for m in sub.messages() for a in m["new"]}
    assert not seen & {a["id"] for a in refused}


async def test_subscribers_on_two_nodes_get_what_a_third_node_adds(
    cluster: Cluster, uid: str, fayes: list[FayeSubscriber], http: aiohttp.ClientSession
) -> None:
    feed = f"notification:{uid}"
    subs = [
        FayeSubscriber(cluster["A"].url, uid, [["notification", uid]]),
        FayeSubscriber(cluster["B"].url, uid, [["notification", uid]], client="faye",
                       disable=["websocket"]),
    ]  # fmt: skip
    fayes.extend(subs)
    for sub in subs:
        assert (await sub.subscribed(feed))["type"] == "subscribed"
    rest = Rest(http, cluster["C"].url)
    added = await rest.add(feed)
    for sub in subs:
        assert (await sub.added(added["id"]))["unseen"] == 1
    await rest.call("GET", rest._path(feed), params={"mark_read": "true"})
    for sub in subs:
        mark = await sub.message("the mark", lambda d: d["new"] == [] and d["unread"] == 0)
        assert mark["mark_read"] == "all"
    await rest.remove(feed, added["id"])
    for sub in subs:
        await sub.message("the removal", lambda d: d["deleted"] == [added["id"]])


async def test_a_sigterm_does_not_wait_for_held_connects(
    spawn: Spawn, uid: str, fayes: list[FayeSubscriber]
) -> None:
    node = spawn({"TIDINGS_REALTIME_FAYE_TIMEOUT": "60", "TIDINGS_SERVER_SHUTDOWN_TIMEOUT": "30"})
    subs = [FayeSubscriber(node.url, uid, [["user", uid]]),
            FayeSubscriber(node.url, uid, [["user", uid]], disable=["websocket"])]  # fmt: skip
    fayes.extend(subs)
    for sub in subs:
        assert (await sub.subscribed(f"user:{uid}"))["type"] == "subscribed"
    await asyncio.sleep(0.5)  # both connects held now (for up to 60 s)
    started = time.monotonic()
    assert node.stop() == 0
    assert time.monotonic() - started < 8


async def test_callback_polling_form_posts_and_bad_requests_over_raw_http(
    server: ServerProcess, uid: str, http: aiohttp.ClientSession
) -> None:
    url = f"{server.url}/faye"
    handshake = [{"channel": "/meta/handshake", "version": "1.0", "id": "1",
                  "supportedConnectionTypes": ["callback-polling"]}]  # fmt: skip
    params = {"message": json.dumps(handshake), "jsonp": "__jsonp1__"}
    async with http.get(url, params=params) as response:
        script = await response.text()
    assert response.status == 200 and script.startswith("/**/__jsonp1__(")
    (reply,) = json.loads(script.removeprefix("/**/__jsonp1__(").removesuffix(");"))
    assert reply["successful"] and reply["id"] == "1" and reply["version"] == "1.0"
    client_id = reply["clientId"]
    signature = token({"user_id": uid})
    subscribe = [
        {
            "channel": "/meta/subscribe",
            "clientId": client_id,
            "id": "2",
            "subscription": "/chat/room",
            "ext": {"api_key": API_KEY, "signature": signature},
        },
        {
            "channel": "/meta/subscribe",
            "clientId": client_id,
            "id": "3",
            "subscription": channel_of(f"user:{uid}"),
            "ext": {"api_key": "another-key", "signature": signature},
        },
        {
            "channel": "/meta/connect",
            "clientId": client_id,
            "id": "4",
            "connectionType": "cross-origin-long-polling",
            "advice": {"timeout": 0},
        },
        {"channel": "/chat/room", "clientId": client_id, "data": {}, "id": "5"},
    ]
    async with http.post(url, data={"message": json.dumps(subscribe)}) as response:
        replies = {r["id"]: r for r in await response.json()}
    assert not replies["2"]["successful"] and replies["2"]["error"].startswith("403:/chat/room:")
    assert replies["3"]["error"].endswith("unknown api key")
    assert replies["4"]["successful"] and replies["4"]["advice"]["reconnect"] == "retry"
    assert replies["5"]["error"].startswith("403:")  # clients do not publish
    unknown = {"channel": "/meta/connect", "clientId": "nobody", "connectionType": "long-polling"}
    async with http.post(url, json=unknown) as response:
        (reply,) = await response.json()
    assert reply["error"].startswith("401:") and reply["advice"]["reconnect"] == "handshake"
    for body in ("not json", "[]"):
        async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
