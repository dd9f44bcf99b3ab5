"""The merge of sorted id streams behind reads of follower feeds of pull feeds
(server/tidings/domain/merge.py), against the obvious definition: the union of the streams,
one item per id (the first stream's), within the bounds, sorted, then offset and limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.merge import Bound, Bounds, merge_newest_first, merge_oldest_first

ids = st.integers(0, 60).map(lambda n: f"{n:04d}")
maybe_id = st.none() | ids
streams = st.lists(st.sets(ids, max_size=25), min_size=1, max_size=4)


def tagged(id_sets: list[set[str]], reverse: bool) -> list[list[tuple[str, int]]]:
    """Each stream sorted, each item tagged with its stream's index."""
    return [[(i, n) for i in sorted(s, reverse=reverse)] for n, s in enumerate(id_sets)]


def reference(id_sets: list[set[str]], keep: Bounds, reverse: bool) -> list[tuple[str, int]]:
    first: dict[str, int] = {}
    for n, s in enumerate(id_sets):
        for i in s:
            first.setdefault(i, n)
    return sorted(((i, n) for i, n in first.items() if keep.admits(i)), reverse=reverse)


def admitted_naively(
    value: str, lt: str | None, lte: str | None, gt: str | None, gte: str | None
) -> bool:
    return (
        (lt is None or value < lt)
        and (lte is None or value <= lte)
        and (gt is None or value > gt)
        and (gte is None or value >= gte)
    )


@given(ids, maybe_id, maybe_id, maybe_id, maybe_id)
def test_bounds_admit_what_every_parameter_admits(
    value: str, lt: str | None, lte: str | None, gt: str | None, gte: str | None
) -> None:
    bounds = Bounds.of(lt, lte, gt, gte)
    assert bounds.admits(value) == admitted_naively(value, lt, lte, gt, gte)
    if bounds.empty:
        assert not bounds.admits(value)


@given(ids, maybe_id, maybe_id, maybe_id, maybe_id, ids)
def test_narrowing_above_a_floor_is_an_extra_exclusive_bound(
    value: str, lt: str | None, lte: str | None, gt: str | None, gte: str | None, floor: str
) -> None:
    narrowed = Bounds.of(lt, lte, gt, gte).above(floor)
    assert narrowed.admits(value) == (admitted_naively(value, lt, lte, gt, gte) and value > floor)


@given(
    streams,
    maybe_id,
    maybe_id,
    maybe_id,
    maybe_id,
    st.integers(0, 30),
    st.none() | st.integers(1, 30),
)
def test_newest_first_is_the_page_of_the_sorted_distinct_union(
    id_sets: list[set[str]],
    lt: str | None,
    lte: str | None,
    gt: str | None,
    gte: str | None,
    offset: int,
    limit: int | None,
) -> None:
    bounds = Bounds.of(lt, lte, gt, gte)
    expected = reference(id_sets, bounds, reverse=True)
    stop = None if limit is None else offset + limit
    assert merge_newest_first(tagged(id_sets, True), bounds, offset, limit) == expected[offset:stop]


@given(streams, maybe_id, maybe_id, st.integers(0, 30), st.integers(1, 30))
def test_each_stream_needs_only_its_first_offset_plus_limit_items_within_the_bounds(
    id_sets: list[set[str]], lt: str | None, gte: str | None, offset: int, limit: int
) -> None:
    """What the store reads: every stream cut to offset + limit items, bounds applied."""
    bounds = Bounds.of(id_lt=lt, id_gte=gte)
    cut = [
        [item for item in stream if bounds.admits(item[0])][: offset + limit]
        for stream in tagged(id_sets, True)
    ]
    whole = merge_newest_first(tagged(id_sets, True), bounds, offset, limit)
    assert merge_newest_first(cut, bounds, offset, limit) == whole


@given(streams, ids, st.integers(1, 30))
def test_oldest_first_is_the_distinct_union_after_since(
    id_sets: list[set[str]], after: str, limit: int
) -> None:
    expected = reference(id_sets, Bounds(lower=Bound(after, False)), reverse=False)
    cut = [[item for item in s if item[0] > after][:limit] for s in tagged(id_sets, False)]
    assert merge_oldest_first(cut, after, limit) == expected[:limit]
    assert merge_oldest_first(tagged(id_sets, False), after, limit) == expected[:limit]


def test_the_first_stream_wins_a_repeated_id() -> None:
    own = [("0005", "own"), ("0003", "own")]
    pulled = [("0005", "pulled"), ("0004", "pulled")]
    assert merge_newest_first([own, pulled]) == [
        ("0005", "own"),
        ("0004", "pulled"),
        ("0003", "own"),
    ]
    assert merge_newest_first([pulled, own])[0] == ("0005", "pulled")
