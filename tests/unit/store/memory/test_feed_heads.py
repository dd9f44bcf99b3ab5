"""Feed heads (store/feed_heads.py): when a head may answer, and how writes keep it a prefix of
the feed. Pure: ids are strings that sort as activity ids do."""

from __future__ import annotations

import time

from tidings.domain.merge import Bounds
from tidings.store.memory.feed_heads import ENTRIES, FeedHeads, Head


def ids(n: int, start: int = 0) -> list[tuple[str, str | None]]:
    return [(f"id{i:04d}", None) for i in range(start + n - 1, start - 1, -1)]  # newest first


def test_a_head_answers_only_what_it_provably_holds() -> None:
    head = Head(ids(10, start=100), complete=False)  # id0109 .. id0100, the feed goes on below
    assert head.newest(Bounds(), 5) == ids(5, start=105)
    assert head.newest(Bounds(), 11) is None  # past the head: the store's
    assert head.newest(Bounds.of(id_lt="id0103"), 3) == ids(3, start=100)
    assert head.newest(Bounds.of(id_lt="id0103"), 4) is None
    assert head.newest(Bounds.of(id_gt="id0105"), 25) == ids(4, start=106)  # reaches below
    assert head.newest(Bounds.of(id_gt="id0050"), 25) is None
    assert head.after("id0107", 10) == [("id0108", None), ("id0109", None)]
    assert head.after("id0099", 10) is None  # entries at or below id0099 are not known
    assert Head(ids(3), complete=True).newest(Bounds(), 25) == ids(3)
    assert Head(ids(3), complete=True).after("", 25) == list(reversed(ids(3)))


def test_writes_keep_a_head_a_prefix() -> None:
    head = Head(ids(3, start=10), complete=False)  # id0012 .. id0010
    head.add(("id0011x", "user:a"))  # between: in its place
    head.add(("id0005", None))  # below an incomplete head: unknown place, left out
    head.add(("id0012", None))  # there already
    assert [i for i, _ in head.items] == ["id0012", "id0011x", "id0011", "id0010"]
    full = Head(ids(ENTRIES), complete=True)
    full.add(("id9999", None))
    assert len(full.items) == ENTRIES and not full.complete and full.items[0][0] == "id9999"


def test_fills_replay_this_nodes_writes_and_drop_on_other_nodes() -> None:
    one = Head(ids(1), complete=True).size()
    heads = FeedHeads(max_bytes=Head(ids(3), complete=True).size())  # a, or c and d
    fill = heads.begin("timeline:a")
    heads.added([("timeline:a", ("id0009", None))])  # written while the read was out
    heads.removed("timeline:a", lambda i: i[0] != "id0001")
    heads.end(fill, ids(3), complete=True)  # the read saw neither write
    head = heads.get("timeline:a")
    assert head is not None and [i for i, _ in head.items] == ["id0009", "id0002", "id0000"]
    fill = heads.begin("timeline:b")
    heads.drop(["timeline:b"])  # another node wrote it meanwhile: unknown, not kept
    heads.end(fill, ids(3), complete=True)
    assert heads.get("timeline:b") is None
    for feed in ("timeline:c", "timeline:d"):
        heads.end(heads.begin(feed), ids(1), complete=True)
    assert len(heads) == 2 and heads.get("timeline:a") is None  # least recently used out
    assert heads.bytes == 2 * one
    heads.distrust()  # the link was down: nothing read before is answered
    assert heads.get("timeline:c") is None
    assert FeedHeads(max_bytes=0).begin("timeline:a") is None  # off


def test_a_head_answers_pages_while_fresh_and_since_only_when_read_after_the_question() -> None:
    heads = FeedHeads(max_staleness=0.5)
    fill = heads.begin("timeline:a")
    asked = time.monotonic()
    heads.end(fill, ids(3), complete=True)
    assert fill is not None and heads.get("timeline:a") is not None  # a page: fresh enough
    assert heads.fresh("timeline:a", asked) is None  # read before the question: not a proof
    assert heads.fresh("timeline:a", fill.started) is not None
    fill.started -= 1.0  # as if read a second ago
    heads.end(heads.begin("timeline:b"), ids(2), complete=True)
    old = heads.fresh("timeline:b", float("-inf"))
    assert old is not None
    old.filled -= 1.0
    assert heads.get("timeline:b") is None  # older than max_staleness: read again
