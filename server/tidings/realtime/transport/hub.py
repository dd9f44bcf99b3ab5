"""The fast path's delivery: encoded WebSocket frames written to many transports.

A broadcast encodes its Socket.IO packet once (protocol.FeedFrames) and makes one WebSocket
frame per feed it is delivered for, from shared bytes and the feed's id (the server's frames are
unmasked, so the bytes are the same for every subscriber of that feed). `feed.update` names the
feed the socket subscribed to: the members of a feed room get the frame of that feed; the
members of a pull room one frame for each of their subscribed feeds that follows the pull feed.
Per recipient the frame goes straight to the connection's asyncio transport, with no task and
no copy per socket.

Order and backpressure, per connection:
- while nothing is pending for it and its transport buffers less than `write_buffer_bytes`
  (`transport.get_write_buffer_size()`, public asyncio API), a frame is written at once;
- otherwise it is appended to the connection's pending queue (a reference to the shared frame,
  not a copy), behind what is already there, so every socket gets its frames in order;
- one timer for the whole hub moves pending frames into transports as they drain;
- a connection with more than `max_queue_packets` frames, or `max_queue_bytes` bytes, pending
  (counted per connection, though the frames are shared) is a slow consumer: its
  transport is aborted (it is not reading, so a goodbye would only join the queue) and it
  recovers through `subscribe` with `since` when it reconnects.
A connection whose transport is closing is skipped: a socket closing mid-broadcast never raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from ...metrics import BACKLOGGED_SOCKETS, DELIVERIES, SLOW_CONSUMERS
from ...runtime.background import spawn
from .peers import Outlet, Peer, RoomInterest, Rooms
from .protocol import FeedFrames, Packet
from .rooms import room_feed

log = logging.getLogger(__name__)
Others = list[tuple[Peer, str]]  # python-socketio's peers of a broadcast, each with its feed
FLUSH_INTERVAL = 0.01  # seconds between two passes over the backlogged connections
CHUNK = 2048  # recipients written between two yields to the event loop in a big broadcast
MAX_JOINED = 32  # queued broadcasts to the same rooms written to a socket in one write


class FastConn(Peer):
    """A direct WebSocket connection served by the fast path."""

    __slots__ = ("alive", "attachments", "binary", "pending", "queued", "slot", "tasks",
                 "transport")  # fmt: skip
    fast = True

    def __init__(
        self, sid: str, transport: asyncio.Transport, outlet: Outlet | None = None,
        address: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(sid, outlet, address)
        self.transport = transport
        self.pending: deque[bytes] | None = None
        self.queued = 0  # bytes in `pending`
        self.tasks: set[asyncio.Task[None]] | None = None  # its events being handled
        self.attachments = 0  # binary frames still due for the binary packet being read
        self.binary: Packet | None = None  # that packet, when it is an event
        self.alive = True  # answered the last ping (or has not been pinged yet)
        self.slot = 0  # which tick of the heartbeat pings it


class Hub(Rooms):
    def __init__(self, max_queue_packets: int, write_buffer_bytes: int,
                 max_queue_bytes: int = 1 << 62, interest: RoomInterest | None = None,
                 ) -> None:  # fmt: skip
        super().__init__(interest)
        self.max_pending = max_queue_packets
        self.max_bytes = max_queue_bytes
        self.high = write_buffer_bytes
        self.conns: dict[str, FastConn] = {}
        self._backlogged: set[FastConn] = set()
        self._flusher: asyncio.TimerHandle | None = None
        self._queue: deque[tuple[tuple[str, ...], FeedFrames, asyncio.Future[Others]]] = deque()
        self._sender: asyncio.Task[None] | None = None

    def add(self, conn: FastConn) -> None:
        self.conns[conn.sid] = conn

    def remove(self, peer: Peer) -> None:
        self.leave_all(peer)
        if isinstance(peer, FastConn):
            self.conns.pop(peer.sid, None)
            self._unbacklog(peer)

    # ----------------------------------------------------------------------------- writing

    def send(self, conn: FastConn, frame: bytes) -> bool:
        """Write `frame` to `conn` in order; False when the connection is gone or dropped."""
        transport = conn.transport
        if transport.is_closing():
            return False
        pending = conn.pending
        if pending is None:
            if transport.get_write_buffer_size() < self.high:
                transport.write(frame)
                return True
            pending = conn.pending = deque()
            self._backlog(conn)
        pending.append(frame)
        conn.queued += len(frame)
        if len(pending) > self.max_pending or conn.queued > self.max_bytes:
            self._drop_slow(conn)
            return False
        return True

    async def broadcast(self, rooms: Sequence[str], frames: FeedFrames) -> Others:
        """Write the event to every fast connection in `rooms`, once for each feed it is
        subscribed to that the room is for. Answers the other peers (python-socketio's
        sockets), each with the feed to deliver it for, for the caller to deliver to.

        Broadcasts are written one after the other, in call order, by one sender task. Those
        that queued up behind a big one, for the same rooms, are joined: each socket gets
        their frames in one write (one system call instead of one per event)."""
        done: asyncio.Future[Others] = asyncio.get_running_loop().create_future()
        self._queue.append((tuple(rooms), frames, done))
        if self._sender is None:
            self._sender = spawn(self._send_queued())
        return await done

    async def _send_queued(self) -> None:
        waiters: list[asyncio.Future[Others]] = []
        try:
            while self._queue:
                rooms, first, done = self._queue.popleft()
                events, waiters = [first], [done]
                while self._queue and self._queue[0][0] == rooms and len(events) < MAX_JOINED:
                    _, more, waiter = self._queue.popleft()
                    events.append(more)
                    waiters.append(waiter)
                others = await self._write(rooms, _joined(events), len(events))
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(others)
        finally:
            self._sender = None
            for waiter in [*waiters, *(item[2] for item in self._queue)]:
                if not waiter.done():
                    waiter.cancel()
            self._queue.clear()

    async def _write(
        self, rooms: Sequence[str], frame_of: Callable[[str], bytes], count: int
    ) -> Others:
        others: Others = []
        sent, written, high, send = 0, 0, self.high, self.send
        for room in rooms:
            members = list(self.members(room))  # a snapshot: joins may happen between chunks
            room_of = room_feed(room)
            single: tuple[str, ...] = () if room_of is None else (room_of,)
            for start in range(0, len(members), CHUNK):
                if written >= CHUNK:
                    written = 0
                    await asyncio.sleep(0)  # let the loop breathe between chunks
                for peer in members[start : start + CHUNK]:
                    written += 1
                    # A feed room is for its feed; a pull room, for each of the peer's
                    # subscribed feeds that brings it.
                    feeds = single or (peer.pulls or {}).get(room, ())
                    if not isinstance(peer, FastConn):
                        others.extend((peer, feed) for feed in feeds)
                        continue
                    for feed in feeds:
                        frame = frame_of(feed)
                        transport = peer.transport  # `send`'s common case inlined: hot loop
                        if (
                            peer.pending is None
                            and not transport.is_closing()
                            and transport.get_write_buffer_size() < high
                        ):
                            transport.write(frame)
                            sent += 1
                        else:
                            sent += send(peer, frame)
        DELIVERIES.labels("fast").inc(sent * count)
        return others

    def _backlog(self, conn: FastConn) -> None:
        self._backlogged.add(conn)
        BACKLOGGED_SOCKETS.set(len(self._backlogged))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._flush)

    def _flush(self) -> None:
        self._flusher = None
        for conn in list(self._backlogged):
            pending, transport = conn.pending, conn.transport
            if pending is None or transport.is_closing():
                self._backlogged.discard(conn)
                conn.pending = None
                conn.queued = 0
                continue
            while pending and transport.get_write_buffer_size() < self.high:
                frame = pending.popleft()
                conn.queued -= len(frame)
                transport.write(frame)
            if not pending:
                conn.pending = None
                conn.queued = 0
                self._backlogged.discard(conn)
        BACKLOGGED_SOCKETS.set(len(self._backlogged))
        if self._backlogged:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._flush)

    def _drop_slow(self, conn: FastConn) -> None:
        queued = len(conn.pending or ())
        log.warning(
            "disconnecting slow consumer %s: %d packets, %d bytes waiting (limits %d, %d); it "
            "recovers with `since` on reconnect", conn.sid, queued, conn.queued,
            self.max_pending, self.max_bytes,
        )  # fmt: skip
        SLOW_CONSUMERS.inc()
        self.abort(conn)

    def abort(self, conn: FastConn) -> None:
        """Drop a connection at once: its handler sees the connection lost and cleans up."""
        self._unbacklog(conn)
        conn.transport.abort()

    def _unbacklog(self, conn: FastConn) -> None:
        conn.pending = None
        conn.queued = 0
        if conn in self._backlogged:
            self._backlogged.discard(conn)
            BACKLOGGED_SOCKETS.set(len(self._backlogged))

    def close_all(self, frame: bytes) -> None:
        """Server shutdown: a WebSocket close frame (1001) to every connection, then close."""
        for conn in list(self.conns.values()):
            if not conn.transport.is_closing():
                conn.transport.write(frame)
                conn.transport.close()


def _joined(events: list[FeedFrames]) -> Callable[[str], bytes]:
    """The frames of `events` for one feed, as one write, made once per feed."""
    if len(events) == 1:
        return events[0].frame
    cache: dict[str, bytes] = {}

    def frame_of(feed: str) -> bytes:
        frame = cache.get(feed)
        if frame is None:
            frame = cache[feed] = b"".join(event.frame(feed) for event in events)
        return frame

    return frame_of
