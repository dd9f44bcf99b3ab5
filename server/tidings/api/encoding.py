"""Answers' JSON: compact UTF-8 written by orjson (ten times faster than `json`: an enriched
page is 110 KB), with parts many answers share encoded once (`encoded_once`).

What orjson refuses of the data it is given (an integer beyond 64 bits, a key that is no
string) is written as `json` would write it. Datetimes and dataclasses, which orjson would
write, stay refused: a time in an answer is always one formatted on purpose (Stream's formats).
Unlike `json`, non-ASCII text is not escaped.
"""

from __future__ import annotations

from typing import Any

import orjson

_NATIVE_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


def encode(value: Any) -> bytes:
    """`value` as an answer's JSON."""
    try:
        return orjson.dumps(value, option=_NATIVE_ONLY)
    except orjson.JSONEncodeError:
        # the rare value orjson refuses; parts encoded once stay as they are
        return orjson.dumps(_writable(value), option=_NATIVE_ONLY | orjson.OPT_NON_STR_KEYS)


def encoded_once(value: dict[str, Any]) -> Any:
    """`value` encoded now, to be written as it is into every answer that holds it (a part
    that many answers share: store/memory/reaction_cache.py `ShownReactions`)."""
    try:
        return orjson.Fragment(orjson.dumps(value, option=_NATIVE_ONLY))
    except orjson.JSONEncodeError:
        return orjson.Fragment(encode(value))


def _writable(value: Any) -> Any:
    """`value` with every integer beyond orjson's range written as its digits, as `json` does."""
    if isinstance(value, dict):
        return {k: _writable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(v) for v in value]
    if type(value) is int and not _I64_MIN <= value <= _U64_MAX:
        return orjson.Fragment(str(value).encode())
    return value
