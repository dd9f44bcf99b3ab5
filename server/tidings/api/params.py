"""Query parameters as Stream's SDKs send them."""

from __future__ import annotations

from collections.abc import Mapping

from ..domain.errors import InputError
from ..domain.ids import is_activity_id

TRUE = frozenset({"1", "true", "True", "TRUE", "yes", "on"})
FALSE = frozenset({"", "0", "false", "False", "FALSE", "no", "off"})
MAX_LIMIT = 100
MAX_OFFSET = 100_000


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be an integer", {name: ["not an integer"]}) from None
    if not low <= value <= high:
        raise InputError(
            f"{name} must be between {low} and {high}", {name: [f"between {low} and {high}"]}
        )
    return value


def boolean(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "")
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise InputError(f"{name} must be a boolean (1, true)", {name: ["not a boolean"]})


def activity_ids(query: Mapping[str, str], *names: str) -> dict[str, str]:
    found = {}
    for name in names:
        value = query.get(name)
        if value:
            if not is_activity_id(value):
                raise InputError(f"{name} must be an activity id", {name: ["not an activity id"]})
            found[name] = value
    return found


def id_list(query: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in query.get(name, "").split(",") if part.strip()]
