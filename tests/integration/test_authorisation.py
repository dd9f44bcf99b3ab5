"""Who may write, follow and read what, over REST (raw requests and Stream's Python SDK) and
the socket: activity_to_targets' targets, following private feeds (`follow = "readers"`, the
raid group), the compact feed ids of scoped tokens. Every refusal is a 403
NotAllowedException that changes nothing and sends nothing: a socket watching the feeds
concerned sees a later marker and nothing before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import socketio
import stream
from stream.client import StreamClient
from stream.exceptions import NotAllowedException

from harness.common import SERVER_TOKEN, token
from tests.integration.rest_calls import (
    WAIT,
    Api,
    Doc,
    Watcher,
    activity,
    feed_path,
    targets_path,
    when,
)
from tests.support import API_KEY, API_SECRET, ServerProcess


@pytest.fixture
def server_api(server: ServerProcess) -> Api:
    return Api(server, SERVER_TOKEN)


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.close()


# --- activity_to_targets ----------------------------------------------------------------------


def test_a_room_token_cannot_send_its_activity_to_other_feeds(
    server: ServerProcess, server_api: Api, watchers: list[Watcher], uid: str
) -> None:
    """The room token the README has game backends hand to players: it may retarget the
    room's activity only to feeds it may write (the room), or with each entry's own token."""
    room, celebrity, fan = f"raid:{uid}", f"user:{uid}celeb", f"timeline:{uid}fan"
    server_api.ok("POST", feed_path(fan, "follows/"), {"target": celebrity})
    player = Api(server, {"resource": "*", "action": "*", "feed_id": f"raid{uid}",
                          "user_id": "bob"})  # fmt: skip
    added = player.ok("POST", feed_path(room), activity(f"r:{uid}"))["id"]
    watcher = Watcher(server, [celebrity, fan, f"timeline:{uid}alice"])
    watchers.append(watcher)
    move = {"foreign_id": f"r:{uid}", "time": when(1)}
    player.refused("POST", targets_path(room),
                   {**move, "added_targets": [f"timeline:{uid}alice", celebrity]})  # fmt: skip
    player.refused("POST", targets_path(room), {**move, "new_targets": [celebrity]})
    assert server_api.ids(celebrity) == [] and server_api.ids(f"timeline:{uid}alice") == []
    assert server_api.ids(fan) == []
    stored = server_api.ok("GET", "activities/", ids=added)["results"]
    assert [a.get("to", []) for a in stored] == [[]]
    marker = watcher.quiet(added, celebrity, fan)
    # The entry's own feed token (after a space, as the SDKs send `to`) authorises it.
    celebrity_token = token({"resource": "feed", "action": "write", "feed_id": f"user{uid}celeb"})
    done = player.ok("POST", targets_path(room),
                     {**move, "added_targets": [f"{celebrity} {celebrity_token}"]})  # fmt: skip
    assert done["activity"]["to"] == [celebrity]
    assert server_api.ids(celebrity) == [marker, added]


def test_removing_or_replacing_targets_needs_the_right_to_write_them(
    server: ServerProcess, server_api: Api, watchers: list[Watcher], uid: str
) -> None:
    """A target put there by the backend stays when a token that may not write it asks to
    drop it, by removed_targets or by new_targets leaving it out."""
    room, victim = f"raid:{uid}", f"user:{uid}victim"
    added = server_api.ok("POST", feed_path(room), activity(f"v:{uid}", to=[victim]))["id"]
    watcher = Watcher(server, [victim])
    watchers.append(watcher)
    move = {"foreign_id": f"v:{uid}", "time": when(1)}
    player = Api(server, {"resource": "*", "action": "*", "feed_id": f"raid{uid}"})
    player.refused("POST", targets_path(room), {**move, "removed_targets": [victim]})
    player.refused("POST", targets_path(room), {**move, "new_targets": []})
    assert server_api.ids(victim) == [added]
    stored = server_api.ok("GET", "activities/", ids=added)["results"]
    assert [a["to"] for a in stored] == [[victim]]
    marker = watcher.quiet(added, victim)
    # A user token on its own feed: the same for a target the backend added.
    bob = Api(server, {"user_id": f"{uid}bob"})
    mine = server_api.ok("POST", feed_path(f"user:{uid}bob"),
                         activity(f"b:{uid}", to=[victim]))["id"]  # fmt: skip
    bob_move = {"foreign_id": f"b:{uid}", "time": when(1)}
    bob.refused("POST", targets_path(f"user:{uid}bob"), {**bob_move, "removed_targets": [victim]})
    bob.refused("POST", targets_path(f"user:{uid}bob"), {**bob_move, "new_targets": []})
    bob.refused("POST", targets_path(f"user:{uid}bob"),
                {**bob_move, "new_targets": [victim, f"user:{uid}other"]})  # fmt: skip
    assert set(server_api.ids(victim)) == {marker, mine, added}
    # The SDK's own server-side call (a `feed_targets` token for the feed) still names any.
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    client.feed("raid", uid).update_activity_to_targets(f"v:{uid}", when(1), new_targets=[])
    assert server_api.ids(victim) == [marker, mine]


# --- following private feeds ----------------------------------------------------------------


def test_a_user_token_cannot_follow_a_private_room_it_may_not_read(
    server: ServerProcess, server_api: Api, watchers: list[Watcher], uid: str
) -> None:
    room, member = f"raid:{uid}secret", f"timeline:{uid}member"
    secret_id = server_api.ok("POST", feed_path(room), activity(f"s:{uid}"))["id"]
    server_api.ok("POST", feed_path(member, "follows/"), {"target": room})
    mallory = Api(server, {"user_id": f"{uid}mallory"})
    watcher = Watcher(server, [f"user:{uid}mallory", f"timeline:{uid}mallory", member, room])
    watchers.append(watcher)
    for source in (f"user:{uid}mallory", f"timeline:{uid}mallory"):
        mallory.refused("POST", feed_path(source, "follows/"), {"target": room})
        # A target_token that does not read the room is no better.
        own = token({"user_id": f"{uid}mallory"})
        mallory.refused(
            "POST", feed_path(source, "follows/"), {"target": room, "target_token": own}
        )
        assert server_api.following(source) == [] and server_api.ids(source) == []
    followers = server_api.ok("GET", feed_path(room, "followers/"))["results"]
    assert [f["feed_id"] for f in followers] == [member]
    # What the room gets later reaches its member's feed live, and none of mallory's.
    later = watcher.quiet(secret_id, room, member)
    assert sorted(e["feed"] for e in watcher.named(later)) == sorted([member, room])
    assert server_api.ids(f"timeline:{uid}mallory") == []
    # With a target_token that may read the room (what the backend hands a member), it may.
    reader = token({"resource": "feed", "action": "read", "feed_id": f"raid{uid}secret"})
    mallory.ok("POST", feed_path(f"timeline:{uid}mallory", "follows/"),
               {"target": room, "target_token": reader})  # fmt: skip
    assert set(server_api.ids(f"timeline:{uid}mallory")) == {secret_id, later}


def test_private_rooms_are_followed_with_read_rights_only(
    server: ServerProcess, server_api: Api, uid: str
) -> None:
    """A server token, an app-wide follower token (follow_many's), a user token whose user id
    is the room's, or Stream's Python SDK (which sends a target_token) may; a room token may not
    make its room follow another room, even with its own token as target_token."""
    rooms = [f"raid:{uid}r{i}" for i in range(3)]
    for room in rooms:
        server_api.ok("POST", feed_path(room), activity(f"{room}:a"))
    server_api.ok("POST", feed_path(f"timeline:{uid}a", "follows/"), {"target": rooms[0]})
    Api(server, {"resource": "follower", "action": "*", "feed_id": "*"}).ok(
        "POST", feed_path(f"timeline:{uid}b", "follows/"), {"target": rooms[0]}
    )
    Api(server, {"user_id": f"{uid}r1"}).ok(
        "POST", feed_path(f"timeline:{uid}r1", "follows/"), {"target": rooms[1]}
    )
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    client.feed("timeline", f"{uid}c").follow("raid", f"{uid}r2")
    assert server_api.following(f"timeline:{uid}c") == [rooms[2]]
    room_token = {"resource": "*", "action": "*", "feed_id": f"raid{uid}r0", "user_id": "bob"}
    player = Api(server, room_token)
    player.refused("POST", feed_path(rooms[0], "follows/"), {"target": rooms[1]})
    player.refused("POST", feed_path(rooms[0], "follows/"),
                   {"target": rooms[1], "target_token": token(room_token)})  # fmt: skip
    with pytest.raises(NotAllowedException):  # the SDK with a client's token, as a game sends
        scoped_client(server, room_token).feed("raid", f"{uid}r0").follow("raid", f"{uid}r1")
    assert server_api.following(rooms[0]) == []
    # Open groups keep Stream's rule: the room may follow a user feed.
    player.ok("POST", feed_path(rooms[0], "follows/"), {"target": f"user:{uid}x"})


def test_follow_many_checks_each_target_group_rule(
    server: ServerProcess, server_api: Api, uid: str
) -> None:
    room = f"raid:{uid}"
    server_api.ok("POST", feed_path(room), activity(f"m:{uid}"))
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    client.follow_many([{"source": f"timeline:{uid}a", "target": room},
                        {"source": f"timeline:{uid}b", "target": f"user:{uid}"}])  # fmt: skip
    assert server_api.following(f"timeline:{uid}a") == [room]
    # A token for one feed is refused whole, private room or not.
    one = Api(server, {"resource": "follower", "action": "*", "feed_id": f"timeline{uid}c"})
    one.refused("POST", "follow_many/", [{"source": f"timeline:{uid}c", "target": room}])
    assert server_api.following(f"timeline:{uid}c") == []


def scoped_client(server: ServerProcess, claims: Doc) -> StreamClient:
    """Stream's Python SDK whose every call (and every target_token) carries `claims`."""
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    fixed = token(claims)
    client.create_jwt_token = lambda *a, **k: fixed  # type: ignore[method-assign]
    return client


# --- compact feed ids in scoped tokens --------------------------------------------------------


def test_a_compact_feed_id_names_one_feed(server: ServerProcess, server_api: Api, uid: str) -> None:
    """`timeline_aggregated<id>` could be `timeline:_aggregated<id>` or
    `timeline_aggregated:<id>` (both groups are configured): it names the longest group's feed;
    the other is named with the colon."""
    grouped, flat = f"timeline_aggregated:{uid}", f"timeline:_aggregated{uid}"
    for feed in (grouped, flat):
        server_api.ok("POST", feed_path(feed), activity(f"{feed}:a"))
    compact = Api(server, {"resource": "feed", "action": "read",
                           "feed_id": f"timeline_aggregated{uid}"})  # fmt: skip
    compact.ok("GET", feed_path(grouped))
    compact.refused("GET", feed_path(flat))
    colon = Api(server, {"resource": "feed", "action": "read", "feed_id": flat})
    colon.ok("GET", feed_path(flat))
    colon.refused("GET", feed_path(grouped))
    # The socket's subscribe reads tokens the same way.
    sock = socketio.Client(reconnection=False)
    claims = {"resource": "feed", "action": "read", "feed_id": f"timeline_aggregated{uid}"}
    sock.connect(server.base_url, auth={"token": token(claims)}, transports=["websocket"],
                 wait_timeout=WAIT)  # fmt: skip
    try:
        assert sock.call("subscribe", {"feed": grouped}, timeout=WAIT)["ok"]
        refused = sock.call("subscribe", {"feed": flat}, timeout=WAIT)
        assert not refused["ok"] and refused["error"]["exception"] == "NotAllowedException"
    finally:
        sock.disconnect()
