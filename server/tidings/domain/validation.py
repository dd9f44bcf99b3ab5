"""Marshmallow's validation errors, told as Stream tells them."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from .errors import InputError


def input_error(exc: ValidationError, prefix: str = "") -> InputError:
    """An InputError naming every offending field (`prefix` places it inside a batch)."""
    messages: Any = exc.messages
    if not isinstance(messages, dict):
        messages = {"body": messages}
    fields = {f"{prefix}{name}": _as_list(message) for name, message in messages.items()}
    return InputError("Errors for fields " + ", ".join(f"'{name}'" for name in fields), fields)


def _as_list(message: Any) -> list[str]:
    if isinstance(message, list):
        return [str(m) for m in message]
    if isinstance(message, dict):
        return [f"{key}: {value}" for key, value in message.items()]
    return [str(message)]


I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def check_storable(value: Any, field: str) -> None:
    """Refuse (InputError) JSON that the store cannot hold as a document: an integer beyond
    64 bits, a key with a NUL byte, a string with a lone surrogate (`"\\udc00"` is valid
    JSON, but no UTF-8). Walked without recursion: JSON as deep as the parser takes."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if "\x00" in key:
                    raise InputError(f"{field} has a key with a NUL byte", {field: ["NUL in key"]})
                _utf8(key, field)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _utf8(item, field)
        elif type(item) is int and not I64_MIN <= item <= I64_MAX:
            raise InputError(f"{field} has an integer beyond 64 bits", {field: ["too large"]})


def _utf8(text: str, field: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InputError(f"{field} has text that is no UTF-8", {field: ["not UTF-8"]}) from None
