"""Users and collection entries: the objects Stream stores beside feeds, which activities name
by reference (`SU:<user id>`, `SO:<collection>:<entry id>`) and reads enrich.

Pure: the shapes, their validation (Stream's id charset, a size bound on `data`) and the
references. Stream answers both with their timestamps in RFC 3339, UTC, with a `Z`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

from .errors import InputError, PayloadTooLargeError
from .validation import check_storable

# Stream: "restricted to alphanumeric characters, dashes and underscore symbols".
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
USER_PREFIX, ENTRY_PREFIX = "SU:", "SO:"


def format_stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class User:
    id: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """The user as Stream answers it and enriches `SU:` references with."""
        created, updated = self.stamps
        return {"created_at": created, "updated_at": updated, "id": self.id, "data": self.data}

    @cached_property
    def stamps(self) -> tuple[str, str]:
        """Its times as written, once per user (enriched reads take it from the object cache,
        the same object for as long as it is kept)."""
        return format_stamp(self.created_at), format_stamp(self.updated_at)

    @cached_property
    def shown(self) -> dict[str, Any]:
        """`public()` made once per user and shared by every enriched read that shows it:
        never to be changed."""
        return self.public()


class EntryKey(NamedTuple):
    collection: str
    id: str

    def __str__(self) -> str:
        """The entry's `foreign_id`, as select's `foreign_ids` name it."""
        return f"{self.collection}:{self.id}"


@dataclass(frozen=True)
class Entry:
    """A collection entry; `user_id` is its owner (who may change it with a user token)."""

    collection: str
    id: str
    data: dict[str, Any]
    user_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> EntryKey:
        return EntryKey(self.collection, self.id)

    def public(self) -> dict[str, Any]:
        """The entry as Stream answers it and enriches `SO:` references with."""
        created, updated = self.stamps
        return {
            "collection": self.collection,
            "created_at": created,
            "data": self.data,
            "foreign_id": str(self.key),
            "id": self.id,
            "updated_at": updated,
        }

    @cached_property
    def stamps(self) -> tuple[str, str]:
        """Its times as written, once per entry (as `User.stamps`)."""
        return format_stamp(self.created_at), format_stamp(self.updated_at)

    @cached_property
    def shown(self) -> dict[str, Any]:
        """`public()` made once per entry, shared (as `User.shown`): never to be changed."""
        return self.public()


def check_id(value: object, field: str) -> str:
    """A user id, a collection name or an entry id, as Stream allows them."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InputError(
            f"{field} must be 1 to 255 letters, digits, dashes or underscores",
            {field: ["only letters, digits, '-' and '_', at most 255"]},
        )
    return value


def new_entry_id() -> str:
    return str(uuid.uuid4())


def check_data(
    value: object, field: str, max_bytes: int, *, allow_empty: bool = True
) -> dict[str, Any]:
    """`data`: a JSON object of at most `max_bytes` (compact JSON); None is an empty one."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError(f"{field} must be an object", {field: ["not an object"]})
    if not value and not allow_empty:
        raise InputError(f"{field} must not be empty", {field: ["empty object"]})
    check_storable(value, field)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"{field} is {size} bytes, more than {max_bytes}",
            {field: [f"at most {max_bytes} bytes"]},
        )
    return value


def user_reference(value: str) -> str | None:
    """The user id of `SU:<id>`; None when `value` is no user reference."""
    if not value.startswith(USER_PREFIX):
        return None
    user_id = value[len(USER_PREFIX) :]
    return user_id if ID_RE.match(user_id) else None


def entry_reference(value: str) -> EntryKey | None:
    """The entry of `SO:<collection>:<id>`; None when `value` is no entry reference."""
    if not value.startswith(ENTRY_PREFIX):
        return None
    return parse_foreign_id(value[len(ENTRY_PREFIX) :])


def parse_foreign_id(value: str) -> EntryKey | None:
    collection, sep, entry_id = value.partition(":")
    if not sep or not ID_RE.match(collection) or not ID_RE.match(entry_id):
        return None
    return EntryKey(collection, entry_id)


def now() -> datetime:
    """This instant to the millisecond, as the store keeps times: what an add answers is what
    a later read of it answers."""
    when = datetime.now(UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)
