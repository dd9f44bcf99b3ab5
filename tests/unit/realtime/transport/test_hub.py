"""The fast path's write discipline (server/tidings/realtime/hub.py): order, backpressure, slow
consumers, closed transports. The transports here are small stand-ins that implement the part of
`asyncio.Transport` the hub uses and record what is written; tests/integration/test_fast_path.py
checks the same over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tidings.realtime.transport import hub as hub_module
from tidings.realtime.transport.hub import FastConn, Hub
from tidings.realtime.transport.peers import Peer
from tidings.realtime.transport.protocol import FeedFrames
from tidings.realtime.transport.rooms import feed_room, pull_room

ROOM, OTHER = feed_room("user:room"), feed_room("user:other")


class Raw(FeedFrames):
    """An event whose frame is `data` whatever the feed: the write discipline alone."""

    def __init__(self, data: bytes) -> None:
        super().__init__(b"", b"")
        self.data = data

    def frame(self, feed: str) -> bytes:
        return self.data


class Transport:
    """Holds what it is given in `buffered` until `drain()`; `written` is what went out."""

    def __init__(self, on_write: Any = None) -> None:
        self.written: list[bytes] = []
        self.buffered: list[bytes] = []
        self.stuck = False  # a peer that does not read: everything stays buffered
        self.closing = False
        self.aborted = False
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        (self.buffered if self.stuck else self.written).append(data)
        if self.on_write is not None:
            self.on_write()

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.buffered))

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = self.aborted = True

    def close(self) -> None:
        self.closing = True

    def drain(self) -> None:
        self.stuck = False
        self.written += self.buffered
        self.buffered.clear()


def conn(name: str, transport: Transport) -> FastConn:
    return FastConn(name, cast(asyncio.Transport, transport))


def frames(n: int, size: int = 10) -> list[bytes]:
    return [str(i).encode().ljust(size, b".") for i in range(n)]


async def test_a_backlogged_connection_gets_every_frame_in_order() -> None:
    hub = Hub(max_queue_packets=100, write_buffer_bytes=25)
    slow, fast = Transport(), Transport()
    a, b = conn("a", slow), conn("b", fast)
    for c in (a, b):
        hub.add(c)
        hub.join(c, ROOM)
    sent = frames(30)
    slow.stuck = True
    for frame in sent[:10]:
        assert await hub.broadcast([ROOM], Raw(frame)) == []
    hub.send(a, b"ack")  # a reply to this socket joins its queue too, in order
    for frame in sent[10:]:
        await hub.broadcast([ROOM], Raw(frame))
    assert fast.written == sent
    assert a.pending is not None and len(slow.buffered) == 3  # 25 bytes buffered, then queued
    slow.drain()
    await asyncio.sleep(hub_module.FLUSH_INTERVAL * 5)
    assert slow.written == [*sent[:10], b"ack", *sent[10:]]
    assert a.pending is None and not slow.aborted


async def test_a_connection_past_its_queue_bound_is_dropped_alone() -> None:
    hub = Hub(max_queue_packets=5, write_buffer_bytes=10)
    stuck, fine = Transport(), Transport()
    a, b = conn("a", stuck), conn("b", fine)
    for c in (a, b):
        hub.add(c)
        hub.join(c, ROOM)
    stuck.stuck = True
    for frame in frames(7):
        await hub.broadcast([ROOM], Raw(frame))
    assert stuck.aborted and a.pending is None
    assert len(fine.written) == 7 and not fine.aborted
    await hub.broadcast([ROOM], Raw(b"after"))  # a dropped socket is skipped, never written to
    assert fine.written[-1] == b"after"


async def test_transports_closing_during_a_broadcast_are_skipped() -> None:
    hub_module.CHUNK, chunk = 4, hub_module.CHUNK  # several chunks: the broadcast yields
    try:
        hub = Hub(max_queue_packets=10, write_buffer_bytes=100)
        transports = [Transport() for _ in range(20)]
        conns = [conn(str(i), t) for i, t in enumerate(transports)]

        def close_the_odd_ones() -> None:  # at the first write, while the broadcast is on
            for t in transports:
                t.on_write = None
            for t in transports[1::2]:
                t.closing = True

        for c, t in zip(conns, transports, strict=True):
            t.on_write = close_the_odd_ones
            hub.add(c)
            hub.join(c, ROOM)

        async def leave_meanwhile() -> None:  # runs when the broadcast yields between chunks
            hub.remove(conns[-2])
            transports[-2].closing = True

        leaving = asyncio.ensure_future(leave_meanwhile())
        await hub.broadcast([ROOM], Raw(b"x"))  # no write after a close (Transport asserts it)
        await leaving
        assert all(t.written == [b"x"] for t in transports[:-2:2])
        assert sum(len(t.written) for t in transports[1::2]) <= 1  # only the very first
        assert conns[-2] not in hub.recipients([ROOM]) and len(hub.conns) == 19
    finally:
        hub_module.CHUNK = chunk


async def test_each_subscribed_feed_gets_its_own_frame_and_other_peers_are_handed_back() -> None:
    """`feed.update` names the feed the socket subscribed to: a socket in two feed rooms gets
    one frame for each, and python-socketio's peers come back with the feed to name."""
    hub = Hub(max_queue_packets=10, write_buffer_bytes=1000)
    t = Transport()
    fast, other = conn("f", t), Peer("s")
    hub.add(fast)
    rooms = [feed_room("timeline:a"), feed_room("user:b")]
    for room in rooms:
        hub.join(fast, room)
        hub.join(other, room)
    event = FeedFrames.of("feed.update", {"feed": "user:x", "new": [{"id": "1"}]})
    others = await hub.broadcast([*rooms, feed_room("user:none")], event)
    assert others == [(other, "timeline:a"), (other, "user:b")]
    assert t.written == [event.frame("timeline:a"), event.frame("user:b")]
    assert t.written[0].endswith(b'42["feed.update",{"feed":"timeline:a","new":[{"id":"1"}]}]')
    hub.remove(fast)
    assert await hub.broadcast(rooms[:1], event) == [(other, "timeline:a")]
    assert len(t.written) == 2 and "f" not in hub.conns


