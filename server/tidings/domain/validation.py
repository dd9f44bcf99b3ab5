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
