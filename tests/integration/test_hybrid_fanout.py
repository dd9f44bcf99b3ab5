"""Hybrid push/pull fanout: a feed with more than
`fanout.pull_threshold` followers is not copied into its follower feeds; their readers merge it
in. Nothing a reader can see may depend on that.

Two servers share the store but not a database: a *hybrid* one with tiny thresholds (a feed
becomes a pull feed at its 4th follower and a push feed again below 2) and a *pushed* one whose
thresholds are never reached (the reference: every activity copied into every follower feed).
The same operations go to both, through Stream's REST API; after each, once both have finished
their fanout jobs, every feed must read the same on both: ids, origins, content, order, every
page (`limit`, `offset`, `id_lt|id_lte|id_gt|id_gte`) and what a reconnecting Socket.IO client
gets with `since`.

Not covered (and not the same by design): which `origin` a follower feed shows for an activity
that reached it through two followed feeds at once (`to`, or one `foreign_id` + `time` added to
two feeds): push keeps whichever copy was written first, a merged read prefers the copy.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from harness.common import SERVER_TOKEN
from harness.follows import add_followers_bulk
from harness.pool import ServerPool
from tests.support import API_KEY, ServerProcess, Store, wait_until

Doc = dict[str, Any]
Row = tuple[str, str | None, str]  # (id, origin, object): what a reader sees of an activity
HYBRID = {"TIDINGS_FANOUT_PULL_THRESHOLD": "3", "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"}
PUSHED = {"TIDINGS_FANOUT_PULL_THRESHOLD": "1000000", "TIDINGS_FANOUT_PUSH_THRESHOLD": "1000000"}
WAIT = 15.0
CELEBS, FOLLOWERS = 2, 6


# --------------------------------------------------------------------------- one server


class Node:
    """One server: Stream's REST API over `requests`, and its database for waiting on jobs."""

    def __init__(self, server: ServerProcess, db: Database[Doc]) -> None:
        self.server, self.db = server, db
        self.http = requests.Session()
        self.http.headers.update({"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"})
        self._socket: socketio.Client | None = None

    def socket(self) -> socketio.Client:
        """A python-socketio client connected to this server, kept for the module."""
        if self._socket is None or not self._socket.connected:
            self._socket = socketio.Client(reconnection=False)
            self._socket.connect(
                self.server.url,
                auth={"token": SERVER_TOKEN},
                transports=["websocket"],
                wait_timeout=WAIT,
            )
        return self._socket

    def close(self) -> None:
        if self._socket is not None and self._socket.connected:
            self._socket.disconnect()
        self.http.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Doc:
        answer = self.http.request(
            method,
            f"{self.server.url}/api/v1.0/{path}",
            params={"api_key": API_KEY, **params},
            json=body,
            timeout=WAIT,
        )
        assert answer.status_code in (200, 201), (method, path, answer.status_code, answer.text)
        result: Doc = answer.json()
        return result

    def add(self, feed: str, activity: Doc) -> str:
        return str(self.call("POST", f"feed/{feed.replace(':', '/')}/", activity)["id"])

    def remove(self, feed: str, activity_id: str) -> None:
        self.call("DELETE", f"feed/{feed.replace(':', '/')}/{activity_id}/")

    def remove_foreign(self, feed: str, foreign_id: str) -> None:
        self.call("DELETE", f"feed/{feed.replace(':', '/')}/{foreign_id}/", foreign_id="1")

    def follow(self, source: str, target: str, copy_limit: int | None) -> None:
        body: Doc = {"target": target}
        if copy_limit is not None:
            body["activity_copy_limit"] = copy_limit
        self.call("POST", f"feed/{source.replace(':', '/')}/follows/", body)

    def unfollow(self, source: str, target: str, keep_history: bool) -> None:
        params = {"keep_history": "true"} if keep_history else {}
        self.call("DELETE", f"feed/{source.replace(':', '/')}/follows/{target}/", **params)

    def read(self, feed: str, **params: Any) -> list[Row]:
        results = self.call("GET", f"feed/{feed.replace(':', '/')}/", **params)["results"]
        return [(a["id"], a["origin"], a["object"]) for a in results]

    def idle(self) -> None:
        """Wait until no fanout job (copy, removal, mode switch) is left."""
        wait_until(
            lambda: self.db["fanout_jobs"].count_documents({}) == 0,
            WAIT,
            0.005,
            what=f"the fanout jobs of {self.server.database}",
        )

    def mode(self, feed: str) -> str:
        doc = self.db["feeds"].find_one({"_id": feed}) or {}
        return str(doc.get("mode", "push"))

    def follower_entries(self, activity_id: str) -> int:
        """Entries copied into follower feeds (origin set) for this activity."""
        return self.db["feed_entries"].count_documents(
            {"activity_id": activity_id, "origin": {"$ne": None}}
        )


