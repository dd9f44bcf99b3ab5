"""The cluster view of presence (realtime/presence_view.py): what joins and leaves, per user."""

from __future__ import annotations

from tidings.realtime.presence.view import JOIN, LEAVE, Change, Entry, View

ROOM = "raid:1"


def entry(info: object = None, connections: int = 1, since: float = 1.0) -> Entry:
    return Entry(info, connections, since)


def test_a_users_first_entry_joins_and_the_last_leaves_whatever_the_nodes() -> None:
    view = View()
    assert view.put("A", ROOM, "bob", entry({"r": 1})) == Change(JOIN, ROOM, "bob", {"r": 1})
    assert view.put("B", ROOM, "bob", entry({"r": 2}, since=2.0)) is None  # a second node
    assert view.put("A", ROOM, "bob", entry({"r": 1}, connections=2)) is None  # a second socket
    member = view.member(ROOM, "bob")
    assert member is not None and (member.info, member.connections) == ({"r": 1}, 3)
    assert view.put("A", ROOM, "bob", None) is None  # still on B
    member = view.member(ROOM, "bob")
    assert member is not None and (member.info, member.connections) == ({"r": 2}, 1)
    assert view.put("B", ROOM, "bob", None) == Change(LEAVE, ROOM, "bob")
    assert view.member(ROOM, "bob") is None and view.count(ROOM) == 0
    assert view.put("B", ROOM, "bob", None) is None  # nothing to leave twice
    assert view.nodes() == set()


def test_info_is_the_earliest_entrys_on_every_node_alike() -> None:
    one, other = View(), View()
    early, late = entry({"x": "early"}, since=1.0), entry({"x": "late"}, since=5.0)
    one.put("A", ROOM, "bob", early)
    one.put("B", ROOM, "bob", late)
    other.put("B", ROOM, "bob", late)  # heard in the other order
    other.put("A", ROOM, "bob", early)
    assert one.member(ROOM, "bob") == other.member(ROOM, "bob")
    member = one.member(ROOM, "bob")
    assert member is not None and member.info == {"x": "early"}


def test_a_dropped_node_makes_only_its_own_users_leave_once() -> None:
    view = View()
    view.put("A", ROOM, "alice", entry())
    view.put("C", ROOM, "alice", entry())
    view.put("C", ROOM, "dave", entry())
    view.put("C", "raid:2", "dave", entry())
    changes = view.drop_node("C")
    assert sorted((c.feed, c.user_id, c.kind) for c in changes) == [
        ("raid:1", "dave", LEAVE), ("raid:2", "dave", LEAVE)]  # fmt: skip
    assert view.drop_node("C") == []
    assert view.nodes() == {"A"}


def test_replacing_a_node_answers_the_difference() -> None:
    view = View()
    view.put("B", ROOM, "bob", entry())
    view.put("B", ROOM, "ann", entry())
    changes = view.replace_node("B", {(ROOM, "bob"): entry(connections=2), (ROOM, "cy"): entry()})
    assert sorted((c.user_id, c.kind) for c in changes) == [("ann", LEAVE), ("cy", JOIN)]
    member = view.member(ROOM, "bob")
    assert member is not None and member.connections == 2


def test_pages_by_user_id_with_a_cursor() -> None:
    view = View()
    for user in ("c", "a", "d", "b"):
        view.put("A", ROOM, user, entry())
    members, cursor = view.page(ROOM, 3, None)
    assert [m.user_id for m in members] == ["a", "b", "c"] and cursor == "c"
    members, cursor = view.page(ROOM, 3, cursor)
    assert [m.user_id for m in members] == ["d"] and cursor is None
    assert view.page("raid:none", 10, None) == ([], None)
    assert Entry.of(entry({"k": 1}, 2, 3.5).wire()) == entry({"k": 1}, 2, 3.5)
