"""Partial and full updates, as pure validation (domain/activities.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from tidings.auth import Grant
from tidings.domain.activities import (
    Limits,
    apply_change,
    parse_changes,
    parse_full_updates,
    reference,
)
from tidings.domain.errors import InputError, PayloadTooLargeError
from tidings.domain.ids import activity_id

LIMITS = Limits(groups={"user", "timeline"}, max_bytes=1024, max_to=3)
STORED = {"actor": "a", "verb": "v", "object": "o", "time": "2024-01-01T00:00:00.000000",
          "product": {"price": 5, "name": "x"}, "n": 1}  # fmt: skip
ID = activity_id(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "f:1", {})


def change(**body: object) -> object:
    return parse_changes({"changes": [{"id": ID, **body}]}, 10)[0]


def test_dotted_set_reaches_into_objects_and_unset_removes() -> None:
    got = apply_change(STORED, change(set={"product.price": 7, "a.b": 1}, unset=["n"]), LIMITS)  # type: ignore[arg-type]
    assert got["product"] == {"price": 7, "name": "x"}
    assert got["a"] == {"b": 1}
    assert "n" not in got
    assert STORED["n"] == 1  # the stored fields are not changed in place


@pytest.mark.parametrize("path", ["id", "foreign_id", "time", "to", "to.x", "origin"])
def test_reserved_fields_are_refused_by_name(path: str) -> None:
    for body in ({"set": {path: 1}}, {"unset": [path]}):
        with pytest.raises(InputError) as raised:
            change(**body)
        assert path.split(".")[0] in raised.value.fields


def test_required_fields_stay_required_and_size_stays_bounded() -> None:
    with pytest.raises(InputError):
        apply_change(STORED, change(unset=["verb"]), LIMITS)  # type: ignore[arg-type]
    with pytest.raises(PayloadTooLargeError):
        apply_change(STORED, change(set={"big": "x" * 2000}), LIMITS)  # type: ignore[arg-type]


def test_a_change_names_its_activity_by_id_or_foreign_id_and_time() -> None:
    assert reference({"foreign_id": "f:1", "time": "2024-01-01T00:00:00"}, "") == ID
    with pytest.raises(InputError):
        reference({"foreign_id": "f:1"}, "")
    with pytest.raises(InputError):
        reference({"id": "nope"}, "")


def test_batches_are_bounded_and_full_updates_need_foreign_id_and_time() -> None:
    with pytest.raises(InputError):
        parse_changes({"changes": [{"id": ID}] * 11}, 10)
    with pytest.raises(InputError):
        parse_full_updates({"activities": [{"actor": "a", "verb": "v", "object": "o"}]}, LIMITS, 5)
    whole = {"actor": "a", "verb": "v", "object": "o", "foreign_id": "f:1",
             "time": "2024-01-01T00:00:00"}  # fmt: skip
    assert parse_full_updates({"activities": [whole]}, LIMITS, 5)[0].id == ID


def test_only_app_wide_tokens_make_the_calls_that_name_no_feed() -> None:
    server = Grant("*", "*", "*", None, None)
    activities = Grant("activities", "*", "*", None, None)
    scoped = Grant("activities", "*", "user1", None, None)
    user = Grant(None, None, None, "bob", None)
    assert server.app_wide("activities", "write") and activities.app_wide("activities", "read")
    assert not scoped.app_wide("activities", "read") and not user.app_wide("activities", "read")
    assert not activities.app_wide("feed", "write")
