"""Activity ids and activity times.

An id is a UUIDv7 whose time part is the activity's `time` (milliseconds, then the microseconds
within the millisecond in the 12 bits of `rand_a`, RFC 9562 method 3) and whose random part is a
hash of the activity's `foreign_id`, or of its content when it has none. So, as in Stream:
- ids sort by `time`, and a feed read newest-first by id is a read newest-first by time;
- the same `time` + `foreign_id` is the same id: a retried or repeated add replaces, never adds.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = (1 << 48) - 1


def activity_id(time: datetime, foreign_id: str | None, content: Mapping[str, Any]) -> str:
    """The id of an activity at `time` (aware, UTC) with this foreign id or content."""
    micros = (time - EPOCH) // timedelta(microseconds=1)
    millis, sub_ms = divmod(micros, 1000)
    if not 0 <= millis <= _MAX_MS:
        raise ValueError("time out of range")
    key = (
        f"f:{foreign_id}"
        if foreign_id
        else "c:" + json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    )
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    value = (
        (millis << 80)
        | (0x7 << 76)
        | ((sub_ms * 4096 // 1000) << 64)
        | (0b10 << 62)
        | (digest & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


def is_activity_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def lookup_id(value: str) -> str | None:
    """The canonical form of an id to look up, or None when it is no UUID. Ids made here are
    UUIDv7, but a lookup takes any UUID (Stream's own ids are UUIDv1, and its SDKs' tests look
    up fresh `uuid1()`s): an id of another version, or in another spelling (upper case, no
    hyphens, braces), is simply one no activity has, or the same id."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def format_time(time: datetime) -> str:
    """Stream's wire form: UTC, no offset, to the microsecond."""
    return time.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def parse_time(value: str) -> datetime:
    """ISO-8601; a time without an offset is UTC, as Stream's clients send it."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Clock:
    """Now, in UTC, never the same microsecond twice in one process: activities added without a
    `time` (one batch, or many quick adds) keep their order of arrival."""

    def __init__(self) -> None:
        self._last = EPOCH
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now


clock = Clock()


def id_floor(time: datetime) -> str:
    """The lowest id any activity at `time` (to the millisecond) can have: an id range bound
    that stands for a time (see store/mongo/scan.py)."""
    millis = max(0, min(_MAX_MS, (time - EPOCH) // timedelta(milliseconds=1)))
    digits = f"{millis:012x}"
    return f"{digits[:8]}-{digits[8:]}-0000-0000-000000000000"


_LAST_MS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


def id_time(value: str) -> datetime:
    """The time of an activity id, to the millisecond. An id past the year 9999 (48 bits of
    milliseconds reach 10889), which only a bound a client made up can be, is the last time
    a datetime holds."""
    return EPOCH + timedelta(milliseconds=min(int(value[:8] + value[9:13], 16), _LAST_MS))
