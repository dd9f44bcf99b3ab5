"""Real-time delivery over Socket.IO.

Real clients only: python-socketio's AsyncClient and the official npm socket.io-client (driven
through tests/js/subscriber.mjs), against real server processes. "No further event" is never
checked by sleeping: a marker activity is posted afterwards and, once it arrives on the same
socket, everything the server sent that socket before it has arrived too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import jwt
import pytest
import socketio
import websocket

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from tests.integration.realtime_clients import WAIT, Event, Predicate, PySubscriber, Rest
from tests.node_client import NodeSubscriber
from tests.support import ServerProcess

# --------------------------------------------------------------------------- node client

NOT_TIME_BASED = "16456018-e5a7-4fe0-b621-2167331982c1"  # a random UUID: no activity id


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def rest(http: aiohttp.ClientSession, server: ServerProcess) -> Rest:
    return Rest(http, server.url)


@pytest.fixture
async def py_subs() -> AsyncIterator[list[PySubscriber]]:
    """Python subscribers created by a test, all disconnected at its end."""
    created: list[PySubscriber] = []
    yield created
    await asyncio.gather(*(s.close() for s in created), return_exceptions=True)


async def py_subscriber(
    subs: list[PySubscriber],
    url: str,
    feeds: list[str],
    jwt_token: str = SERVER_TOKEN,
    on_event: Callable[[Event], Awaitable[None]] | None = None,
) -> PySubscriber:
    """A connected python subscriber of `feeds` (each ack checked)."""
    sub = PySubscriber(on_event)
    subs.append(sub)
    await sub.connect(url, jwt_token)
    for feed in feeds:
        ack = await sub.subscribe(feed)
        assert ack == {"ok": True, "feed": feed, "missed": [], "more": False}, ack
    return sub


async def node_subscriber(
    subs: list[NodeSubscriber],
    url: str,
    feeds: list[str],
    jwt_token: str = SERVER_TOKEN,
    since: str = "",
) -> NodeSubscriber:
    sub = NodeSubscriber(url, jwt_token, feeds, since)
    subs.append(sub)
    return sub


@pytest.fixture(scope="module")
def small_server(pool: ServerPool) -> ServerProcess:
    """At most 3 missed activities per subscribe; fanout in batches of 4 follower feeds."""
    env = {
        "TIDINGS_REALTIME_MAX_MISSED": "3",
        "TIDINGS_FANOUT_BATCH_SIZE": "4",
        "TIDINGS_FANOUT_CONCURRENCY": "2",
    }
    return pool.get(env)


@pytest.fixture(scope="module")
def deflate_server(pool: ServerPool) -> ServerProcess:
    return pool.get({"TIDINGS_REALTIME_WEBSOCKET_COMPRESSION": "true"})


# --------------------------------------------------------------------------- predicates


def has_new(activity_id: str) -> Predicate:
    return lambda e: any(a.get("id") == activity_id for a in e.get("new", []))


def has_deleted(activity_id: str) -> Predicate:
    return lambda e: activity_id in e.get("deleted", [])


def in_feed(activities: list[dict[str, Any]], activity_id: str) -> dict[str, Any]:
    found = [a for a in activities if a["id"] == activity_id]
    assert len(found) == 1, (activity_id, activities)
    return found[0]


def assert_update_shape(event: Event, feed: str, new: list[dict[str, Any]]) -> None:
    assert set(event) == {"feed", "new", "deleted", "deleted_foreign_ids", "published_at"}, event
    assert event["feed"] == feed
    assert event["new"] == new
    assert event["deleted"] == []
    assert event["deleted_foreign_ids"] == []
    assert isinstance(event["published_at"], str)
    datetime.fromisoformat(event["published_at"])


# --------------------------------------------------------------------------- 1. delivery


async def test_activity_reaches_subscribers_of_its_feed_followers_and_to_feeds(
    server: ServerProcess,
    rest: Rest,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    author, follower, to_feed = f"user:{uid}", f"timeline:{uid}f", f"raid:{uid}"
    both = f"timeline:{uid}b"  # follows the author AND is named in `to`: must get it once
    await rest.follow(follower, author)
    await rest.follow(both, author)

    py_author = await py_subscriber(py_subs, server.url, [author])
    py_follower = await py_subscriber(py_subs, server.url, [follower])
    py_to = await py_subscriber(py_subs, server.url, [to_feed])
    py_both = await py_subscriber(py_subs, server.url, [both])
    node_follower = await node_subscriber(node_subs, server.url, [follower])
    node_author = await node_subscriber(node_subs, server.url, [author])
    for node, feed in ((node_follower, follower), (node_author, author)):
        assert await node.expect(lambda x: x["type"] == "connected", "connected")
        ack = await node.subscribed(feed)
        assert ack == {"ok": True, "feed": feed, "missed": [], "more": False}

    posted = await rest.add(
        author, actor=uid, verb="post", object="photo:1", to=[to_feed, both], extra={"n": 1}
    )
    aid = posted["id"]
    assert posted["origin"] is None

    # The follower feed: the event names the feed subscribed to (as Stream's channels do);
    # `origin` names the followed feed it came through.
    event = await py_follower.wait_for(has_new(aid), f"of {aid} on {follower}")
    held = in_feed(await rest.read(follower), aid)
    assert held["origin"] == author
    assert_update_shape(event, follower, [held])
    node_event = await node_follower.event(has_new(aid), f"of {aid} on {follower}")
    assert node_event == event  # one emit: the same message for every client library

    # The feed it was posted to, and the `to` feeds: `feed` is that feed, origin null.
    event = await py_author.wait_for(has_new(aid), f"of {aid} on {author}")
    assert_update_shape(event, author, [posted])
    assert in_feed(await rest.read(author), aid) == posted
    assert await node_author.event(has_new(aid), f"of {aid} on {author}") == event
    for sub, feed in ((py_to, to_feed), (py_both, both)):
        event = await sub.wait_for(has_new(aid), f"of {aid} on {feed}")
        assert_update_shape(event, feed, [posted])
        assert in_feed(await rest.read(feed), aid)["origin"] is None

    # Once: a marker sent after everything above reaches every socket; nothing doubled before it.
    marker = (await rest.add(author, to=[to_feed, both]))["id"]
    for sub in (py_author, py_follower, py_to, py_both):
        await sub.wait_for(has_new(marker), "of the marker")
        assert len(sub.matching(has_new(aid))) == 1, sub.events
    for node in (node_follower, node_author):
        await node.event(has_new(marker), "of the marker")
        assert len(node.events(has_new(aid))) == 1, node.lines


async def test_a_stream_client_filtering_by_its_feed_gets_every_fanned_out_activity(
    server: ServerProcess,
    rest: Rest,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    """As a new user would: the official socket.io-client, subscribed to bob's
    timeline with bob's own token, keeps the `feed.update` events whose `feed` is
    `timeline:bob`, as every Stream client does: each of 20 activities fanned out from alice
    arrives so (python-socketio's client too; the python-socketio server path is checked in
    test_fast_path_nodes.py)."""
    bob, alice = f"{uid}bob", f"user:{uid}alice"
    timeline = f"timeline:{bob}"
    await rest.follow(timeline, alice)
    bobs_token = token({"user_id": bob})
    node = await node_subscriber(node_subs, server.url, [timeline], bobs_token)
    assert (await node.subscribed(timeline))["ok"] is True
    py = await py_subscriber(py_subs, server.url, [timeline], bobs_token)
    sent = [(await rest.add(alice, n=n))["id"] for n in range(20)]
    await node.event(has_new(sent[-1]), "of the last activity")
    await py.wait_for(has_new(sent[-1]), "of the last activity")
    mine = node.events(lambda e: e["feed"] == timeline)
    assert [a["id"] for e in mine for a in e["new"]] == sent
    assert [a["id"] for e in py.matching(lambda e: e["feed"] == timeline) for a in e["new"]] == sent
    assert all(a["origin"] == alice for e in mine for a in e["new"])


# --------------------------------------------------------------------------- 2. durable first


@pytest.mark.parametrize("which", ["shared", "small_batches"])
async def test_event_never_arrives_before_the_feed_read_returns_the_activity(
    which: str, request: pytest.FixtureRequest, http: aiohttp.ClientSession, uid: str
) -> None:
    name = "server" if which == "shared" else "small_server"
    target: ServerProcess = request.getfixturevalue(name)
    rest = Rest(http, target.url)
    author = f"user:{uid}"
    followers = [f"timeline:{uid}-{i}" for i in range(20)]
    await asyncio.gather(*(rest.follow(f, author) for f in followers))

    checks: list[tuple[str, str, bool]] = []  # (feed, activity id, held when the event came)

    def checker(feed: str) -> Callable[[Event], Awaitable[None]]:
        async def check(event: Event) -> None:
            ids = {a["id"] for a in await rest.read(feed)}
            checks.extend((feed, a["id"], a["id"] in ids) for a in event["new"])

        return check

    subs: list[PySubscriber] = []
    try:
        for feed in [author, *followers]:
            await py_subscriber(subs, target.url, [feed], on_event=checker(feed))
        posted = [(await rest.add(author))["id"] for _ in range(3)]
        for sub, feed in zip(subs, [author, *followers], strict=True):
            for aid in posted:
                await sub.wait_for(has_new(aid), f"of {aid} on {feed}")
    finally:
        await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)

    assert len(checks) == 21 * 3, checks
    early = [c for c in checks if not c[2]]
    assert not early, f"events that came before the feed held the activity: {early}"


# --------------------------------------------------------------------------- 3. since


async def test_resubscribe_with_since_returns_what_was_missed(
    server: ServerProcess,
    rest: Rest,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    author, follower = f"user:{uid}", f"timeline:{uid}f"
    await rest.follow(follower, author)
    first = await py_subscriber(py_subs, server.url, [follower])
    seen = (await rest.add(author))["id"]
    await first.wait_for(has_new(seen), "of the first activity")
    await first.close()

    posted = await rest.add_many(author, 5)
    ids = [a["id"] for a in posted]
    assert ids == sorted(ids)

    async def fanned_out() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            held = await rest.read(follower)
            if {a["id"] for a in held} >= set(ids):
                return held
            await asyncio.sleep(0.05)
        raise AssertionError(f"{follower} never got {ids}")

    held = await fanned_out()
    expected = sorted((a for a in held if a["id"] in ids), key=lambda a: a["id"])
    assert [a["id"] for a in expected] == ids
    assert all(a["origin"] == author for a in expected)

    again = PySubscriber()
    py_subs.append(again)
    await again.connect(server.url, SERVER_TOKEN)
    ack = await again.subscribe(follower, since=seen)
    assert ack == {"ok": True, "feed": follower, "missed": expected, "more": False}
    # Nothing newer than the newest: an empty page.
    ack = await again.subscribe(follower, since=ids[-1])
    assert ack == {"ok": True, "feed": follower, "missed": [], "more": False}
    # ...and the socket is subscribed again: new activities arrive live.
    live = (await rest.add(author))["id"]
    await again.wait_for(has_new(live), "after the resubscribe")

    node = await node_subscriber(node_subs, server.url, [follower], since=seen)
    node_ack = await node.subscribed(follower)
    assert node_ack["ok"] is True and node_ack["more"] is False
    assert [a["id"] for a in node_ack["missed"]] == [*ids, live]
    assert node_ack["missed"][:5] == expected


async def test_since_with_more_missed_than_max_missed(
    small_server: ServerProcess,
    http: aiohttp.ClientSession,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    rest = Rest(http, small_server.url)
    feed = f"user:{uid}"
    sub = await py_subscriber(py_subs, small_server.url, [feed])
    seen = (await rest.add(feed))["id"]
    await sub.wait_for(has_new(seen), "of the first activity")
    await sub.close()
    posted = await rest.add_many(feed, 5)
    held = {a["id"]: a for a in await rest.read(feed)}
    oldest_three = [held[a["id"]] for a in posted[:3]]

    again = PySubscriber()
    py_subs.append(again)
    await again.connect(small_server.url, SERVER_TOKEN)
    ack = await again.subscribe(feed, since=seen)
    assert ack == {"ok": True, "feed": feed, "missed": oldest_three, "more": True}
    # The client pages on from the last one it got: the rest, and no more.
    ack = await again.subscribe(feed, since=oldest_three[-1]["id"])
    assert ack == {"ok": True, "feed": feed, "missed": [held[a["id"]] for a in posted[3:]],
                   "more": False}  # fmt: skip

    node = await node_subscriber(node_subs, small_server.url, [feed], since=seen)
    assert await node.subscribed(feed) == {
        "ok": True,
        "feed": feed,
        "missed": oldest_three,
        "more": True,
    }


# --------------------------------------------------------------------------- 4. refusals


def _bad_tokens() -> dict[str, str | None]:
    claims = {"resource": "*", "action": "*", "feed_id": "*"}
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "other_secret": jwt.encode(claims, "another-secret-0123456789abcdef-01234", "HS256"),
        "expired": token({**claims, "exp": int(time.time()) - 60}),
        "no_grant": token({"sub": "nobody"}),
        "alg_none": jwt.encode(claims, None, algorithm="none"),
    }


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_python_client_with_a_bad_token_is_refused_at_connect(
    kind: str, server: ServerProcess, py_subs: list[PySubscriber]
) -> None:
    sub = PySubscriber()
    py_subs.append(sub)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sub.connect(server.url, BAD_TOKENS[kind])
    assert not sub.sio.connected
    assert len(sub.connect_errors) == 1, sub.connect_errors
    error = sub.connect_errors[0]
    assert isinstance(error, dict) and isinstance(error.get("message"), str), error
    assert error["data"]["code"] == 3
    assert error["data"]["exception"] == "SignatureException"
    assert error["data"]["detail"] == error["message"]


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_node_client_with_a_bad_token_is_refused_at_connect(
    kind: str, server: ServerProcess, node_subs: list[NodeSubscriber], uid: str
) -> None:
    node = await node_subscriber(node_subs, server.url, [f"user:{uid}"], BAD_TOKENS[kind])
    line = await node.expect(lambda x: x["type"] == "connect_error", "connect_error")
    assert isinstance(line["message"], str) and line["message"]
    assert line["data"]["code"] == 3
    assert line["data"]["exception"] == "SignatureException"
    assert not node.matching(lambda x: x["type"] in ("connected", "subscribed"))


def not_allowed(ack: dict[str, Any]) -> bool:
    error = ack.get("error", {})
    return (
        ack.get("ok") is False
        and error.get("code") == 17
        and error.get("exception") == "NotAllowedException"
        and isinstance(error.get("detail"), str)
        and bool(error["detail"])
    )


async def test_subscribe_to_a_feed_the_token_may_not_read_is_refused(
    server: ServerProcess,
    rest: Rest,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    bob, alice = f"bob{uid}", f"alice{uid}"
    bob_token = token({"user_id": bob})
    sub = PySubscriber()
    py_subs.append(sub)
    await sub.connect(server.url, bob_token)
    ack = await sub.subscribe(f"timeline:{alice}")
    assert not_allowed(ack), ack
    assert set(ack) == {"ok", "error"}
    for feed in (f"timeline:{bob}", f"user:{bob}", f"raid:{bob}"):
        assert await sub.subscribe(feed) == {"ok": True, "feed": feed, "missed": [], "more": False}

    node_feeds = [f"timeline:{alice}", f"timeline:{bob}"]
    node = await node_subscriber(node_subs, server.url, node_feeds, bob_token)
    assert not_allowed(await node.subscribed(f"timeline:{alice}"))
    assert (await node.subscribed(f"timeline:{bob}"))["ok"] is True

    # Nothing of alice's timeline reaches bob; the marker on bob's timeline comes after it.
    refused = (await rest.add(f"timeline:{alice}"))["id"]
    marker = (await rest.add(f"timeline:{bob}"))["id"]
    await sub.wait_for(has_new(marker), "of the marker")
    assert not sub.matching(has_new(refused)), sub.events
    assert not sub.matching(lambda e: e["feed"] == f"timeline:{alice}"), sub.events
    await node.event(has_new(marker), "of the marker")
    assert not node.events(lambda e: e["feed"] == f"timeline:{alice}"), node.lines
    # The refusal left the socket usable: a later, allowed subscribe works.
    assert (await sub.subscribe(f"user:{bob}"))["ok"] is True


@pytest.mark.parametrize(
    ("payload", "code", "exception"),
    [
        ({"feed": "timeline"}, 4, "InputException"),
        ({"feed": "Timeline:bob"}, 4, "InputException"),
        ({"feed": "timeline:bad/id"}, 4, "InputException"),
        ({"feed": "timeline:"}, 4, "InputException"),
        ({"feed": 42}, 4, "InputException"),
        ({}, 4, "InputException"),
        ("timeline:bob", 4, "InputException"),
        ({"feed": "nosuchgroup:bob"}, 6, "FeedConfigException"),
        ({"feed": "digest:bob"}, 6, "FeedConfigException"),
        ({"feed": "timeline:bob", "since": "not-an-id"}, 4, "InputException"),
        ({"feed": "timeline:bob", "since": 12345}, 4, "InputException"),
        ({"feed": "timeline:bob", "since": NOT_TIME_BASED}, 4, "InputException"),
    ],
    ids=lambda value: json.dumps(value) if not isinstance(value, int) else str(value),
)
async def test_subscribe_with_bad_input_is_refused(
    payload: Any, code: int, exception: str, server: ServerProcess, py_subs: list[PySubscriber]
) -> None:
    sub = PySubscriber()
    py_subs.append(sub)
    await sub.connect(server.url, token({"user_id": "bob"}))
    ack = await sub.sio.call("subscribe", payload, timeout=WAIT)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code, ack
    assert ack["error"]["exception"] == exception, ack
    assert isinstance(ack["error"]["detail"], str) and ack["error"]["detail"]


async def test_feed_scoped_token_subscribes_to_its_feed_only(
    server: ServerProcess, rest: Rest, py_subs: list[PySubscriber], uid: str
) -> None:
    timeline = f"timeline:{uid}"
    for feed_id in (f"timeline{uid}", timeline):  # the SDKs' compact form, and the colon form
        sub = PySubscriber()
        py_subs.append(sub)
        await sub.connect(
            server.url, token({"resource": "*", "action": "read", "feed_id": feed_id})
        )
        for other in (f"user:{uid}", f"timeline:{uid}x", f"raid:{uid}"):
            assert not_allowed(await sub.subscribe(other)), other
        ack = await sub.subscribe(timeline)
        assert ack == {"ok": True, "feed": timeline, "missed": [], "more": False}
        aid = (await rest.add(timeline))["id"]
        await sub.wait_for(has_new(aid), f"on {timeline}")

    writer = PySubscriber()
    py_subs.append(writer)
    await writer.connect(
        server.url, token({"resource": "feed", "action": "write", "feed_id": f"timeline{uid}"})
    )
    assert not_allowed(await writer.subscribe(timeline))


# --------------------------------------------------------------------------- 5. unsubscribe


async def test_unsubscribe_stops_events_of_that_feed(
    server: ServerProcess, rest: Rest, py_subs: list[PySubscriber], uid: str
) -> None:
    author, follower, marker_feed = f"user:{uid}", f"timeline:{uid}f", f"raid:{uid}"
    await rest.follow(follower, author)
    leaving = await py_subscriber(py_subs, server.url, [author, follower, marker_feed])
    staying = await py_subscriber(py_subs, server.url, [author, follower])

    before = (await rest.add(author))["id"]
    await leaving.wait_for(lambda e: has_new(before)(e) and e["new"][0]["origin"] == author,
                           "through the follow")  # fmt: skip
    await leaving.wait_for(lambda e: has_new(before)(e) and e["new"][0]["origin"] is None,
                           "direct")  # fmt: skip

    assert await leaving.unsubscribe(author) == {"ok": True}
    assert await leaving.unsubscribe(follower) == {"ok": True}
    assert await leaving.unsubscribe(f"timeline:{uid}never") == {"ok": True}
    ack = await leaving.unsubscribe("nosuchgroup:x")
    assert ack["ok"] is False and ack["error"]["code"] == 6, ack

    after = (await rest.add(author))["id"]
    # The other socket gets both emits (direct and through the follow); once it has them,
    # post a marker to the leaving socket's remaining feed: it must come with nothing before it.
    await staying.wait_for(lambda e: has_new(after)(e) and e["new"][0]["origin"] == author,
                           "through the follow")  # fmt: skip
    await staying.wait_for(lambda e: has_new(after)(e) and e["new"][0]["origin"] is None,
                           "direct")  # fmt: skip
    marker = (await rest.add(marker_feed))["id"]
    await leaving.wait_for(has_new(marker), "of the marker")
    assert not leaving.matching(has_new(after)), leaving.events


# --------------------------------------------------------------------------- 6. removal


async def test_removal_is_announced_to_the_feed_its_to_feeds_and_followers(
    server: ServerProcess, rest: Rest, py_subs: list[PySubscriber], uid: str
) -> None:
    author, follower, to_feed = f"user:{uid}", f"timeline:{uid}f", f"raid:{uid}"
    await rest.follow(follower, author)

    gone_when_told: list[tuple[str, str, bool]] = []

    def checker(feed: str) -> Callable[[Event], Awaitable[None]]:
        async def check(event: Event) -> None:
            if event["deleted"]:
                ids = {a["id"] for a in await rest.read(feed)}
                gone_when_told.extend((feed, d, d not in ids) for d in event["deleted"])

        return check

    subs = {
        feed: await py_subscriber(py_subs, server.url, [feed], on_event=checker(feed))
        for feed in (author, follower, to_feed)
    }

    foreign_id = f"fid:{uid}"
    with_fid = (await rest.add(author, foreign_id=foreign_id, time="2024-01-01T10:00:00",
                               to=[to_feed]))["id"]  # fmt: skip
    plain = (await rest.add(author, to=[to_feed]))["id"]
    for feed, sub in subs.items():
        for aid in (with_fid, plain):
            await sub.wait_for(has_new(aid), f"of {aid} on {feed}")

    await rest.remove(author, plain)
    for feed, sub in subs.items():
        event = await sub.wait_for(has_deleted(plain), f"removal of {plain} on {feed}")
        assert set(event) == {"feed", "new", "deleted", "deleted_foreign_ids", "published_at"}
        assert event["feed"] == feed
        assert event["new"] == [] and event["deleted"] == [plain]
        assert event["deleted_foreign_ids"] == []

    await rest.remove_foreign(author, foreign_id)
    for feed, sub in subs.items():
        event = await sub.wait_for(has_deleted(with_fid), f"removal of {with_fid} on {feed}")
        assert event["feed"] == feed
        assert event["new"] == [] and event["deleted"] == [with_fid]
        assert event["deleted_foreign_ids"] == [foreign_id]

    for feed in subs:
        held = {a["id"] for a in await rest.read(feed)}
        assert not held & {plain, with_fid}, (feed, held)
    assert len(gone_when_told) == 6, gone_when_told
    assert all(gone for _, _, gone in gone_when_told), gone_when_told


# --------------------------------------------------------------------------- 7. compression


DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


def _handshake_extensions(server: ServerProcess) -> str:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        header=[DEFLATE_OFFER],
        timeout=WAIT,
    )
    try:
        headers = {k.lower(): v for k, v in (ws.getheaders() or {}).items()}
        assert ws.getstatus() == 101
        return str(headers.get("sec-websocket-extensions", ""))
    finally:
        ws.close()


def test_websocket_compression_is_off_by_default(server: ServerProcess) -> None:
    assert "permessage-deflate" not in _handshake_extensions(server)
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        header=[DEFLATE_OFFER],
        timeout=WAIT,
    )
    try:  # an uncompressed session works: the Engine.IO open packet
        opened = ws.recv()
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        assert "sid" in json.loads(opened[1:])
    finally:
        ws.close()


def test_websocket_compression_is_negotiated_when_enabled(deflate_server: ServerProcess) -> None:
    assert "permessage-deflate" in _handshake_extensions(deflate_server)


async def test_aiohttp_offer_of_deflate(
    server: ServerProcess, deflate_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    for target, negotiated in ((server, False), (deflate_server, True)):
        url = f"ws://127.0.0.1:{target.port}/socket.io/?EIO=4&transport=websocket"
        timeout = aiohttp.ClientWSTimeout(ws_close=5)
        async with http.ws_connect(url, compress=15, timeout=timeout) as ws:
            assert bool(ws.compress) is negotiated, (target.port, ws.compress)
            opened = await ws.receive_str(timeout=WAIT)
            assert opened.startswith("0{"), opened


async def test_events_flow_over_a_compressed_connection(
    deflate_server: ServerProcess,
    http: aiohttp.ClientSession,
    py_subs: list[PySubscriber],
    node_subs: list[NodeSubscriber],
    uid: str,
) -> None:
    rest = Rest(http, deflate_server.url)
    feed = f"user:{uid}"
    sub = await py_subscriber(py_subs, deflate_server.url, [feed])
    node = await node_subscriber(node_subs, deflate_server.url, [feed])
    assert (await node.subscribed(feed))["ok"] is True
    big = "x" * 4000  # large enough for the deflate path to matter
    aid = (await rest.add(feed, body=big))["id"]
    event = await sub.wait_for(has_new(aid), "over a deflated socket")
    assert event["new"][0]["body"] == big
    assert await node.event(has_new(aid), "over a deflated socket") == event