async def test_a_pull_room_names_each_subscribed_feed_that_follows_the_pull_feed() -> None:
    hub = Hub(max_queue_packets=10, write_buffer_bytes=1000)
    t = Transport()
    fast = conn("f", t)
    hub.add(fast)
    celeb = pull_room("user:celeb")
    hub.add_pull(fast, celeb, "timeline:a")
    hub.add_pull(fast, celeb, "timeline:b")
    event = FeedFrames.of("feed.update", {"feed": "user:celeb", "new": []})
    assert await hub.broadcast([celeb], event) == []
    assert sorted(t.written) == sorted([event.frame("timeline:a"), event.frame("timeline:b")])


async def test_close_all_says_goodbye_to_open_connections() -> None:
    hub = Hub(max_queue_packets=10, write_buffer_bytes=100)
    open_, closed = Transport(), Transport()
    closed.closing = True
    for name, t in (("a", open_), ("b", closed)):
        hub.add(conn(name, t))
    hub.close_all(b"bye")
    assert open_.written == [b"bye"] and open_.closing and closed.written == []


async def test_broadcasts_queued_behind_a_big_one_are_joined_in_order() -> None:
    hub_module.CHUNK, chunk = 2, hub_module.CHUNK  # the first broadcast yields: others queue up
    try:
        hub = Hub(max_queue_packets=10, write_buffer_bytes=1000)
        transports = [Transport() for _ in range(5)]
        for i, t in enumerate(transports):
            c = conn(str(i), t)
            hub.add(c)
            hub.join(c, ROOM)
        sent = frames(6)
        first = asyncio.ensure_future(hub.broadcast([ROOM], Raw(sent[0])))
        for _ in range(3):  # the first broadcast is written, chunk by chunk, with yields
            await asyncio.sleep(0)
        assert any(t.written for t in transports) and not all(t.written for t in transports)
        results = await asyncio.gather(
            first,
            *(hub.broadcast([ROOM], Raw(f)) for f in sent[1:4]),
            hub.broadcast([OTHER], Raw(sent[4])),  # other rooms: not joined with those before
            hub.broadcast([ROOM], Raw(sent[5])),
        )
        assert results == [[]] * 6
        for t in transports:
            assert b"".join(t.written) == b"".join(sent[:4] + sent[5:])  # every frame, in order
            assert t.written == [sent[0], b"".join(sent[1:4]), sent[5]]  # 2-4: one write
    finally:
        hub_module.CHUNK = chunk


async def test_a_connection_is_dropped_by_bytes_queued_as_well_as_by_frames() -> None:
    hub = Hub(max_queue_packets=1000, write_buffer_bytes=25, max_queue_bytes=1000)
    slow, fine = Transport(), Transport()
    a, b = conn("a", slow), conn("b", fine)
    for c in (a, b):
        hub.add(c)
        hub.join(c, ROOM)
    slow.stuck = True
    await hub.broadcast([ROOM], Raw(b"x" * 30))  # in its transport: past write_buffer_bytes
    for _ in range(3):
        await hub.broadcast([ROOM], Raw(b"y" * 300))  # queued: 900 bytes, three frames
    assert a.pending is not None and a.queued == 900 and not slow.aborted
    await hub.broadcast([ROOM], Raw(b"z" * 300))  # 1,200 bytes waiting: a slow consumer
    assert slow.aborted and a.pending is None and a.queued == 0
    assert not fine.aborted and len(fine.written) == 5
