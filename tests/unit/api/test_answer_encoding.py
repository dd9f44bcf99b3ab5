"""Answers' JSON (api/errors.py `encode`): orjson, with `json` for what orjson refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tidings.api.errors import encode


def test_answers_read_back_as_json_wrote_them() -> None:
    body = {"s": "caf\u00e9 \U0001f600", "n": [1, -2.5, 10**18, None, True], "e": {}, "l": []}
    assert json.loads(encode(body)) == body
    assert b" " not in encode({"a": [1, 2]})  # compact


def test_what_orjson_refuses_is_written_by_json_and_other_types_stay_refused() -> None:
    assert json.loads(encode({"big": 2**70})) == {"big": 2**70}
    assert json.loads(encode({1: "one"})) == {"1": "one"}
    with pytest.raises(TypeError):
        encode({"t": datetime.now(UTC)})
