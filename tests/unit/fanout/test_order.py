"""The order of a push's batches (fanout/order.py): active follower feeds first, every member
in exactly one batch, each batch naming the chunks it holds members of."""

from __future__ import annotations

from bson import ObjectId

from tidings.fanout.order import parts_of
from tidings.store.mongo.follows import Member


def chunk(prefix: str, count: int) -> list[Member]:
    return [(f"timeline:{prefix}{i}", ObjectId()) for i in range(count)]


def feeds(members: list[Member]) -> list[str]:
    return [feed for feed, _ in members]


def test_without_active_feeds_the_batches_keep_the_follower_order() -> None:
    chunks = [chunk("a", 5), chunk("b", 3)]
    parts = parts_of(chunks, 7, set(), 2)
    assert [feeds(p.members) for p in parts] == [
        ["timeline:a0", "timeline:a1"], ["timeline:a2", "timeline:a3"], ["timeline:a4"],
        ["timeline:b0", "timeline:b1"], ["timeline:b2"],
    ]  # fmt: skip
    assert [p.chunks for p in parts] == [(7,), (7,), (7,), (8,), (8,)]


def test_active_members_of_every_chunk_come_first_and_nothing_is_doubled() -> None:
    chunks = [chunk("a", 4), [], chunk("c", 4), chunk("d", 2)]
    active = {"timeline:c3", "timeline:a1", "timeline:d0", "timeline:elsewhere"}
    parts = parts_of(chunks, 0, active, 2)
    assert feeds(parts[0].members) == ["timeline:a1", "timeline:c3"]
    assert parts[0].chunks == (0, 2)
    assert feeds(parts[1].members) == ["timeline:d0"] and parts[1].chunks == (3,)
    rest = [f for p in parts[2:] for f in feeds(p.members)]
    assert not set(rest) & active
    every = [f for p in parts for f in feeds(p.members)]
    assert sorted(every) == sorted(feeds([m for c in chunks for m in c]))
    assert all(1 not in p.chunks for p in parts)  # the empty chunk has no batch
    assert all(len(p.members) <= 2 for p in parts)


def test_members_that_fit_one_batch_are_one_batch_whatever_is_active() -> None:
    chunks = [chunk("a", 3)]
    parts = parts_of(chunks, 0, {"timeline:a2"}, 3)
    assert [feeds(p.members) for p in parts] == [["timeline:a0", "timeline:a1", "timeline:a2"]]
