"""What the OpenAPI fuzzing found answering 500, each now a 400 (or an answer): JSON the store
cannot hold, and an id bound past the year 9999."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.errors import InputError
from tidings.domain.ids import id_time
from tidings.domain.objects import check_data
from tidings.domain.validation import check_storable


@pytest.mark.parametrize(
    "data",
    [
        {"n": 2**63},
        {"n": [-(2**63) - 1]},
        {"a\x00b": 1},
        {"text": "\udc00"},
        {"\ud800": "key"},
        {"deep": [{"deeper": {"n": 10**30}}]},
    ],
)
def test_what_the_store_cannot_hold_is_bad_input(data: dict[str, Any]) -> None:
    with pytest.raises(InputError) as raised:
        check_storable(data, "data")
    assert list(raised.value.fields) == ["data"]
    with pytest.raises(InputError):
        check_data(data, "data", 10_000)


def test_what_it_can_hold_passes() -> None:
    data = {"n": 2**63 - 1, "m": -(2**63), "f": 1e300, "t": "é✓𝄞", "l": [True, None, {"k": ""}]}
    check_storable(data, "data")
    assert check_data(data, "data", 10_000) == data


def test_json_as_deep_as_the_parser_takes_is_walked_without_recursion() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    check_storable({"d": deep}, "data")


def test_an_id_past_the_year_9999_is_the_last_time_there_is() -> None:
    assert id_time("f20e4698-abed-751f-a9d5-27ff5ad4e2a1").year == 9999
    assert id_time("ffffffff-ffff-7fff-bfff-ffffffffffff").year == 9999
    assert id_time("01a25196-3d00-7e31-bfd1-c441cf8f01ff").year == 2026
