"""What the nodes tell each other: one frozen dataclass per kind of message, and its wire form.

On the wire (a Redis channel) a message is one JSON header line, then a body of bytes:
    {"k": KIND, "n": NODE, ...the message's fields}\\n<body>
Only `Emit` has a body: the Socket.IO packet as it goes to the sockets, so that a receiving
node writes it without encoding anything again. A node skips the messages it sent itself.

Two local kinds never go on the wire: `Subscribed` and `LinkUp` say what happened to this
node's own link, so that what depends on it (caches, presence, sockets) can act.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    KIND: ClassVar[str] = ""
    ECHO: ClassVar[bool] = False  # also handled on the node that publishes it
    ROUTED: ClassVar[bool] = False  # for the sockets of its `rooms` only: the bus may send it
    # only to the nodes that hold some (bus/routes.py)


@dataclasses.dataclass(frozen=True, slots=True)
class Emit(Message):
    """A `feed.update` for the sockets of `rooms`. The packet is `body`: its first `split`
    bytes come before the feed's id, the rest after (realtime/transport/protocol.py)."""

    KIND: ClassVar[str] = "emit"
    ECHO: ClassVar[bool] = True
    ROUTED: ClassVar[bool] = True
    rooms: Sequence[str]
    split: int
    body: bytes
    event: dict[str, Any] | None = dataclasses.field(default=None, compare=False)  # local only


@dataclasses.dataclass(frozen=True, slots=True)
class ReactionEmit(Message):
    """A reaction event (`name`, `data`) for the sockets of `rooms` (an activity's watchers):
    few sockets each, so it travels as JSON and each node encodes it for its own. `version`:
    that of the activity's counts in `data` (`reaction_counts`), which each node compares with
    what it sent already; it is not sent to the sockets. (0, from a node that sends none: older
    than any.)"""

    KIND: ClassVar[str] = "remit"
    ECHO: ClassVar[bool] = True
    ROUTED: ClassVar[bool] = True
    rooms: Sequence[str]
    name: str
    data: dict[str, Any]
    version: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class FollowChanged(Message):
    """`source` now follows (or no longer follows) `target`."""

    KIND: ClassVar[str] = "follow"
    ECHO: ClassVar[bool] = True
    source: str
    target: str
    following: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Resync(Message):
    """The sender could not publish some events to `rooms` (None: to any room): the sockets
    there re-subscribe with `since`."""

    KIND: ClassVar[str] = "resync"
    rooms: Sequence[str] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Forget(Message):
    """These activities changed: a cached copy of them is stale."""

    KIND: ClassVar[str] = "inval"
    ids: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class HeadsWritten(Message):
    """The sender wrote entries of these feeds: a cached head of them is stale."""

    KIND: ClassVar[str] = "heads"
    feeds: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceSet(Message):
    """`node`'s share of a member: `entry` is `[info, connections, since]`, None when gone."""

    KIND: ClassVar[str] = "p.set"
    node: str
    feed: str
    user_id: str
    entry: Sequence[Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceSync(Message):
    """Everything `node` has, `[feed, user_id, info, connections, since]` each, replacing what
    the others knew of it; `ask`: answer with yours."""

    KIND: ClassVar[str] = "p.sync"
    node: str
    members: Sequence[Sequence[Any]]
    ask: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceGone(Message):
    """`gone`'s members leave (it died, or it stopped)."""

    KIND: ClassVar[str] = "p.gone"
    node: str
    gone: str


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """Local: the link is subscribed (again), before any message is handled. Anything read
    before may have missed messages."""

    KIND: ClassVar[str] = "local.subscribed"


@dataclasses.dataclass(frozen=True, slots=True)
class LinkUp(Message):
    """Local: the link is up (again) and takes messages; `after_outage` when it was down, so
    that this node may have missed the others' messages meanwhile."""

    KIND: ClassVar[str] = "local.up"
    after_outage: bool


WIRE_KINDS: dict[str, type[Message]] = {
    kind.KIND: kind
    for kind in (Emit, ReactionEmit, FollowChanged, Resync, Forget, HeadsWritten, PresenceSet,
                 PresenceSync, PresenceGone)
}  # fmt: skip


def encode(message: Message, node: str) -> bytes:
    header: dict[str, Any] = {"k": message.KIND, "n": node}
    for field in dataclasses.fields(message):
        if field.compare and field.name != "body":
            header[field.name] = getattr(message, field.name)
    body = message.body if isinstance(message, Emit) else b""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def decode(raw: bytes) -> tuple[str, Message]:
    """The sender and the message of `raw`. Raises ValueError for what is no message."""
    line, _, body = raw.partition(b"\n")
    header = json.loads(line)
    if not isinstance(header, dict):
        raise ValueError("a message header is a JSON object")
    kind = WIRE_KINDS.get(str(header.get("k")))
    if kind is None:
        raise ValueError(f"unknown message kind {header.get('k')!r}")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        if field.name == "body":
            values["body"] = body
        elif field.compare and field.name in header:
            values[field.name] = header[field.name]
        elif field.compare and field.default is dataclasses.MISSING:
            raise ValueError(f"a {kind.KIND} message without {field.name!r}")
    return str(header.get("n")), kind(**values)
