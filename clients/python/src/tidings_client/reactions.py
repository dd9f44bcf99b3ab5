"""`ReactionWatch`: one activity's reactions, live (`reaction.watch`), with the recovery feeds
have: after a reconnect or a `resync` it watches again with `since` and hands over what it
missed. The handler gets each change once: `{"type": "reaction.added" | "reaction.updated" |
"reaction.deleted", "activity_id", "reaction", "reaction_counts"}` (a change that came both
live and in `missed` is handed over once; a hard-deleted reaction missed while away is told
only by the counts of the next change handed over)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from .connection import REACTION_EVENTS, Connection

log = logging.getLogger("tidings_client")
Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
SEEN = 5000  # reactions whose last state is remembered (to hand each change over once)
PAGES = 50  # most `since` pages read in one catch-up (`more`)
_V7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7")


class ReactionWatch:
    def __init__(self, connection: Connection, activity_id: str, handler: Handler,
                 since: str | None = None, shared: Callable[[], bool] = lambda: False,
                 ) -> None:  # fmt: skip
        """`shared()`: whether another watch of this client watches the same activity (then
        an unwatch leaves the server's room alone)."""
        self.connection, self.activity_id, self.handler = connection, activity_id, handler
        self._shared = shared
        self.since = since  # the newest reaction id (or cursor) every change after reached us
        self._states: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._removers = [connection.on(name, self._live(name)) for name in REACTION_EVENTS]
        self._lock = asyncio.Lock()
        self.active = True

    async def start(self) -> None:
        await self._watch()

    def recover(self) -> None:
        """Connected again, or told to resync: watch again with `since`."""
        if self.active:
            self.connection.spawn(self._recover())

    async def _recover(self) -> None:
        try:
            await self._watch()
        except Exception as exc:  # the next connect tries again
            log.warning("reaction.watch of %s failed: %s", self.activity_id, exc)
            self.connection.emit_local("error", exc)

    async def unwatch(self) -> None:
        if not self.active:
            return
        self.active = False
        for remove in self._removers:
            remove()
        if self.connection.state == "connected" and not self._shared():
            await self.connection.call("reaction.unwatch", {"activity_id": self.activity_id})

    async def _watch(self) -> None:
        async with self._lock:  # one catch-up at a time
            for _ in range(PAGES):
                request = {"activity_id": self.activity_id}
                since = self.since
                if since is not None:
                    request["since"] = since
                ack = await self.connection.call("reaction.watch", request)
                counts = ack.get("reaction_counts", {})
                for reaction in ack.get("missed", []):
                    await self._hand(_missed_type(reaction, self._states), reaction, counts)
                self._advance(ack.get("cursor"))
                if not ack.get("more") or self.since == since:
                    return

    def _live(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def live(data: Any) -> None:
            if (
                self.active
                and isinstance(data, dict)
                and data.get("activity_id") == (self.activity_id)
            ):
                await self._hand(name, data["reaction"], data.get("reaction_counts", {}))

        return live

    async def _hand(self, name: str, reaction: dict[str, Any], counts: Any) -> None:
        reaction_id = str(reaction["id"])
        state = (reaction.get("updated_at"), reaction.get("deleted_at"),
                 name == "reaction.deleted")  # fmt: skip
        if self._states.get(reaction_id) == state:
            return  # came both live and in `missed`
        self._states[reaction_id] = state
        self._states.move_to_end(reaction_id)
        while len(self._states) > SEEN:
            self._states.popitem(last=False)
        if name == "reaction.added":
            self._advance(reaction_id)
        event = {"type": name, "activity_id": self.activity_id, "reaction": reaction,
                 "reaction_counts": counts}  # fmt: skip
        try:
            result = self.handler(event)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("reaction handler of %s failed", self.activity_id)

    def _advance(self, reaction_id: Any) -> None:
        newer = self.since is None or str(reaction_id) > self.since
        if isinstance(reaction_id, str) and _V7.match(reaction_id) and newer:
            self.since = reaction_id


def _missed_type(reaction: dict[str, Any], states: dict[str, tuple[Any, ...]]) -> str:
    if reaction.get("deleted_at"):
        return "reaction.deleted"
    return "reaction.updated" if reaction["id"] in states else "reaction.added"
