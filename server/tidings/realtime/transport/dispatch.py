"""What the transports hand a socket's connect, events and disconnect to: the port that
realtime/events/handlers.py implements, so that transport/ depends on no module of events/."""

from __future__ import annotations

from typing import Any, Protocol

from ...auth import Grant
from ...domain.errors import InputError, TidingsError
from .peers import Peer

Ack = dict[str, Any]
NOT_AN_EVENT = "an event is a JSON array: [name, argument]"


def not_an_event() -> Ack:
    """The ack of a packet whose payload is not `[name, argument]` (both transports)."""
    return {"ok": False, "error": InputError(NOT_AN_EVENT, {"data": [NOT_AN_EVENT]}).ack()}


class Dispatcher(Protocol):
    max_in_flight: int  # events of one socket handled at once; more are answered `busy()`

    def event_names(self) -> list[str]: ...

    def authenticate(self, auth: Any) -> Grant:
        """The grant of a connect's `auth`; raises a TidingsError (see `refusal`)."""
        ...

    def refusal(self, exc: TidingsError) -> dict[str, Any]:
        """The data of a refused connect (`44{message, data}`)."""
        ...

    def connected(self, peer: Peer, grant: Grant) -> None: ...

    def disconnected(self, peer: Peer) -> None: ...

    def knows(self, event: Any) -> bool: ...

    def busy(self) -> Ack: ...

    async def handle(self, peer: Peer, event: Any, args: list[Any]) -> Ack | None: ...
