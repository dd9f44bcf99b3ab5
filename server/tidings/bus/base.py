"""The bus between nodes, as the rest of Tidings sees it, and the handlers of its messages.

`publish(message)` reaches the handlers of that message's kind on every other node (and on
this one too for the kinds marked `ECHO`); a subscriber registers with `bus.on(Kind, handler)`
when it is built. Delivery is best effort: a message can be lost (Redis down, a node killed
between its write and its publish). What must not be lost says so with `owed`: the rooms whose
sockets must re-subscribe with `since` on the nodes that missed it (`Resync`). Caches never
depend on a message arriving; they only get current sooner (store/memory/).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol, TypeVar

from .messages import Message

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None] | None]


class Bus(Protocol):
    node: str  # this process's id: it signs its messages

    @property
    def up(self) -> bool:
        """Whether messages reach the other nodes now."""

    @property
    def state(self) -> str:
        """`ok`, `down`, or `off` (one node: there is nobody to tell)."""

    def on(self, kind: type[M], handler: Handler[M]) -> None: ...

    async def publish(self, message: Message, owed: Collection[str] | None = ()) -> None:
        """`owed`: the rooms whose sockets must resync on a node that misses this message
        (None: every socket; empty: its loss costs nobody anything)."""

    # The rooms this node holds sockets in (routes.py RoomInterest): a routed message for a
    # room reaches the nodes that hold it.
    def opened(self, room: str) -> None: ...

    def closed(self, room: str) -> None: ...

    async def heard(self, rooms: Iterable[str]) -> None:
        """Return once the messages for `rooms` published from now on reach this node."""

    def start(self) -> None:
        """Hear the other nodes from now on (publishing works before)."""

    async def close(self) -> None: ...


class Handlers:
    """The handlers of each kind of message, called in the order they registered."""

    def __init__(self) -> None:
        self._by_kind: dict[type[Message], list[Handler[Message]]] = {}

    def on(self, kind: type[M], handler: Handler[M]) -> None:
        self._by_kind.setdefault(kind, []).append(handler)  # type: ignore[arg-type]

    async def handle(self, message: Message) -> None:
        """Call each handler of `message`'s kind; one that fails is logged and the others
        still run (a bad message must not stop the link)."""
        for handler in self._by_kind.get(type(message), ()):
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("handling a %s message failed", message.KIND)


class LocalBus:
    """One node alone: nothing to tell anybody, and nothing is ever missed."""

    up = True
    state = "off"

    def __init__(self, node: str) -> None:
        self.node = node
        self._handlers = Handlers()

    def on(self, kind: type[M], handler: Handler[M]) -> None:
        self._handlers.on(kind, handler)

    async def publish(self, message: Message, owed: Collection[str] | None = ()) -> None:
        if message.ECHO:
            await self._handlers.handle(message)

    def opened(self, room: str) -> None:
        pass

    def closed(self, room: str) -> None:
        pass

    async def heard(self, rooms: Iterable[str]) -> None:
        pass

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