@dataclass
class Pair:
    hybrid: Node
    pushed: Node

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.hybrid, self.pushed

    def both(self, action: str, *args: Any) -> Any:
        """Do the same on both servers, wait for their fanouts; both must answer the same."""
        answers = [getattr(node, action)(*args) for node in self.nodes]
        for node in self.nodes:
            node.idle()
        assert answers[0] == answers[1], (action, args)
        return answers[0]

    def assert_same_reads(self, feeds: list[str], **params: Any) -> None:
        for feed in feeds:
            hybrid, pushed = (node.read(feed, **params) for node in self.nodes)
            assert hybrid == pushed, (feed, params)


@pytest.fixture(scope="module")
def pair(pool: ServerPool, mongo: MongoClient[Doc]) -> Iterator[Pair]:
    servers = [pool.get(HYBRID), pool.get(PUSHED)]
    nodes = [Node(server, mongo[server.database]) for server in servers]
    try:
        yield Pair(*nodes)
    finally:
        for node in nodes:
            node.close()


# --------------------------------------------------------------------------- a universe


@dataclass
class World:
    """Feeds of one scenario, fresh ids; activities at explicit times (ids are a function of
    time and foreign_id, so both servers give every activity the same id)."""

    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=2))
    tick: int = 0
    added: list[Doc] = field(default_factory=list)

    @property
    def celebs(self) -> list[str]:
        return [f"user:{self.prefix}c{n}" for n in range(CELEBS)]

    @property
    def followers(self) -> list[str]:
        return [f"timeline:{self.prefix}f{n}" for n in range(FOLLOWERS)]

    @property
    def feeds(self) -> list[str]:
        return self.celebs + self.followers

    def activity(self, feed: str, back: int) -> Doc:
        """A new activity of `feed`; `back` > 0 dates it before the last ones (back-dated)."""
        self.tick += 1
        at = self.start + timedelta(seconds=self.tick * 10 - back * 25 + 0.5 * (back > 0))
        activity = {
            "actor": self.prefix,
            "verb": "post",
            "object": f"o:{self.tick}",
            "foreign_id": f"{feed}:{self.tick}",  # per feed: no activity is in two feeds
            "time": at.replace(tzinfo=None).isoformat(timespec="microseconds"),
        }
        self.added.append({"feed": feed, "activity": activity})
        return activity


# --------------------------------------------------------------------------- the property

# Mostly the first followed feed: with 6 followers and a pull threshold of 3, it then crosses
# the threshold (both ways) in most scripts.
celeb = st.sampled_from([0, 0, 0, 1])
copy_limit = st.sampled_from([0, 1, 3, None])
follow_op = st.tuples(st.just("follow"), st.integers(0, FOLLOWERS - 1), celeb, copy_limit)
unfollow_op = st.tuples(st.just("unfollow"), st.integers(0, FOLLOWERS - 1), celeb, st.booleans())
add_op = st.tuples(
    st.just("add"),
    st.sampled_from([0, 0, 0, 1, 2, 3]),
    st.sampled_from([0, 0, 0, 1, 3]),
    st.just(None),
)
repeat_op = st.tuples(st.just("repeat"), st.integers(0, 999), st.just(0), st.just(None))
remove_op = st.tuples(st.just("remove"), st.integers(0, 999), st.booleans(), st.just(None))
ops = st.lists(
    st.one_of(follow_op, follow_op, unfollow_op, unfollow_op, add_op, add_op, repeat_op, remove_op),
    min_size=4,
    max_size=20,
)
# A start: some activities in the first feed, then some follow it, each copying some of them.
starts = st.tuples(st.integers(0, 4), st.lists(copy_limit, max_size=FOLLOWERS))
# An end: every follower unfollows the first feed (keeping its history or not), some activity
# added after each: a pull feed goes back to push.
ends = st.permutations(range(FOLLOWERS)).flatmap(
    lambda order: st.lists(
        st.tuples(st.booleans(), st.sampled_from([0, 0, 2])),
        min_size=FOLLOWERS,
        max_size=FOLLOWERS,
    ).map(lambda choices: list(zip(order, choices, strict=True)))
)


