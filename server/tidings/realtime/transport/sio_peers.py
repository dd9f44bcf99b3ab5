"""The python-socketio path: HTTP long-polling, polling→WebSocket upgrades, and every WebSocket
when the fast path is off (`realtime.fast_websocket = false`).

python-socketio carries the packets; what they mean is `Handlers`' (the same as on the fast
path), and room membership is Tidings' own registry, not python-socketio's rooms: delivery to
these sockets is one `sio.emit` to the list of their sids, encoded once by python-socketio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...domain.errors import TidingsError
from ...metrics import DELIVERIES
from ...ratelimit import client_address
from .dispatch import Ack, Dispatcher
from .peers import Peer
from .sio import ConnectionRefused, Server

INVALID_NAMESPACE = "Invalid namespace"  # node's socket.io refuses a namespace it lacks so


class SioPeer(Peer):
    __slots__ = ()
    fast = False


class SioPeers:
    """The python-socketio sockets of this node, and the `Outlet` that reaches them."""

    def __init__(self, sio: Server, trust_forwarded_for: bool = False) -> None:
        """`trust_forwarded_for`: a client's address is the last of `X-Forwarded-For`."""
        self.sio = sio
        self.trust_forwarded_for = trust_forwarded_for
        self.peers: dict[str, SioPeer] = {}

    async def emit(self, peer: Peer, event: str, data: Any) -> None:
        await self.sio.emit(event, data, to=peer.sid)

    async def disconnect(self, peer: Peer) -> None:
        await self.sio.disconnect(peer.sid)

    async def deliver(
        self, targets: Sequence[tuple[Peer, str]], event: str, data: dict[str, Any]
    ) -> None:
        """`event` to each (peer, feed) of `targets`, naming that feed: one emit per feed
        (python-socketio encodes it once and queues it per socket)."""
        by_feed: dict[str, list[str]] = {}
        for peer, feed in targets:
            by_feed.setdefault(feed, []).append(peer.sid)
        for feed, sids in by_feed.items():
            await self.sio.emit(event, {**data, "feed": feed}, to=sids)
        DELIVERIES.labels("socketio").inc(len(targets))

    async def emit_all(self, event: str, data: Any) -> None:
        if self.peers:
            await self.sio.emit(event, data)


class SioEvents:
    """What python-socketio's sockets send, handed to `handlers` (registered on `sio` as its
    event handlers: connect, disconnect, and each event the handlers know)."""

    def __init__(self, peers: SioPeers, handlers: Dispatcher) -> None:
        self.peers, self.handlers = peers, handlers
        sio = peers.sio
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on("connect", _refuse_namespace, namespace="*")  # any namespace but "/"
        for event in handlers.event_names():
            sio.on(event, self._handler(event))

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            grant = self.handlers.authenticate(auth)
        except TidingsError as exc:
            answer = self.handlers.refusal(exc)
            raise ConnectionRefused(answer["message"],
                                                             answer["data"]) from exc  # fmt: skip
        request = environ.get("aiohttp.request")  # python-engineio's REMOTE_ADDR is made up
        address = None
        if request is not None:
            forwarded = request.headers.get("X-Forwarded-For")
            address = client_address(request.remote, forwarded, self.peers.trust_forwarded_for)
        peer = self.peers.peers[sid] = SioPeer(sid, self.peers, address)
        self.handlers.connected(peer, grant)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        peer = self.peers.peers.pop(sid, None)
        if peer is not None:
            self.handlers.disconnected(peer)

    def _handler(self, event: str) -> Any:
        async def handler(sid: str, *args: Any) -> Ack | None:
            peer = self.peers.peers.get(sid)
            return None if peer is None else await self.handlers.handle(peer, event, list(args))

        return handler


async def _refuse_namespace(namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
    """`44{"message": "Invalid namespace"}`, as node's socket.io answers (python-socketio's own
    answer would be "Unable to connect"): the server is created with `namespaces="*"`."""
    raise ConnectionRefused(INVALID_NAMESPACE)
