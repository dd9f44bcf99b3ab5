"""The bus's messages on the wire, and who handles them where (bus/messages.py, bus/base.py)."""

from __future__ import annotations

import pytest

from tidings.bus.base import LocalBus
from tidings.bus.messages import (
    WIRE_KINDS,
    Emit,
    FollowChanged,
    Forget,
    HeadsWritten,
    LinkUp,
    Message,
    PresenceGone,
    PresenceSet,
    PresenceSync,
    ReactionEmit,
    Resync,
    decode,
    encode,
)

EVERY_KIND = [
    Emit(["feed:user:a", "pull:user:b"], 3, b'42["x",{"feed":"user:a"}]'),
    ReactionEmit(["reactions:a1"], "reaction.added", {"reaction": {"id": "r"}, "n": [1]}, 7),
    FollowChanged("timeline:a", "user:b", True),
    Resync(["feed:user:a"]),
    Resync(None),
    Forget(["01a24e7f-d0aa-7493-92aa-a93df5e4da23"]),
    HeadsWritten(["user:a", "timeline:b"]),
    PresenceSet("node-1", "raid:r", "alice", [{"hp": 3}, 2, 1765000000.5]),
    PresenceSet("node-1", "raid:r", "alice", None),
    PresenceSync("node-1", [["raid:r", "alice", None, 1, 1765000000.5]], True),
    PresenceGone("node-1", "node-2"),
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: m.KIND)
def test_every_kind_reads_back_as_it_was_sent_with_its_sender(message: Message) -> None:
    sender, read = decode(encode(message, "node-9"))
    assert sender == "node-9"
    assert read == message and type(read) is type(message)


def test_every_wire_kind_is_tested_and_local_kinds_never_go_on_the_wire() -> None:
    assert {type(m) for m in EVERY_KIND} == set(WIRE_KINDS.values())
    assert LinkUp.KIND not in WIRE_KINDS


def test_an_emit_carries_its_packet_as_bytes_and_never_its_local_event() -> None:
    body = b'42["feed.update",{"feed":"user:a","new":[]}]'
    raw = encode(Emit(["feed:user:a"], 20, body, {"not": "sent"}), "n")
    assert raw.endswith(b"\n" + body) and b"not" not in raw.partition(b"\n")[0]
    _, read = decode(raw)
    assert isinstance(read, Emit) and read.body == body and read.event is None


def test_a_reaction_emit_carries_its_counts_version_beside_the_event() -> None:
    data = {"activity_id": "a1", "reaction": {"id": "r"}, "reaction_counts": {"like": 3}}
    raw = encode(ReactionEmit(["reactions:a1"], "reaction.added", data, 42), "n")
    _, read = decode(raw)
    assert isinstance(read, ReactionEmit) and read.version == 42 and read.data == data
    assert "version" not in read.data  # the sockets get `data`, never the version
    # from a node that sends no version: read as older than any
    old = raw.replace(b',"version":42', b"")
    assert old != raw and decode(old)[1] == ReactionEmit(["reactions:a1"], "reaction.added", data)


@pytest.mark.parametrize(
    "raw",
    [b"not json\n", b"[1]\n", b'{"k": "nope", "n": "x"}\n', b'{"k": "inval", "n": "x"}\n'],
)
def test_what_is_no_message_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


async def test_one_node_handles_its_echo_kinds_and_a_failing_handler_stops_no_other() -> None:
    bus = LocalBus("node")
    heard: list[Message] = []

    def broken(message: FollowChanged) -> None:
        raise RuntimeError("a bug in one subscriber")

    async def kept(message: FollowChanged) -> None:
        heard.append(message)

    bus.on(FollowChanged, broken)
    bus.on(FollowChanged, kept)
    bus.on(Forget, heard.append)
    await bus.publish(FollowChanged("timeline:a", "user:b", True), ["feed:timeline:a"])
    await bus.publish(Forget(["x"]))  # for the other nodes only: there are none
    assert heard == [FollowChanged("timeline:a", "user:b", True)]
    assert bus.state == "off" and bus.up