def apply(pair: Pair, world: World, op: tuple[Any, ...]) -> None:
    kind, a, b, c = op
    if kind == "follow":
        pair.both("follow", world.followers[a], world.celebs[b], c)
    elif kind == "unfollow":
        pair.both("unfollow", world.followers[a], world.celebs[b], c)
    elif kind == "add":
        # Mostly to the followed feeds; sometimes to a follower feed, which then holds
        # activities of its own besides the ones it follows.
        feed = world.celebs[a] if a < CELEBS else world.followers[a - CELEBS]
        world.added[-1]["id"] = pair.both("add", feed, world.activity(feed, b))
    elif world.added and kind == "repeat":  # same foreign_id + time: replaces, same id
        earlier = world.added[a % len(world.added)]
        again = {**earlier["activity"], "object": earlier["activity"]["object"] + "'"}
        earlier["activity"] = again
        assert pair.both("add", earlier["feed"], again) == earlier["id"]
    elif world.added and kind == "remove":
        earlier = world.added[a % len(world.added)]
        if b:
            pair.both("remove_foreign", earlier["feed"], earlier["activity"]["foreign_id"])
        else:
            pair.both("remove", earlier["feed"], earlier["id"])


def page_params(ids: list[str]) -> list[dict[str, Any]]:
    """Pages to compare: limits and offsets, and every id bound around two of the ids."""
    pages: list[dict[str, Any]] = [
        {"limit": 1},
        {"limit": 2, "offset": 1},
        {"limit": 3, "offset": 3},
    ]
    for n, pivot in enumerate(ids[1::3][:2]):
        for bound in ("id_lt", "id_lte", "id_gt", "id_gte"):
            pages.append({bound: pivot, "limit": 2 + n, "offset": n})
    if len(ids) >= 3:
        pages.append({"id_lt": ids[0], "id_gt": ids[-1], "limit": 100})
    return pages


def missed(node: Node, feed: str, since: str) -> tuple[list[Row], bool]:
    """What a client reconnecting to `feed` with `since` gets in its subscribe ack."""
    client = node.socket()
    ack = client.call("subscribe", {"feed": feed, "since": since}, timeout=WAIT)
    assert ack["ok"], ack
    assert client.call("unsubscribe", {"feed": feed}, timeout=WAIT)["ok"]
    return [(a["id"], a["origin"], a["object"]) for a in ack["missed"]], ack["more"]


def assert_same_everywhere(pair: Pair, world: World) -> None:
    pair.assert_same_reads(world.celebs, limit=100)
    for feed in world.followers:
        full = pair.pushed.read(feed, limit=100)
        assert pair.hybrid.read(feed, limit=100) == full, feed
        ids = [row[0] for row in full]
        for params in page_params(ids):
            assert pair.hybrid.read(feed, **params) == pair.pushed.read(feed, **params), (
                feed,
                params,
            )
        for since in ids[1::3][:2]:
            assert missed(pair.hybrid, feed, since) == missed(pair.pushed, feed, since), (
                feed,
                since,
            )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=starts, script=ops, end=ends)
