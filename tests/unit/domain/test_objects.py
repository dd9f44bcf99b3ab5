"""Users' and collection entries' pure parts: ids as Stream allows them, the bound on `data`,
references and foreign ids, and the shapes answered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.domain.errors import InputError, PayloadTooLargeError
from tidings.domain.objects import (
    Entry,
    EntryKey,
    User,
    check_data,
    check_id,
    entry_reference,
    parse_foreign_id,
    user_reference,
)

WHEN = datetime(2026, 12, 7, 5, 40, 12, 345000, tzinfo=UTC)


@pytest.mark.parametrize("value", ["alice", "a-b_C9", "x" * 255, 42])
def test_ids_stream_allows(value: object) -> None:
    assert check_id(value, "id") == str(value)


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "!abc!", "a:b", "é", None, True, 1.5])
def test_ids_stream_refuses(value: object) -> None:
    with pytest.raises(InputError) as refused:
        check_id(value, "id")
    assert "id" in refused.value.fields


def test_data_is_an_object_within_its_bound() -> None:
    assert check_data(None, "data", 100) == {}
    assert check_data({"a": 1}, "data", 100) == {"a": 1}
    with pytest.raises(InputError):
        check_data("some string", "data", 100)
    with pytest.raises(InputError):
        check_data({}, "data", 100, allow_empty=False)
    with pytest.raises(PayloadTooLargeError):
        check_data({"a": "x" * 100}, "data", 100)


def test_references_and_foreign_ids() -> None:
    assert user_reference("SU:alice") == "alice"
    assert user_reference("alice") is None
    assert user_reference("SU:bad id") is None
    assert entry_reference("SO:food:burger") == EntryKey("food", "burger")
    assert entry_reference("SO:food") is None
    assert entry_reference("SU:food:burger") is None
    assert parse_foreign_id("food:burger") == EntryKey("food", "burger")
    assert str(EntryKey("food", "burger")) == "food:burger"


def test_the_shapes_answered() -> None:
    assert User("alice", {"n": 1}, WHEN, WHEN).public() == {
        "created_at": "2026-12-07T05:40:12.345000Z",
        "updated_at": "2026-12-07T05:40:12.345000Z",
        "id": "alice",
        "data": {"n": 1},
    }
    entry = Entry("food", "burger", {"n": 1}, "alice", WHEN, WHEN).public()
    assert entry["foreign_id"] == "food:burger"
    assert set(entry) == {"collection", "created_at", "data", "foreign_id", "id", "updated_at"}
