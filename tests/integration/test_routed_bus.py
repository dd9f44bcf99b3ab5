"""Routed events (server/tidings/bus/routes.py): an event for a few rooms reaches only the nodes
that hold a socket in one of them, every event published after a node's `heard` reaches it, and
a room left is unsubscribed after its linger. Three buses of three "nodes" on one real
redis-server; the end-to-end paths (a subscribe on one node, an add on another) are the
multi-node tests' (test_many_nodes.py, test_redis_cluster.py), which run routed too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support import RedisServer
from tidings.bus import routes
from tidings.bus.messages import Emit, Forget, LinkUp, Message, ReactionEmit, Resync
from tidings.bus.redis_bus import RedisBus
from tidings.bus.redis_client import Subscription

WAIT = 10.0
QUIET = 0.3  # seconds a bus is given to receive what it must not


class Node:
    """A bus and what its handlers got."""

    def __init__(self, name: str, url: str, channel: str, routed_rooms: int) -> None:
        self.bus = RedisBus(name, url, channel, routed_rooms)
        self.got: list[Message] = []
        for kind in (Emit, ReactionEmit, Forget):
            self.bus.on(kind, self.got.append)

    def rooms(self) -> list[str]:
        return [room for m in self.got if isinstance(m, Emit) for room in m.rooms]


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def emit(*rooms: str) -> Emit:
    return Emit(list(rooms), 2, b"42")


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[list[Node]]:
    channel = f"t-{uuid.uuid4().hex[:8]}"
    made = [Node(name, redis_server.url, channel, 8) for name in ("a", "b", "c")]
    for node in made:
        node.bus.start()
    try:
        await until(lambda: all(n.bus.up for n in made), "the links to come up")
        yield made
    finally:
        await asyncio.gather(*(n.bus.close() for n in made))


async def test_an_event_for_a_few_rooms_reaches_only_the_nodes_holding_them(
    nodes: list[Node],
) -> None:
    a, b, c = nodes
    b.bus.opened("feed:user:x")
    await b.bus.heard(["feed:user:x"])
    await a.bus.publish(emit("feed:user:x", "feed:user:nobody"))
    await a.bus.publish(Forget(["act"]))  # not routed: every node
    await until(lambda: Forget(["act"]) in c.got and Forget(["act"]) in b.got, "the Forget")
    await asyncio.sleep(QUIET)
    assert b.rooms() == ["feed:user:x"], "b gets the event of its room, and of it alone"
    assert c.rooms() == [], "a node without a socket in the rooms decodes nothing of it"
    assert a.rooms() == ["feed:user:x", "feed:user:nobody"], "the sender handles it itself"
    watched = ReactionEmit(["reactions:act"], "reaction.new", {"activity_id": "act"})
    c.bus.opened("reactions:act")
    await c.bus.heard(["reactions:act"])
    await a.bus.publish(watched)
    await until(lambda: watched in c.got, "the reaction event at its watcher's node")
    await asyncio.sleep(QUIET)
    assert watched not in b.got


async def test_an_event_for_more_rooms_than_routed_goes_once_to_every_node(
    nodes: list[Node],
) -> None:
    a, b, c = nodes
    many = emit(*(f"feed:timeline:{i}" for i in range(9)))  # routed_rooms is 8
    await a.bus.publish(many)
    await until(lambda: many in b.got and many in c.got, "the event at every node")
    assert b.got.count(many) == c.got.count(many) == 1


async def test_every_event_published_after_heard_arrives(nodes: list[Node]) -> None:
    """No sleep between `heard` and the publish: the subscription is confirmed by then, or
    the event would be lost (a subscribe reads `since` right after `heard`)."""
    a, b, _ = nodes
    rooms = [f"feed:user:{i}" for i in range(50)]
    for room in rooms:
        b.bus.opened(room)
        await b.bus.heard([room])
        await a.bus.publish(emit(room))
    await until(lambda: len(b.rooms()) == len(rooms), "every event")
    assert b.rooms() == rooms


async def test_a_room_left_is_heard_for_its_linger_then_unsubscribed(
    nodes: list[Node], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(routes, "LINGER_SECONDS", 1.0)
    a, b, _ = nodes
    b.bus.opened("feed:user:y")
    await b.bus.heard(["feed:user:y"])
    b.bus.closed("feed:user:y")
    await a.bus.publish(emit("feed:user:y"))  # within the linger: still heard
    await until(lambda: b.rooms() == ["feed:user:y"], "the event within the linger")
    await until(
        lambda: b.bus.routes.channel("feed:user:y") not in _subscribed(b), "the unsubscribe"
    )
    await a.bus.publish(emit("feed:user:y"))
    await asyncio.sleep(QUIET)
    assert b.rooms() == ["feed:user:y"], "an unsubscribed room's events no longer come"
    b.bus.opened("feed:user:y")  # a socket again: subscribed again
    await b.bus.heard(["feed:user:y"])
    await a.bus.publish(emit("feed:user:y"))
    await until(lambda: b.rooms() == ["feed:user:y"] * 2, "the event after joining again")
    assert b.bus.up, "Redis confirming an unsubscribe it was asked for is not an outage"


async def test_with_routing_off_every_event_goes_to_every_node(redis_server: RedisServer) -> None:
    channel = f"t-{uuid.uuid4().hex[:8]}"
    a, c = (Node(name, redis_server.url, channel, 0) for name in ("a", "c"))
    for node in (a, c):
        node.bus.start()
    try:
        await until(lambda: a.bus.up and c.bus.up, "the links")
        await a.bus.publish(emit("feed:user:z"))
        await until(lambda: c.rooms() == ["feed:user:z"], "the event at a node without the room")
    finally:
        await asyncio.gather(a.bus.close(), c.bus.close())


async def test_rooms_held_are_subscribed_again_after_an_outage(
    nodes: list[Node], redis_server: RedisServer,
) -> None:  # fmt: skip
    a, b, _ = nodes
    b.bus.opened("feed:user:w")
    await b.bus.heard(["feed:user:w"])
    redis_server.stop()
    await until(lambda: not b.bus.up and not a.bus.up, "the outage to be seen")
    redis_server.start()
    await until(lambda: b.bus.up and a.bus.up, "the links back")
    await b.bus.heard(["feed:user:w"])
    await a.bus.publish(emit("feed:user:w"))
    await until(lambda: b.rooms() == ["feed:user:w"], "the room's event after the outage")


def _subscribed(node: Node) -> set[str]:
    subscription = node.bus.routes._subscription
    assert subscription is not None
    return {c.decode() for c in subscription.pubsub.channels}


async def test_a_failed_subscription_restarts_the_link_which_resubscribes_and_resyncs(
    nodes: list[Node], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    a, b, _ = nodes
    resyncs: list[LinkUp] = []
    b.bus.on(LinkUp, lambda m: resyncs.append(m) if m.after_outage else None)
    real, failures = Subscription.add, [1]

    async def failing(self: Subscription, channels: list[str]) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("a fault of the subscribing command")
        await real(self, channels)

    monkeypatch.setattr(Subscription, "add", failing)
    b.bus.opened("feed:user:v")
    await until(lambda: bool(resyncs), "the link started again, its sockets told to resync")
    await b.bus.heard(["feed:user:v"])
    await a.bus.publish(emit("feed:user:v"))
    await until(lambda: b.rooms() == ["feed:user:v"], "the room's event on the new link")


async def test_a_subscription_confirmed_after_heard_gave_up_resyncs_its_room(
    nodes: list[Node], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A subscribe that stopped waiting read `since` before the room's events reached the
    node: once Redis confirms, the room's sockets on this node resync."""
    _, b, _ = nodes
    monkeypatch.setattr(routes, "CONFIRM_TIMEOUT", 0.05)
    resyncs: list[Resync] = []
    b.bus.on(Resync, resyncs.append)
    real = Subscription.add

    async def slow(self: Subscription, channels: list[str]) -> None:
        await asyncio.sleep(0.5)  # Redis busy: the confirmation comes after heard gave up
        await real(self, channels)

    monkeypatch.setattr(Subscription, "add", slow)
    b.bus.opened("feed:user:late")
    await b.bus.heard(["feed:user:late"])
    assert not resyncs, "nothing to resync before the confirmation"
    await until(lambda: Resync(["feed:user:late"]) in resyncs, "the room told to resync")
    assert b.bus.up