def test_merged_reads_equal_fully_pushed_reads(
    pair: Pair,
    start: tuple[int, list[int | None]],
    script: list[tuple[Any, ...]],
    end: list[tuple[int, tuple[bool, int]]],
) -> None:
    world = World()
    adds, follows = start
    setup = [("add", 0, 0, None)] * adds
    setup += [("follow", n, 0, limit) for n, limit in enumerate(follows)]
    for op in setup:
        apply(pair, world, op)
    for op in script:
        apply(pair, world, op)
        pair.assert_same_reads(world.followers, limit=100)
    assert_same_everywhere(pair, world)
    for follower, (keep_history, back) in end:
        apply(pair, world, ("unfollow", follower, 0, keep_history))
        apply(pair, world, ("add", 0, back, None))
        pair.assert_same_reads(world.followers, limit=100)
    assert pair.hybrid.mode(world.celebs[0]) == "push"


# --------------------------------------------------------------------------- explicit cases


def test_crossing_the_threshold_both_ways_keeps_reads_identical(pair: Pair) -> None:
    world = World()
    celeb, followers = world.celebs[0], world.followers
    for _ in range(4):
        pair.both("add", celeb, world.activity(celeb, 0))
    for n, feed in enumerate(followers[:3]):
        pair.both("follow", feed, celeb, n + 1)  # copies 1, 2, 3 activities
    assert pair.hybrid.mode(celeb) == "push"
    pair.both("follow", followers[3], celeb, 0)  # the 4th: more than pull_threshold (3)
    assert pair.hybrid.mode(celeb) == "pull"
    assert_same_everywhere(pair, world)

    pair.both("add", celeb, world.activity(celeb, 0))
    pulled_id = pair.pushed.read(celeb, limit=1)[0][0]
    # A pull feed's new activity is copied into no follower feed: readers merge it in.
    assert pair.hybrid.follower_entries(pulled_id) == 0
    assert pair.pushed.follower_entries(pulled_id) == 4
    pair.both("add", celeb, world.activity(celeb, 3))  # back-dated: copied after all
    pair.both("follow", followers[4], celeb, 2)
    pair.both("add", celeb, world.activity(celeb, 0))
    pair.both("unfollow", followers[0], celeb, True)  # keeps what it merged in
    assert_same_everywhere(pair, world)

    for feed in followers[1:4]:  # down to 1 follower: fewer than push_threshold (2)
        pair.both("unfollow", feed, celeb, feed == followers[2])
    assert pair.hybrid.mode(celeb) == "push"
    assert_same_everywhere(pair, world)
    pair.both("add", celeb, world.activity(celeb, 0))
    newest = pair.pushed.read(celeb, limit=1)[0][0]
    assert pair.hybrid.follower_entries(newest) == pair.pushed.follower_entries(newest) == 1
    pair.both("remove", celeb, pulled_id)
    assert_same_everywhere(pair, world)


def test_removing_a_pulled_activity_removes_it_from_every_follower(pair: Pair) -> None:
    world = World()
    celeb = world.celebs[0]
    for feed in world.followers[:5]:
        pair.both("follow", feed, celeb, None)
    assert pair.hybrid.mode(celeb) == "pull"
    for back in (0, 0, 2, 0):
        pair.both("add", celeb, world.activity(celeb, back))
    rows = pair.pushed.read(celeb, limit=100)
    assert [row[0] for row in pair.hybrid.read(world.followers[0], limit=100)] == [
        row[0] for row in rows
    ]
    pair.both("remove", celeb, rows[0][0])  # merged only
    pair.both("remove_foreign", celeb, world.added[2]["activity"]["foreign_id"])  # copied
    assert_same_everywhere(pair, world)
    assert len(pair.hybrid.read(world.followers[4], limit=100)) == 2


def test_followers_added_in_bulk_then_a_switch_to_pull_keep_reads_identical(
    pair: Pair, store: Store
) -> None:
    """The set-up helper of tests and benchmarks (bench.store.add_followers_bulk) makes follows
    like the API's with `activity_copy_limit` 0."""
    world = World()
    celeb = world.celebs[0]
    for _ in range(3):
        pair.both("add", celeb, world.activity(celeb, 0))

    async def bulk(database: str) -> None:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(store.url, tz_aware=True)
        try:
            added = await add_followers_bulk(client[database], celeb, world.followers[:5])
            assert added == 5
        finally:
            await client.close()

    for node in pair.nodes:
        asyncio.run(bulk(node.server.database))
    assert pair.hybrid.mode(celeb) == "push"  # the bulk helper leaves the mode as it is
    pair.both("unfollow", world.followers[4], celeb, False)  # re-evaluated: 4 > 3, pull
    assert pair.hybrid.mode(celeb) == "pull"
    pair.both("add", celeb, world.activity(celeb, 0))
    assert_same_everywhere(pair, world)


