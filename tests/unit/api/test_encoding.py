"""Answers' JSON (api/encoding.py): orjson, what it refuses written as `json` writes it, and
parts encoded once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tidings.api.encoding import encode, encoded_once


def test_answers_read_back_as_json_wrote_them() -> None:
    body = {"s": "caf\u00e9 \U0001f600", "n": [1, -2.5, 10**18, None, True], "e": {}, "l": []}
    assert json.loads(encode(body)) == body
    assert b" " not in encode({"a": [1, 2]})  # compact


def test_what_orjson_refuses_is_written_by_json_and_other_types_stay_refused() -> None:
    assert json.loads(encode({"big": 2**70})) == {"big": 2**70}
    assert json.loads(encode({1: "one"})) == {"1": "one"}
    with pytest.raises(TypeError):
        encode({"t": datetime.now(UTC)})


def test_parts_encoded_once_are_written_as_they_are_even_beside_what_orjson_refuses() -> None:
    part = {"id": "r1", "data": {"text": "caf\u00e9"}, "n": 2**70}
    once = encoded_once(part)
    body = {"results": [once, once], "big": -(2**65), "ok": 2**64 - 1}
    assert json.loads(encode(body)) == {"results": [part, part], "big": -(2**65), "ok": 2**64 - 1}
    assert json.loads(encode({"results": [once]})) == {"results": [part]}
