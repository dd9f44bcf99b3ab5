"""The room registry shared by both transports, and pull-room reference counts (pure)."""

from __future__ import annotations

from tidings.realtime.transport.peers import Peer, Rooms
from tidings.realtime.transport.rooms import feed_room, pull_room


def test_join_leave_and_recipients_once() -> None:
    rooms = Rooms()
    a, b, c = Peer("a"), Peer("b"), Peer("c")
    for peer in (a, b):
        rooms.join(peer, feed_room("user:x"))
    rooms.join(a, feed_room("timeline:a"))
    rooms.join(a, feed_room("timeline:a"))  # twice: once
    rooms.join(c, feed_room("timeline:c"))
    assert a.rooms == (feed_room("user:x"), feed_room("timeline:a"))
    assert a.feeds() == ["user:x", "timeline:a"]

    both = rooms.recipients([feed_room("user:x"), feed_room("timeline:a")])
    assert sorted(both, key=lambda p: p.sid) == [a, b]  # a is in both rooms: listed once
    assert rooms.recipients([feed_room("nobody")]) == []

    rooms.leave(a, feed_room("user:x"))
    assert rooms.recipients([feed_room("user:x")]) == [b]
    rooms.leave_all(b)
    assert feed_room("user:x") not in set(rooms)  # an empty room is forgotten
    assert b.rooms == ()


def test_recipients_is_a_snapshot() -> None:
    rooms = Rooms()
    peers = [Peer(str(n)) for n in range(5)]
    for peer in peers:
        rooms.join(peer, "r")
    snapshot = rooms.recipients(["r"])
    for peer in peers:
        rooms.leave_all(peer)  # no "set changed size during iteration" for a broadcast
    assert len(snapshot) == 5


def test_room_names_are_shared_strings() -> None:
    rooms = Rooms()
    a, b = Peer("a"), Peer("b")
    rooms.join(a, "".join(["feed:", "user:x"]))
    rooms.join(b, "".join(["feed:", "user:x"]))
    assert a.rooms[0] is b.rooms[0]


def test_pull_rooms_are_left_when_no_subscribed_feed_brings_them() -> None:
    rooms = Rooms()
    peer = Peer("p")
    celeb = pull_room("user:celeb")
    rooms.add_pull(peer, celeb, "timeline:a")
    rooms.add_pull(peer, celeb, "timeline:b")  # two subscribed feeds follow the celebrity
    assert rooms.recipients([celeb]) == [peer]

    rooms.drop_feed_pulls(peer, "timeline:a")
    assert rooms.recipients([celeb]) == [peer]  # timeline:b still brings it
    rooms.drop_pull(peer, celeb, "timeline:b")
    assert rooms.recipients([celeb]) == []
    assert peer.pulls is None and peer.rooms == ()

    rooms.drop_pull(peer, celeb, "timeline:b")  # dropping what is not there changes nothing
    rooms.add_pull(peer, celeb, "timeline:a")
    rooms.leave_all(peer)
    assert peer.pulls is None and rooms.recipients([celeb]) == []