# --------------------------------------------------------------------------- live updates


class Listener:
    """A python-socketio client that records every `feed.update`."""

    def __init__(self, url: str) -> None:
        self.events: list[Doc] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("feed.update", self.events.append)
        self.client.connect(
            url, auth={"token": SERVER_TOKEN}, transports=["websocket"], wait_timeout=WAIT
        )

    def subscribe(self, feed: str) -> None:
        ack = self.client.call("subscribe", {"feed": feed}, timeout=WAIT)
        assert ack["ok"], ack

    def carrying(self, activity_id: str) -> list[Doc]:
        return [e for e in self.events if any(a["id"] == activity_id for a in e["new"])]

    def deleting(self, activity_id: str) -> list[Doc]:
        return [e for e in self.events if activity_id in e["deleted"]]

    def wait_for(self, activity_id: str) -> None:
        wait_until(lambda: self.carrying(activity_id), WAIT, 0.01, what=f"{activity_id}")

    def close(self) -> None:
        self.client.disconnect()


def test_pull_update_reaches_each_subscribed_feed_once_naming_it(pair: Pair) -> None:
    node, world = pair.hybrid, World()
    celeb, (early, late, other, *rest) = world.celebs[0], world.followers
    for feed in (early, other, *rest[:2]):
        node.follow(feed, celeb, 0)
    node.idle()
    assert node.mode(celeb) == "pull"
    # Subscribed after its feed followed (joins the pull room at subscribe), to two follower
    # feeds and the pull feed itself: one event for each of them.
    first = Listener(node.server.url)
    for feed in (early, other, celeb):
        first.subscribe(feed)
    # Subscribed before its feed follows: joins the pull room when the follow happens.
    second = Listener(node.server.url)
    second.subscribe(late)
    node.follow(late, celeb, 0)
    node.idle()
    try:
        activity_id = node.add(celeb, world.activity(celeb, 0))
        # Markers, emitted after the pull update on the same sockets: once they are in,
        # every event sent before them is in too.
        marker = node.add(early, world.activity(early, 0))
        late_marker = node.add(late, world.activity(late, 0))
        first.wait_for(marker)
        second.wait_for(late_marker)
        # One event per subscribed feed, each naming that feed (as Stream's channels do).
        for listener, feeds in ((first, {early, other, celeb}), (second, {late})):
            events = listener.carrying(activity_id)
            assert sorted(e["feed"] for e in events) == sorted(feeds)
            for event in events:
                assert [a["origin"] for a in event["new"]] == [celeb]
        assert node.follower_entries(activity_id) == 0

        node.remove(celeb, activity_id)
        marker = node.add(early, world.activity(early, 0))
        late_marker = node.add(late, world.activity(late, 0))
        first.wait_for(marker)
        second.wait_for(late_marker)
        for listener, count in ((first, 3), (second, 1)):
            assert len(listener.deleting(activity_id)) == count
    finally:
        first.close()
        second.close()


def test_unfollowed_pull_feed_stops_reaching_the_subscriber(pair: Pair) -> None:
    node, world = pair.hybrid, World()
    celeb, followers = world.celebs[0], world.followers
    for feed in followers[:5]:
        node.follow(feed, celeb, 0)
    node.idle()
    listener = Listener(node.server.url)
    try:
        listener.subscribe(followers[0])
        node.unfollow(followers[0], celeb, False)
        gone = node.add(celeb, world.activity(celeb, 0))
        marker = node.add(followers[0], world.activity(followers[0], 0))
        listener.wait_for(marker)
        assert listener.carrying(gone) == []
    finally:
        listener.close()
