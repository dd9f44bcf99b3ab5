"""A raid-room member for `bench raid`: the raw client of bench/wsclient.py (one bare socket,
events timed by the kernel), subscribing with `presence: {info}` and sending events with acks
(`publish`, `presence`).

    client  420["subscribe", {"feed", "presence": {"info"}}]   the subscribe, ack id 0
    client  42<N>["publish", {...}]                            events with ack ids 1, 2, ...
    server  43<N>[{...}]                                       their acks

Every event the member gets is kept as (name, data, arrival), arrival the kernel's receive time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .wsclient import Subscriber

Received = tuple[str, dict[str, Any], float]


class RaidMember(Subscriber):
    def __init__(
        self, host: str, port: int, token: str, feed: str, user_id: str, node: str, info: Any
    ) -> None:
        super().__init__(host, port, token, feed, self._event)
        self.user_id, self.node, self.info = user_id, node, info
        self.events: list[Received] = []
        self._acks: dict[int, asyncio.Future[tuple[Any, float]]] = {}
        self._next_ack = 1

    def _event(self, packet: bytes, at: float) -> None:
        name, data = json.loads(packet[2:])
        self.events.append((name, data, at))

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b"40{"):  # connected: subscribe, as a member with its info
            body = {"feed": self.feed, "presence": {"info": self.info}}
            self._send(b"420" + json.dumps(["subscribe", body]).encode())
        elif packet.startswith(b"43") and not packet.startswith(b"430"):
            start = packet.index(b"[")
            waiter = self._acks.pop(int(packet[2:start]), None)
            if waiter is not None and not waiter.done():
                waiter.set_result((json.loads(packet[start:])[0], self._at))
        else:
            super()._packet(packet)

    async def call(self, event: str, data: Any, within: float) -> tuple[Any, float]:
        """Send `event` with an ack; (the ack, its arrival time)."""
        ack_id, self._next_ack = self._next_ack, self._next_ack + 1
        waiter = self._acks[ack_id] = asyncio.get_running_loop().create_future()
        self._send(b"42" + str(ack_id).encode() + json.dumps([event, data]).encode())
        try:
            return await asyncio.wait_for(waiter, within)
        finally:
            self._acks.pop(ack_id, None)

    def named(self, name: str) -> list[Received]:
        return [e for e in self.events if e[0] == name]
